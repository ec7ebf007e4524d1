//! Query text written once for both backends. Queries use `?` placeholders (SQLite's);
//! [`Backend::sql`] numbers them `$1..$n` for PostgreSQL. The few things the two dialects
//! spell differently are fragments here ([`Backend::position_fn`]), so the modules above
//! never branch on the backend.
//!
//! Values cross the `Any` driver as integers, text and doubles only: booleans are stored
//! as 0/1 integers on both backends (`Any` decodes `bool` only from a real boolean
//! column) and read back with [`flag`] / [`opt_flag`].

use std::borrow::Cow;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

/// Which database server the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file (or memory), WAL mode.
    Sqlite,
    /// A shared server, for several nodes.
    Postgres,
}

impl Backend {
    /// The backend a `[store] database` URL selects, if any.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// Short name for logs and test names.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// `text` with its `?` placeholders as this backend wants them: unchanged for
    /// SQLite, `$1, $2, ...` in order for PostgreSQL. A `?` inside a quoted string, a
    /// quoted identifier or a `--` comment is left alone.
    pub fn sql(self, text: &str) -> Cow<'_, str> {
        match self {
            Backend::Sqlite => Cow::Borrowed(text),
            Backend::Postgres => Cow::Owned(number_placeholders(text)),
        }
    }

    /// The function `f(haystack, needle)` giving the 1-based position of `needle` in
    /// `haystack` as plain text (`%` and `_` included, unlike LIKE), 0 if absent:
    /// `instr` in SQLite, `strpos` in PostgreSQL.
    pub fn position_fn(self) -> &'static str {
        match self {
            Backend::Sqlite => "instr",
            Backend::Postgres => "strpos",
        }
    }
}

/// Rewrites `?` placeholders to `$1..$n`, outside quotes and comments.
fn number_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                // Copy up to the closing quote; a doubled quote is an escaped one and
                // simply closes and reopens.
                for q in chars.by_ref() {
                    out.push(q);
                    if q == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for q in chars.by_ref() {
                    out.push(q);
                    if q == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            c => out.push(c),
        }
    }
    out
}

/// A bound value of a query built piece by piece ([`SqlBuilder`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    Text(String),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
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

/// A query whose text depends on a filter: text pieces and bound values pushed in
/// order, then run with [`SqlBuilder::text`] and [`SqlBuilder::bind_to`]:
///
/// ```ignore
/// let sql = builder.text(store.backend());
/// builder.bind_to(sqlx::query(&sql)).fetch_all(pool).await?;
/// ```
#[derive(Debug, Clone, Default)]
pub struct SqlBuilder {
    text: String,
    params: Vec<Param>,
}

impl SqlBuilder {
    pub fn new(text: impl Into<String>) -> SqlBuilder {
        SqlBuilder {
            text: text.into(),
            params: Vec::new(),
        }
    }

    /// Appends query text (no values: those go through [`SqlBuilder::bind`]).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a `?` placeholder bound to `value`.
    pub fn bind(&mut self, value: impl Into<Param>) -> &mut Self {
        self.text.push('?');
        self.params.push(value.into());
        self
    }

    /// Appends `?, ?, ...`, one per value.
    pub fn bind_list<P: Into<Param>>(&mut self, values: impl IntoIterator<Item = P>) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(value);
        }
        self
    }

    /// The query text for `backend`.
    pub fn text(&self, backend: Backend) -> String {
        backend.sql(&self.text).into_owned()
    }

    /// Binds the values, in order, to a query made from [`SqlBuilder::text`].
    pub fn bind_to<'q>(
        &self,
        mut query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        for param in &self.params {
            query = match param {
                Param::Int(v) => query.bind(*v),
                Param::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }
}

/// A 0/1 column as a `bool`.
pub fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// A nullable 0/1 column as an `Option<bool>`.
pub fn opt_flag(row: &AnyRow, column: &str) -> Result<Option<bool>, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(|v| v != 0))
}

/// A `bool` as the 0/1 integer both backends store.
pub fn to_flag(value: bool) -> i64 {
    i64::from(value)
}

/// An `Option<bool>` as a nullable 0/1 integer.
pub fn to_opt_flag(value: Option<bool>) -> Option<i64> {
    value.map(i64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let text = "SELECT a FROM t WHERE b = ? AND c IN (?, ?) LIMIT ?";
        assert_eq!(Backend::Sqlite.sql(text), text);
        assert_eq!(
            Backend::Postgres.sql(text),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3) LIMIT $4"
        );
    }

    #[test]
    fn question_marks_in_strings_identifiers_and_comments_stay() {
        let text = "SELECT '?', 'it''s ?', \"odd?\" -- why?\nFROM t WHERE x = ?";
        assert_eq!(
            Backend::Postgres.sql(text),
            "SELECT '?', 'it''s ?', \"odd?\" -- why?\nFROM t WHERE x = $1"
        );
        assert_eq!(Backend::Postgres.sql("a - ? -b"), "a - $1 -b");
    }

    #[test]
    fn the_builder_keeps_values_in_text_order() {
        let mut b = SqlBuilder::new("SELECT * FROM calls WHERE 1 = 1");
        b.push(" AND agent = ").bind("1001");
        b.push(" AND id IN (").bind_list(["a", "b"]).push(")");
        b.push(" LIMIT ").bind(5_i64);
        assert_eq!(
            b.text(Backend::Postgres),
            "SELECT * FROM calls WHERE 1 = 1 AND agent = $1 AND id IN ($2, $3) LIMIT $4"
        );
        assert_eq!(
            b.params,
            vec![
                Param::Text("1001".into()),
                Param::Text("a".into()),
                Param::Text("b".into()),
                Param::Int(5)
            ]
        );
        assert_eq!(
            Backend::of_url("postgresql://db/x"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::of_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(Backend::of_url("mysql://db"), None);
    }
}
