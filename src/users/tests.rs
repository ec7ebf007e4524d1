use super::*;
use crate::store::testing::TestDb;

fn users(store: Store) -> (Users, Store) {
    let config = AuthConfig {
        login_attempts_per_minute: 3,
        ..AuthConfig::default()
    };
    (Users::new(&store, &config), store)
}

async fn users_are_created_with_a_hashed_password_and_unique_names(store: Store, _db: &TestDb) {
    let (users, store) = users(store);
    let alice = users
        .create_user("alice", Role::Agent, Some("1001"), "secret-pass")
        .await
        .unwrap();
    assert_eq!(alice.agent_id, "1001");
    let bob = users
        .create_user(" bob ", Role::Qa, None, "secret-pass")
        .await
        .unwrap();
    assert_eq!((bob.name.as_str(), bob.agent_id.as_str()), ("bob", "bob"));
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE name = 'alice'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(matches!(
        users
            .create_user("alice", Role::Admin, None, "other-pass")
            .await,
        Err(UsersError::Exists(_))
    ));
    match users
        .create_user("a b/c", Role::Agent, Some(""), "short")
        .await
    {
        Err(UsersError::Invalid(problems)) => {
            assert_eq!(problems.len(), 3, "{problems:?}");
            assert!(problems[0].starts_with("name:"));
            assert!(problems[1].starts_with("agent_id:"));
            assert!(problems[2].starts_with("password:"));
        }
        other => panic!("{other:?}"),
    }
    let names: Vec<String> = users
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
}

async fn login_checks_the_password_and_the_rate_limit(store: Store, _db: &TestDb) {
    let (users, _store) = users(store);
    users
        .create_user("alice", Role::Qa, None, "secret-pass")
        .await
        .unwrap();
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(
        users
            .login("alice", "secret-pass", Some(ip))
            .await
            .unwrap()
            .name,
        "alice"
    );
    for _ in 0..3 {
        assert!(matches!(
            users.login("alice", "wrong", Some(ip)).await,
            Err(LoginRefused::Wrong)
        ));
    }
    // The fourth attempt is refused without a password check, even the right one.
    assert!(matches!(
        users.login("alice", "secret-pass", None).await,
        Err(LoginRefused::Throttled { retry_after_secs }) if (1..=60).contains(&retry_after_secs)
    ));
    // Unknown names fail the same way.
    assert!(matches!(
        users.login("nobody", "secret-pass", None).await,
        Err(LoginRefused::Wrong)
    ));
}

async fn disabled_users_cannot_log_in_and_lose_their_sessions_and_tokens(
    store: Store,
    _db: &TestDb,
) {
    let (users, _store) = users(store);
    users
        .create_user("alice", Role::Agent, None, "secret-pass")
        .await
        .unwrap();
    let session = users.create_session("alice").await.unwrap();
    let (token, _) = users.create_token("alice", "crm").await.unwrap();
    assert!(users.session(&session.secret).await.unwrap().is_some());
    assert!(users.token_user(&token).await.unwrap().is_some());
    users.set_disabled("alice", true).await.unwrap();
    assert!(users.session(&session.secret).await.unwrap().is_none());
    assert!(users.token_user(&token).await.unwrap().is_none());
    assert!(matches!(
        users.login("alice", "secret-pass", None).await,
        Err(LoginRefused::Wrong)
    ));
    users.set_disabled("alice", false).await.unwrap();
    assert!(users.token_user(&token).await.unwrap().is_some());
    // The session was ended, not just suspended.
    assert!(users.session(&session.secret).await.unwrap().is_none());
}

async fn sessions_are_stored_hashed_expire_and_slide(store: Store, _db: &TestDb) {
    let (users, store) = users(store);
    users
        .create_user("alice", Role::Admin, None, "secret-pass")
        .await
        .unwrap();
    let new = users.create_session("alice").await.unwrap();
    assert_eq!(new.secret.len(), 64);
    assert_eq!(new.session.id, sha256_hex(&new.secret));
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(stored, std::slice::from_ref(&new.session.id));
    let (user, session) = users.session(&new.secret).await.unwrap().unwrap();
    assert_eq!(user.name, "alice");
    assert_eq!(session.csrf_token, new.session.csrf_token);
    assert!(users.session(&new.session.id).await.unwrap().is_none());
    assert!(users.session("not-a-secret").await.unwrap().is_none());

    // Seen two minutes ago: this use moves the expiry.
    let now = now_ms();
    sqlx::query(&store.sql("UPDATE sessions SET last_seen_at = ?, expires_at = ?"))
        .bind(now - 120_000)
        .bind(now + 1_000)
        .execute(store.pool())
        .await
        .unwrap();
    let (_, slid) = users.session(&new.secret).await.unwrap().unwrap();
    assert!(slid.expires_at >= now + 480 * 60_000, "{slid:?}");

    // Expired: gone, and deleted.
    sqlx::query(&store.sql("UPDATE sessions SET expires_at = ?"))
        .bind(now - 1)
        .execute(store.pool())
        .await
        .unwrap();
    assert!(users.session(&new.secret).await.unwrap().is_none());
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);

    let other = users.create_session("alice").await.unwrap();
    users.end_session(&other.secret).await.unwrap();
    assert!(users.session(&other.secret).await.unwrap().is_none());
}

