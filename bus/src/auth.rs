//! How the engine logs in to NATS: user and password, a token, an nkey
//! seed or a credentials file (JWT and seed), given in the settings or as
//! `nats://user:password@host` in the URL. None of it is ever logged.

use std::path::PathBuf;

use async_nats::{ConnectOptions, ServerAddr};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The engine's NATS credentials: at most one way; all unset for a server
/// without authentication.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsAuth {
    /// User name; goes with `password`.
    pub user: Option<String>,
    #[serde(skip_serializing)]
    pub password: Option<String>,
    #[serde(skip_serializing)]
    pub token: Option<String>,
    /// The seed of a user nkey (`SU…`).
    #[serde(skip_serializing)]
    pub nkey_seed: Option<String>,
    /// A `.creds` file, as `nsc` writes them.
    pub credentials_file: Option<PathBuf>,
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsAuth")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("nkey_seed", &self.nkey_seed.as_ref().map(|_| "[redacted]"))
            .field("credentials_file", &self.credentials_file)
            .finish()
    }
}

/// One way of logging in, once the settings and the URL are reconciled.
enum Login {
    Anonymous,
    UserPassword { user: String, password: String },
    Token(String),
    Nkey(String),
    CredentialsFile(PathBuf),
}

impl Login {
    /// What to say about it in an error: never the secret itself.
    fn describe(&self) -> String {
        match self {
            Login::Anonymous => "without credentials".to_owned(),
            Login::UserPassword { user, .. } => format!("as user {user:?} with a password"),
            Login::Token(_) => "with a token".to_owned(),
            Login::Nkey(_) => "with an nkey".to_owned(),
            Login::CredentialsFile(path) => {
                format!("with the credentials file {}", path.display())
            }
        }
    }
}

fn decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Credentials written in a server URL: user and password, or a token
/// alone (`nats://token@host`).
fn from_urls(servers: &[ServerAddr]) -> Result<Option<Login>, Error> {
    let mut found = servers.iter().filter_map(|s| {
        let user = s.username().map(decoded)?;
        Some(match s.password().map(decoded) {
            Some(password) => Login::UserPassword { user, password },
            None => Login::Token(user),
        })
    });
    let first = found.next();
    if first.is_some() && found.next().is_some() {
        return Err(Error::Config(
            "NATS credentials are in more than one server URL: give them once, or with the NATS credential settings".into(),
        ));
    }
    Ok(first)
}

impl NatsAuth {
    fn login(&self, servers: &[ServerAddr]) -> Result<Login, Error> {
        let mut ways = Vec::new();
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => ways.push(Login::UserPassword {
                user: user.clone(),
                password: password.clone(),
            }),
            (Some(_), None) => {
                return Err(Error::Config(
                    "a NATS user needs a password (FLOWMESH_NATS_PASSWORD)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(Error::Config(
                    "a NATS password needs a user (FLOWMESH_NATS_USER)".into(),
                ));
            }
            (None, None) => {}
        }
        ways.extend(self.token.clone().map(Login::Token));
        ways.extend(self.nkey_seed.clone().map(Login::Nkey));
        ways.extend(self.credentials_file.clone().map(Login::CredentialsFile));
        ways.extend(from_urls(servers)?);
        if ways.len() > 1 {
            let named: Vec<String> = ways.iter().map(Login::describe).collect();
            return Err(Error::Config(format!(
                "give the engine's NATS credentials one way, not {}",
                named.join(" and ")
            )));
        }
        Ok(ways.pop().unwrap_or(Login::Anonymous))
    }

    /// Connect options that log in as configured, and how, for errors.
    pub(crate) async fn connect_options(
        &self,
        servers: &[ServerAddr],
    ) -> Result<(ConnectOptions, String), Error> {
        let login = self.login(servers)?;
        let how = login.describe();
        let options = ConnectOptions::new();
        let options = match login {
            Login::Anonymous => options,
            Login::UserPassword { user, password } => options.user_and_password(user, password),
            Login::Token(token) => options.token(token),
            Login::Nkey(seed) => options.nkey(seed),
            Login::CredentialsFile(path) => {
                options
                    .credentials_file(&path)
                    .await
                    .map_err(|e| Error::Refused {
                        what: format!("the NATS credentials file {}", path.display()),
                        source: e.into(),
                    })?
            }
        };
        Ok((options, how))
    }
}

/// A server address as it may be shown: scheme, host and port only.
pub(crate) fn shown(server: &ServerAddr) -> String {
    format!("{}:{}", server.host(), server.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(urls: &[&str]) -> Vec<ServerAddr> {
        urls.iter().map(|u| u.parse().unwrap()).collect()
    }

    #[test]
    fn credentials_come_one_way() {
        let plain = servers(&["nats://127.0.0.1:4222"]);
        assert!(matches!(
            NatsAuth::default().login(&plain),
            Ok(Login::Anonymous)
        ));
        let in_url = servers(&["nats://engine:p%40ss@127.0.0.1:4222"]);
        match NatsAuth::default().login(&in_url) {
            Ok(Login::UserPassword { user, password }) => {
                assert_eq!((user.as_str(), password.as_str()), ("engine", "p@ss"));
            }
            _ => panic!("user and password from the URL"),
        }
        let token_url = servers(&["nats://s3cr3t@127.0.0.1:4222"]);
        assert!(matches!(
            NatsAuth::default().login(&token_url),
            Ok(Login::Token(t)) if t == "s3cr3t"
        ));
        let both = NatsAuth {
            token: Some("s3cr3t".into()),
            ..Default::default()
        };
        let e = both.login(&in_url).err().expect("two ways refused");
        let message = e.to_string();
        assert!(message.contains("one way"), "{message}");
        assert!(!message.contains("s3cr3t") && !message.contains("p@ss"));
        let lonely = NatsAuth {
            user: Some("engine".into()),
            ..Default::default()
        };
        assert!(lonely.login(&plain).is_err());
        let debug = format!(
            "{:?}",
            NatsAuth {
                password: Some("hunter2".into()),
                ..Default::default()
            }
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
