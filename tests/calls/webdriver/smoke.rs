//! The client against Chromium and a page served here: nothing of masterz is involved.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Browser, FAKE_MIC_HZ, alive, artifacts_dir, peak_frequency_script};

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>webdriver smoke</title></head>
<body>
  <button id="b" onclick="this.textContent = 'clicked'; document.getElementById('out').dataset.state = 'done'">click me</button>
  <input id="name" value="x">
  <p id="out" data-state="idle">waiting</p>
  <p id="hidden" style="display: none">hidden</p>
  <script>
    window.mic = navigator.mediaDevices.getUserMedia({audio: true})
      .then((s) => { window.localStream = s; document.getElementById('out').dataset.mic = 'on'; return s; })
      .catch((e) => console.error('getUserMedia failed', e));
  </script>
</body></html>"#;

/// Serves [`PAGE`] at every path of 127.0.0.1:<port> until the test ends.
async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
                    PAGE.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    format!("http://{addr}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdriver_smoke() {
    if !super::require() {
        return;
    }
    let _one = super::exclusive().await;
    let url = serve().await;
    let b = Browser::start("webdriver-smoke").await;
    let (driver_pid, browser_pid) = (
        b.driver.as_ref().map(std::process::Child::id),
        b.browser_pid,
    );
    assert!(
        browser_pid.is_some_and(alive),
        "no Chromium process from the session"
    );

    b.navigate(&url).await;
    assert_eq!(b.url().await, url);
    assert_eq!(b.text("#b").await, "click me");
    assert!(b.try_find("#nothing-here").await.is_none());
    assert_eq!(b.find_all("p").await.len(), 2);
    assert!(!b.find("#hidden").await.displayed().await);

    // Click, then wait for the page to change.
    b.click("#b").await;
    let out = b
        .wait_for("#out", Duration::from_secs(5), |p| {
            p.attr("data-state") == Some("done")
        })
        .await;
    assert_eq!(out.text, "waiting");
    assert_eq!(b.text("#b").await, "clicked");
    assert_eq!(
        b.find("#out")
            .await
            .attribute("data-state")
            .await
            .as_deref(),
        Some("done")
    );

    // Typing.
    b.set_value("#name", "hello").await;
    assert_eq!(b.find("#name").await.property("value").await, "hello");
    assert_eq!(
        b.probe("#name").await.and_then(|p| p.value).as_deref(),
        Some("hello")
    );

    // Scripts, sync and async, with arguments and elements.
    let el = b.find("#b").await;
    let v = b
        .execute(
            "return [arguments[0] + 1, arguments[1].id];",
            vec![json!(41), el.to_json()],
        )
        .await;
    assert_eq!(v, json!([42, "b"]));
    let v = b
        .execute_async(
            "const done = arguments[arguments.length - 1]; setTimeout(() => done(arguments[0] * 2), 50);",
            vec![json!(21)],
        )
        .await;
    assert_eq!(v, 42);
    let v = b
        .eval_async(
            "await new Promise((r) => setTimeout(r, 50)); return arguments[0] + '!';",
            vec![json!("async")],
        )
        .await;
    assert_eq!(v, "async!");
    b.wait_js(
        "a truthy script",
        Duration::from_secs(5),
        "return document.readyState === 'complete' && 7;",
        vec![],
    )
    .await;

    // Console errors are kept for the messages.
    b.execute("console.error('planted', {code: 7}); return null;", vec![])
        .await;
    let errors = b.errors().await;
    assert!(
        errors
            .iter()
            .any(|e| e.contains("planted") && e.contains("\"code\":7")),
        "{errors:?}"
    );

    // The fake microphone plays the tone.
    b.wait_for("#out", Duration::from_secs(10), |p| {
        p.attr("data-mic") == Some("on")
    })
    .await;
    let m = b
        .eval_async(&peak_frequency_script("window.localStream"), vec![])
        .await;
    let hz = m["hz"].as_f64().unwrap();
    assert!(
        (hz - FAKE_MIC_HZ).abs() <= 15.0,
        "the fake microphone plays {hz} Hz, not {FAKE_MIC_HZ}: {m}"
    );
    assert!(m["db"].as_f64().unwrap() > -60.0, "too quiet: {m}");

    // A screenshot is a PNG.
    let png = b.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let path = artifacts_dir().join("webdriver-smoke.png");
    b.save_screenshot(&path).await;
    assert!(std::fs::metadata(&path).unwrap().len() > 1000);

    // Dropping the browser ends chromedriver and Chromium.
    let dir = b.dir.path().display().to_string();
    drop(b);
    assert!(!driver_pid.is_some_and(alive), "chromedriver still runs");
    assert!(!browser_pid.is_some_and(alive), "Chromium still runs");
    assert!(
        super::processes_naming(&dir).is_empty(),
        "processes of the profile are left"
    );
}
