//! SQL for users, tokens, sessions and the audit log (`0004_users.sql`).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::{DEFAULT_LIMIT, MAX_LIMIT};
use super::{ApiToken, AuditEntry, AuditFilter, NewAudit, Session, User, UsersError};
use crate::config::Role;
use crate::store::sql::{flag, to_flag, to_opt_flag, SqlBuilder};
use crate::store::Store;

const USER_COLUMNS: &str = "u.name, u.role, u.agent_id, u.disabled, u.created_at";

fn user_from_row(row: &AnyRow) -> Result<User, UsersError> {
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
        disabled: flag(row, "disabled")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts a user; false if the name is taken.
pub(super) async fn insert_user(
    store: &Store,
    user: &User,
    password_hash: &str,
) -> Result<bool, UsersError> {
    let done = sqlx::query(&store.sql(
        "INSERT INTO users (name, role, agent_id, password_hash, disabled, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
    ))
    .bind(&user.name)
    .bind(user.role.as_str())
    .bind(&user.agent_id)
    .bind(password_hash)
    .bind(to_flag(user.disabled))
    .bind(user.created_at)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The user and their password hash.
pub(super) async fn user_with_hash(
    store: &Store,
    name: &str,
) -> Result<Option<(User, String)>, UsersError> {
    let row = sqlx::query(&store.sql(&format!(
        "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.name = ?"
    )))
    .bind(name)
    .fetch_optional(store.pool())
    .await?;
    match row {
        Some(row) => Ok(Some((user_from_row(&row)?, row.try_get("password_hash")?))),
        None => Ok(None),
    }
}

pub(super) async fn list_users(store: &Store) -> Result<Vec<User>, UsersError> {
    let rows = sqlx::query(&store.sql(&format!(
        "SELECT {USER_COLUMNS} FROM users u ORDER BY u.name"
    )))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(user_from_row).collect()
}

/// Changes the given fields; false if there is no such user.
pub(super) async fn update_user(
    store: &Store,
    name: &str,
    role: Option<Role>,
    agent_id: Option<&str>,
    disabled: Option<bool>,
    password_hash: Option<&str>,
) -> Result<bool, UsersError> {
    let done = sqlx::query(&store.sql(
        "UPDATE users SET role = COALESCE(?, role), agent_id = COALESCE(?, agent_id), \
         disabled = COALESCE(?, disabled), password_hash = COALESCE(?, password_hash) \
         WHERE name = ?",
    ))
    .bind(role.map(Role::as_str))
    .bind(agent_id)
    .bind(to_opt_flag(disabled))
    .bind(password_hash)
    .bind(name)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn insert_session(store: &Store, s: &Session) -> Result<(), UsersError> {
    sqlx::query(&store.sql(
        "INSERT INTO sessions (id, user_name, csrf_token, created_at, expires_at, last_seen_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    ))
    .bind(&s.id)
    .bind(&s.user)
    .bind(&s.csrf_token)
    .bind(s.created_at)
    .bind(s.expires_at)
    .bind(s.last_seen_at)
    .execute(store.pool())
    .await?;
    Ok(())
}

pub(super) async fn session_with_user(
    store: &Store,
    id: &str,
) -> Result<Option<(User, Session)>, UsersError> {
    let row = sqlx::query(&store.sql(&format!(
        "SELECT {USER_COLUMNS}, s.id AS session_id, s.csrf_token, \
         s.created_at AS session_created_at, s.expires_at, s.last_seen_at \
         FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.id = ?"
    )))
    .bind(id)
    .fetch_optional(store.pool())
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
    store: &Store,
    id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), UsersError> {
    sqlx::query(&store.sql("UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE id = ?"))
        .bind(now)
        .bind(expires_at)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

pub(super) async fn delete_session(store: &Store, id: &str) -> Result<(), UsersError> {
    sqlx::query(&store.sql("DELETE FROM sessions WHERE id = ?"))
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

pub(super) async fn delete_sessions_of(store: &Store, user: &str) -> Result<(), UsersError> {
    sqlx::query(&store.sql("DELETE FROM sessions WHERE user_name = ?"))
        .bind(user)
        .execute(store.pool())
        .await?;
    Ok(())
}

pub(super) async fn delete_expired_sessions(store: &Store, now: i64) -> Result<(), UsersError> {
    sqlx::query(&store.sql("DELETE FROM sessions WHERE expires_at <= ?"))
        .bind(now)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Inserts a token row; its id is the next number (in a transaction that holds other
/// writers of the table off, so concurrent inserts cannot take the same one).
pub(super) async fn insert_token(
    store: &Store,
    user: &str,
    label: &str,
    token_sha256: &str,
    now: i64,
) -> Result<i64, UsersError> {
    let mut tx = store.begin_writing("api_tokens").await?;
    let id: i64 = sqlx::query_scalar(&store.sql(
        "INSERT INTO api_tokens (id, user_name, label, token_sha256, created_at, revoked) \
         SELECT COALESCE(MAX(id), 0) + 1, ?, ?, ?, ?, 0 FROM api_tokens RETURNING id",
    ))
    .bind(user)
    .bind(label)
    .bind(token_sha256)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

const TOKEN_COLUMNS: &str = "t.id, t.user_name, t.label, t.created_at, t.last_used_at, t.revoked";

fn token_from_row(row: &AnyRow) -> Result<ApiToken, UsersError> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        user: row.try_get("user_name")?,
        label: row.try_get("label")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked: flag(row, "revoked")?,
    })
}

pub(super) async fn token_with_user(
    store: &Store,
    token_sha256: &str,
) -> Result<Option<(User, ApiToken)>, UsersError> {
    let row = sqlx::query(&store.sql(
        "SELECT t.id, t.user_name, t.label, t.created_at AS token_created_at, t.last_used_at, \
         t.revoked, u.name, u.role, u.agent_id, u.disabled, u.created_at \
         FROM api_tokens t JOIN users u ON u.name = t.user_name WHERE t.token_sha256 = ?",
    ))
    .bind(token_sha256)
    .fetch_optional(store.pool())
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
        revoked: flag(&row, "revoked")?,
    };
    Ok(Some((user_from_row(&row)?, token)))
}

pub(super) async fn touch_token(store: &Store, id: i64, now: i64) -> Result<(), UsersError> {
    sqlx::query(&store.sql("UPDATE api_tokens SET last_used_at = ? WHERE id = ?"))
        .bind(now)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

pub(super) async fn list_tokens(store: &Store, user: &str) -> Result<Vec<ApiToken>, UsersError> {
    let rows = sqlx::query(&store.sql(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.user_name = ? ORDER BY t.id"
    )))
    .bind(user)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(token_from_row).collect()
}

/// Marks the token revoked; None if `user` has no token `id`.
pub(super) async fn revoke_token(
    store: &Store,
    user: &str,
    id: i64,
) -> Result<Option<ApiToken>, UsersError> {
    let row = sqlx::query(&store.sql(
        "UPDATE api_tokens SET revoked = 1 WHERE id = ? AND user_name = ? \
         RETURNING id, user_name, label, created_at, last_used_at, revoked",
    ))
    .bind(id)
    .bind(user)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(token_from_row).transpose()
}

/// Appends an entry; `seq` is the next number (under the table's write lock).
pub(super) async fn insert_audit(
    store: &Store,
    entry: NewAudit,
    now: i64,
) -> Result<AuditEntry, UsersError> {
    let role = entry.role.map(|r| r.as_str().to_owned());
    let source_ip = entry.source_ip.map(|ip| ip.to_string());
    let mut tx = store.begin_writing("audit_log").await?;
    let seq: i64 = sqlx::query_scalar(&store.sql(
        "INSERT INTO audit_log (seq, at, actor, role, action, target, detail, source_ip) \
         SELECT COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?, ?, ? FROM audit_log RETURNING seq",
    ))
    .bind(now)
    .bind(&entry.actor)
    .bind(&role)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.detail)
    .bind(&source_ip)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
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
    store: &Store,
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, UsersError> {
    let mut query = SqlBuilder::new(
        "SELECT seq, at, actor, role, action, target, detail, source_ip FROM audit_log WHERE 1 = 1",
    );
    if let Some(actor) = &filter.actor {
        query.push(" AND actor = ").bind(actor.as_str());
    }
    if let Some(action) = &filter.action {
        match action.strip_suffix(".*") {
            Some(family) => {
                // Compared by range rather than LIKE, so `_` and `%` in the family are
                // plain characters.
                query
                    .push(" AND action >= ")
                    .bind(format!("{family}."))
                    .push(" AND action < ")
                    .bind(format!("{family}/"));
            }
            None => {
                query.push(" AND action = ").bind(action.as_str());
            }
        }
    }
    if let Some(target) = &filter.target {
        query.push(" AND target = ").bind(target.as_str());
    }
    if let Some(from) = filter.from {
        query.push(" AND at >= ").bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND at < ").bind(to);
    }
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    query
        .push(" ORDER BY seq DESC LIMIT ")
        .bind(i64::from(limit));
    let sql = query.text(store.backend());
    let rows = query
        .bind_to(sqlx::query(&sql))
        .fetch_all(store.pool())
        .await?;
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
