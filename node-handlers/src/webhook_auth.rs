//! Who may call a webhook: a token in a header, HTTP basic auth, or an
//! HMAC-SHA256 signature of the raw body in one sender's convention
//! (generic, GitHub, Stripe, Slack). The check runs on the bytes as
//! received, before the body is parsed and before anything starts.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The values of a webhook trigger's `auth.scheme`.
pub const SCHEMES: [&str; 6] = ["token", "basic", "hmac", "github", "stripe", "slack"];

/// How a webhook caller proves who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `{header}: {prefix}{secret}`.
    Token { header: String, prefix: String },
    /// `Authorization: Basic base64({user}:{secret})`.
    Basic { user: String },
    /// `{header}: sha256={hex}`, the HMAC of the body, or of
    /// `{timestamp}.{body}` when a timestamp header is named.
    Hmac {
        header: String,
        timestamp_header: Option<String>,
    },
    /// `X-Hub-Signature-256: sha256={hex}`, the HMAC of the body.
    Github,
    /// `Stripe-Signature: t={ts},v1={hex}[,v1={hex}]`, the HMAC of `{ts}.{body}`.
    Stripe,
    /// `X-Slack-Signature: v0={hex}`, the HMAC of
    /// `v0:{X-Slack-Request-Timestamp}:{body}`.
    Slack,
}

/// The `auth` of a webhook trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookAuth {
    pub scheme: Scheme,
    /// Name of the tenant's secret: the token, the password or the signing key.
    pub secret: String,
}

/// A problem of a trigger's `auth`, at `field` (below the node's `config`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

/// A caller's request as the check sees it.
pub struct Presented<'a> {
    /// The request's headers; names are matched without regard to case.
    pub headers: &'a Map<String, Value>,
    /// The body exactly as received.
    pub body: &'a [u8],
    /// The value of the trigger's secret.
    pub secret: &'a str,
    /// Seconds since the Unix epoch.
    pub now: i64,
    /// How far a signed timestamp may be from `now`, either way.
    pub tolerance: Duration,
}

/// Why a caller was refused: for the operator's log. It never holds the
/// secret or an expected value; the caller only learns that
/// authentication failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("header {0} is missing")]
    Missing(String),
    #[error("header {0} is malformed")]
    Malformed(String),
    #[error("the signed timestamp is too far from now")]
    Stale,
    #[error("the credential or signature does not match")]
    Mismatch,
}

/// Characters of an HTTP header name this check accepts.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Reads the fields of an `auth` object, gathering every problem.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    problems: Vec<Problem>,
}

impl Fields<'_> {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            field: format!("auth.{field}"),
            message: message.into(),
        });
    }

    fn text(&mut self, field: &str, required: bool) -> Option<String> {
        match self.map.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            None | Some(Value::Null) if !required => None,
            Some(Value::String(_)) | None | Some(Value::Null) => {
                self.push(field, format!("{field} is required"));
                None
            }
            Some(_) => {
                self.push(field, format!("{field} must be a string"));
                None
            }
        }
    }

    fn header(&mut self, field: &str, default: Option<&str>) -> Option<String> {
        let name = self.text(field, false).or(default.map(str::to_owned))?;
        if !valid_header_name(&name) {
            self.push(
                field,
                format!("{field} must be a header name of letters, digits, - and _"),
            );
        }
        Some(name)
    }

    fn only(&mut self, known: &[&str], scheme: &str) {
        let unknown = self.map.keys().filter(|k| !known.contains(&k.as_str()));
        for field in unknown.cloned().collect::<Vec<_>>() {
            self.push(
                &field,
                format!("auth of scheme {scheme} takes {}", known.join(", ")),
            );
        }
    }
}

