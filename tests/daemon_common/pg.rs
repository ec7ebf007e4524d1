//! A fresh PostgreSQL database for one test (the tests of several nodes on one database),
//! dropped at the end; and `psql` to read it. The server: `THREERING_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`.

use std::process::Command;

use super::base::free_port;

pub fn pg_admin_url() -> String {
    std::env::var("THREERING_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh PostgreSQL database for this test, dropped at the end.
pub struct PgDatabase {
    admin: String,
    name: String,
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        let name = format!("tr_cluster_{}_{}", std::process::id(), free_port());
        let db = PgDatabase {
            admin: pg_admin_url(),
            name,
        };
        db.psql_admin(&format!("CREATE DATABASE {}", db.name));
        db
    }

    pub fn url(&self) -> String {
        match self.admin.rfind('/') {
            Some(at) => format!("{}/{}", &self.admin[..at], self.name),
            None => panic!("THREERING_TEST_PG has no database part: {}", self.admin),
        }
    }

    pub fn psql_admin(&self, sql: &str) -> String {
        psql(&self.admin, sql)
    }

    /// Rows of a query, columns split on `|`.
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        psql(&self.url(), sql)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('|').map(str::to_owned).collect())
            .collect()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&self.admin, "-qAtc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-qAtc", sql])
        .output()
        .expect("run psql (Debian package postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
