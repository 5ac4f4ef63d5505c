//! `masterz serve --demo`: a demo company with an agent, customers, a conversation, messages, a
//! call and notes, so a newcomer sees a filled timeline at once. Seeded once; a company with the
//! slug `demo` already there is left alone.

use anyhow::Context as _;

use crate::store::{
    self, Db,
    audit::Actor,
    conversations::{NewCall, NewMessage},
    customers::Profile,
};

/// The demo company's slug.
pub const DEMO_SLUG: &str = "demo";
/// The demo agent's login.
pub const DEMO_AGENT_EMAIL: &str = "agent@demo.masterz.local";

/// Seeds the demo company unless it exists; returns the agent's generated password when it seeded.
pub async fn seed(db: &Db) -> anyhow::Result<Option<String>> {
    let mut tx = db.begin().await?;
    if store::companies::by_slug(&mut tx.ex(), DEMO_SLUG)
        .await?
        .is_some()
    {
        return Ok(None);
    }
    let company = store::companies::create(&mut tx.ex(), "Demo Bakery", DEMO_SLUG).await?;
    let c = company.id;
    let role = store::users::role_by_name(&mut tx.ex(), c, store::companies::AGENT_ROLE)
        .await?
        .context("agent role missing")?;
    let password = crate::secrets::new_token("")?.expose()[..16].to_owned();
    let hash = crate::auth::hash_password(&password).await?;
    let agent = store::users::create_user(
        &mut tx.ex(),
        c,
        &store::users::NewUser {
            role_id: role.id,
            name: "Dana Demo",
            email: DEMO_AGENT_EMAIL,
            password_hash: &hash,
            avatar_url: None,
        },
    )
    .await?;
    store::audit::record(
        &mut tx.ex(),
        c,
        &Actor {
            label: "demo".into(),
            ..Actor::cli()
        },
        "create",
        "user",
        Some(agent.id.0),
        &serde_json::json!({"email": DEMO_AGENT_EMAIL, "role": "agent"}),
    )
    .await?;
    let now = store::now_ms();
    let minute = 60_000;
    for (name, phone, locale) in [
        ("Anna Schmidt", "+4915112345678", "de_DE"),
        ("Ben Okafor", "+447700900123", "en_GB"),
        ("Chloé Martin", "+33612345678", "fr_FR"),
    ] {
        let profile = Profile {
            display_name: Some(name.into()),
            avatar_url: None,
            locale: Some(locale.into()),
        };
        let customer = store::customers::create(&mut tx.ex(), c, &profile).await?;
        store::customers::add_identity(
            &mut tx.ex(),
            c,
            customer.id,
            "phone",
            None,
            phone,
            &Profile::default(),
        )
        .await?;
        let conv = store::conversations::create(
            &mut tx.ex(),
            c,
            customer.id,
            None,
            Some("Order for Saturday"),
            Some(agent.id),
        )
        .await?;
        let start = now - 90 * minute;
        store::conversations::add_call(
            &mut tx.ex(),
            c,
            &NewCall {
                customer_id: Some(customer.id),
                conversation_id: Some(conv.id),
                direction: "in",
                from_uri: &format!("sip:{phone}@trunk.demo"),
                to_uri: "sip:+4930123456@masterz",
                status: "ended",
                agent_user_id: Some(agent.id),
                started_at: start,
                answered_at: Some(start + 8_000),
                ended_at: Some(start + 8_000 + 3 * minute + 12_000),
                end_reason: Some("caller hung up"),
            },
        )
        .await?;
        for (i, (direction, body, by)) in [
            (
                "in",
                "Hi! Can I order two sourdough loaves for Saturday?",
                None,
            ),
            (
                "out",
                "Of course — they'll be ready from 8 am.",
                Some(agent.id),
            ),
            ("in", "Perfect, thank you!", None),
        ]
        .into_iter()
        .enumerate()
        {
            store::conversations::add_message(
                &mut tx.ex(),
                c,
                &NewMessage {
                    conversation_id: conv.id,
                    customer_id: customer.id,
                    direction,
                    sender_user_id: by,
                    body: Some(body),
                    status: if direction == "in" {
                        "received"
                    } else {
                        "read"
                    },
                    external_id: None,
                    at: start + (i as i64 + 5) * minute,
                },
            )
            .await?;
        }
        store::conversations::add_note(
            &mut tx.ex(),
            c,
            customer.id,
            Some(conv.id),
            Some(agent.id),
            "Regular customer; prefers pick-up.",
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(password))
}