impl WebhookAuth {
    /// Reads a webhook trigger's `auth`, gathering every problem.
    pub(crate) fn parse(auth: &Value) -> Result<Self, Vec<Problem>> {
        let Some(map) = auth.as_object() else {
            return Err(vec![Problem {
                field: "auth".into(),
                message: "auth must be an object with a scheme and a secret".into(),
            }]);
        };
        let mut f = Fields {
            map,
            problems: Vec::new(),
        };
        let secret = f.text("secret", true);
        let scheme = f.text("scheme", true);
        let scheme = match scheme.as_deref() {
            None => None,
            Some("token") => {
                f.only(&["scheme", "secret", "header", "prefix"], "token");
                let header = f.header("header", Some("Authorization"));
                let bearer = header
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case("authorization"));
                let prefix = match map.get("prefix") {
                    None | Some(Value::Null) => Some(if bearer { "Bearer " } else { "" }.into()),
                    Some(Value::String(p)) => Some(p.clone()),
                    Some(_) => {
                        f.push("prefix", "prefix must be a string");
                        None
                    }
                };
                header
                    .zip(prefix)
                    .map(|(header, prefix)| Scheme::Token { header, prefix })
            }
            Some("basic") => {
                f.only(&["scheme", "secret", "user"], "basic");
                let user = f.text("user", true);
                if user.as_deref().is_some_and(|u| u.contains(':')) {
                    f.push("user", "user cannot hold a colon (:)");
                }
                user.map(|user| Scheme::Basic { user })
            }
            Some("hmac") => {
                f.only(&["scheme", "secret", "header", "timestamp_header"], "hmac");
                let header = f.header("header", Some("X-Signature"));
                let timestamp_header = f.header("timestamp_header", None);
                header.map(|header| Scheme::Hmac {
                    header,
                    timestamp_header,
                })
            }
            Some(sender @ ("github" | "stripe" | "slack")) => {
                f.only(&["scheme", "secret"], sender);
                Some(match sender {
                    "github" => Scheme::Github,
                    "stripe" => Scheme::Stripe,
                    _ => Scheme::Slack,
                })
            }
            Some(other) => {
                f.push(
                    "scheme",
                    format!(
                        "scheme {other:?} is unknown; use one of {}",
                        SCHEMES.join(", ")
                    ),
                );
                None
            }
        };
        match (scheme, secret) {
            (Some(scheme), Some(secret)) if f.problems.is_empty() => {
                Ok(WebhookAuth { scheme, secret })
            }
            _ => Err(f.problems),
        }
    }

    /// The `WWW-Authenticate` challenge a refused caller gets, if the
    /// scheme has one.
    pub fn challenge(&self) -> Option<&'static str> {
        match &self.scheme {
            Scheme::Basic { .. } => Some("Basic realm=\"webhook\", charset=\"UTF-8\""),
            Scheme::Token { header, prefix }
                if header.eq_ignore_ascii_case("authorization") && prefix == "Bearer " =>
            {
                Some("Bearer")
            }
            _ => None,
        }
    }

    /// Headers that carry this scheme's credential, in lower case: kept out
    /// of the trigger's data.
    pub fn credential_headers(&self) -> Vec<String> {
        let names: Vec<&str> = match &self.scheme {
            Scheme::Token { header, .. } => vec![header],
            Scheme::Basic { .. } => vec!["authorization"],
            Scheme::Hmac { header, .. } => vec![header],
            Scheme::Github => vec!["x-hub-signature-256"],
            Scheme::Stripe => vec!["stripe-signature"],
            Scheme::Slack => vec!["x-slack-signature"],
        };
        names.into_iter().map(str::to_ascii_lowercase).collect()
    }

    /// Whether the caller holds the secret.
    pub fn verify(&self, p: &Presented<'_>) -> Result<(), Refused> {
        match &self.scheme {
            Scheme::Token { header, prefix } => {
                let value = header_value(p.headers, header)?;
                let token = strip_prefix_ignore_case(value, prefix)
                    .ok_or_else(|| Refused::Malformed(header.clone()))?;
                same(token.as_bytes(), p.secret.as_bytes())
            }
            Scheme::Basic { user } => {
                let value = header_value(p.headers, "authorization")?;
                let malformed = || Refused::Malformed("authorization".into());
                let encoded = strip_prefix_ignore_case(value, "Basic ").ok_or_else(malformed)?;
                let decoded = B64.decode(encoded.trim()).map_err(|_| malformed())?;
                same(&decoded, format!("{user}:{}", p.secret).as_bytes())
            }
            Scheme::Hmac {
                header,
                timestamp_header,
            } => {
                let signature = hex_after(p.headers, header, "sha256=")?;
                match timestamp_header {
                    None => signed(p.secret, &[p.body], &[signature]),
                    Some(name) => {
                        let timestamp = fresh_timestamp(p, name)?;
                        signed(
                            p.secret,
                            &[timestamp.as_bytes(), b".", p.body],
                            &[signature],
                        )
                    }
                }
            }
            Scheme::Github => {
                let signature = hex_after(p.headers, "x-hub-signature-256", "sha256=")?;
                signed(p.secret, &[p.body], &[signature])
            }
            Scheme::Stripe => {
                let header = StripeSignature::parse(header_value(p.headers, "stripe-signature")?)?;
                fresh(p, header.timestamp)?;
                let t = header.timestamp.to_string();
                signed(p.secret, &[t.as_bytes(), b".", p.body], &header.signatures)
            }
            Scheme::Slack => {
                let timestamp = fresh_timestamp(p, "x-slack-request-timestamp")?;
                let signature = hex_after(p.headers, "x-slack-signature", "v0=")?;
                signed(
                    p.secret,
                    &[b"v0:", timestamp.as_bytes(), b":", p.body],
                    &[signature],
                )
            }
        }
    }
}

