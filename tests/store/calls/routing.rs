//! Call routing: groups with their members, DIDs and overflow; where agents are registered.

use masterz::domain::sip::SipTransport;
use masterz::domain::{CompanyId, UserId};
use masterz::store::{
    self, StoreError,
    routing::{GroupSettings, RoutingError},
    sip::NewBinding,
};

use super::{field, keyring, settings, trunk};
use crate::both_backends;
use crate::common::{Backend, seed_tenant};
use crate::db;

both_backends!(
    groups_members_dids_and_overflow,
    agents_are_found_by_registration_and_extension,
);

async fn groups_members_dids_and_overflow(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let a = seed_tenant(&db, "a").await;
    let b = seed_tenant(&db, "b").await;
    let mut c = db.conn().await.unwrap();
    let mut x = c.ex();
    trunk(&mut x, a.company, "One", &["+15559870000", "+15559870001"]).await;
    trunk(&mut x, a.company, "Two", &["+15559870002"]).await;
    trunk(&mut x, b.company, "B", &["+15550000000"]).await;

    let sales = store::routing::create_group(&mut x, a.company, &settings("Sales"))
        .await
        .unwrap();
    assert_eq!(
        (
            sales.ring_timeout_secs,
            sales.no_answer_status,
            sales.members.len()
        ),
        (20, 486, 0)
    );
    let bad_timeout = GroupSettings {
        ring_timeout_secs: 4,
        ..settings("X")
    };
    assert_eq!(
        field(store::routing::create_group(&mut x, a.company, &bad_timeout).await),
        "ring_timeout_secs"
    );
    let bad_status = GroupSettings {
        no_answer_status: 200,
        ..settings("X")
    };
    assert_eq!(
        field(store::routing::create_group(&mut x, a.company, &bad_status).await),
        "no_answer_status"
    );
    assert!(matches!(
        store::routing::create_group(&mut x, a.company, &settings("Sales")).await,
        Err(RoutingError::Store(StoreError::Conflict(_)))
    ));

    // Members: users of the company only.
    let set =
        store::routing::set_members(&mut x, a.company, sales.id, &[a.agent, a.admin, a.agent])
            .await
            .unwrap()
            .unwrap();
    let mut want = vec![a.agent, a.admin];
    want.sort();
    assert_eq!(set.members, want);
    assert_eq!(
        field(store::routing::set_members(&mut x, a.company, sales.id, &[a.agent, b.agent]).await),
        "members[1]"
    );
    assert_eq!(
        store::routing::group(&mut x, a.company, sales.id)
            .await
            .unwrap()
            .unwrap()
            .members,
        want,
        "a refused change leaves the members"
    );

    // DIDs: numbers of the company's trunks only, each ringing one group.
    let dids = vec!["+15559870002".to_owned(), "+15559870000".to_owned()];
    let set = store::routing::set_dids(&mut x, a.company, sales.id, &dids)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(set.dids, ["+15559870000", "+15559870002"]);
    assert_eq!(
        field(
            store::routing::set_dids(&mut x, a.company, sales.id, &["+15550000000".to_owned()])
                .await
        ),
        "dids[0]"
    );
    let support = store::routing::create_group(&mut x, a.company, &settings("Support"))
        .await
        .unwrap();
    assert!(matches!(
        store::routing::set_dids(&mut x, a.company, support.id, &["+15559870000".to_owned()]).await,
        Err(RoutingError::Store(StoreError::Conflict(_)))
    ));
    let routed = store::routing::group_for_did(&mut x, a.company, "+15559870002")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        routed,
        store::routing::group(&mut x, a.company, sales.id)
            .await
            .unwrap()
            .unwrap()
    );
    assert!(
        store::routing::group_for_did(&mut x, a.company, "+15559870001")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store::routing::group_for_did(&mut x, b.company, "+15559870002")
            .await
            .unwrap()
            .is_none()
    );

    // Overflow: a group of the company, not itself, never a loop.
    let overflow = |id: Option<i64>| GroupSettings {
        overflow_group_id: id,
        ..settings("Sales")
    };
    assert_eq!(
        field(
            store::routing::update_group(&mut x, a.company, sales.id, &overflow(Some(sales.id)))
                .await
        ),
        "overflow_group_id"
    );
    let b_group = store::routing::create_group(&mut x, b.company, &settings("B"))
        .await
        .unwrap();
    assert_eq!(
        field(
            store::routing::update_group(&mut x, a.company, sales.id, &overflow(Some(b_group.id)))
                .await
        ),
        "overflow_group_id"
    );
    let sales2 =
        store::routing::update_group(&mut x, a.company, sales.id, &overflow(Some(support.id)))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(sales2.overflow_group_id, Some(support.id));
    assert_eq!(sales2.dids.len(), 2, "settings leave routes alone");
    let back = GroupSettings {
        overflow_group_id: Some(sales.id),
        ..settings("Support")
    };
    assert_eq!(
        field(store::routing::update_group(&mut x, a.company, support.id, &back).await),
        "overflow_group_id"
    );
    assert!(
        store::routing::update_group(&mut x, b.company, sales.id, &overflow(None))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store::routing::set_members(&mut x, b.company, sales.id, &[b.agent])
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store::routing::group(&mut x, b.company, sales.id)
            .await
            .unwrap()
            .is_none()
    );

    let names: Vec<_> = store::routing::list_groups(&mut x, a.company)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, ["Sales", "Support"]);
    let by_name = store::routing::group_by_name(&mut x, a.company, "Support")
        .await
        .unwrap();
    assert_eq!(by_name.map(|g| g.id), Some(support.id));

    // Deleting: not from another company; the routes and the overflow go with the group.
    assert!(
        !store::routing::delete_group(&mut x, b.company, support.id)
            .await
            .unwrap()
    );
    assert!(
        store::routing::delete_group(&mut x, a.company, support.id)
            .await
            .unwrap()
    );
    let after = store::routing::group(&mut x, a.company, sales.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.overflow_group_id, None);
    assert!(
        store::routing::delete_group(&mut x, a.company, sales.id)
            .await
            .unwrap()
    );
    assert!(
        store::routing::group_for_did(&mut x, a.company, "+15559870000")
            .await
            .unwrap()
            .is_none()
    );
    // The freed number can ring another group.
    let again = store::routing::create_group(&mut x, a.company, &settings("Again"))
        .await
        .unwrap();
    store::routing::set_dids(&mut x, a.company, again.id, &["+15559870000".to_owned()])
        .await
        .unwrap()
        .unwrap();
}

