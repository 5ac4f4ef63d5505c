//! Companies, users, roles, sessions, tokens, credentials and the audit log.

use crate::common::{Backend, seed_tenant};
use crate::{both_backends, db};
use masterz::domain::CompanyId;
use masterz::secrets::{Key, KeySource, Keyring};
use masterz::store::{self, StoreError};

both_backends!(
    companies_get_builtin_roles_and_unique_slugs,
    users_are_company_scoped_and_emails_unique,
    credentials_are_encrypted_and_rotate,
    audit_log_filters_and_scope,
    sessions_and_tokens_resolve_principals,
    users_hold_only_the_profile_the_policy_names,
);

// P2, P3
async fn companies_get_builtin_roles_and_unique_slugs(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let mut c = db.conn().await.unwrap();
    let a = store::companies::create(&mut c.ex(), "Acme", "acme")
        .await
        .unwrap();
    assert_eq!(a.plan_tier, "free");
    assert_eq!(a.status, "active");
    let roles = store::users::list_roles(&mut c.ex(), a.id).await.unwrap();
    let names: Vec<_> = roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["admin", "agent"]);
    assert!(roles.iter().all(|r| r.builtin));
    let err = store::companies::create(&mut c.ex(), "Other", "acme")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let patch = store::companies::CompanyPatch {
        time_zone: Some("Europe/Berlin".into()),
        ..Default::default()
    };
    let a2 = store::companies::update(&mut c.ex(), a.id, &patch)
        .await
        .unwrap();
    assert_eq!(a2.time_zone, "Europe/Berlin");
    assert_eq!(a2.name, "Acme");
    // Migrations are idempotent.
    db.migrate().await.unwrap();
}

async fn users_are_company_scoped_and_emails_unique(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let b = seed_tenant(&db, "b").await;
    let mut c = db.conn().await.unwrap();
    assert!(
        store::users::get_user(&mut c.ex(), a.company, a.admin)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store::users::get_user(&mut c.ex(), b.company, a.admin)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store::users::list_users(&mut c.ex(), a.company)
            .await
            .unwrap()
            .len(),
        2
    );
    // Another company cannot change or delete a's user.
    let patch = store::users::UserPatch {
        name: Some("x".into()),
        ..Default::default()
    };
    assert!(
        store::users::update_user(&mut c.ex(), b.company, a.admin, &patch)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store::users::delete_user(&mut c.ex(), b.company, a.admin)
            .await
            .unwrap()
    );
    // Emails are unique across companies: they are the login.
    let role = store::users::role_by_name(&mut c.ex(), b.company, "agent")
        .await
        .unwrap()
        .unwrap();
    let dup = store::users::NewUser {
        role_id: role.id,
        name: "dup",
        email: &a.admin_email,
        password_hash: "x",
        avatar_url: None,
    };
    assert!(matches!(
        store::users::create_user(&mut c.ex(), b.company, &dup).await,
        Err(StoreError::Conflict(_))
    ));
    let login = store::users::login_user(&mut c.ex(), &a.admin_email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.company_id, a.company);
    assert_eq!(masterz::auth::hash_cost(&login.password_hash), Some(12));
    // Avatar set, then cleared with an explicit null.
    let set = store::users::UserPatch {
        avatar_url: Some(Some("https://x/a.png".into())),
        ..Default::default()
    };
    let u = store::users::update_user(&mut c.ex(), a.company, a.agent, &set)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.avatar_url.as_deref(), Some("https://x/a.png"));
    let clear = store::users::UserPatch {
        avatar_url: Some(None),
        ..Default::default()
    };
    let u = store::users::update_user(&mut c.ex(), a.company, a.agent, &clear)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.avatar_url, None);
}

