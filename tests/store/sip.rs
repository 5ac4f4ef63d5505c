//! SIP accounts, bindings and trunks: the store functions the SIP driver calls, without a server
//! (so no registrar or trunk task writes behind the test's back).

use masterz::domain::sip::{SipTransport, TrunkState};
use masterz::domain::trunk::TrunkSettings;
use masterz::domain::{CompanyId, UserId};
use masterz::secrets::{Key, KeySource, Keyring};
use masterz::store::{
    self,
    sip::{NewBinding, Upserted},
    trunks::TrunkStatus,
};
use serde_json::json;

use crate::both_backends;
use crate::common::{Backend, seed_tenant};
use crate::db;

both_backends!(
    bindings_follow_rfc_3261_ordering_and_expiry,
    trunk_state_driver_view_and_passwords,
);

fn keyring() -> Keyring {
    Keyring::new(vec![Key::generate().unwrap()], KeySource::Config).unwrap()
}

fn binding(
    company: CompanyId,
    user: UserId,
    contact: &'static str,
    expires_at: i64,
) -> NewBinding<'static> {
    NewBinding {
        company,
        user,
        aor: "sip:alice@masterz",
        contact,
        source: "198.51.100.7:5062",
        transport: SipTransport::Udp,
        user_agent: Some("Zoiper 5"),
        call_id: "reg-call-1",
        cseq: 1,
        expires_at,
        instance_id: Some("<urn:uuid:00000000-0000-0000-0000-000000000001>"),
        reg_id: Some(1),
        q: None,
    }
}

