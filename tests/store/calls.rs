//! Calls, call routing and customers found by phone number: the store functions call control
//! uses, on both databases, each checked against a second company.

use masterz::domain::CompanyId;
use masterz::domain::trunk::TrunkSettings;
use masterz::secrets::{Key, KeySource, Keyring};
use masterz::store::{
    self, StoreError,
    calls::{CallEnd, CallFilter, MediaFigures, NewCall},
    routing::{GroupSettings, RoutingError},
};
use serde_json::json;

mod routing;

use crate::both_backends;
use crate::common::{Backend, seed_tenant};
use crate::db;

both_backends!(
    a_call_from_ringing_to_ended,
    calls_are_listed_filtered_and_isolated,
    customers_are_found_or_created_by_phone,
    phone_customers_survive_a_race,
);

pub(super) fn keyring() -> Keyring {
    Keyring::new(vec![Key::generate().unwrap()], KeySource::Config).unwrap()
}

pub(super) async fn trunk(
    x: &mut store::Ex<'_>,
    company: CompanyId,
    name: &str,
    dids: &[&str],
) -> i64 {
    let settings =
        TrunkSettings::from_json(&json!({"host": "sip.example.com", "dids": dids})).unwrap();
    store::trunks::create_trunk(x, &keyring(), company, name, &settings, None)
        .await
        .unwrap()
        .id
}

fn call<'a>(customer: Option<i64>, sip_call_id: &'a str, at: i64) -> NewCall<'a> {
    NewCall {
        customer_id: customer,
        direction: "in",
        from_uri: "sip:+15551230001@provider.example",
        to_uri: "sip:+15559870000@masterz",
        trunk_id: None,
        group_id: None,
        sip_call_id,
        agent_user_id: None,
        started_at: at,
    }
}

/// The field a refused change names.
pub(super) fn field<T>(r: Result<T, RoutingError>) -> String {
    match r {
        Err(RoutingError::Invalid(e)) => e.field,
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("accepted"),
    }
}

pub(super) fn settings(name: &str) -> GroupSettings<'_> {
    GroupSettings {
        name,
        ring_timeout_secs: 20,
        no_answer_status: 486,
        overflow_group_id: None,
    }
}

