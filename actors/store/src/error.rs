/// Store failures. [`Error::is_retryable`] says whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    /// A unique rule was broken (a webhook path in use, a slug taken).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    /// An idempotency key already started an execution of the same trigger
    /// from a different request (the key).
    #[error("idempotency key {0:?} was already used for a different request")]
    KeyReused(String),
    /// The database could not be reached in time; nothing was written.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A row that cannot be read back (written by something else, or damaged).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A row whose value `what` cannot be read back.
    #[error("corrupt row: {what}: {source}")]
    Unreadable {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A password could not be hashed (argon2 refused it).
    #[error("the password cannot be hashed: {0}")]
    PasswordHash(#[source] argon2::password_hash::Error),
    /// The task hashing a password stopped before it ended.
    #[error("password hashing stopped: {0}")]
    Hashing(#[from] tokio::task::JoinError),
    /// A workflow document could not be written as JSON.
    #[error("the workflow document cannot be written: {0}")]
    Document(#[source] serde_json::Error),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// A value of `what` that cannot be read back.
    pub(crate) fn unreadable(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Unreadable {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Error::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Error::Unavailable(e),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Error::Conflict(db.message().to_owned())
            }
            // character_not_in_repertoire, untranslatable_character: NUL in
            // text or jsonb. The request is at fault, so retrying cannot help.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("22021" | "22P05")) =>
            {
                Error::Invalid(format!("text the database cannot store: {}", db.message()))
            }
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_) => Error::unreadable("a column", e),
            _ => Error::Database(e),
        }
    }
}