async fn agents_are_found_by_registration_and_extension(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let ring = keyring();
    let a = seed_tenant(&db, "a").await;
    let b = seed_tenant(&db, "b").await;
    let now = store::now_ms();
    let mut c = db.conn().await.unwrap();
    let mut x = c.ex();
    for (company, user, name) in [
        (a.company, a.agent, "1001"),
        (a.company, a.admin, "1002"),
        (b.company, b.agent, "2001"),
    ] {
        store::sip::set_credentials(&mut x, &ring, company, user, name, "long-enough")
            .await
            .unwrap()
            .unwrap();
    }
    let bind =
        |company: CompanyId, user: UserId, contact: &'static str, expires_at: i64| NewBinding {
            company,
            user,
            aor: "sip:x@masterz",
            contact,
            source: "198.51.100.7:5062",
            transport: SipTransport::Udp,
            user_agent: None,
            call_id: "c",
            cseq: 1,
            expires_at,
            instance_id: None,
            reg_id: None,
            q: None,
        };
    for b in [
        bind(
            a.company,
            a.agent,
            "sip:1001@198.51.100.7:5062",
            now + 60_000,
        ),
        bind(a.company, a.agent, "sip:1001@ws.invalid", now + 60_000),
        bind(a.company, a.admin, "sip:1002@198.51.100.8:5060", now - 1),
        bind(b.company, b.agent, "sip:2001@192.0.2.1", now + 60_000),
    ] {
        store::sip::upsert_binding(&mut x, &b).await.unwrap();
    }
    let everyone = store::routing::agent_contacts(&mut x, a.company, None, now)
        .await
        .unwrap();
    assert_eq!(
        everyone.len(),
        2,
        "the expired one and company b's are left out"
    );
    assert!(
        everyone
            .iter()
            .all(|c| c.user_id == a.agent && c.username == "1001")
    );
    assert_eq!(everyone[0].display_name.as_deref(), Some("agent"));
    assert!(
        !format!("{everyone:?}").contains("198.51.100.7"),
        "Debug hides addresses"
    );
    assert!(
        store::routing::agent_contacts(&mut x, a.company, Some(&[a.admin]), now)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store::routing::agent_contacts(&mut x, a.company, Some(&[b.agent]), now)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store::routing::agent_contacts(&mut x, a.company, Some(&[a.agent, a.admin]), now)
            .await
            .unwrap()
            .len(),
        2
    );
    // Without a SIP account a user is not rung.
    store::sip::clear_credentials(&mut x, a.company, a.agent)
        .await
        .unwrap();
    assert!(
        store::routing::agent_contacts(&mut x, a.company, None, now)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        store::routing::agent_by_extension(&mut x, a.company, "1002")
            .await
            .unwrap(),
        Some(a.admin)
    );
    assert_eq!(
        store::routing::agent_by_extension(&mut x, a.company, "2001")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store::routing::extension_of(&mut x, a.company, a.admin)
            .await
            .unwrap()
            .as_deref(),
        Some("1002")
    );
    assert_eq!(
        store::routing::extension_of(&mut x, a.company, b.agent)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store::routing::extension_of(&mut x, a.company, a.agent)
            .await
            .unwrap(),
        None
    );
}