async fn bindings_follow_rfc_3261_ordering_and_expiry(backend: Backend) {
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
        (a.company, a.agent, "alice"),
        (a.company, a.admin, "adam"),
        (b.company, b.agent, "bert"),
    ] {
        store::sip::set_credentials(&mut x, &ring, company, user, name, "long-enough")
            .await
            .unwrap()
            .unwrap();
    }
    // No such user in the company: None, nothing written.
    assert!(
        store::sip::set_credentials(&mut x, &ring, b.company, a.agent, "x", "long-enough")
            .await
            .unwrap()
            .is_none()
    );
    let stored = |r: Upserted| match r {
        Upserted::Stored(b) => b,
        Upserted::OutOfOrder => panic!("not stored"),
    };
    let first_nb = binding(
        a.company,
        a.agent,
        "sip:alice@198.51.100.7:5062",
        now + 60_000,
    );
    let first = stored(store::sip::upsert_binding(&mut x, &first_nb).await.unwrap());
    assert_eq!(
        (first.transport, first.cseq, first.reg_id),
        (SipTransport::Udp, 1, Some(1))
    );
    assert_eq!(
        first.instance_id.as_deref(),
        Some("<urn:uuid:00000000-0000-0000-0000-000000000001>")
    );
    assert!(
        !format!("{first:?}").contains("198.51.100.7"),
        "Debug hides addresses: {first:?}"
    );
    let ws = NewBinding {
        q: Some(0.5),
        transport: SipTransport::Wss,
        ..binding(a.company, a.agent, "sip:alice@ws.invalid", now + 60_000)
    };
    stored(store::sip::upsert_binding(&mut x, &ws).await.unwrap());
    stored(
        store::sip::upsert_binding(
            &mut x,
            &binding(a.company, a.admin, "sip:adam@203.0.113.1", now - 1_000),
        )
        .await
        .unwrap(),
    );
    stored(
        store::sip::upsert_binding(
            &mut x,
            &binding(b.company, b.agent, "sip:bert@192.0.2.1", now + 60_000),
        )
        .await
        .unwrap(),
    );

    // RFC 3261 §10.3: the same Call-ID needs a higher CSeq; another Call-ID always replaces.
    let again = NewBinding {
        expires_at: now + 90_000,
        ..first_nb
    };
    assert!(matches!(
        store::sip::upsert_binding(&mut x, &again).await.unwrap(),
        Upserted::OutOfOrder
    ));
    let older = NewBinding { cseq: 0, ..again };
    assert!(matches!(
        store::sip::upsert_binding(&mut x, &older).await.unwrap(),
        Upserted::OutOfOrder
    ));
    let refreshed = stored(
        store::sip::upsert_binding(
            &mut x,
            &NewBinding {
                cseq: 2,
                source: "198.51.100.7:6000",
                ..again
            },
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        (refreshed.id, refreshed.cseq, refreshed.source.as_str()),
        (first.id, 2, "198.51.100.7:6000")
    );
    assert_eq!(refreshed.expires_at.0, now + 90_000);
    let other_call = NewBinding {
        call_id: "reg-call-2",
        cseq: 1,
        ..again
    };
    let replaced = stored(
        store::sip::upsert_binding(&mut x, &other_call)
            .await
            .unwrap(),
    );
    assert_eq!(
        (replaced.id, replaced.call_id.as_str(), replaced.cseq),
        (first.id, "reg-call-2", 1)
    );
    // A user outside the company is refused.
    let stray = binding(a.company, b.agent, "sip:x@192.0.2.9", now + 60_000);
    assert!(matches!(
        store::sip::upsert_binding(&mut x, &stray).await,
        Err(store::StoreError::Reference(_))
    ));

    // Routing order: highest q first (absent counts as 1.0); scoped by company.
    let mine = store::sip::bindings_for_user(&mut x, a.company, a.agent, now)
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|b| b.q).collect::<Vec<_>>(),
        [None, Some(0.5)]
    );
    assert!(
        store::sip::bindings_for_user(&mut x, b.company, a.agent, now)
            .await
            .unwrap()
            .is_empty()
    );
    let listed = store::sip::list_bindings(&mut x, a.company, now)
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "the expired binding is not listed");
    // Start-up reload and expiry.
    assert_eq!(
        store::sip::all_unexpired(&mut x, now).await.unwrap().len(),
        3
    );
    assert_eq!(store::sip::delete_expired(&mut x, now).await.unwrap(), 1);
    assert_eq!(store::sip::delete_expired(&mut x, now).await.unwrap(), 0);
    assert_eq!(
        store::sip::all_unexpired(&mut x, now + 60_000)
            .await
            .unwrap()
            .len(),
        1,
        "only the refreshed one"
    );
    assert_eq!(
        store::sip::all_unexpired(&mut x, now + 90_000)
            .await
            .unwrap()
            .len(),
        0
    );
    // Un-registering.
    assert!(
        store::sip::remove_binding(&mut x, a.company, a.agent, "sip:alice@ws.invalid")
            .await
            .unwrap()
    );
    assert!(
        !store::sip::remove_binding(&mut x, a.company, a.agent, "sip:alice@ws.invalid")
            .await
            .unwrap()
    );
    assert!(
        !store::sip::remove_binding(&mut x, b.company, a.agent, "sip:alice@198.51.100.7:5062")
            .await
            .unwrap()
    );
    assert_eq!(
        store::sip::remove_all_bindings(&mut x, a.company, a.agent)
            .await
            .unwrap(),
        1
    );

    // The same username keeps the bindings; a new one, or clearing, ends them.
    let bert = binding(b.company, b.agent, "sip:bert@192.0.2.2", now + 60_000);
    stored(store::sip::upsert_binding(&mut x, &bert).await.unwrap());
    store::sip::set_credentials(&mut x, &ring, b.company, b.agent, "bert", "new-password-1")
        .await
        .unwrap();
    assert_eq!(
        store::sip::bindings_for_user(&mut x, b.company, b.agent, now)
            .await
            .unwrap()
            .len(),
        2
    );
    let login = store::sip::account_by_username(&mut x, &ring, "bert")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.password.expose(), "new-password-1");
    store::sip::set_credentials(&mut x, &ring, b.company, b.agent, "bert2", "new-password-1")
        .await
        .unwrap();
    assert!(
        store::sip::bindings_for_user(&mut x, b.company, b.agent, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store::sip::account_by_username(&mut x, &ring, "bert")
            .await
            .unwrap()
            .is_none()
    );
    stored(store::sip::upsert_binding(&mut x, &bert).await.unwrap());
    assert!(
        store::sip::clear_credentials(&mut x, b.company, b.agent)
            .await
            .unwrap()
    );
    assert!(
        !store::sip::clear_credentials(&mut x, b.company, b.agent)
            .await
            .unwrap()
    );
    assert!(
        store::sip::bindings_for_user(&mut x, b.company, b.agent, now)
            .await
            .unwrap()
            .is_empty()
    );
    // A taken username is a Conflict that says so.
    let taken =
        store::sip::set_credentials(&mut x, &ring, b.company, b.agent, "alice", "long-enough")
            .await;
    match taken {
        Err(store::StoreError::Conflict(m)) => assert!(m.contains("taken"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Deleting a user deletes their account and bindings.
    stored(
        store::sip::upsert_binding(
            &mut x,
            &binding(a.company, a.admin, "sip:adam@203.0.113.2", now + 60_000),
        )
        .await
        .unwrap(),
    );
    assert!(
        store::users::delete_user(&mut x, a.company, a.admin)
            .await
            .unwrap()
    );
    assert!(
        store::sip::account_by_username(&mut x, &ring, "adam")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store::sip::all_unexpired(&mut x, now)
            .await
            .unwrap()
            .is_empty()
    );
    // Re-encryption under a new key keeps passwords readable.
    let rotated = ring.with_new_current(Key::generate().unwrap());
    assert_eq!(
        store::sip::reencrypt_all(&mut x, &rotated).await.unwrap(),
        1
    );
    let only_new = rotated.only_current();
    let login = store::sip::account_by_username(&mut x, &only_new, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            login.company_id,
            login.user_id,
            login.password.expose().as_str()
        ),
        (a.company, a.agent, "long-enough")
    );
    assert!(
        store::sip::account_by_username(&mut x, &ring, "alice")
            .await
            .is_err(),
        "the old key alone no longer opens it"
    );
}

async fn trunk_state_driver_view_and_passwords(backend: Backend) {
    let Some((_t, db)) = db(backend).await else {
        return;
    };
    let ring = keyring();
    let a = seed_tenant(&db, "a").await;
    let b = seed_tenant(&db, "b").await;
    let mut c = db.conn().await.unwrap();
    let mut x = c.ex();
    let settings = |v: serde_json::Value| TrunkSettings::from_json(&v).unwrap();
    let reg = store::trunks::create_trunk(&mut x, &ring, a.company, "Provider",
        &settings(json!({"host": "sip.example.com", "register": true, "username": "acct1", "sources": ["192.0.2.0/24"]})),
        Some("trunk-secret")).await.unwrap();
    assert_eq!(
        (reg.kind.as_str(), reg.credential_keys.as_str()),
        ("sip_trunk", "password")
    );
    let plain = store::trunks::create_trunk(
        &mut x,
        &ring,
        a.company,
        "Static",
        &settings(json!({"host": "192.0.2.1"})),
        None,
    )
    .await
    .unwrap();
    let b_trunk = store::trunks::create_trunk(
        &mut x,
        &ring,
        b.company,
        "B",
        &settings(json!({"host": "b.example"})),
        None,
    )
    .await
    .unwrap();
    let broken = store::channels::create(
        &mut x,
        a.company,
        "sip_trunk",
        "Broken",
        None,
        &json!({"host": 5}),
        None,
    )
    .await
    .unwrap();
    let state = |list: &[store::trunks::Trunk], id: i64| {
        list.iter()
            .find(|t| t.id == id)
            .unwrap()
            .registration
            .clone()
    };

    let list = store::trunks::list_trunks(&mut x, a.company).await.unwrap();
    assert_eq!(
        list.iter().map(|t| t.id).collect::<Vec<_>>(),
        [reg.id, plain.id, broken.id]
    );
    assert_eq!(
        state(&list, reg.id).state,
        TrunkState::Registering,
        "registering, no state yet"
    );
    assert_eq!(state(&list, plain.id).state, TrunkState::Disabled);
    let bad = state(&list, broken.id);
    assert_eq!(bad.state, TrunkState::Failed);
    assert!(bad.reason.unwrap().contains("settings.host"));

    let until = store::now_ms() + 3_600_000;
    let registered = TrunkStatus {
        state: TrunkState::Registered,
        reason: None,
        registered_until: Some(until),
        next_attempt_at: Some(until - 60_000),
    };
    assert!(
        store::trunks::set_trunk_status(&mut x, a.company, reg.id, &registered)
            .await
            .unwrap()
    );
    assert!(
        !store::trunks::set_trunk_status(&mut x, a.company, b_trunk.id, &registered)
            .await
            .unwrap(),
        "another company's trunk"
    );
    let r = state(
        &store::trunks::list_trunks(&mut x, a.company).await.unwrap(),
        reg.id,
    );
    assert_eq!(
        (
            r.state,
            r.registered_until.map(|t| t.0),
            r.next_attempt_at.map(|t| t.0)
        ),
        (TrunkState::Registered, Some(until), Some(until - 60_000))
    );
    let failed = TrunkStatus {
        state: TrunkState::Failed,
        reason: Some("403 Forbidden".into()),
        registered_until: None,
        next_attempt_at: Some(until),
    };
    assert!(
        store::trunks::set_trunk_status(&mut x, a.company, reg.id, &failed)
            .await
            .unwrap()
    );
    let r = state(
        &store::trunks::list_trunks(&mut x, a.company).await.unwrap(),
        reg.id,
    );
    assert_eq!(
        (r.state, r.reason.as_deref(), r.registered_until),
        (TrunkState::Failed, Some("403 Forbidden"), None)
    );
    // A state written before registration was switched off (or on) does not show.
    assert!(
        store::trunks::set_trunk_status(&mut x, a.company, plain.id, &registered)
            .await
            .unwrap()
    );
    assert_eq!(
        state(
            &store::trunks::list_trunks(&mut x, a.company).await.unwrap(),
            plain.id
        )
        .state,
        TrunkState::Disabled
    );
    let disabled = TrunkStatus {
        state: TrunkState::Disabled,
        reason: None,
        registered_until: None,
        next_attempt_at: None,
    };
    assert!(
        store::trunks::set_trunk_status(&mut x, a.company, reg.id, &disabled)
            .await
            .unwrap()
    );
    assert_eq!(
        state(
            &store::trunks::list_trunks(&mut x, a.company).await.unwrap(),
            reg.id
        )
        .state,
        TrunkState::Registering
    );

    // The driver's view: every good trunk of every company, password decrypted.
    let all = store::trunks::all_trunks(&mut x, &ring).await.unwrap();
    assert_eq!(
        all.iter().map(|t| t.id).collect::<Vec<_>>(),
        [reg.id, plain.id, b_trunk.id]
    );
    let r = &all[0];
    assert_eq!(
        (
            r.company_id,
            r.name.as_str(),
            r.settings.username.as_deref()
        ),
        (a.company, "Provider", Some("acct1"))
    );
    assert_eq!(r.password.as_ref().unwrap().expose(), "trunk-secret");
    assert!(r.settings.allows_source("192.0.2.77".parse().unwrap()));
    assert!(!format!("{r:?}").contains("trunk-secret"));
    assert!(all[1].password.is_none());
    let pw = store::trunks::trunk_password(&mut x, &ring, a.company, reg.id)
        .await
        .unwrap();
    assert_eq!(pw.unwrap().expose(), "trunk-secret");
    assert!(
        store::trunks::trunk_password(&mut x, &ring, b.company, reg.id)
            .await
            .unwrap()
            .is_none()
    );
    // A change moves updated_at, which the driver watches.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut creds = serde_json::Map::new();
    creds.insert("password".into(), "rotated".into());
    let sealed = store::channels::seal(&ring, &creds).unwrap();
    store::channels::update(&mut x, a.company, reg.id, None, None, None, Some(sealed))
        .await
        .unwrap()
        .unwrap();
    let again = store::trunks::all_trunks(&mut x, &ring).await.unwrap();
    assert!(again[0].updated_at > r.updated_at);
    assert_eq!(again[0].password.as_ref().unwrap().expose(), "rotated");
    // Deleting the trunk deletes its state.
    assert!(
        store::channels::delete(&mut x, a.company, reg.id)
            .await
            .unwrap()
    );
    assert!(
        !store::trunks::set_trunk_status(&mut x, a.company, reg.id, &registered)
            .await
            .unwrap()
    );
}
