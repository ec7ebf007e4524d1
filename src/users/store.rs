//! SQL for users, tokens, sessions and the audit log (`0004_users.sql`).

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::audit::{DEFAULT_LIMIT, MAX_LIMIT};
use super::{ApiToken, AuditEntry, AuditFilter, NewAudit, Session, User, UsersError};
use crate::config::Role;

const USER_COLUMNS: &str = "u.name, u.role, u.agent_id, u.disabled, u.created_at";

fn user_from_row(row: &SqliteRow) -> Result<User, UsersError> {
    let name: String = row.try_get("name")?;
    let role_text: String = row.try_get("role")?;
    let role = Role::parse(&role_text).ok_or_else(|| UsersError::Corrupt {
        user: name.clone(),
        column: "role",
        value: role_text,
    })?;
    Ok(User {
        name,
        role,
        agent_id: row.try_get("agent_id")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts a user; false if the name is taken.
pub(super) async fn insert_user(
    pool: &SqlitePool,
    user: &User,
    password_hash: &str,
) -> Result<bool, UsersError> {
    let done = sqlx::query(
        "INSERT INTO users (name, role, agent_id, password_hash, disabled, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&user.name)
    .bind(user.role.as_str())
    .bind(&user.agent_id)
    .bind(password_hash)
    .bind(i64::from(user.disabled))
    .bind(user.created_at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The user and their password hash.
pub(super) async fn user_with_hash(
    pool: &SqlitePool,
    name: &str,
) -> Result<Option<(User, String)>, UsersError> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.name = ?"
    ))
    .bind(name)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(row) => Ok(Some((user_from_row(&row)?, row.try_get("password_hash")?))),
        None => Ok(None),
    }
}

pub(super) async fn list_users(pool: &SqlitePool) -> Result<Vec<User>, UsersError> {
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users u ORDER BY u.name"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter().map(user_from_row).collect()
}

/// Changes the given fields; false if there is no such user.
pub(super) async fn update_user(
    pool: &SqlitePool,
    name: &str,
    role: Option<Role>,
    agent_id: Option<&str>,
    disabled: Option<bool>,
    password_hash: Option<&str>,
) -> Result<bool, UsersError> {
    let done = sqlx::query(
        "UPDATE users SET role = COALESCE(?, role), agent_id = COALESCE(?, agent_id), \
         disabled = COALESCE(?, disabled), password_hash = COALESCE(?, password_hash) \
         WHERE name = ?",
    )
    .bind(role.map(Role::as_str))
    .bind(agent_id)
    .bind(disabled.map(i64::from))
    .bind(password_hash)
    .bind(name)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn insert_session(pool: &SqlitePool, s: &Session) -> Result<(), UsersError> {
    sqlx::query(
        "INSERT INTO sessions (id, user_name, csrf_token, created_at, expires_at, last_seen_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&s.id)
    .bind(&s.user)
    .bind(&s.csrf_token)
    .bind(s.created_at)
    .bind(s.expires_at)
    .bind(s.last_seen_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn session_with_user(
    pool: &SqlitePool,
    id: &str,
) -> Result<Option<(User, Session)>, UsersError> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, s.id AS session_id, s.csrf_token, \
         s.created_at AS session_created_at, s.expires_at, s.last_seen_at \
         FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let user = user_from_row(&row)?;
    let session = Session {
        id: row.try_get("session_id")?,
        user: user.name.clone(),
        csrf_token: row.try_get("csrf_token")?,
        created_at: row.try_get("session_created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
    };
    Ok(Some((user, session)))
}

pub(super) async fn slide_session(
    pool: &SqlitePool,
    id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), UsersError> {
    sqlx::query("UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE id = ?")
        .bind(now)
        .bind(expires_at)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn delete_session(pool: &SqlitePool, id: &str) -> Result<(), UsersError> {
    sqlx::query("DELETE FROM sessions WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn delete_sessions_of(pool: &SqlitePool, user: &str) -> Result<(), UsersError> {
    sqlx::query("DELETE FROM sessions WHERE user_name = ?")
        .bind(user)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn delete_expired_sessions(pool: &SqlitePool, now: i64) -> Result<(), UsersError> {
    sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

/// Inserts a token row; its id is the next number (one statement, so concurrent inserts
/// cannot take the same one).
pub(super) async fn insert_token(
    pool: &SqlitePool,
    user: &str,
    label: &str,
    token_sha256: &str,
    now: i64,
) -> Result<i64, UsersError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO api_tokens (id, user_name, label, token_sha256, created_at, revoked) \
         SELECT COALESCE(MAX(id), 0) + 1, ?, ?, ?, ?, 0 FROM api_tokens RETURNING id",
    )
    .bind(user)
    .bind(label)
    .bind(token_sha256)
    .bind(now)
    .fetch_one(pool)
    .await?;
    Ok(id)
}

const TOKEN_COLUMNS: &str = "t.id, t.user_name, t.label, t.created_at, t.last_used_at, t.revoked";

fn token_from_row(row: &SqliteRow) -> Result<ApiToken, UsersError> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        user: row.try_get("user_name")?,
        label: row.try_get("label")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
    })
}

pub(super) async fn token_with_user(
    pool: &SqlitePool,
    token_sha256: &str,
) -> Result<Option<(User, ApiToken)>, UsersError> {
    let row = sqlx::query(
        "SELECT t.id, t.user_name, t.label, t.created_at AS token_created_at, t.last_used_at, \
         t.revoked, u.name, u.role, u.agent_id, u.disabled, u.created_at \
         FROM api_tokens t JOIN users u ON u.name = t.user_name WHERE t.token_sha256 = ?",
    )
    .bind(token_sha256)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let token = ApiToken {
        id: row.try_get("id")?,
        user: row.try_get("user_name")?,
        label: row.try_get("label")?,
        created_at: row.try_get("token_created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
    };
    Ok(Some((user_from_row(&row)?, token)))
}

pub(super) async fn touch_token(pool: &SqlitePool, id: i64, now: i64) -> Result<(), UsersError> {
    sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn list_tokens(
    pool: &SqlitePool,
    user: &str,
) -> Result<Vec<ApiToken>, UsersError> {
    let rows = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.user_name = ? ORDER BY t.id"
    ))
    .bind(user)
    .fetch_all(pool)
    .await?;
    rows.iter().map(token_from_row).collect()
}

/// Marks the token revoked; None if `user` has no token `id`.
pub(super) async fn revoke_token(
    pool: &SqlitePool,
    user: &str,
    id: i64,
) -> Result<Option<ApiToken>, UsersError> {
    let row = sqlx::query(
        "UPDATE api_tokens SET revoked = 1 WHERE id = ? AND user_name = ? \
         RETURNING id, user_name, label, created_at, last_used_at, revoked",
    )
    .bind(id)
    .bind(user)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(token_from_row).transpose()
}

/// Appends an entry; `seq` is the next number (one statement).
pub(super) async fn insert_audit(
    pool: &SqlitePool,
    entry: NewAudit,
    now: i64,
) -> Result<AuditEntry, UsersError> {
    let role = entry.role.map(|r| r.as_str().to_owned());
    let source_ip = entry.source_ip.map(|ip| ip.to_string());
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO audit_log (seq, at, actor, role, action, target, detail, source_ip) \
         SELECT COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?, ?, ? FROM audit_log RETURNING seq",
    )
    .bind(now)
    .bind(&entry.actor)
    .bind(&role)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.detail)
    .bind(&source_ip)
    .fetch_one(pool)
    .await?;
    Ok(AuditEntry {
        seq,
        at: now,
        actor: entry.actor,
        role,
        action: entry.action,
        target: entry.target,
        detail: entry.detail,
        source_ip,
    })
}

pub(super) async fn list_audit(
    pool: &SqlitePool,
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, UsersError> {
    let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT seq, at, actor, role, action, target, detail, source_ip FROM audit_log WHERE 1 = 1",
    );
    if let Some(actor) = &filter.actor {
        query.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(action) = &filter.action {
        match action.strip_suffix(".*") {
            Some(family) => {
                // Compared by range rather than LIKE, so `_` and `%` in the family are
                // plain characters.
                query
                    .push(" AND action >= ")
                    .push_bind(format!("{family}."))
                    .push(" AND action < ")
                    .push_bind(format!("{family}/"));
            }
            None => {
                query.push(" AND action = ").push_bind(action.clone());
            }
        }
    }
    if let Some(target) = &filter.target {
        query.push(" AND target = ").push_bind(target.clone());
    }
    if let Some(from) = filter.from {
        query.push(" AND at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND at < ").push_bind(to);
    }
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    query
        .push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::from(limit));
    let rows = query.build().fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok(AuditEntry {
                seq: row.try_get("seq")?,
                at: row.try_get("at")?,
                actor: row.try_get("actor")?,
                role: row.try_get("role")?,
                action: row.try_get("action")?,
                target: row.try_get("target")?,
                detail: row.try_get("detail")?,
                source_ip: row.try_get("source_ip")?,
            })
        })
        .collect()
}