fn header_value<'a>(headers: &'a Map<String, Value>, name: &str) -> Result<&'a str, Refused> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
        .ok_or_else(|| Refused::Missing(name.to_ascii_lowercase()))
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// The bytes of `{prefix}{hex}` in header `name`.
fn hex_after(headers: &Map<String, Value>, name: &str, prefix: &str) -> Result<Vec<u8>, Refused> {
    let value = header_value(headers, name)?;
    strip_prefix_ignore_case(value.trim(), prefix)
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| Refused::Malformed(name.to_ascii_lowercase()))
}

/// The timestamp header's text, once it is a number of seconds close to now.
fn fresh_timestamp<'a>(p: &Presented<'a>, name: &str) -> Result<&'a str, Refused> {
    let text = header_value(p.headers, name)?.trim();
    let seconds = text
        .parse::<i64>()
        .map_err(|_| Refused::Malformed(name.to_ascii_lowercase()))?;
    fresh(p, seconds)?;
    Ok(text)
}

/// A signed timestamp within the tolerance of now, either way: an old
/// request cannot be replayed after it.
fn fresh(p: &Presented<'_>, seconds: i64) -> Result<(), Refused> {
    let tolerance = i64::try_from(p.tolerance.as_secs()).unwrap_or(i64::MAX);
    if p.now.abs_diff(seconds) > tolerance.unsigned_abs() {
        return Err(Refused::Stale);
    }
    Ok(())
}

/// Whether one of `signatures` is the HMAC-SHA256 of the concatenated
/// `parts`, compared in constant time.
fn signed(secret: &str, parts: &[&[u8]], signatures: &[Vec<u8>]) -> Result<(), Refused> {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| Refused::Mismatch)?;
    for part in parts {
        mac.update(part);
    }
    let mut matched = false;
    for signature in signatures {
        matched |= mac.clone().verify_slice(signature).is_ok();
    }
    if matched {
        Ok(())
    } else {
        Err(Refused::Mismatch)
    }
}

/// Equal credentials, compared in constant time; hashing first hides the
/// secret's length as well.
fn same(given: &[u8], expected: &[u8]) -> Result<(), Refused> {
    let equal = Sha256::digest(given).ct_eq(&Sha256::digest(expected));
    if bool::from(equal) {
        Ok(())
    } else {
        Err(Refused::Mismatch)
    }
}

