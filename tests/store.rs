//! The store suite: every test runs on SQLite and on PostgreSQL.

mod common;

use common::{Backend, TestDb, seed_tenant};
use masterz::domain::CompanyId;
use masterz::secrets::{Key, KeySource, Keyring};
use masterz::store::{
    self, StoreError,
    conversations::{NewCall, NewMessage},
    customers::Profile,
    timeline::Cursor,
};

both_backends!(
    companies_get_builtin_roles_and_unique_slugs,
    users_are_company_scoped_and_emails_unique,
    customers_search_identities_and_scoping,
    merge_moves_everything_and_is_remembered,
    timeline_interleaves_and_pages_without_gaps,
    conversations_filter_and_scope,
    credentials_are_encrypted_and_rotate,
    audit_log_filters_and_scope,
    sessions_and_tokens_resolve_principals,
    deleting_a_customer_removes_their_data,
    users_hold_only_the_profile_the_policy_names,
);

// P19: nothing in the server deletes audit rows; they go only with their company (P20, by cascade).
#[test]
fn audit_logs_are_never_pruned() {
    fn scan(dir: &std::path::Path, hits: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scan(&path, hits);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap().to_lowercase();
                if text.contains("delete from audit_logs") || text.contains("update audit_logs") {
                    hits.push(path.display().to_string());
                }
            }
        }
    }
    let mut hits = Vec::new();
    scan(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut hits,
    );
    assert!(
        hits.is_empty(),
        "audit rows are deleted or changed in {hits:?}"
    );
}

async fn db(backend: Backend) -> Option<(TestDb, store::Db)> {
    let t = TestDb::new(backend).await?;
    let db = t.open().await;
    Some((t, db))
}

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

fn named(name: &str) -> Profile {
    Profile {
        display_name: Some(name.into()),
        ..Default::default()
    }
}

