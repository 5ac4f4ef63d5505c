//! P26: customers can export their data — the company archive and the per-customer document.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;

use masterz::export::entities::{ENTITIES, EXCLUDED_TABLES};
use masterz::store::{
    self, Db,
    calls::NewCall,
    conversations::NewMessage,
    recordings::{self, Finished},
};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{Backend, TestDb, TestServer, password_hash, seed_tenant};

crate::both_backends!(
    p26_company_and_customer_exports_hold_the_data_and_no_secret,
    p26_every_company_table_is_exported_or_excluded,
);

/// Runs one statement written for both databases.
async fn sql(db: &Db, statement: String) {
    match db {
        Db::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(p)
            .await
            .map(drop),
        Db::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(p)
            .await
            .map(drop),
    }
    .unwrap();
}

/// The text values of one column of a query.
async fn texts(db: &Db, statement: &str) -> Vec<String> {
    let statement = statement.to_owned();
    match db {
        Db::Sqlite(p) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
                .fetch_all(p)
                .await
        }
        Db::Postgres(p) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
                .fetch_all(p)
                .await
        }
    }
    .unwrap()
}

/// A small WAV-like file whose bytes do not repeat with a short period.
fn audio(seed: u32) -> Vec<u8> {
    let mut f = b"RIFF\0\0\0\0WAVE".to_vec();
    f.extend(
        (0..20_000u32).map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8),
    );
    f
}

/// What was planted in a company.
struct Planted {
    customer: i64,
    other_customer: i64,
    recording_path: String,
    recording: Vec<u8>,
}

