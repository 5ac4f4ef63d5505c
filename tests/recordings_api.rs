//! Call recordings through the API: the list, playback with byte ranges (RFC 9110 §14) and HEAD,
//! every playback audited, deletion queuing the file, and each company seeing only its own.

#[path = "common/mod.rs"]
mod common;

use common::{Backend, PASSWORD, Tenant, TestServer, seed_tenant};
use masterz::store::{
    self,
    calls::NewCall,
    recordings::{self, Finished},
};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

both_backends!(
    recordings_are_listed_played_in_ranges_and_audited,
    recordings_are_deleted_with_their_file_queued,
    recordings_in_progress_and_missing_files,
    consent_prompts_are_uploaded_checked_and_removed,
);

/// The size of the finished test recording: a 44-byte WAV header and 48 000 bytes of audio
/// (750 ms of 8 kHz 16-bit stereo).
const SIZE: usize = 48_044;

/// A WAV file of `size` bytes: a valid header, then a pattern in which no byte offset repeats a
/// short period, so a range read from the wrong place cannot match.
fn wav(size: usize) -> Vec<u8> {
    let data = (size - 44) as u32;
    let mut f = Vec::with_capacity(size);
    f.extend_from_slice(b"RIFF");
    f.extend_from_slice(&(36 + data).to_le_bytes());
    f.extend_from_slice(b"WAVEfmt ");
    f.extend_from_slice(&16u32.to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes()); // PCM
    f.extend_from_slice(&2u16.to_le_bytes()); // stereo
    f.extend_from_slice(&8_000u32.to_le_bytes());
    f.extend_from_slice(&32_000u32.to_le_bytes()); // bytes per second
    f.extend_from_slice(&4u16.to_le_bytes()); // block align
    f.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    f.extend_from_slice(b"data");
    f.extend_from_slice(&data.to_le_bytes());
    assert_eq!(f.len(), 44);
    f.extend((44..size).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    f
}

/// A recorded call of `t`'s customer.
struct Seeded {
    id: i64,
    call_id: i64,
    path: String,
    file: Vec<u8>,
}

/// A call of `t` with a recording whose file of `size` bytes is written (unless `size` is
/// `None`), finished (with its SHA-256) unless `finished` is false.
async fn seed_recording(
    s: &TestServer,
    t: &Tenant,
    phone: &str,
    size: Option<usize>,
    finished: bool,
) -> Seeded {
    let mut tx = s.store().begin().await.unwrap();
    let customer = store::customers::find_or_create_by_phone(&mut tx.ex(), t.company, phone)
        .await
        .unwrap();
    let call = NewCall {
        customer_id: Some(customer),
        direction: "in",
        from_uri: "sip:caller@provider.example",
        to_uri: "sip:+15559870000@masterz",
        trunk_id: None,
        group_id: None,
        sip_call_id: "rec-1@provider",
        agent_user_id: Some(t.agent),
        started_at: 1_764_075_600_000,
    };
    let call_id = store::calls::create(&mut tx.ex(), t.company, &call)
        .await
        .unwrap();
    let path = format!("recordings/{}/2025/11/25/call-{call_id}.wav", t.company);
    let file = size.map(wav).unwrap_or_default();
    if size.is_some() {
        let full = s.data_dir().join(&path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, &file).unwrap();
    }
    let id = recordings::start(&mut tx.ex(), t.company, call_id, &path, 1_764_075_600_500)
        .await
        .unwrap();
    if finished {
        let sha = hex::encode(Sha256::digest(&file));
        let done = Finished {
            status: "complete",
            ended_at: 1_764_075_601_250,
            duration_ms: 750,
            size_bytes: file.len() as i64,
            sha256: Some(&sha),
            frames_dropped: 0,
        };
        assert!(recordings::finish(&mut tx.ex(), id, &done).await.unwrap());
    }
    tx.commit().await.unwrap();
    Seeded {
        id,
        call_id,
        path,
        file,
    }
}

/// Sends `method path` with a bearer token (if any) and extra headers.
async fn send(
    s: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = match token {
        Some(t) => s.req(method, path, t),
        None => s.http.request(method, s.url(path)),
    };
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn header_of<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

/// The ids of the `play` (or other `action`) audit rows of recording `id`, read as `t`'s admin.
async fn audit_rows(s: &TestServer, t: &Tenant, action: &str, id: i64) -> Vec<Value> {
    let path = format!(
        "/api/v1/audit-logs?entity_type=recording&action={action}&entity_id={id}&limit=200"
    );
    let r = send(s, Method::GET, &path, Some(&t.admin_token), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    json_of(r).await["items"].as_array().unwrap().clone()
}

async fn recordings_are_listed_played_in_ranges_and_audited(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let b = seed_tenant(s.store(), "b").await;
    let rec = seed_recording(&s, &a, "+15551230001", Some(SIZE), true).await;
    let other = seed_recording(&s, &b, "+15551230002", Some(1_044), true).await;
    let sha = hex::encode(Sha256::digest(&rec.file));
    let url = format!("/api/v1/recordings/{}", rec.id);
    let at = a.admin_token.as_str();

    // The list: this company's only, with a link and never the file's location.
    let r = send(&s, Method::GET, "/api/v1/recordings", Some(at), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let list = json_of(r).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let item = &items[0];
    assert_eq!(item["id"], rec.id);
    assert_eq!(item["call_id"], rec.call_id);
    assert!(item["customer_id"].is_i64(), "{item}");
    assert_eq!(item["format"], "wav");
    assert_eq!(item["status"], "complete");
    assert_eq!(item["duration_ms"], 750);
    assert_eq!(item["size_bytes"], SIZE);
    assert_eq!(item["sha256"], sha.as_str());
    assert_eq!(item["frames_dropped"], 0);
    assert!(item["started_at"].is_string() && item["ended_at"].is_string());
    assert_eq!(item["url"], url.as_str());
    assert!(item.get("path").is_none(), "{item}");
    assert!(!list.to_string().contains(&rec.path), "{list}");
    assert!(list["next_cursor"].is_null());
    // Filters.
    for (query, n) in [
        (format!("call_id={}", rec.call_id), 1),
        (format!("call_id={}", other.call_id), 0),
        (format!("customer_id={}", item["customer_id"]), 1),
        (format!("before_id={}", rec.id), 0),
        (format!("before_id={}&limit=1", rec.id + 1), 1),
        (format!("cursor={}", rec.id), 0),
        (format!("cursor={}", rec.id + 1), 1),
    ] {
        let r = send(
            &s,
            Method::GET,
            &format!("/api/v1/recordings?{query}"),
            Some(at),
            &[],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{query}");
        assert_eq!(
            json_of(r).await["items"].as_array().unwrap().len(),
            n,
            "{query}"
        );
    }
    for query in ["before_id=x", "cursor=x", "before_id=1&cursor=1"] {
        let path = format!("/api/v1/recordings?{query}");
        let r = send(&s, Method::GET, &path, Some(at), &[]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
    }

    let mut plays = 0;
    // The whole file.
    let r = send(&s, Method::GET, &url, Some(at), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_of(&r, "content-type"), Some("audio/wav"));
    assert_eq!(header_of(&r, "accept-ranges"), Some("bytes"));
    assert_eq!(header_of(&r, "content-length"), Some("48044"));
    assert_eq!(header_of(&r, "etag"), Some(format!("\"{sha}\"").as_str()));
    assert_eq!(header_of(&r, "cache-control"), Some("private, no-store"));
    let disposition = format!("inline; filename=\"call-{}.wav\"", rec.call_id);
    assert_eq!(
        header_of(&r, "content-disposition"),
        Some(disposition.as_str())
    );
    assert!(r.headers().get("content-range").is_none());
    assert_eq!(r.bytes().await.unwrap(), rec.file);
    plays += 1;

    // One range, an open range, a suffix: 206 with exactly those bytes.
    for (range, first, last) in [
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=0-0", 0, 0),
        ("bytes=-500", SIZE - 500, SIZE - 1),
        ("bytes=47000-", 47_000, SIZE - 1),
        ("bytes=48000-99999", 48_000, SIZE - 1),
    ] {
        let r = send(&s, Method::GET, &url, Some(at), &[("range", range)]).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        let want = format!("bytes {first}-{last}/{SIZE}");
        assert_eq!(
            header_of(&r, "content-range"),
            Some(want.as_str()),
            "{range}"
        );
        let len = (last - first + 1).to_string();
        assert_eq!(
            header_of(&r, "content-length"),
            Some(len.as_str()),
            "{range}"
        );
        assert_eq!(header_of(&r, "content-type"), Some("audio/wav"));
        assert_eq!(r.bytes().await.unwrap(), rec.file[first..=last], "{range}");
        plays += 1;
    }

    // Past the end: 416 naming the size, nothing sent, nothing audited.
    for range in ["bytes=99999-", "bytes=48044-48100", "bytes=-0"] {
        let r = send(&s, Method::GET, &url, Some(at), &[("range", range)]).await;
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(header_of(&r, "content-range"), Some("bytes */48044"));
        assert_eq!(json_of(r).await["error"]["code"], "range_not_satisfiable");
    }

    // Malformed or several ranges are ignored: the whole file, 200.
    for range in ["bytes=0-1,5-9", "bytes=9-5", "bytes=abc", "pages=1-2"] {
        let r = send(&s, Method::GET, &url, Some(at), &[("range", range)]).await;
        assert_eq!(r.status(), StatusCode::OK, "{range}");
        assert!(r.headers().get("content-range").is_none());
        assert_eq!(r.bytes().await.unwrap(), rec.file, "{range}");
        plays += 1;
    }

    // If-Range: the range holds only while the ETag does.
    let etag = format!("\"{sha}\"");
    let r = send(
        &s,
        Method::GET,
        &url,
        Some(at),
        &[("range", "bytes=10-19"), ("if-range", &etag)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap(), rec.file[10..20]);
    plays += 1;
    let r = send(
        &s,
        Method::GET,
        &url,
        Some(at),
        &[("range", "bytes=10-19"), ("if-range", "\"stale\"")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap(), rec.file);
    plays += 1;

    // HEAD: the headers of the whole file, no body, a Range ignored, not audited.
    for range in [None, Some("bytes=1000-1999")] {
        let extra: Vec<(&str, &str)> = range.iter().map(|r| ("range", *r)).collect();
        let r = send(&s, Method::HEAD, &url, Some(at), &extra).await;
        assert_eq!(r.status(), StatusCode::OK, "{range:?}");
        assert_eq!(header_of(&r, "content-length"), Some("48044"));
        assert_eq!(header_of(&r, "content-type"), Some("audio/wav"));
        assert_eq!(header_of(&r, "accept-ranges"), Some("bytes"));
        assert_eq!(header_of(&r, "etag"), Some(etag.as_str()));
        assert!(r.headers().get("content-range").is_none());
        assert!(r.bytes().await.unwrap().is_empty());
    }

    // The agent of the same company plays it, by token and by session cookie.
    let r = send(&s, Method::GET, &url, Some(&a.agent_token), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap(), rec.file);
    plays += 1;
    let login = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": a.agent_email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = header_of(&login, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let r = s
        .http
        .get(s.url(&url))
        .header(header::COOKIE, &cookie)
        .header(header::RANGE, "bytes=44-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap(), rec.file[44..]);
    plays += 1;

    // Another company's recording is not there; without credentials, 401.
    let theirs = format!("/api/v1/recordings/{}", other.id);
    for method in [Method::GET, Method::HEAD, Method::DELETE] {
        let r = send(&s, method.clone(), &theirs, Some(at), &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method}");
        let r = send(&s, method.clone(), &url, Some(&b.admin_token), &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method}");
        let r = send(&s, method.clone(), &url, None, &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method}");
    }
    let r = send(
        &s,
        Method::GET,
        "/api/v1/recordings",
        Some(&b.agent_token),
        &[],
    )
    .await;
    let theirs_listed = json_of(r).await;
    assert_eq!(theirs_listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(theirs_listed["items"][0]["id"], other.id);
    let r = send(&s, Method::GET, "/api/v1/recordings", None, &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // One `play` row per request that sent audio, naming who, from where, and the range.
    let rows = audit_rows(&s, &a, "play", rec.id).await;
    assert_eq!(rows.len(), plays, "{rows:#?}");
    let by_agent = rows.iter().filter(|e| e["actor_id"] == a.agent.0).count();
    assert_eq!(by_agent, 2);
    for e in &rows {
        assert_eq!(e["entity_type"], "recording");
        assert_eq!(e["entity_id"], rec.id);
        assert_eq!(e["ip"], "127.0.0.1");
        assert_eq!(e["user_agent"], "masterz-tests/1");
    }
    assert!(
        rows.iter()
            .any(|e| e["changes"] == json!({"range": "1000-1999"})),
        "{rows:#?}"
    );
    assert!(rows.iter().any(|e| e["changes"] == json!({})));
    // Company b's audit log saw nothing of a's recording.
    assert!(audit_rows(&s, &b, "play", rec.id).await.is_empty());
}

async fn recordings_are_deleted_with_their_file_queued(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let b = seed_tenant(s.store(), "b").await;
    let rec = seed_recording(&s, &a, "+15551230001", Some(SIZE), true).await;
    let url = format!("/api/v1/recordings/{}", rec.id);

    // Agents listen; only a role with recordings:delete deletes. Another company: 404.
    let r = send(&s, Method::DELETE, &url, Some(&a.agent_token), &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = send(&s, Method::DELETE, &url, Some(&b.admin_token), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = send(&s, Method::DELETE, &url, None, &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let queued = recordings::pending_deletions(&mut s.store().conn().await.unwrap().ex(), 10)
        .await
        .unwrap();
    assert!(queued.is_empty());

    let r = send(&s, Method::DELETE, &url, Some(&a.admin_token), &[]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty());

    // The row is gone; its file waits for the reaper; the deletion is audited.
    let r = send(&s, Method::GET, &url, Some(&a.admin_token), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = send(
        &s,
        Method::GET,
        "/api/v1/recordings",
        Some(&a.admin_token),
        &[],
    )
    .await;
    assert!(json_of(r).await["items"].as_array().unwrap().is_empty());
    let r = send(&s, Method::DELETE, &url, Some(&a.admin_token), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let queued = recordings::pending_deletions(&mut s.store().conn().await.unwrap().ex(), 10)
        .await
        .unwrap();
    let paths: Vec<&str> = queued.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, [rec.path.as_str()]);
    let rows = audit_rows(&s, &a, "delete", rec.id).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["actor_id"], a.admin.0);
    assert_eq!(rows[0]["changes"], json!({"call_id": rec.call_id}));
}

async fn recordings_in_progress_and_missing_files(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let at = a.admin_token.as_str();

    // A call still recorded: served as it is on disk, without an ETag; it cannot be deleted.
    let live = seed_recording(&s, &a, "+15551230001", Some(4_044), false).await;
    let url = format!("/api/v1/recordings/{}", live.id);
    let r = send(
        &s,
        Method::GET,
        &format!("/api/v1/recordings?call_id={}", live.call_id),
        Some(at),
        &[],
    )
    .await;
    let list = json_of(r).await;
    assert_eq!(list["items"][0]["status"], "recording", "{list}");
    assert!(list["items"][0]["sha256"].is_null());
    let r = send(&s, Method::GET, &url, Some(at), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_of(&r, "content-length"), Some("4044"));
    assert!(r.headers().get("etag").is_none());
    assert_eq!(r.bytes().await.unwrap(), live.file);
    // The recorder appends; the next request sees the longer file.
    let full = s.data_dir().join(&live.path);
    let mut grown = live.file.clone();
    grown.extend_from_slice(&[7u8; 1_000]);
    std::fs::write(&full, &grown).unwrap();
    let r = send(&s, Method::GET, &url, Some(at), &[("range", "bytes=4000-")]).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header_of(&r, "content-range"), Some("bytes 4000-5043/5044"));
    assert_eq!(r.bytes().await.unwrap(), grown[4000..]);
    // Without an ETag, no If-Range can match: the whole file.
    let r = send(
        &s,
        Method::GET,
        &url,
        Some(at),
        &[("range", "bytes=0-9"), ("if-range", "\"x\"")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(&s, Method::DELETE, &url, Some(at), &[]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(json_of(r).await["error"]["code"], "conflict");

    // A row whose file is gone: 404 that says so, for GET and HEAD, and nothing audited.
    let lost = seed_recording(&s, &a, "+15551230002", None, true).await;
    let url = format!("/api/v1/recordings/{}", lost.id);
    let r = send(&s, Method::GET, &url, Some(at), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body = json_of(r).await;
    assert_eq!(body["error"]["code"], "recording_file_missing");
    assert_eq!(body["error"]["message"], "recording file missing");
    let r = send(&s, Method::HEAD, &url, Some(at), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(audit_rows(&s, &a, "play", lost.id).await.is_empty());
    // An empty file is a 200 with nothing in it, whatever the range.
    std::fs::create_dir_all(s.data_dir().join(&lost.path).parent().unwrap()).unwrap();
    std::fs::write(s.data_dir().join(&lost.path), b"").unwrap();
    let r = send(&s, Method::GET, &url, Some(at), &[("range", "bytes=-10")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_of(&r, "content-length"), Some("0"));
    // The OpenAPI document describes the routes.
    let doc: Value = s
        .http
        .get(s.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let play = &doc["paths"]["/api/v1/recordings/{id}"];
    for status in ["200", "206", "401", "403", "404", "416"] {
        assert!(play["get"]["responses"][status].is_object(), "GET {status}");
    }
    assert!(
        play["get"]["responses"]["206"]["content"]["audio/wav"].is_object(),
        "{play}"
    );
    assert!(play["head"]["responses"]["200"].is_object(), "{play}");
    assert!(play["delete"]["responses"]["204"].is_object(), "{play}");
    assert!(doc["paths"]["/api/v1/recordings"]["get"].is_object());
}

/// A 1 s 600 Hz tone as a 22.05 kHz mono WAV file.
fn tone_wav() -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 22_050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for i in 0..22_050 {
        let v = (f64::from(i) * 2.0 * std::f64::consts::PI * 600.0 / 22_050.0).sin();
        w.write_sample((v * 10_000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    out.into_inner()
}

async fn consent_prompts_are_uploaded_checked_and_removed(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let t = seed_tenant(s.store(), "promptco").await;
    let other = seed_tenant(s.store(), "otherco").await;
    let r = s
        .req(Method::POST, "/api/v1/channel-accounts", &t.admin_token)
        .json(&json!({"kind": "sip_trunk", "name": "Carrier",
            "settings": {"host": "192.0.2.10", "dids": ["+15551230000"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let trunk = json_of(r).await["id"].as_i64().unwrap();
    let path = format!("/api/v1/trunks/{trunk}/consent-prompt");
    let upload = |token: &str, body: Vec<u8>| {
        s.req(Method::PUT, &format!("{path}?filename=notice.wav"), token)
            .header(header::CONTENT_TYPE, "audio/wav")
            .body(body)
            .send()
    };

    // None yet; then an upload, decoded to learn its length.
    let r = send(&s, Method::GET, &path, Some(&t.admin_token), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let wav = tone_wav();
    let r = upload(&t.admin_token, wav.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let info = json_of(r).await;
    assert_eq!(info["filename"], "notice.wav");
    assert_eq!(info["bytes"], wav.len());
    assert_eq!(info["sha256"], hex::encode(Sha256::digest(&wav)));
    let ms = info["duration_ms"].as_i64().unwrap();
    assert!((980..=1020).contains(&ms), "{info}");
    let r = send(&s, Method::GET, &path, Some(&t.agent_token), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["sha256"], info["sha256"]);

    // What cannot be played is refused, and the stored prompt stays.
    let r = upload(&t.admin_token, b"ID3 but not really an mp3".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = upload(&t.admin_token, Vec::new()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Over 10 MB is refused from its Content-Length, before the body is read (a raw request:
    // an HTTP client still sending the body when the answer comes may see the reset instead).
    assert_eq!(
        status_of_oversized_upload(&s, &path, &t.admin_token).await,
        413
    );
    let r = send(&s, Method::GET, &path, Some(&t.admin_token), &[]).await;
    assert_eq!(json_of(r).await["sha256"], info["sha256"]);

    // Agents may not change it; another company does not see the trunk.
    // (A one-byte body: the answer comes before the body is read, and a client still sending
    // a large one could see the connection close first.)
    let r = upload(&t.agent_token, vec![0]).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = upload(&other.admin_token, vec![0]).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = send(&s, Method::GET, &path, Some(&other.admin_token), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = send(&s, Method::DELETE, &path, Some(&other.admin_token), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Removal; both changes are audited on the trunk.
    let r = send(&s, Method::DELETE, &path, Some(&t.admin_token), &[]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = send(&s, Method::GET, &path, Some(&t.admin_token), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    for action in ["set_consent_prompt", "remove_consent_prompt"] {
        let r = send(
            &s,
            Method::GET,
            &format!(
                "/api/v1/audit-logs?entity_type=channel_account&entity_id={trunk}&action={action}"
            ),
            Some(&t.admin_token),
            &[],
        )
        .await;
        let rows = json_of(r).await["items"].as_array().unwrap().len();
        assert_eq!(rows, 1, "{action}");
    }
}

/// The status of a `PUT path` announcing 10 MB + 1 of body and sending only its first 64 kB.
async fn status_of_oversized_upload(s: &TestServer, path: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT {path}?filename=big.wav HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: audio/wav\r\nContent-Length: {}\r\n\r\n",
        10 * 1024 * 1024 + 1
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let _ = c.write_all(&[0u8; 64 * 1024]).await;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), c.read(&mut buf))
        .await
        .expect("an answer before the body is complete")
        .unwrap();
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {line}"))
}