async fn tokens_are_shown_once_stored_hashed_and_revocable(store: Store, _db: &TestDb) {
    let (users, store) = users(store);
    users
        .create_user("alice", Role::Supervisor, None, "secret-pass")
        .await
        .unwrap();
    users
        .create_user("bob", Role::Agent, None, "secret-pass")
        .await
        .unwrap();
    let (token, first) = users.create_token("alice", "crm").await.unwrap();
    let (_, second) = users.create_token("alice", "").await.unwrap();
    assert_eq!((first.id, second.id), (1, 2));
    let hashes: Vec<String> = sqlx::query_scalar("SELECT token_sha256 FROM api_tokens")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(hashes.contains(&sha256_hex(&token)));
    assert!(!hashes.contains(&token));
    let (user, used) = users.token_user(&token).await.unwrap().unwrap();
    assert_eq!((user.name.as_str(), used.id), ("alice", 1));
    assert!(used.last_used_at.is_some());
    // Bob cannot revoke Alice's token by its number.
    assert!(matches!(
        users.revoke_token("bob", 1).await,
        Err(UsersError::NoSuchToken { .. })
    ));
    assert!(users.revoke_token("alice", 1).await.unwrap().revoked);
    assert!(users.token_user(&token).await.unwrap().is_none());
    let listed = users.list_tokens("alice").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].revoked && !listed[1].revoked);
    assert!(matches!(
        users.create_token("nobody", "").await,
        Err(UsersError::NoSuchUser(_))
    ));
}

async fn the_audit_log_is_numbered_and_filtered(store: Store, _db: &TestDb) {
    let (users, _store) = users(store);
    let ip: IpAddr = "192.0.2.9".parse().unwrap();
    for (actor, action, target) in [
        ("alice", "recording.play", "n1-1"),
        ("bob", "ticket.create", "T-1"),
        ("alice", "ticket.update", "T-1"),
        ("alice", "ticket_x", "T-2"),
    ] {
        users
            .audit(
                NewAudit::new(actor, Some(Role::Qa), action)
                    .target(target)
                    .source_ip(Some(ip)),
            )
            .await
            .unwrap();
    }
    let all = users.audit_log(&AuditFilter::default()).await.unwrap();
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [4, 3, 2, 1]);
    assert_eq!(all[3].source_ip.as_deref(), Some("192.0.2.9"));
    assert_eq!(all[3].role.as_deref(), Some("qa"));
    let filter = |actor: Option<&str>, action: Option<&str>| AuditFilter {
        actor: actor.map(str::to_owned),
        action: action.map(str::to_owned),
        ..Default::default()
    };
    let seqs = |entries: Vec<AuditEntry>| entries.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(users.audit_log(&filter(Some("alice"), None)).await.unwrap()),
        [4, 3, 1]
    );
    assert_eq!(
        seqs(
            users
                .audit_log(&filter(None, Some("ticket.*")))
                .await
                .unwrap()
        ),
        [3, 2]
    );
    assert_eq!(
        seqs(
            users
                .audit_log(&filter(Some("alice"), Some("recording.play")))
                .await
                .unwrap()
        ),
        [1]
    );
    let limited = AuditFilter {
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(seqs(users.audit_log(&limited).await.unwrap()), [4]);
    let future = AuditFilter {
        from: Some(now_ms() + 60_000),
        ..Default::default()
    };
    assert!(users.audit_log(&future).await.unwrap().is_empty());
}

/// Entries written at once from many requests still get 1, 2, 3, ... (the insert
/// takes the table's write lock; on PostgreSQL two `MAX + 1`s would collide without it).
async fn concurrent_audit_entries_get_distinct_numbers(store: Store, _db: &TestDb) {
    let (users, _store) = users(store);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            users
                .audit(NewAudit::new(&format!("u{i}"), None, "login.ok"))
                .await
                .unwrap()
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=24).collect::<Vec<i64>>());
}

crate::store_test!(
    concurrent_audit_entries_get_distinct_numbers,
    users_are_created_with_a_hashed_password_and_unique_names,
    login_checks_the_password_and_the_rate_limit,
    disabled_users_cannot_log_in_and_lose_their_sessions_and_tokens,
    sessions_are_stored_hashed_expire_and_slide,
    tokens_are_shown_once_stored_hashed_and_revocable,
    the_audit_log_is_numbered_and_filtered,
);