/// `Stripe-Signature: t=1700000000,v1=5257a8...,v1=...`: one timestamp and
/// the signatures of each signing secret Stripe holds at the time. Other
/// schemes (`v0`, test mode) are ignored.
#[derive(Debug, PartialEq, Eq)]
struct StripeSignature {
    timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

impl StripeSignature {
    fn parse(header: &str) -> Result<Self, Refused> {
        let malformed = || Refused::Malformed("stripe-signature".into());
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in header.split(',') {
            let (key, value) = item.trim().split_once('=').ok_or_else(malformed)?;
            match key {
                "t" if timestamp.is_none() => {
                    timestamp = Some(value.parse::<i64>().map_err(|_| malformed())?);
                }
                "t" => return Err(malformed()),
                "v1" => signatures.push(hex::decode(value).map_err(|_| malformed())?),
                _ => {}
            }
        }
        match timestamp {
            Some(timestamp) if !signatures.is_empty() => Ok(Self {
                timestamp,
                signatures,
            }),
            _ => Err(malformed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn mac_hex(secret: &str, message: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(message);
        hex::encode(mac.finalize().into_bytes())
    }

    fn auth(config: Value) -> Result<WebhookAuth, Vec<Problem>> {
        WebhookAuth::parse(&config)
    }

    fn verify(auth: &WebhookAuth, headers: Value, body: &[u8]) -> Result<(), Refused> {
        auth.verify(&Presented {
            headers: headers.as_object().unwrap(),
            body,
            secret: "s3cret",
            now: NOW,
            tolerance: Duration::from_secs(300),
        })
    }

    #[test]
    fn stripe_header_with_several_signatures() {
        let header = format!(
            "t={NOW},v1={},v0=6ffbb59b,v1={}",
            "00".repeat(32),
            "ab".repeat(32)
        );
        let parsed = StripeSignature::parse(&header).unwrap();
        assert_eq!(parsed.timestamp, NOW);
        assert_eq!(parsed.signatures, vec![vec![0; 32], vec![0xab; 32]]);

        let stripe = auth(json!({"scheme": "stripe", "secret": "s"})).unwrap();
        let body = br#"{"id":"evt_1"}"#;
        let good = mac_hex(
            "s3cret",
            format!("{NOW}.{}", "{\"id\":\"evt_1\"}").as_bytes(),
        );
        let header = format!("t={NOW},v1={},v1={good}", "00".repeat(32));
        assert_eq!(
            verify(&stripe, json!({"Stripe-Signature": header}), body),
            Ok(())
        );
    }

    #[test]
    fn malformed_stripe_headers_are_refused() {
        let v1 = "ab".repeat(32);
        for header in [
            String::new(),
            format!("v1={v1}"),
            format!("t={NOW}"),
            format!("t=soon,v1={v1}"),
            format!("t={NOW},t={NOW},v1={v1}"),
            format!("t={NOW},v1=zz"),
            format!("t={NOW};v1={v1}"),
        ] {
            assert_eq!(
                StripeSignature::parse(&header),
                Err(Refused::Malformed("stripe-signature".into())),
                "{header:?}"
            );
        }
    }

    #[test]
    fn slack_headers_are_read_and_checked() {
        let slack = auth(json!({"scheme": "slack", "secret": "s"})).unwrap();
        let body = b"token=x&text=hi";
        let good = mac_hex("s3cret", format!("v0:{NOW}:token=x&text=hi").as_bytes());
        let headers = |ts: String, sig: String| json!({"x-slack-request-timestamp": ts, "x-slack-signature": sig});
        assert_eq!(
            verify(&slack, headers(NOW.to_string(), format!("v0={good}")), body),
            Ok(())
        );
        assert_eq!(
            verify(&slack, headers(NOW.to_string(), good.clone()), body),
            Err(Refused::Malformed("x-slack-signature".into()))
        );
        assert_eq!(
            verify(
                &slack,
                headers("yesterday".into(), format!("v0={good}")),
                body
            ),
            Err(Refused::Malformed("x-slack-request-timestamp".into()))
        );
        assert_eq!(
            verify(
                &slack,
                headers((NOW - 360).to_string(), format!("v0={good}")),
                body
            ),
            Err(Refused::Stale)
        );
        assert_eq!(
            verify(
                &slack,
                json!({"x-slack-signature": format!("v0={good}")}),
                body
            ),
            Err(Refused::Missing("x-slack-request-timestamp".into()))
        );
        assert_eq!(
            verify(
                &slack,
                headers(NOW.to_string(), format!("v0={good}")),
                b"token=x&text=ho"
            ),
            Err(Refused::Mismatch)
        );
    }

    #[test]
    fn tokens_and_basic_credentials_must_match() {
        let token = auth(json!({"scheme": "token", "secret": "s"})).unwrap();
        assert_eq!(
            verify(&token, json!({"authorization": "Bearer s3cret"}), b""),
            Ok(())
        );
        assert_eq!(
            verify(&token, json!({"authorization": "Bearer s3cre"}), b""),
            Err(Refused::Mismatch)
        );
        let named = auth(json!({"scheme": "token", "secret": "s", "header": "X-Token"})).unwrap();
        assert_eq!(verify(&named, json!({"x-token": "s3cret"}), b""), Ok(()));
        let basic = auth(json!({"scheme": "basic", "secret": "s", "user": "ops"})).unwrap();
        let credential = format!("Basic {}", B64.encode("ops:s3cret"));
        assert_eq!(
            verify(&basic, json!({"authorization": credential}), b""),
            Ok(())
        );
        let other = format!("Basic {}", B64.encode("dev:s3cret"));
        assert_eq!(
            verify(&basic, json!({"authorization": other}), b""),
            Err(Refused::Mismatch)
        );
    }

    #[test]
    fn bad_configs_name_their_field() {
        let fields = |config: Value| -> Vec<String> {
            auth(config)
                .unwrap_err()
                .into_iter()
                .map(|p| p.field)
                .collect()
        };
        assert_eq!(fields(json!({"scheme": "token"})), ["auth.secret"]);
        assert_eq!(
            fields(json!({"scheme": "rot13", "secret": "s"})),
            ["auth.scheme"]
        );
        assert_eq!(fields(json!({"secret": "s"})), ["auth.scheme"]);
        assert_eq!(
            fields(json!({"scheme": "basic", "secret": "s"})),
            ["auth.user"]
        );
        assert_eq!(
            fields(json!({"scheme": "github", "secret": "s", "header": "X"})),
            ["auth.header"]
        );
        assert_eq!(
            fields(json!({"scheme": "hmac", "secret": "s", "header": "X Sig"})),
            ["auth.header"]
        );
        assert_eq!(fields(json!("token")), ["auth"]);
    }
}
