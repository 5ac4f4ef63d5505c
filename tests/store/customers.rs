//! Customers, identities, merge, the timeline, conversations and deletion.

use crate::common::{Backend, seed_tenant};
use crate::{both_backends, db, inbound, named};
use masterz::store::{
    self, StoreError,
    conversations::{NewCall, NewMessage},
    customers::Profile,
    timeline::Cursor,
};

both_backends!(
    customers_search_identities_and_scoping,
    merge_moves_everything_and_is_remembered,
    timeline_interleaves_and_pages_without_gaps,
    conversations_filter_and_scope,
    deleting_a_customer_removes_their_data,
);

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
            body: Some("hi"),
            external_id: Some("m1"),
            ..inbound(conv.id, source.id, 1_000)
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
                direction: if i % 2 == 0 { "in" } else { "out" },
                ..inbound(conv.id, cust.id, 1_000 + (i / 2) * 10)
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
            body: Some("secret text"),
            ..inbound(conv.id, cust.id, 5)
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