async fn customers_search_identities_and_scoping(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let b = seed_tenant(&db, "b").await;
    let mut c = db.conn().await.unwrap();
    let ann = store::customers::create(&mut c.ex(), a.company, &named("Ann Example"))
        .await
        .unwrap();
    let bob = store::customers::create(&mut c.ex(), a.company, &named("Bob 100%_sure"))
        .await
        .unwrap();
    store::customers::add_identity(
        &mut c.ex(),
        a.company,
        ann.id,
        "phone",
        None,
        "+4915123456789",
        &Profile::default(),
    )
    .await
    .unwrap();
    // The same phone in another company is another person.
    let other = store::customers::create(&mut c.ex(), b.company, &named("Ann elsewhere"))
        .await
        .unwrap();
    store::customers::add_identity(
        &mut c.ex(),
        b.company,
        other.id,
        "phone",
        None,
        "+4915123456789",
        &Profile::default(),
    )
    .await
    .unwrap();
    // A duplicate identity in one company is a conflict, even without a channel account.
    let dup = store::customers::add_identity(
        &mut c.ex(),
        a.company,
        bob.id,
        "phone",
        None,
        "+4915123456789",
        &Profile::default(),
    )
    .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let find = |q: &'static str| {
        let db = db.clone();
        async move {
            let mut c = db.conn().await.unwrap();
            store::customers::list(&mut c.ex(), a.company, Some(q), None, 50)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        find("ann").await.iter().map(|c| c.id).collect::<Vec<_>>(),
        [ann.id]
    );
    assert_eq!(
        find("151234")
            .await
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [ann.id]
    );
    // LIKE wildcards in the search are literal.
    assert_eq!(
        find("100%_").await.iter().map(|c| c.id).collect::<Vec<_>>(),
        [bob.id]
    );
    assert!(
        find("%x%").await.is_empty(),
        "a literal % matches only a literal %"
    );
    assert!(
        find("elsewhere").await.is_empty(),
        "another company's customer must not be found"
    );

    // Pagination by id cursor, newest first.
    let page1 = store::customers::list(&mut c.ex(), a.company, None, None, 1)
        .await
        .unwrap();
    assert_eq!(page1[0].id, bob.id);
    let page2 = store::customers::list(&mut c.ex(), a.company, None, Some(bob.id), 1)
        .await
        .unwrap();
    assert_eq!(page2[0].id, ann.id);

    let found =
        store::customers::find_identity(&mut c.ex(), a.company, "phone", None, "+4915123456789")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(found.customer_id, ann.id);
    assert!(
        store::customers::get(&mut c.ex(), b.company, ann.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store::customers::update(
            &mut c.ex(),
            b.company,
            ann.id,
            Some(Some("x".into())),
            None,
            None
        )
        .await
        .unwrap()
        .is_none()
    );
    assert!(
        !store::customers::delete(&mut c.ex(), b.company, ann.id)
            .await
            .unwrap()
    );
}

async fn merge_moves_everything_and_is_remembered(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let mut c = db.conn().await.unwrap();
    let target = store::customers::create(&mut c.ex(), a.company, &Profile::default())
        .await
        .unwrap();
    let source = store::customers::create(
        &mut c.ex(),
        a.company,
        &Profile {
            locale: Some("de_DE".into()),
            ..named("Caller")
        },
    )
    .await
    .unwrap();
    store::customers::add_identity(
        &mut c.ex(),
        a.company,
        source.id,
        "phone",
        None,
        "+4915100000001",
        &Profile::default(),
    )
    .await
    .unwrap();
    let conv = store::conversations::create(&mut c.ex(), a.company, source.id, None, None, None)
        .await
        .unwrap();
    store::conversations::add_message(
        &mut c.ex(),
        a.company,
        &NewMessage {
            conversation_id: conv.id,
            customer_id: source.id,
            direction: "in",
            sender_user_id: None,
            body: Some("hi"),
            status: "received",
            external_id: Some("m1"),
            at: 1_000,
        },
    )
    .await
    .unwrap();
    store::conversations::add_call(
        &mut c.ex(),
        a.company,
        &NewCall {
            customer_id: Some(source.id),
            conversation_id: None,
            direction: "in",
            from_uri: "sip:+4915100000001@trunk",
            to_uri: "sip:100@pbx",
            status: "ended",
            agent_user_id: Some(a.agent),
            started_at: 2_000,
            answered_at: Some(3_000),
            ended_at: Some(63_000),
            end_reason: Some("bye"),
        },
    )
    .await
    .unwrap();
    store::conversations::add_note(
        &mut c.ex(),
        a.company,
        source.id,
        None,
        Some(a.admin),
        "vip",
    )
    .await
    .unwrap();

    let mut tx = db.begin().await.unwrap();
    let moved =
        store::customers::merge(&mut tx.ex(), a.company, target.id, source.id, Some(a.admin))
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (
            moved.identities,
            moved.conversations,
            moved.messages,
            moved.calls,
            moved.notes
        ),
        (1, 1, 1, 1, 1)
    );
    let merged = store::customers::get(&mut c.ex(), a.company, target.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        merged.display_name.as_deref(),
        Some("Caller"),
        "empty fields filled from the source"
    );
    assert_eq!(merged.locale.as_deref(), Some("de_DE"));
    let gone = store::customers::get(&mut c.ex(), a.company, source.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.merged_into_id, Some(target.id));
    let listed = store::customers::list(&mut c.ex(), a.company, None, None, 50)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id).collect::<Vec<_>>(),
        [target.id],
        "merged customers are not listed"
    );
    let items = store::timeline::page(&mut c.ex(), a.company, target.id, None, 50)
        .await
        .unwrap();
    assert_eq!(items.len(), 3);
    let call = items.iter().find(|i| i.kind == "call").unwrap();
    assert_eq!(call.duration_secs, Some(60));
    let n = store::audit::count(&mut c.ex(), a.company).await.unwrap();
    assert_eq!(n, 0, "the store does not audit by itself; the API does");
}