/// Seeds customers (API), a conversation with messages, a call with a recording file, a note
/// (API), an AI suggestion, a knowledge-base document, usage, a channel account with credentials
/// and SIP credentials. Every text carries `tag`, so another company's data can be searched for.
async fn plant(s: &TestServer, t: &crate::common::Tenant, tag: &str) -> Planted {
    let db = s.store();
    let keyring = &s.server.as_ref().unwrap().state.keyring;
    let post =
        |path: &str, body: Value| s.req(Method::POST, path, &t.admin_token).json(&body).send();
    let r = post(
        "/api/v1/customers",
        json!({"display_name": format!("{tag} Customer"),
               "identities": [{"kind": "phone", "external_id": if tag == "ACME" { "+15550001111" } else { "+15550002222" }}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let customer = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let r = post(
        "/api/v1/customers",
        json!({"display_name": format!("{tag} Other")}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let other_customer = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let r = post(
        &format!("/api/v1/customers/{customer}/notes"),
        json!({"body": format!("{tag}-NOTE-5521")}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);

    let mut tx = db.begin().await.unwrap();
    let sealed = store::channels::seal(
        keyring,
        json!({"api_key": format!("PLANTED-CREDENTIAL-{tag}-9913")})
            .as_object()
            .unwrap(),
    )
    .unwrap();
    store::channels::create(
        &mut tx.ex(),
        t.company,
        "waha",
        &format!("{tag} WAHA"),
        Some(&format!("{}-session", tag.to_lowercase())),
        &json!({"base_url": "http://127.0.0.1:9"}),
        Some(sealed),
    )
    .await
    .unwrap();
    store::sip::set_credentials(
        &mut tx.ex(),
        keyring,
        t.company,
        t.admin,
        &format!("{}-admin-sip", tag.to_lowercase()),
        &format!("PLANTED-SIP-PASSWORD-{tag}"),
    )
    .await
    .unwrap();
    let conv = store::conversations::create(&mut tx.ex(), t.company, customer, None, None, None)
        .await
        .unwrap()
        .id;
    let other_conv =
        store::conversations::create(&mut tx.ex(), t.company, other_customer, None, None, None)
            .await
            .unwrap()
            .id;
    let mut inbound = 0;
    for (c, cv, dir, body) in [
        (customer, conv, "in", format!("{tag}-INBOUND-MESSAGE-7731")),
        (customer, conv, "out", format!("{tag}-REPLY-8842")),
        (
            other_customer,
            other_conv,
            "in",
            format!("{tag}-OTHER-CUSTOMER-MESSAGE"),
        ),
    ] {
        let m = NewMessage {
            conversation_id: cv,
            customer_id: c,
            direction: dir,
            sender_user_id: None,
            body: Some(body.as_str()),
            status: "received",
            external_id: None,
            at: 1_764_075_000_000,
        };
        let id = store::conversations::add_message(&mut tx.ex(), t.company, &m)
            .await
            .unwrap();
        if inbound == 0 {
            inbound = id;
        }
    }
    let call = NewCall {
        customer_id: Some(customer),
        direction: "in",
        from_uri: "sip:caller@provider.example",
        to_uri: "sip:+15559870000@masterz",
        trunk_id: None,
        group_id: None,
        sip_call_id: "export-1@provider",
        agent_user_id: Some(t.agent),
        started_at: 1_764_075_600_000,
    };
    let call_id = store::calls::create(&mut tx.ex(), t.company, &call)
        .await
        .unwrap();
    // Where the recorder puts it: recordings/<company>/<yyyy>/<mm>/<dd>/call-<call>.wav.
    let recording_path = format!("recordings/{}/2025/11/25/call-{call_id}.wav", t.company);
    let recording = audio(call_id as u32);
    let full = s.data_dir().join(&recording_path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(&full, &recording).unwrap();
    let rec = recordings::start(
        &mut tx.ex(),
        t.company,
        call_id,
        &recording_path,
        1_764_075_600_500,
    )
    .await
    .unwrap();
    let sha = hex::encode(Sha256::digest(&recording));
    let done = Finished {
        status: "complete",
        ended_at: 1_764_075_601_250,
        duration_ms: 750,
        size_bytes: recording.len() as i64,
        sha256: Some(&sha),
        frames_dropped: 0,
    };
    assert!(recordings::finish(&mut tx.ex(), rec, &done).await.unwrap());
    tx.commit().await.unwrap();

    let company = t.company.0;
    sql(db, format!(
        "INSERT INTO ai_suggestions (company_id, conversation_id, customer_id, message_id, state, \
           context, model, text, next_attempt_at, created_at, updated_at) VALUES ({company}, {conv}, \
           {customer}, {inbound}, 'ready', '{{\"messages\":[{{\"id\":{inbound},\"role\":\"user\",\"text\":\"{tag}-CONTEXT-6610\"}}],\"chunks\":[]}}', \
           'gpt-test', '{tag}-SUGGESTION-1207', 0, 1, 1)")).await;
    sql(
        db,
        format!(
            "INSERT INTO kb_documents (company_id, title, body, created_at, updated_at) \
         VALUES ({company}, '{tag}-KB-TITLE', '{tag}-KB-BODY', 1, 1)"
        ),
    )
    .await;
    sql(
        db,
        format!(
            "INSERT INTO usage_counters (company_id, month, metric, value) \
         VALUES ({company}, '2025-11', 'messages_in', 3)"
        ),
    )
    .await;
    sql(
        db,
        format!("UPDATE companies SET ai_api_key = 'PLANTED-AI-KEY-{tag}' WHERE id = {company}"),
    )
    .await;
    Planted {
        customer,
        other_customer,
        recording_path,
        recording,
    }
}

/// The entries of a `.tar.gz`, by path.
fn unpack(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert!(out.insert(path.clone(), data).is_none(), "{path} twice");
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

/// The rows of one entity file.
fn rows(files: &BTreeMap<String, Vec<u8>>, entity: &str) -> Vec<Value> {
    let text = std::str::from_utf8(&files[&format!("{entity}.jsonl")]).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// P26
async fn p26_company_and_customer_exports_hold_the_data_and_no_secret(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let acme = seed_tenant(s.store(), "acme").await;
    let rival = seed_tenant(s.store(), "rival").await;
    let a = plant(&s, &acme, "ACME").await;
    let r = plant(&s, &rival, "RIVAL").await;
    let r_inv = s
        .req(Method::POST, "/api/v1/invitations", &acme.admin_token)
        .json(&json!({"email": "new@acme.example.com",
            "role_id": store::users::role_by_name(&mut s.store().conn().await.unwrap().ex(), acme.company, "agent").await.unwrap().unwrap().id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r_inv.status(), 201);
    // More rows than one page (500) of an id-keyed and of a (month, metric)-keyed table.
    sql(
        s.store(),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1100) \
             INSERT INTO usage_counters (company_id, month, metric, value) \
             SELECT {}, CAST(i / 3 AS TEXT), CAST(i % 3 AS TEXT), i FROM n",
            acme.company
        ),
    )
    .await;
    sql(
        s.store(),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600) \
             INSERT INTO messages (company_id, conversation_id, customer_id, direction, body, \
               status, created_at) \
             SELECT company_id, id, customer_id, 'in', 'bulk ' || CAST(i AS TEXT), 'received', i \
             FROM conversations, n WHERE customer_id = {}",
            a.other_customer
        ),
    )
    .await;
    let invitation_token = r_inv.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The company archive.
    let res = s
        .req(Method::GET, "/api/v1/export", &acme.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/gzip");
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"masterz-export-acme-")
            && disposition.ends_with(".tar.gz\""),
        "{disposition}"
    );
    let archive = res.bytes().await.unwrap();
    let files = unpack(&archive);

    // The manifest describes every file, with its size and digest, and every entity's rows.
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["company"]["slug"], "acme");
    assert_eq!(manifest["company"]["id"], acme.company.0);
    let listed: BTreeMap<String, (u64, String)> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                (
                    f["size"].as_u64().unwrap(),
                    f["sha256"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let in_archive: BTreeSet<&String> = files.keys().filter(|p| *p != "manifest.json").collect();
    assert_eq!(listed.keys().collect::<BTreeSet<_>>(), in_archive);
    for (path, (size, sha)) in &listed {
        assert_eq!(files[path].len() as u64, *size, "{path}");
        assert_eq!(&hex::encode(Sha256::digest(&files[path])), sha, "{path}");
    }
    let entities = manifest["entities"].as_array().unwrap();
    assert_eq!(entities.len(), ENTITIES.len());
    for e in entities {
        let name = e["name"].as_str().unwrap();
        let parsed = rows(&files, name);
        assert!(parsed.iter().all(Value::is_object), "{name}");
        assert_eq!(parsed.len() as u64, e["rows"].as_u64().unwrap(), "{name}");
    }

    // The planted data is there.
    let customers: BTreeSet<i64> = rows(&files, "customers")
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(customers, BTreeSet::from([a.customer, a.other_customer]));
    let bodies: Vec<Value> = rows(&files, "messages")
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    for b in [
        "ACME-INBOUND-MESSAGE-7731",
        "ACME-REPLY-8842",
        "ACME-OTHER-CUSTOMER-MESSAGE",
    ] {
        assert!(bodies.contains(&json!(b)), "{b} in {bodies:?}");
    }
    assert_eq!(rows(&files, "notes")[0]["body"], "ACME-NOTE-5521");
    assert_eq!(rows(&files, "kb_documents")[0]["title"], "ACME-KB-TITLE");
    let suggestion = &rows(&files, "ai_suggestions")[0];
    assert_eq!(
        suggestion["context"]["messages"][0]["text"],
        "ACME-CONTEXT-6610"
    );
    // Paged through without a row lost or repeated.
    let usage = rows(&files, "usage_counters");
    assert!(usage.contains(&json!({"month": "2025-11", "metric": "messages_in", "value": 3})));
    let keys: BTreeSet<String> = usage
        .iter()
        .map(|u| format!("{}/{}", u["month"], u["metric"]))
        .collect();
    let stored = texts(
        s.store(),
        &format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM usage_counters WHERE company_id = {}",
            acme.company
        ),
    )
    .await;
    assert!(usage.len() > 1100);
    assert_eq!(
        (usage.len(), keys.len()),
        (stored[0].parse().unwrap(), usage.len())
    );
    let ids: BTreeSet<i64> = rows(&files, "messages")
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 603);
    let account = &rows(&files, "channel_accounts")[0];
    assert_eq!(account["credential_keys"], json!(["api_key"]));
    assert!(account.get("credentials").is_none());
    assert_eq!(
        rows(&files, "sip_accounts")[0]["username"],
        "acme-admin-sip"
    );
    assert_eq!(
        rows(&files, "invitations")[0]["email"],
        "new@acme.example.com"
    );
    let emails: Vec<Value> = rows(&files, "users")
        .iter()
        .map(|u| u["email"].clone())
        .collect();
    assert!(emails.contains(&json!(acme.admin_email)));
    let recording = &rows(&files, "recordings")[0];
    assert_eq!(recording["file"], a.recording_path.as_str());
    assert_eq!(
        files[&a.recording_path], a.recording,
        "byte-identical recording"
    );

    // No secret, and nothing of the other company, in any file.
    let db = s.store();
    let mut secrets: Vec<String> = vec![
        password_hash().to_owned(),
        acme.admin_token.clone(),
        acme.agent_token.clone(),
        masterz::secrets::token_hash(&acme.admin_token),
        masterz::secrets::token_hash(&acme.agent_token),
        invitation_token.clone(),
        masterz::secrets::token_hash(&invitation_token),
        "PLANTED-CREDENTIAL-ACME-9913".into(),
        "PLANTED-SIP-PASSWORD-ACME".into(),
        "PLANTED-AI-KEY-ACME".into(),
    ];
    secrets.extend(
        texts(
            db,
            "SELECT credentials FROM channel_accounts WHERE credentials IS NOT NULL",
        )
        .await,
    );
    secrets.extend(texts(db, "SELECT password FROM sip_accounts").await);
    secrets.extend(texts(db, "SELECT token_hash FROM sessions").await);
    let foreign = [
        "RIVAL",
        "rival",
        rival.admin_email.as_str(),
        r.recording_path.as_str(),
    ];
    for (path, data) in &files {
        for secret in &secrets {
            assert!(!contains(data, secret), "a secret in {path}");
        }
        for f in foreign {
            assert!(!contains(data, f), "{f:?} of the other company in {path}");
        }
    }
    assert!(!files.contains_key(&r.recording_path));
    // Streamed from a temporary file that is gone once sent.
    let leftovers: Vec<_> = std::fs::read_dir(s.data_dir().join("exports"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let audited = texts(
        db,
        &format!(
            "SELECT entity_type FROM audit_logs WHERE company_id = {} AND action = 'export'",
            acme.company
        ),
    )
    .await;
    assert_eq!(audited, ["company"]);

    // One customer's data: theirs, and no other customer's.
    let res = s
        .req(
            Method::GET,
            &format!("/api/v1/customers/{}/export", a.customer),
            &acme.admin_token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["customer"]["id"], a.customer);
    let text = doc.to_string();
    for want in [
        "ACME-INBOUND-MESSAGE-7731",
        "ACME-REPLY-8842",
        "ACME-NOTE-5521",
        "ACME-CONTEXT-6610",
        "+15550001111",
    ] {
        assert!(text.contains(want), "{want} in the customer export");
    }
    for unwanted in [
        "ACME-OTHER-CUSTOMER-MESSAGE",
        "ACME Other",
        "RIVAL",
        "PLANTED",
    ] {
        assert!(
            !text.contains(unwanted),
            "{unwanted} in the customer export"
        );
    }
    let messages = doc["conversations"][0]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let rec = &doc["calls"][0]["recording"];
    assert!(
        rec["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v1/recordings/{}", recording["id"])),
        "{rec}"
    );
    assert!(rec.get("path").is_none());
    let audited = texts(db, &format!(
        "SELECT entity_type FROM audit_logs WHERE company_id = {} AND action = 'export' ORDER BY id",
        acme.company
    ))
    .await;
    assert_eq!(audited, ["company", "customer"]);

    // Another company's admin: not found. An agent without data:export: forbidden.
    let get = |path: String, token: &str| s.req(Method::GET, &path, token).send();
    let res = get(
        format!("/api/v1/customers/{}/export", a.customer),
        &rival.admin_token,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 404);
    for path in [
        "/api/v1/export".to_owned(),
        format!("/api/v1/customers/{}/export", a.customer),
    ] {
        let res = get(path.clone(), &acme.agent_token).await.unwrap();
        assert_eq!(res.status(), 403, "{path}");
    }
    let res = get("/api/v1/customers/999999/export".into(), &acme.admin_token)
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// The table and column names of the schema.
async fn schema(db: &Db) -> BTreeMap<String, BTreeSet<String>> {
    let pairs: Vec<(String, String)> = match db {
        Db::Sqlite(p) => {
            sqlx::query_as(
                "SELECT m.name, c.name FROM sqlite_master m, pragma_table_info(m.name) c \
             WHERE m.type = 'table'",
            )
            .fetch_all(p)
            .await
        }
        Db::Postgres(p) => {
            sqlx::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema()",
            )
            .fetch_all(p)
            .await
        }
    }
    .unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (table, column) in pairs {
        out.entry(table).or_default().insert(column);
    }
    out
}

// P26: a table added with company data is exported or excluded on purpose, never forgotten;
// a column added to an exported table is exported or omitted on purpose.
async fn p26_every_company_table_is_exported_or_excluded(backend: Backend) {
    let Some(tdb) = TestDb::new(backend).await else {
        return;
    };
    let db = tdb.open().await;
    let schema = schema(&db).await;
    let excluded: BTreeSet<&str> = EXCLUDED_TABLES.iter().map(|(t, _)| *t).collect();
    for (table, columns) in &schema {
        let entity = ENTITIES.iter().find(|e| e.table == table);
        if columns.contains("company_id") {
            assert!(
                entity.is_some() || excluded.contains(table.as_str()),
                "table {table} has company data: export it (src/export/entities.rs) or exclude it with a reason"
            );
        }
        assert!(
            !(entity.is_some() && excluded.contains(table.as_str())),
            "{table} both exported and excluded"
        );
        let Some(e) = entity else { continue };
        let mut decided: BTreeSet<String> = e.columns.iter().map(|c| c.name.to_owned()).collect();
        decided.extend(e.omitted.iter().map(|(c, _)| (*c).to_owned()));
        // The scope column is the company's own id: the manifest says which company.
        decided.insert(e.scope.to_owned());
        assert_eq!(
            &decided, columns,
            "columns of {table}: export or omit each one"
        );
        for k in e.key {
            assert!(e.kind_of(k).is_some(), "key {k} of {table} is exported");
        }
    }
    for table in ENTITIES
        .iter()
        .map(|e| e.table)
        .chain(excluded.iter().copied())
    {
        assert!(schema.contains_key(table), "{table} is not in the schema");
    }
    db.close().await;
}
