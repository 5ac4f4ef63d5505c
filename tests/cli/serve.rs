//! First run, HTTPS, logs and shutdown.

use crate::{Served, client, log_in, masterz, run};

use serde_json::{Value, json};

#[test]
fn first_run_creates_the_database_key_and_an_admin_who_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = Served::start(masterz(&data));
    let base = s.base();
    let email = s
        .wait_for("email:")
        .split_whitespace()
        .last()
        .unwrap()
        .to_owned();
    let password = s
        .wait_for("password:")
        .split_whitespace()
        .last()
        .unwrap()
        .to_owned();
    assert!(
        s.seen.iter().any(|l| l.contains("BACK IT UP")),
        "the key backup warning is shown"
    );
    let http = client();
    assert_eq!(
        http.get(format!("{base}/healthz")).send().unwrap().status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz")).send().unwrap().status(),
        200
    );
    let cookie = log_in(&http, &base, &email, &password);
    // With the session: a customer with a phone number (planted, to check the logs below).
    let r = http.post(format!("{base}/api/v1/customers")).header("cookie", &cookie)
        .json(&json!({"display_name": "Planted", "identities": [{"kind": "phone", "external_id": "+4915199990000"}]})).send().unwrap();
    assert_eq!(r.status(), 201);
    // A failed login from an unknown user is logged without the password.
    let _ = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": "planted-wrong-pw"}))
        .send()
        .unwrap();
    let spec: Value = http
        .get(format!("{base}/api/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(spec["paths"].as_object().unwrap().len() >= 25);
    assert!(spec["paths"]["/api/v1/customers/{id}/timeline"]["get"].is_object());

    assert!(data.join("masterz.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("app.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "app.key must be private");
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the data directory must be private");
    }
    let (code, lines) = s.terminate();
    assert_eq!(code, 0, "graceful shutdown exits 0:\n{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("shutting down")));
    let log = lines.join("\n");
    for planted in [
        "+4915199990000",
        "4915199990000",
        "planted-wrong-pw",
        &cookie[cookie.find('=').unwrap() + 1..],
    ] {
        assert!(
            !log.contains(planted),
            "{planted:?} leaked into the log:\n{log}"
        );
    }

    // The second start finds everything in place: no new admin, same key.
    let key = std::fs::read_to_string(data.join("app.key")).unwrap();
    let mut again = Served::start(masterz(&data));
    let base = again.base();
    assert!(!again.seen.iter().any(|l| l.contains("First admin created")));
    log_in(&client(), &base, &email, &password);
    assert_eq!(std::fs::read_to_string(data.join("app.key")).unwrap(), key);
    assert_eq!(again.terminate().0, 0);
}

#[test]
// P22
fn serves_https_with_a_configured_certificate_and_logs_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = crate::common::self_signed_certificate(d, "localhost");
    let mut cmd = masterz(d);
    cmd.env("MASTERZ_TLS_CERT", &cert)
        .env("MASTERZ_TLS_KEY", &key)
        .env("MASTERZ_LOG_FORMAT", "json")
        .env("MASTERZ_INITIAL_ADMIN_PASSWORD", "initial-admin-pw");
    let mut s = Served::start(cmd);
    let base = s.base();
    assert!(base.starts_with("https://"), "{base}");
    let listening = s.wait_for("HTTP listening");
    let v: Value = serde_json::from_str(&listening).expect("JSON log line");
    assert_eq!(v["level"], "INFO");
    let http = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    assert_eq!(
        http.get(format!("{base}/healthz")).send().unwrap().status(),
        200
    );
    let login = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "admin@masterz.local", "password": "initial-admin-pw"}))
        .send()
        .unwrap();
    assert_eq!(login.status(), 200);
    assert!(
        login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure"),
        "cookies are Secure under TLS"
    );
    // Plain HTTP on the TLS port is refused.
    let plain = client()
        .get(base.replace("https://", "http://") + "/healthz")
        .send();
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    assert_eq!(s.terminate().0, 0);

    // A bad configuration is one line and a non-zero exit.
    let r = run(masterz(d).env("MASTERZ_TLS_CERT", &cert).args(["serve"]));
    assert_ne!(r.status, 0);
    assert!(r.stderr.contains("tls_cert and tls_key"), "{}", r.stderr);
    let r = run(masterz(d)
        .env("MASTERZ_HTTP_LISTEN", "nonsense")
        .args(["serve"]));
    assert_ne!(r.status, 0);
    assert!(r.stderr.contains("MASTERZ_HTTP_LISTEN"), "{}", r.stderr);
}

#[test]
fn demo_seeds_a_filled_timeline_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Served::start_with_args(masterz(dir.path()), &["--demo"]);
    let base = s.base();
    let line = s.wait_for("Agent login:");
    let mut words = line.split_whitespace().rev();
    let password = words.next().unwrap().to_owned();
    let email = words.nth(1).unwrap().to_owned();
    let http = client();
    let cookie = log_in(&http, &base, &email, &password);
    let customers: Value = http
        .get(format!("{base}/api/v1/customers"))
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let items = customers["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let id = items[0]["id"].as_i64().unwrap();
    let timeline: Value = http
        .get(format!("{base}/api/v1/customers/{id}/timeline"))
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let kinds: Vec<&str> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"call") && kinds.contains(&"message") && kinds.contains(&"note"),
        "{kinds:?}"
    );
    assert_eq!(s.terminate().0, 0);
    // A second start with --demo leaves the demo company as it is.
    let mut again = Served::start_with_args(masterz(dir.path()), &["--demo"]);
    again.base();
    again.wait_for("exists already");
    assert_eq!(again.terminate().0, 0);
}
