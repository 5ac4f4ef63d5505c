//! Recording files go with their rows: deleting a customer, or a recording passing its
//! company's retention, removes the file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use masterz::store;
use reqwest::Method;
use serde_json::{Value, json};

use crate::pbx::Pbx;
use crate::recording::recordings;

/// A finished recording of a new call of a new customer, with a file, started `age_ms` ago.
async fn planted_recording(pbx: &Pbx, age_ms: i64) -> (i64, PathBuf) {
    let mut tx = pbx.s.store().begin().await.unwrap();
    let customer = store::customers::create(
        &mut tx.ex(),
        pbx.t.company,
        &store::customers::Profile {
            display_name: Some("Recorded".into()),
            avatar_url: None,
            locale: None,
        },
    )
    .await
    .unwrap();
    let started = store::now_ms() - age_ms;
    let call = store::calls::create(
        &mut tx.ex(),
        pbx.t.company,
        &store::calls::NewCall {
            customer_id: Some(customer.id),
            direction: "in",
            from_uri: "sip:+4915112345678@carrier",
            to_uri: "sip:+15551230000@masterz",
            trunk_id: None,
            group_id: None,
            sip_call_id: "planted",
            agent_user_id: None,
            started_at: started,
        },
    )
    .await
    .unwrap();
    let rel = format!("recordings/{}/2020/01/01/call-{call}.wav", pbx.t.company.0);
    let id = store::recordings::start(&mut tx.ex(), pbx.t.company, call, &rel, started)
        .await
        .unwrap();
    store::recordings::finish(
        &mut tx.ex(),
        id,
        &store::recordings::Finished {
            status: "complete",
            ended_at: started + 1000,
            duration_ms: 1000,
            size_bytes: 44,
            sha256: None,
            frames_dropped: 0,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let path = pbx.s.data_dir().join(&rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"RIFF").unwrap();
    (customer.id, path)
}

async fn wait_gone(path: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} was not removed",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_customer_or_passing_the_retention_removes_the_files() {
    let pbx = Pbx::start(|c| c.recording_retention_check_secs = 1).await;
    // Deleting the customer deletes its calls, their recordings and the files.
    let (customer, path) = planted_recording(&pbx, 0).await;
    let r = pbx
        .req(Method::DELETE, &format!("/api/v1/customers/{customer}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    wait_gone(&path).await;
    assert!(recordings(&pbx).await.is_empty());

    // Retention: a recording older than the company keeps them goes, a newer one stays.
    let (_, old) = planted_recording(&pbx, 3 * 86_400_000).await;
    let (_, new) = planted_recording(&pbx, 3_600_000).await;
    let r = pbx
        .req(Method::PATCH, "/api/v1/company")
        .json(&json!({ "recording_retention_days": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait_gone(&old).await;
    assert!(new.exists(), "a recording within the retention was removed");
    let left = recordings(&pbx).await;
    assert_eq!(left.len(), 1, "{left:?}");
    // Out-of-range retention is refused; null keeps recordings for ever.
    let r = pbx
        .req(Method::PATCH, "/api/v1/company")
        .json(&json!({ "recording_retention_days": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = pbx
        .req(Method::PATCH, "/api/v1/company")
        .json(&json!({ "recording_retention_days": null }))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(body["recording_retention_days"].is_null(), "{body}");
}
