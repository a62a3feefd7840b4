//! Bearer credentials (API keys, session tokens, invitation tokens): made
//! of a public prefix and random bytes, kept only as SHA-256 digests. A
//! credential is found by its prefix and its digest compared in constant
//! time, so neither a database index nor a byte-by-byte comparison reveals
//! how much of a guess was right.

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Characters of a credential stored in clear to find it by.
pub const PREFIX_CHARS: usize = 12;

/// The lookup prefix of a credential.
pub fn prefix(credential: &str) -> String {
    credential.chars().take(PREFIX_CHARS).collect()
}

pub fn digest(credential: &str) -> String {
    let hash = Sha256::digest(credential.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh credential: `{kind}_` and 40 random alphanumerics (about 238 bits).
pub fn generate(kind: &str) -> String {
    format!(
        "{kind}_{}",
        Alphanumeric.sample_string(&mut rand::rng(), 40)
    )
}

/// Whether `credential` hashes to `stored`, in time that does not depend
/// on where they differ.
pub fn matches(credential: &str, stored: &str) -> bool {
    digest(credential)
        .as_bytes()
        .ct_eq(stored.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_matches_its_digest_only() {
        let key = generate("fmk");
        assert!(key.starts_with("fmk_") && key.len() == 44);
        assert_eq!(prefix(&key).len(), PREFIX_CHARS);
        assert!(matches(&key, &digest(&key)));
        assert!(!matches(&key, &digest(&generate("fmk"))));
        assert!(!matches(&key, ""));
    }
}
