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
    Unavailable(String),
    /// A row that cannot be read back (written by something else, or damaged).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(String),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Error::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Error::Unavailable(e.to_string()),
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
            | sqlx::Error::ColumnNotFound(_) => Error::Corrupt(e.to_string()),
            _ => Error::Database(e.to_string()),
        }
    }
}
