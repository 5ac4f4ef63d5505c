//! P20: closing an account deletes all its company-scoped data within the configured period
//! (immediately here). Two companies get the same kinds of data through the real paths; the first
//! is closed through the API; its access ends at once; after the job, no table has a row of it
//! and no column of any row holds anything planted in its data, and its recording files are gone.
//! The second company keeps everything.

use masterz::domain::CompanyId;
use masterz::domain::sip::SipTransport;
use masterz::store;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{
    APP_SECRET, api, channel, customer_of, files_under, messenger_text, recorded_call, rows_naming,
    rows_of_company, settle, start, wait_for, whatsapp_text,
};
use crate::common::{Backend, PASSWORD, TestDb, TestServer, seed_tenant};

/// What was planted in one company's data, and where to find it.
struct Planted {
    company: CompanyId,
    admin_token: String,
    admin_email: String,
    agent_email: String,
    /// Text that appears only in this company's data.
    markers: Vec<String>,
    recording: std::path::PathBuf,
}

/// Seeds company `slug` (markers start with `tag`): users, a role, an invitation, sessions, API
/// tokens, SIP credentials and a registration, channel accounts with credentials, customers and
/// identities, conversations and messages from signed webhooks, a reply (outbox and an outbound
/// log row), notes, a merge, a recorded call with its file, a knowledge-base document, usage
/// counters, presence, audit entries and integration-log rows.
async fn plant(s: &TestServer, slug: &str, tag: &str, n: u8) -> Planted {
    let t = seed_tenant(s.store(), slug).await;
    let tok = t.admin_token.clone();
    let page = format!("{n}00000000000001");
    let phone_id = format!("{n}00000000000002");
    let psid = format!("{n}7254398100000{n}");
    let wa = format!("4915550{n}0{n}0{n}0");
    let m = |what: &str| format!("{tag}{what}");

    let messenger = channel(
        s,
        &tok,
        json!({"kind": "messenger", "name": m("pagename"), "external_id": page,
            "credentials": {"access_token": m("pagetoken")}}),
    )
    .await;
    let whatsapp = channel(
        s,
        &tok,
        json!({"kind": "whatsapp_cloud", "name": m("waname"), "external_id": phone_id,
            "credentials": {"access_token": m("watoken")}}),
    )
    .await;
    // A user, a custom role, an invitation, SIP credentials.
    let (st, roles) = api(s, Method::GET, "/api/v1/roles", &tok, None).await;
    assert_eq!(st, StatusCode::OK);
    let agent_role = roles
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "agent"))
        .and_then(|r| r["id"].as_i64())
        .expect("agent role");
    let (st, _) = api(
        s,
        Method::POST,
        "/api/v1/roles",
        &tok,
        Some(json!({"name": m("rolename"), "permissions": ["customers:read"]})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, user) = api(
        s,
        Method::POST,
        "/api/v1/users",
        &tok,
        Some(
            json!({"name": m("username"), "email": format!("{}@example.com", m("user")),
            "password": PASSWORD, "role_id": agent_role}),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{user}");
    let user_id = user["id"].as_i64().unwrap();
    let (st, inv) = api(
        s,
        Method::POST,
        "/api/v1/invitations",
        &tok,
        Some(json!({"email": format!("{}@example.com", m("invitee")), "role_id": agent_role})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let (st, sip) = api(
        s,
        Method::PUT,
        &format!("/api/v1/users/{user_id}/sip-credentials"),
        &tok,
        Some(json!({"username": m("sipuser"), "password": "sip-password-123"})),
    )
    .await;
    assert!(st.is_success(), "{st} {sip}");
    {
        let mut conn = s.store().conn().await.unwrap();
        let contact = format!("sip:{}@192.0.2.{n}:5060", m("sipuser"));
        store::sip::upsert_binding(
            &mut conn.ex(),
            &store::sip::NewBinding {
                company: t.company,
                user: masterz::domain::UserId(user_id),
                aor: &format!("sip:{}@masterz", m("sipuser")),
                contact: &contact,
                source: "192.0.2.1:5060",
                transport: SipTransport::Udp,
                user_agent: Some("lifecycle-softphone"),
                call_id: "lifecycle-reg",
                cseq: 1,
                expires_at: store::now_ms() + 3_600_000,
                instance_id: None,
                reg_id: None,
                q: None,
            },
        )
        .await
        .unwrap();
    }
    // A login session and presence.
    let login = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": t.admin_email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let (st, _) = api(
        s,
        Method::PUT,
        "/api/v1/agents/me/presence",
        &t.agent_token,
        Some(json!({"status": "away"})),
    )
    .await;
    assert!(st.is_success(), "presence: {st}");

    // Customers: one from Messenger (a profile look-up is queued and logged), one from
    // WhatsApp, one made by hand with a phone number and merged into the WhatsApp one.
    messenger_text(s, APP_SECRET, &page, &psid, &m("mid1"), &m("msgtext")).await;
    whatsapp_text(
        s,
        &phone_id,
        &wa,
        &m("contactname"),
        &m("wamid1"),
        &m("watext"),
    )
    .await;
    settle(s).await;
    let from_messenger = customer_of(s, t.company, "psid", Some(messenger), &psid)
        .await
        .expect("messenger customer");
    let from_whatsapp = customer_of(s, t.company, "wa_id", Some(whatsapp), &wa)
        .await
        .expect("whatsapp customer");
    let (st, by_hand) = api(
        s,
        Method::POST,
        "/api/v1/customers",
        &tok,
        Some(json!({"display_name": m("custname"),
            "identities": [{"kind": "phone", "external_id": format!("+{wa}9")}]})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{by_hand}");
    let (st, merged) = api(
        s,
        Method::POST,
        &format!("/api/v1/customers/{from_whatsapp}/merge"),
        &tok,
        Some(json!({"source_customer_id": by_hand["id"]})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{merged}");
    let (st, _) = api(
        s,
        Method::POST,
        &format!("/api/v1/customers/{from_messenger}/notes"),
        &tok,
        Some(json!({"body": m("notetext")})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    // A reply: a queued message, an outbox row, an outbound log row (the send fails).
    let (st, convs) = api(s, Method::GET, "/api/v1/conversations", &tok, None).await;
    assert_eq!(st, StatusCode::OK);
    let conv = convs["items"][0]["id"].as_i64().expect("a conversation");
    let (st, reply) = api(
        s,
        Method::POST,
        &format!("/api/v1/conversations/{conv}/messages"),
        &tok,
        Some(json!({"text": m("replytext")})),
    )
    .await;
    assert!(st.is_success(), "{st} {reply}");
    settle(s).await;
    let recording = recorded_call(s, t.company, from_whatsapp, &format!("+{wa}")).await;
    let (st, doc) = api(
        s,
        Method::POST,
        "/api/v1/knowledge",
        &tok,
        Some(json!({"title": m("kbtitle"), "body": format!("{} opening hours", m("kbbody"))})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{doc}");

    let markers = [
        slug.to_owned(),
        t.admin_email.clone(),
        // (Channel tokens are encrypted at rest, P23: no column holds them in the clear.)
        m("pagename"),
        m("rolename"),
        m("username"),
        m("invitee"),
        m("sipuser"),
        m("contactname"),
        m("msgtext"),
        m("watext"),
        m("replytext"),
        m("custname"),
        m("notetext"),
        m("kbtitle"),
        m("kbbody"),
        psid,
        wa,
    ]
    .to_vec();
    Planted {
        company: t.company,
        admin_token: tok,
        admin_email: t.admin_email,
        agent_email: t.agent_email,
        markers,
        recording,
    }
}

// P20
async fn p20_closing_a_company_ends_access_at_once_and_deletes_all_its_data(backend: Backend) {
    let Some(s) = start(backend).await else {
        return;
    };
    let gone = plant(&s, "zqclosing", "zqa", 1).await;
    let kept = plant(&s, "zbstaying", "zbb", 2).await;
    // The markers really are in the data before (so finding none afterwards means something).
    let before: Vec<&str> = gone.markers.iter().map(String::as_str).collect();
    let found = rows_naming(s.store(), &before).await;
    for m in &before {
        assert!(
            found.iter().any(|(_, f)| f == m),
            "{m} not planted: {found:?}"
        );
    }
    let tables_before = rows_of_company(s.store(), gone.company).await;
    for t in [
        "users",
        "roles",
        "invitations",
        "sessions",
        "api_tokens",
        "sip_accounts",
        "sip_registrations",
        "channel_accounts",
        "customers",
        "customer_identities",
        "customer_merges",
        "conversations",
        "messages",
        "notes",
        "calls",
        "recordings",
        "kb_documents",
        "kb_chunks",
        "usage_counters",
        "audit_logs",
        "integration_logs",
        "outbox",
        "agent_presence",
    ] {
        assert!(
            tables_before.iter().any(|(n, _)| n == t),
            "no {t} row seeded: {tables_before:?}"
        );
    }
    let session = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": gone.admin_email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = session
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();

    // An API export of each company that a crash left behind (built under `exports/`).
    let exports = s.data_dir().join("exports");
    std::fs::create_dir_all(&exports).unwrap();
    let left_gone = exports.join(format!("export-{}-0123456789abcdef.tar.gz", gone.company.0));
    let left_kept = exports.join(format!("export-{}-0123456789abcdef.tar.gz", kept.company.0));
    std::fs::write(&left_gone, "zqclosing archive").unwrap();
    std::fs::write(&left_kept, "zbstaying archive").unwrap();

    // The wrong confirmation, or a role without company:close, closes nothing.
    let (st, _) = api(
        &s,
        Method::POST,
        "/api/v1/company/close",
        &gone.admin_token,
        Some(json!({"confirm": "zbstaying"})),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, closed) = api(
        &s,
        Method::POST,
        "/api/v1/company/close",
        &gone.admin_token,
        Some(json!({"confirm": "zqclosing"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert!(closed["access_ended"]["api_tokens"].as_u64().unwrap() >= 2);
    assert!(
        closed["access_ended"]["sip_registrations"]
            .as_u64()
            .unwrap()
            >= 1
    );

    // Access ends at once: the token, the session cookie, a new login.
    let (st, _) = api(&s, Method::GET, "/api/v1/company", &gone.admin_token, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let by_cookie = s
        .http
        .get(s.url("/api/v1/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::UNAUTHORIZED);
    // (The agent's address, not a marker: if the job was already done, this attempt is logged as
    // one for an unknown address, as any stranger's would be.)
    let login = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": gone.agent_email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(
            login.status(),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED
        ),
        "login of a closed company: {}",
        login.status()
    );

    // The job (kicked at once: the period is 0) deletes the company.
    let db = s.store().clone();
    let deleted = wait_for(30, || {
        let db = db.clone();
        async move {
            super::scalar(
                &db,
                "SELECT COUNT(*) FROM companies WHERE slug = $1",
                &["zqclosing"],
            )
            .await
                == 0
        }
    })
    .await;
    assert!(deleted, "the closed company was not deleted");
    // The file removal follows the commit; give it its moment.
    let file = gone.recording.clone();
    assert!(
        wait_for(10, || {
            let f = file.clone();
            async move { !f.exists() }
        })
        .await
    );

    let left = rows_of_company(s.store(), gone.company).await;
    assert!(left.is_empty(), "rows of the closed company left: {left:?}");
    let markers: Vec<&str> = gone.markers.iter().map(String::as_str).collect();
    let mut named = rows_naming(s.store(), &markers).await;
    // The one exception: if the job finished before the login attempt above, that attempt is
    // recorded as one for an unknown address (no company, no user), like any stranger's (P4). It
    // is new data made by whoever typed the address, not the company's.
    let strangers = super::scalar(
        s.store(),
        "SELECT COUNT(*) FROM login_events WHERE email LIKE $1 \
         AND NOT (email = $2 AND company_id IS NULL AND user_id IS NULL)",
        &["%zqclosing%", &gone.agent_email],
    )
    .await;
    assert_eq!(strangers, 0, "login events of the closed company left");
    named.retain(|(table, m)| !(table == "login_events" && m == "zqclosing"));
    assert!(
        named.is_empty(),
        "rows still naming the closed company's data: {named:?}"
    );
    assert!(!left_gone.exists(), "the closed company's left-over export");
    assert!(
        left_kept.exists(),
        "the other company's left-over export went too"
    );
    let recordings = s.data_dir().join("recordings");
    let company_dir = recordings.join(gone.company.0.to_string());
    assert!(!company_dir.exists(), "{} left", company_dir.display());
    let files = files_under(&recordings);
    assert!(
        files
            .iter()
            .all(|f| f.starts_with(recordings.join(kept.company.0.to_string()))),
        "files of the closed company left: {files:?}"
    );

    // The other company keeps everything.
    assert!(kept.recording.exists());
    let markers: Vec<&str> = kept.markers.iter().map(String::as_str).collect();
    let named = rows_naming(s.store(), &markers).await;
    for m in &markers {
        assert!(
            named.iter().any(|(_, f)| f == m),
            "{m} of the other company lost"
        );
    }
    let kept_tables = rows_of_company(s.store(), kept.company).await;
    assert_eq!(kept_tables.len(), tables_before.len(), "{kept_tables:?}");
    let (st, _) = api(&s, Method::GET, "/api/v1/company", &kept.admin_token, None).await;
    assert_eq!(st, StatusCode::OK);
}

/// Runs `masterz <args>` on `db` (its database and data directory) with `env` added; nothing of
/// the caller's `MASTERZ_*` environment is inherited. Returns (success, stdout, stderr).
fn masterz(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_masterz"));
    for (k, _) in std::env::vars() {
        if k.starts_with("MASTERZ_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env("MASTERZ_DATA_DIR", db.dir.path())
        .env("MASTERZ_DATABASE_URL", &db.url)
        .envs(env.iter().copied())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run masterz");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// P20
async fn p20_close_company_on_the_command_line_ends_access_and_says_when_data_goes(
    backend: Backend,
) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let store = db.open().await;
    let closing = seed_tenant(&store, "cliclose").await;
    let now = seed_tenant(&store, "clinow").await;
    let (ok, out, err) = masterz(
        &db,
        &["admin", "close-company", "--company", "cliclose"],
        &[],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("will be deleted after") && out.contains("30 days"),
        "{out}"
    );
    let mut conn = store.conn().await.unwrap();
    let (status, closed_at, delete_after) =
        store::deletion::closure_of(&mut conn.ex(), closing.company)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(status, "closed");
    assert_eq!(delete_after.unwrap() - closed_at.unwrap(), 30 * 86_400_000);
    drop(conn);
    let tokens = super::scalar(
        &store,
        "SELECT COUNT(*) FROM api_tokens WHERE CAST(company_id AS TEXT) = $1",
        &[&closing.company.0.to_string()],
    )
    .await;
    assert_eq!(tokens, 0, "the company's API tokens end at once");
    let (ok, _, err) = masterz(
        &db,
        &["admin", "close-company", "--company", "cliclose"],
        &[],
    );
    assert!(!ok && err.contains("already closed"), "{err}");
    // With a period of 0 the command deletes the company itself.
    let (ok, out, err) = masterz(
        &db,
        &["admin", "close-company", "--company", "clinow"],
        &[("MASTERZ_COMPANY_DELETION_DAYS", "0")],
    );
    assert!(ok, "{err}");
    assert!(out.contains("deleted all its data now"), "{out}");
    assert!(rows_of_company(&store, now.company).await.is_empty());
    assert!(!rows_of_company(&store, closing.company).await.is_empty());
    store.close().await;
}

crate::both_backends!(
    p20_closing_a_company_ends_access_at_once_and_deletes_all_its_data,
    p20_close_company_on_the_command_line_ends_access_and_says_when_data_goes,
);