async fn a_call_from_ringing_to_ended(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let b = seed_tenant(&db, "b").await;
    let mut c = db.conn().await.unwrap();
    let mut x = c.ex();
    let t = trunk(&mut x, a.company, "Provider", &["+15559870000"]).await;
    let g = store::routing::create_group(&mut x, a.company, &settings("Sales"))
        .await
        .unwrap();
    let customer = store::customers::find_or_create_by_phone(&mut x, a.company, "+15551230001")
        .await
        .unwrap();
    let id = store::calls::create(
        &mut x,
        a.company,
        &NewCall {
            trunk_id: Some(t),
            group_id: Some(g.id),
            ..call(Some(customer), "abc@provider", 1_000)
        },
    )
    .await
    .unwrap();
    let ringing = store::calls::get(&mut x, a.company, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ringing.status.as_str(), ringing.trunk_id, ringing.group_id),
        ("ringing", Some(t), Some(g.id))
    );
    assert_eq!(ringing.sip_call_id.as_deref(), Some("abc@provider"));
    assert_eq!(ringing.started_at.0, 1_000);
    assert!(ringing.answered_at.is_none() && ringing.media.is_none());

    for user in [a.agent, a.admin] {
        store::calls::add_event(&mut x, a.company, id, 1_010, "ringing", Some(user), None)
            .await
            .unwrap();
    }
    store::calls::answered(&mut x, a.company, id, Some(a.agent), 3_000, "PCMU")
        .await
        .unwrap();
    store::calls::add_event(
        &mut x,
        a.company,
        id,
        3_000,
        "answered",
        Some(a.agent),
        None,
    )
    .await
    .unwrap();
    // Another company's agent is recorded as nobody; a transfer changes the agent.
    store::calls::add_event(
        &mut x,
        a.company,
        id,
        4_000,
        "dtmf",
        Some(b.agent),
        Some("5"),
    )
    .await
    .unwrap();
    store::calls::set_agent(&mut x, a.company, id, Some(a.admin))
        .await
        .unwrap();
    store::calls::set_agent(&mut x, a.company, id, Some(b.agent))
        .await
        .unwrap();
    let media = MediaFigures {
        packets_in: 500,
        packets_out: 498,
        packets_lost: 2,
        jitter_us: 1_250,
        detail_json: json!({"legs": [{"side": "customer", "lost": 2}]}).to_string(),
    };
    let end = CallEnd {
        ended_at: 10_000,
        status: "completed",
        end_reason: "bye",
        hangup_by: Some("caller"),
        sip_status: None,
        media: Some(&media),
    };
    store::calls::ended(&mut x, a.company, id, &end)
        .await
        .unwrap();
    // Only the first end counts, and an ended call is not answered again.
    let late = CallEnd {
        ended_at: 11_000,
        status: "failed",
        end_reason: "timeout",
        hangup_by: Some("system"),
        sip_status: Some(408),
        media: None,
    };
    store::calls::ended(&mut x, a.company, id, &late)
        .await
        .unwrap();
    store::calls::answered(&mut x, a.company, id, Some(a.agent), 12_000, "PCMA")
        .await
        .unwrap();

    let done = store::calls::get(&mut x, a.company, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            done.status.as_str(),
            done.end_reason.as_deref(),
            done.hangup_by.as_deref()
        ),
        ("completed", Some("bye"), Some("caller"))
    );
    assert_eq!(
        (done.answered_at.map(|t| t.0), done.ended_at.map(|t| t.0)),
        (Some(3_000), Some(10_000))
    );
    assert_eq!(done.agent_user_id, Some(a.admin), "the transfer target");
    assert_eq!(done.codec.as_deref(), Some("PCMU"));
    assert_eq!(
        (
            done.rtp_packets_in,
            done.rtp_packets_out,
            done.rtp_packets_lost,
            done.rtp_jitter_us
        ),
        (Some(500), Some(498), Some(2), Some(1_250))
    );
    assert_eq!(done.media.unwrap()["legs"][0]["lost"], 2);
    let events = store::calls::events(&mut x, a.company, id).await.unwrap();
    let kinds: Vec<_> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.user_id))
        .collect();
    assert_eq!(
        kinds,
        [
            ("ringing", Some(a.agent)),
            ("ringing", Some(a.admin)),
            ("answered", Some(a.agent)),
            ("dtmf", None),
        ]
    );
    assert_eq!(events[3].detail.as_deref(), Some("5"));

    // A call that was never answered: missed, with the SIP status the caller got.
    let missed = store::calls::create(&mut x, a.company, &call(Some(customer), "m@p", 20_000))
        .await
        .unwrap();
    let no_answer = CallEnd {
        ended_at: 50_000,
        status: "missed",
        end_reason: "no_answer",
        hangup_by: Some("system"),
        sip_status: Some(480),
        media: None,
    };
    store::calls::ended(&mut x, a.company, missed, &no_answer)
        .await
        .unwrap();
    store::calls::answered(&mut x, a.company, missed, Some(a.agent), 51_000, "PCMU")
        .await
        .unwrap();
    let m = store::calls::get(&mut x, a.company, missed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m.status.as_str(), m.sip_status), ("missed", Some(480)));
    assert!(m.answered_at.is_none() && m.rtp_packets_in.is_none());

    // The call shows in the customer's timeline.
    let timeline = store::timeline::page(&mut x, a.company, customer, None, 10)
        .await
        .unwrap();
    assert_eq!(timeline.iter().filter(|i| i.kind == "call").count(), 2);
}