async fn timeline_interleaves_and_pages_without_gaps(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let b = seed_tenant(&db, "b").await;
    let mut c = db.conn().await.unwrap();
    let cust = store::customers::create(&mut c.ex(), a.company, &Profile::default())
        .await
        .unwrap();
    let conv = store::conversations::create(&mut c.ex(), a.company, cust.id, None, None, None)
        .await
        .unwrap();
    // 7 messages and 7 calls, several sharing a millisecond, plus notes written now.
    for i in 0..7i64 {
        store::conversations::add_message(
            &mut c.ex(),
            a.company,
            &NewMessage {
                conversation_id: conv.id,
                customer_id: cust.id,
                direction: if i % 2 == 0 { "in" } else { "out" },
                sender_user_id: None,
                body: Some("m"),
                status: "received",
                external_id: None,
                at: 1_000 + (i / 2) * 10,
            },
        )
        .await
        .unwrap();
        store::conversations::add_call(
            &mut c.ex(),
            a.company,
            &NewCall {
                customer_id: Some(cust.id),
                conversation_id: Some(conv.id),
                direction: "in",
                from_uri: "sip:a@b",
                to_uri: "sip:c@d",
                status: "ended",
                agent_user_id: None,
                started_at: 1_000 + (i / 2) * 10,
                answered_at: None,
                ended_at: None,
                end_reason: None,
            },
        )
        .await
        .unwrap();
    }
    for _ in 0..3 {
        store::conversations::add_note(&mut c.ex(), a.company, cust.id, Some(conv.id), None, "n")
            .await
            .unwrap();
    }
    let all = store::timeline::page(&mut c.ex(), a.company, cust.id, None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 17);
    assert!(all.windows(2).all(|w| w[0].at >= w[1].at), "newest first");
    assert_eq!(all[0].kind, "note");
    // Page through 4 at a time: the same items, in the same order, none twice.
    let mut paged = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = store::timeline::page(&mut c.ex(), a.company, cust.id, cursor.as_ref(), 4)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = Some(Cursor::after(page.last().unwrap()));
        paged.extend(page.into_iter().map(|i| (i.kind, i.id)));
    }
    let expected: Vec<_> = all.iter().map(|i| (i.kind.clone(), i.id)).collect();
    assert_eq!(paged, expected);
    // Another company sees nothing of it.
    assert!(
        store::timeline::page(&mut c.ex(), b.company, cust.id, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Activity moved the conversation's clock forward.
    let conv = store::conversations::get(&mut c.ex(), a.company, conv.id)
        .await
        .unwrap()
        .unwrap();
    assert!(conv.last_activity_at.0 > 1_030);
}

async fn conversations_filter_and_scope(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let b = seed_tenant(&db, "b").await;
    let mut c = db.conn().await.unwrap();
    let x = store::customers::create(&mut c.ex(), a.company, &Profile::default())
        .await
        .unwrap();
    let y = store::customers::create(&mut c.ex(), a.company, &Profile::default())
        .await
        .unwrap();
    let c1 = store::conversations::create(
        &mut c.ex(),
        a.company,
        x.id,
        None,
        Some("one"),
        Some(a.agent),
    )
    .await
    .unwrap();
    let c2 = store::conversations::create(&mut c.ex(), a.company, y.id, None, None, None)
        .await
        .unwrap();
    let f = |customer_id, unassigned| store::conversations::Filter {
        customer_id,
        unassigned,
        ..Default::default()
    };
    let by_x = store::conversations::list(&mut c.ex(), a.company, &f(Some(x.id), false), 50)
        .await
        .unwrap();
    assert_eq!(by_x.iter().map(|c| c.id).collect::<Vec<_>>(), [c1.id]);
    let unassigned = store::conversations::list(&mut c.ex(), a.company, &f(None, true), 50)
        .await
        .unwrap();
    assert_eq!(unassigned.iter().map(|c| c.id).collect::<Vec<_>>(), [c2.id]);
    let updated = store::conversations::update(
        &mut c.ex(),
        a.company,
        c1.id,
        Some("resolved"),
        Some(None),
        Some(None),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        (
            updated.status.as_str(),
            updated.assignee_id,
            updated.subject
        ),
        ("resolved", None, None)
    );
    let resolved = store::conversations::Filter {
        status: Some("resolved".into()),
        ..Default::default()
    };
    assert_eq!(
        store::conversations::list(&mut c.ex(), a.company, &resolved, 50)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store::conversations::get(&mut c.ex(), b.company, c1.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store::conversations::update(&mut c.ex(), b.company, c1.id, Some("open"), None, None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store::conversations::list(&mut c.ex(), b.company, &f(Some(x.id), false), 50)
            .await
            .unwrap()
            .is_empty()
    );
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

async fn deleting_a_customer_removes_their_data(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let mut c = db.conn().await.unwrap();
    let cust = store::customers::create(&mut c.ex(), a.company, &named("Gone"))
        .await
        .unwrap();
    store::customers::add_identity(
        &mut c.ex(),
        a.company,
        cust.id,
        "phone",
        None,
        "+4915100000009",
        &Profile::default(),
    )
    .await
    .unwrap();
    let conv = store::conversations::create(&mut c.ex(), a.company, cust.id, None, None, None)
        .await
        .unwrap();
    store::conversations::add_message(
        &mut c.ex(),
        a.company,
        &NewMessage {
            conversation_id: conv.id,
            customer_id: cust.id,
            direction: "in",
            sender_user_id: None,
            body: Some("secret text"),
            status: "received",
            external_id: None,
            at: 5,
        },
    )
    .await
    .unwrap();
    store::conversations::add_note(&mut c.ex(), a.company, cust.id, Some(conv.id), None, "note")
        .await
        .unwrap();
    assert!(
        store::customers::delete(&mut c.ex(), a.company, cust.id)
            .await
            .unwrap()
    );
    for table in [
        "customer_identities",
        "conversations",
        "messages",
        "notes",
        "calls",
    ] {
        let n: i64 = match &mut c.ex() {
            store::Ex::Sqlite(conn) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap()
            }
            store::Ex::Postgres(conn) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(n, 0, "{table} still holds rows of a deleted customer");
    }
    // The phone number is free again for a new customer.
    let again = store::customers::create(&mut c.ex(), a.company, &Profile::default())
        .await
        .unwrap();
    store::customers::add_identity(
        &mut c.ex(),
        a.company,
        again.id,
        "phone",
        None,
        "+4915100000009",
        &Profile::default(),
    )
    .await
    .unwrap();
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