// P23
async fn credentials_are_encrypted_and_rotate(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let b = seed_tenant(&db, "b").await;
    let ring = Keyring::new(vec![Key::generate().unwrap()], KeySource::Config).unwrap();
    let mut c = db.conn().await.unwrap();
    let creds: serde_json::Map<_, _> =
        serde_json::from_str(r#"{"page_access_token":"EAAB-PLAINTEXT-123"}"#).unwrap();
    let sealed = store::channels::seal(&ring, &creds).unwrap();
    assert!(!sealed.0.contains("PLAINTEXT"));
    let acct = store::channels::create(
        &mut c.ex(),
        a.company,
        "messenger",
        "Page",
        Some("1234"),
        &serde_json::json!({}),
        Some(sealed),
    )
    .await
    .unwrap();
    assert_eq!(
        serde_json::to_value(&acct).unwrap()["credential_keys"],
        serde_json::json!(["page_access_token"])
    );
    assert!(!serde_json::to_string(&acct).unwrap().contains("PLAINTEXT"));
    let got = store::channels::credentials(&mut c.ex(), &ring, a.company, acct.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.expose()["page_access_token"], "EAAB-PLAINTEXT-123");
    assert!(
        store::channels::credentials(&mut c.ex(), &ring, b.company, acct.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store::channels::get(&mut c.ex(), b.company, acct.id)
            .await
            .unwrap()
            .is_none()
    );

    let rotated = ring.with_new_current(Key::generate().unwrap());
    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        store::channels::reencrypt_all(&mut tx.ex(), &rotated)
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();
    let only_new = rotated.only_current();
    let got = store::channels::credentials(&mut c.ex(), &only_new, a.company, acct.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.expose()["page_access_token"], "EAAB-PLAINTEXT-123");
    assert!(
        store::channels::credentials(&mut c.ex(), &ring, a.company, acct.id)
            .await
            .is_err(),
        "the old key alone no longer opens it"
    );
}

// P13
async fn audit_log_filters_and_scope(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let b = seed_tenant(&db, "b").await;
    let mut c = db.conn().await.unwrap();
    let actor = store::audit::Actor {
        user_id: Some(a.admin),
        label: a.admin_email.clone(),
        ip: Some("192.0.2.7".into()),
        user_agent: Some("ua".into()),
    };
    for (action, entity) in [("create", "user"), ("update", "user"), ("create", "role")] {
        store::audit::record(
            &mut c.ex(),
            a.company,
            &actor,
            action,
            entity,
            Some(1),
            &serde_json::json!({"k": "v"}),
        )
        .await
        .unwrap();
    }
    let all = store::audit::list(&mut c.ex(), a.company, &Default::default(), 50)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(all[0].changes.0["k"], "v");
    let f = store::audit::Filter {
        entity_type: Some("user".into()),
        ..Default::default()
    };
    assert_eq!(
        store::audit::list(&mut c.ex(), a.company, &f, 50)
            .await
            .unwrap()
            .len(),
        2
    );
    let f = store::audit::Filter {
        action: Some("create".into()),
        entity_type: Some("role".into()),
        ..Default::default()
    };
    assert_eq!(
        store::audit::list(&mut c.ex(), a.company, &f, 50)
            .await
            .unwrap()
            .len(),
        1
    );
    let f = store::audit::Filter {
        since: Some(i64::MAX - 1),
        ..Default::default()
    };
    assert!(
        store::audit::list(&mut c.ex(), a.company, &f, 50)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store::audit::list(&mut c.ex(), b.company, &Default::default(), 50)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store::audit::get(&mut c.ex(), b.company, all[0].id)
            .await
            .unwrap()
            .is_none()
    );
}

// P4
async fn sessions_and_tokens_resolve_principals(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let mut c = db.conn().await.unwrap();
    let p =
        store::auth::token_principal(&mut c.ex(), &masterz::secrets::token_hash(&a.agent_token))
            .await
            .unwrap()
            .unwrap();
    assert_eq!((p.user_id, p.company_id), (a.agent, a.company));
    assert!(p.permissions.contains("customers:read") && !p.permissions.contains("audit:read"));
    assert!(
        store::auth::token_principal(&mut c.ex(), &masterz::secrets::token_hash("nope"))
            .await
            .unwrap()
            .is_none()
    );
    let hash = masterz::secrets::token_hash("session-secret");
    let future = store::now_ms() + 60_000;
    let sid = store::auth::create_session(
        &mut c.ex(),
        a.company,
        a.admin,
        &hash,
        "198.51.100.1",
        Some("ua"),
        future,
    )
    .await
    .unwrap();
    let p = store::auth::session_principal(&mut c.ex(), &hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.session_id, Some(sid));
    store::auth::delete_session(&mut c.ex(), sid).await.unwrap();
    assert!(
        store::auth::session_principal(&mut c.ex(), &hash)
            .await
            .unwrap()
            .is_none()
    );
    // Expired sessions do not authenticate and are pruned.
    let old = masterz::secrets::token_hash("old");
    store::auth::create_session(
        &mut c.ex(),
        a.company,
        a.admin,
        &old,
        "198.51.100.1",
        None,
        store::now_ms() - 1,
    )
    .await
    .unwrap();
    assert!(
        store::auth::session_principal(&mut c.ex(), &old)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store::auth::prune_sessions(&mut c.ex()).await.unwrap(), 1);
    store::auth::record_login(
        &mut c.ex(),
        Some(a.company),
        Some(a.admin),
        &a.admin_email,
        "198.51.100.1",
        Some("ua"),
        "success",
    )
    .await
    .unwrap();
    let events = store::auth::login_events(&mut c.ex(), a.company, a.admin, 10)
        .await
        .unwrap();
    assert_eq!(events[0].ip, "198.51.100.1");
    assert!(
        store::auth::login_events(&mut c.ex(), CompanyId(a.company.0 + 1000), a.admin, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

// P1: the users table holds the account profile the policy names, and nothing else personal.
async fn users_hold_only_the_profile_the_policy_names(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let mut c = db.conn().await.unwrap();
    let mut columns: Vec<String> = match &mut c.ex() {
        store::Ex::Sqlite(conn) => {
            sqlx::query_scalar("SELECT name FROM pragma_table_info('users')")
                .fetch_all(&mut **conn)
                .await
                .unwrap()
        }
        store::Ex::Postgres(conn) => sqlx::query_scalar(
            "SELECT column_name::TEXT FROM information_schema.columns WHERE table_name = 'users'",
        )
        .fetch_all(&mut **conn)
        .await
        .unwrap(),
    };
    columns.sort();
    assert_eq!(
        columns,
        [
            "avatar_url",
            "company_id",
            "created_at",
            "email",
            "id",
            "name",
            "password_hash",
            "role_id",
            "updated_at"
        ]
    );
}