async fn calls_are_listed_filtered_and_isolated(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let b = seed_tenant(&db, "b").await;
    let mut c = db.conn().await.unwrap();
    let mut x = c.ex();
    let alice = store::customers::find_or_create_by_phone(&mut x, a.company, "+15551230001")
        .await
        .unwrap();
    let bob = store::customers::find_or_create_by_phone(&mut x, a.company, "+15551230002")
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (i, customer) in [alice, bob, alice, bob, alice].into_iter().enumerate() {
        let new = NewCall {
            direction: if i % 2 == 0 { "in" } else { "out" },
            agent_user_id: (i == 4).then_some(a.agent),
            ..call(Some(customer), "x", i as i64)
        };
        ids.push(store::calls::create(&mut x, a.company, &new).await.unwrap());
    }
    let internal = NewCall {
        direction: "internal",
        agent_user_id: Some(a.admin),
        ..call(None, "i", 9)
    };
    let internal = store::calls::create(&mut x, a.company, &internal)
        .await
        .unwrap();
    let list = |f: CallFilter| {
        let db = db.clone();
        async move {
            let mut c = db.conn().await.unwrap();
            store::calls::list(&mut c.ex(), a.company, &f)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(CallFilter::default()).await,
        [internal, ids[4], ids[3], ids[2], ids[1], ids[0]]
    );
    let of_alice = CallFilter {
        customer_id: Some(alice),
        ..Default::default()
    };
    assert_eq!(list(of_alice.clone()).await, [ids[4], ids[2], ids[0]]);
    let page = CallFilter {
        before_id: Some(ids[4]),
        limit: 1,
        ..of_alice
    };
    assert_eq!(list(page).await, [ids[2]]);
    let outbound = CallFilter {
        direction: Some("out".into()),
        ..Default::default()
    };
    assert_eq!(list(outbound).await, [ids[3], ids[1]]);
    let agent = CallFilter {
        agent: Some(a.agent),
        ..Default::default()
    };
    assert_eq!(list(agent).await, [ids[4]]);
    store::calls::answered(&mut x, a.company, ids[0], None, 100, "PCMA")
        .await
        .unwrap();
    let answered = CallFilter {
        status: Some("answered".into()),
        ..Default::default()
    };
    assert_eq!(list(answered).await, [ids[0]]);

    // Company b sees none of it and can change none of it.
    assert!(
        store::calls::get(&mut x, b.company, ids[0])
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store::calls::list(&mut x, b.company, &CallFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    store::calls::answered(&mut x, b.company, ids[1], Some(b.agent), 5, "PCMU")
        .await
        .unwrap();
    let end = CallEnd {
        ended_at: 6,
        status: "failed",
        end_reason: "x",
        hangup_by: None,
        sip_status: Some(500),
        media: None,
    };
    store::calls::ended(&mut x, b.company, ids[1], &end)
        .await
        .unwrap();
    store::calls::set_agent(&mut x, b.company, ids[1], Some(b.agent))
        .await
        .unwrap();
    store::calls::add_event(&mut x, b.company, ids[1], 7, "held", None, None)
        .await
        .unwrap();
    let untouched = store::calls::get(&mut x, a.company, ids[1])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            untouched.status.as_str(),
            untouched.agent_user_id,
            untouched.ended_at
        ),
        ("ringing", None, None)
    );
    assert!(
        store::calls::events(&mut x, a.company, ids[1])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store::calls::events(&mut x, b.company, ids[1])
            .await
            .unwrap()
            .is_empty()
    );
    // References into another company are refused and write nothing.
    let b_trunk = trunk(&mut x, b.company, "B", &[]).await;
    let b_group = store::routing::create_group(&mut x, b.company, &settings("B"))
        .await
        .unwrap();
    for bad in [
        call(Some(alice), "y", 1),
        NewCall {
            agent_user_id: Some(a.agent),
            ..call(None, "y", 1)
        },
        NewCall {
            trunk_id: Some(trunk(&mut x, a.company, "A", &[]).await),
            ..call(None, "y", 1)
        },
        NewCall {
            group_id: Some(
                store::routing::create_group(&mut x, a.company, &settings("A"))
                    .await
                    .unwrap()
                    .id,
            ),
            ..call(None, "y", 1)
        },
    ] {
        assert!(matches!(
            store::calls::create(&mut x, b.company, &bad).await,
            Err(StoreError::Reference(_))
        ));
    }
    let fine = NewCall {
        trunk_id: Some(b_trunk),
        group_id: Some(b_group.id),
        agent_user_id: Some(b.agent),
        ..call(None, "y", 1)
    };
    store::calls::create(&mut x, b.company, &fine)
        .await
        .unwrap();
    assert_eq!(
        store::calls::list(&mut x, b.company, &CallFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn customers_are_found_or_created_by_phone(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let b = seed_tenant(&db, "b").await;
    let mut c = db.conn().await.unwrap();
    let mut x = c.ex();
    let number = "+4915123456789";
    let first = store::customers::find_or_create_by_phone(&mut x, a.company, number)
        .await
        .unwrap();
    let again = store::customers::find_or_create_by_phone(&mut x, a.company, number)
        .await
        .unwrap();
    assert_eq!(first, again);
    let customer = store::customers::get(&mut x, a.company, first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(customer.display_name.as_deref(), Some(number));
    let ids = store::customers::identities(&mut x, a.company, first)
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        (
            ids[0].kind.as_str(),
            ids[0].external_id.as_str(),
            ids[0].channel_account_id
        ),
        ("phone", number, None)
    );
    // Another company has its own customer for the same number.
    let theirs = store::customers::find_or_create_by_phone(&mut x, b.company, number)
        .await
        .unwrap();
    assert_ne!(theirs, first);
    assert!(
        store::customers::get(&mut x, b.company, first)
            .await
            .unwrap()
            .is_none()
    );
    // A phone identity added elsewhere (e.g. from WhatsApp) is found, and a merge is followed.
    let known = store::customers::create(&mut x, a.company, &crate::named("Known"))
        .await
        .unwrap();
    store::customers::add_identity(
        &mut x,
        a.company,
        known.id,
        "phone",
        None,
        "+4915100000001",
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        store::customers::find_or_create_by_phone(&mut x, a.company, "+4915100000001")
            .await
            .unwrap(),
        known.id
    );
    store::customers::merge(&mut x, a.company, known.id, first, None)
        .await
        .unwrap();
    assert_eq!(
        store::customers::find_or_create_by_phone(&mut x, a.company, number)
            .await
            .unwrap(),
        known.id
    );
}

async fn phone_customers_survive_a_race(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let number = "+15550001111";
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = db.begin().await.unwrap();
            let id = store::customers::find_or_create_by_phone(&mut tx.ex(), a.company, number)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one customer for one number: {ids:?}");
    let mut c = db.conn().await.unwrap();
    let all = store::customers::list(&mut c.ex(), a.company, Some(number), None, 50)
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "no orphan customer is left behind");
}
