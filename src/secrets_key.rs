//! The key that seals tenants' secrets: given in the settings, or
//! (embedded) kept in the data directory; and `flowmesh secrets rotate`,
//! which moves every secret to a new key.
//!
//! A rotation re-seals every secret in one database transaction, so the
//! store holds all of them under the old key or all under the new one.
//! With the key file, the new key is first written beside it
//! (`secrets.key.new`), the transaction runs, then the old file is kept as
//! `secrets.key.<time>.old` and the new one takes its place; a rotation
//! interrupted anywhere is finished by running it again (secrets already
//! under the new key are left alone).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use flowmesh_services::records::SealingKey;
use flowmesh_store::Store;

use crate::args::SecretsArgs;
use crate::cli::store_options;

const KEY_FILE: &str = "secrets.key";
const PENDING_FILE: &str = "secrets.key.new";

/// The key given in the settings; an empty one counts as none.
fn given(args: &SecretsArgs) -> Option<&str> {
    args.secrets_key.as_deref().filter(|k| !k.trim().is_empty())
}

fn read_key(path: &Path) -> anyhow::Result<SealingKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SealingKey::from_base64(&text)
        .with_context(|| format!("reading the secrets key in {}", path.display()))
}

/// Writes a new key file, private, durably; fails if it exists.
fn write_key(path: &Path, key: &SealingKey) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(key.to_base64().as_bytes())?;
    file.sync_all()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Refuses a key that does not open the secrets already in the store: a
/// process given another key than its peers would seal secrets they cannot
/// open, and fail every run that uses one of theirs.
pub async fn check_opens_stored(store: &Store, key: &SealingKey) -> anyhow::Result<()> {
    let opens = store
        .key_opens_secrets(key)
        .await
        .context("checking the secrets key against the store")?;
    if opens == Some(false) {
        bail!(
            "the secrets key (FLOWMESH_SECRETS_KEY) does not open the secrets in the store: \
             they were sealed with another key. Give every process the same key (after \
             `flowmesh secrets rotate`, the new one)"
        );
    }
    Ok(())
}

/// The key sealing secrets: given, or (embedded) kept in the data directory.
pub fn sealing_key(args: &SecretsArgs) -> anyhow::Result<Option<SealingKey>> {
    if let Some(text) = given(args) {
        return Ok(Some(SealingKey::from_base64(text)?));
    }
    if args.store.database_url.is_some() {
        tracing::warn!("FLOWMESH_SECRETS_KEY is not set: the secrets API is off");
        return Ok(None);
    }
    let path = args.store.data_dir.join(KEY_FILE);
    if args.store.data_dir.join(PENDING_FILE).exists() {
        bail!(
            "a rotation of the secrets key did not finish ({} exists): run `flowmesh secrets rotate` again",
            args.store.data_dir.join(PENDING_FILE).display()
        );
    }
    match read_key(&path) {
        Ok(key) => Ok(Some(key)),
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
        {
            let key = SealingKey::generate();
            std::fs::create_dir_all(&args.store.data_dir)?;
            write_key(&path, &key)?;
            tracing::info!(path = %path.display(), "made a key for secrets; back it up with the database");
            Ok(Some(key))
        }
        Err(e) => Err(e),
    }
}

/// Where the old and new keys come from.
enum Rotation {
    /// Both in the settings; the operator restarts the engines with the new one.
    Given { old: SealingKey, new: SealingKey },
    /// The key file of the data directory, replaced at the end.
    File {
        old: SealingKey,
        new: SealingKey,
        key: PathBuf,
        pending: PathBuf,
        /// This run wrote `pending`: a failed re-seal may remove it.
        created: bool,
    },
}

fn plan(args: &SecretsArgs, new: Option<&str>) -> anyhow::Result<Rotation> {
    let new = new.filter(|k| !k.trim().is_empty());
    let parse_new = |text: &str| {
        SealingKey::from_base64(text).context("the new secrets key (--new-secrets-key)")
    };
    if let Some(old) = given(args) {
        let old =
            SealingKey::from_base64(old).context("the current secrets key (--secrets-key)")?;
        let Some(new) = new else {
            bail!(
                "give the new key with --new-secrets-key or FLOWMESH_NEW_SECRETS_KEY (openssl rand -base64 32)"
            );
        };
        return Ok(Rotation::Given {
            old,
            new: parse_new(new)?,
        });
    }
    if args.store.database_url.is_some() {
        bail!(
            "give the current key with --secrets-key (FLOWMESH_SECRETS_KEY) and the new one with --new-secrets-key"
        );
    }
    let key = args.store.data_dir.join(KEY_FILE);
    let pending = args.store.data_dir.join(PENDING_FILE);
    let old = read_key(&key).context("no secrets key to rotate")?;
    let created = !pending.exists();
    let new = if !created {
        let earlier = read_key(&pending)?;
        if new.is_some_and(|text| {
            parse_new(text).map(|k| k.to_base64()).ok() != Some(earlier.to_base64())
        }) {
            bail!(
                "an earlier rotation left {}: run again without --new-secrets-key to finish it",
                pending.display()
            );
        }
        earlier
    } else {
        let new = match new {
            Some(text) => parse_new(text)?,
            None => SealingKey::generate(),
        };
        write_key(&pending, &new)?;
        new
    };
    Ok(Rotation::File {
        old,
        new,
        key,
        pending,
        created,
    })
}

/// `flowmesh secrets rotate`: every tenant's secret sealed under a new key.
pub async fn rotate(args: &SecretsArgs, new: Option<&str>) -> anyhow::Result<ExitCode> {
    crate::data_dir::tighten(&args.store.data_dir)?;
    let rotation = plan(args, new)?;
    let (old, new) = match &rotation {
        Rotation::Given { old, new } | Rotation::File { old, new, .. } => (old, new),
    };
    if old.to_base64() == new.to_base64() {
        bail!("the new secrets key is the current one");
    }
    let store = Store::connect(&store_options(&args.store))
        .await
        .context("connecting to the store")?;
    let done = store.reseal_secrets(old, new).await;
    store.close().await;
    if done.is_err()
        && let Rotation::File {
            pending,
            created: true,
            ..
        } = &rotation
    {
        // Nothing was sealed under a key this run made: forget it.
        let _ = std::fs::remove_file(pending);
    }
    let done = done.context("re-sealing the secrets (nothing was changed)")?;
    eprintln!(
        "re-sealed {} secrets under the new key ({} were already)",
        done.resealed, done.already
    );
    match rotation {
        Rotation::Given { .. } => {
            eprintln!("now restart every engine with the new key in FLOWMESH_SECRETS_KEY");
        }
        Rotation::File { key, pending, .. } => {
            let stamp = flowmesh_services::records::now_ms();
            let backup = key.with_file_name(format!("{KEY_FILE}.{stamp}.old"));
            // A second name for the old key first, then the new key takes
            // its place in one rename: there is always a secrets.key.
            std::fs::hard_link(&key, &backup)
                .with_context(|| format!("keeping the old key as {}", backup.display()))?;
            std::fs::rename(&pending, &key)
                .with_context(|| format!("moving {} to {}", pending.display(), key.display()))?;
            eprintln!(
                "{} holds the new key; the old one is kept in {} until you delete it",
                key.display(),
                backup.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
