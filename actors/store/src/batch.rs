//! Statements of one transaction written in as few round trips as the
//! backend allows. SQLite runs the statements of one query string in order
//! (one trip to its single connection, which every other request waits
//! for); PostgreSQL takes one statement per query with parameters, so
//! there each statement is its own query, in the same transaction.

use sqlx::Arguments;
use sqlx::any::{AnyArguments, AnyRow};

use crate::{Backend, Error};

/// One parameter's value.
pub(crate) enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(v)
    }
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(v.to_owned())
    }
}

impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Self {
        Param::OptText(v)
    }
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Self {
        Param::OptInt(v)
    }
}

/// The queries to run: each holds statements and their parameters. On
/// SQLite the statements of a query share its argument list and number
/// their parameters across it, up to SQLite's limit per statement.
pub(crate) struct Batch {
    backend: Backend,
    queries: Vec<(String, Vec<Param>)>,
}

/// Most parameters one SQLite query string numbers (SQLite refuses a
/// placeholder numbered past 32,766).
const SQLITE_PARAMS: usize = 32_000;

/// The parameters of the statement being written.
pub(crate) struct Binder<'b> {
    params: &'b mut Vec<Param>,
    first: usize,
}

impl Binder<'_> {
    /// Adds a parameter; returns its placeholder.
    pub(crate) fn bind(&mut self, value: impl Into<Param>) -> String {
        self.params.push(value.into());
        format!("${}", self.first + self.params.len())
    }
}

impl Batch {
    pub(crate) fn new(backend: Backend) -> Batch {
        Batch {
            backend,
            queries: Vec::new(),
        }
    }

    /// Adds a statement; `write` binds its parameters as it writes it (and
    /// may be called again, numbering from 1, to start a query of its own).
    pub(crate) fn statement(&mut self, mut write: impl FnMut(&mut Binder<'_>) -> String) {
        if self.backend == Backend::Sqlite
            && let Some((sql, params)) = self.queries.last_mut()
        {
            let mut added = Vec::new();
            let statement = write(&mut Binder {
                params: &mut added,
                first: params.len(),
            });
            if params.len() + added.len() <= SQLITE_PARAMS {
                sql.push_str(";\n");
                sql.push_str(&statement);
                params.extend(added);
                return;
            }
        }
        let mut params = Vec::new();
        let sql = write(&mut Binder {
            params: &mut params,
            first: 0,
        });
        self.queries.push((sql, params));
    }

    /// Runs the queries in order; returns the rows their statements return.
    pub(crate) async fn run(
        self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<Vec<AnyRow>, Error> {
        let mut rows = Vec::new();
        for (sql, params) in self.queries {
            let mut args = AnyArguments::default();
            add_all(&mut args, params)?;
            rows.extend(sqlx::query_with(&sql, args).fetch_all(&mut **tx).await?);
        }
        Ok(rows)
    }
}

fn add_all(args: &mut AnyArguments<'_>, params: Vec<Param>) -> Result<(), Error> {
    for param in params {
        let added = match param {
            Param::Text(v) => args.add(v),
            Param::OptText(v) => args.add(v),
            Param::Int(v) => args.add(v),
            Param::OptInt(v) => args.add(v),
        };
        added.map_err(|e| Error::Invalid(format!("a parameter cannot be bound: {e}")))?;
    }
    Ok(())
}
