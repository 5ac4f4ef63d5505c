//! The `masterz` binary as an operator uses it: first run, admin commands, key rotation, TLS,
//! JSON logs, graceful shutdown. Runs the real executable on SQLite in temporary directories.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_masterz");

/// A `masterz` command on `dir` as its data directory, with a clean MASTERZ_* environment.
fn masterz(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("MASTERZ_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("MASTERZ_DATA_DIR", dir).stdin(Stdio::null());
    cmd
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("run masterz");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running `masterz serve` whose stderr lines are collected.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Served {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .arg("serve")
            .env("MASTERZ_HTTP_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle` (at most 60 s) and returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!("no line with {needle:?} in:\n{}", self.seen.join("\n"));
    }

    /// The HTTP base URL from the "HTTP listening" log line.
    fn base(&mut self) -> String {
        let line = self.wait_for("HTTP listening");
        let addr = line
            .split("http_addr=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(|a| a.trim_matches('"').to_owned());
        let addr = addr.or_else(|| {
            let v: Value = serde_json::from_str(&line).ok()?;
            v["http_addr"].as_str().map(str::to_owned)
        });
        let scheme = if line.contains("https") {
            "https"
        } else {
            "http"
        };
        format!(
            "{scheme}://{}",
            addr.expect("address in the listening line")
        )
    }

    /// Sends SIGTERM and returns the exit code, failing if the process takes over 15 s.
    fn terminate(mut self) -> (i32, Vec<String>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                    self.seen.push(l);
                }
                return (status.code().unwrap_or(-1), std::mem::take(&mut self.seen));
            }
            assert!(Instant::now() < deadline, "masterz did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

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
    let login = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
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
    let login = client()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(std::fs::read_to_string(data.join("app.key")).unwrap(), key);
    assert_eq!(again.terminate().0, 0);
}

#[test]
fn admin_commands_create_what_they_say_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = run(masterz(d).args([
        "admin",
        "create-company",
        "--name",
        "Acme GmbH",
        "--slug",
        "acme",
    ]));
    assert_eq!(ok.status, 0, "{}", ok.stderr);
    assert!(
        ok.stdout.contains("created company") && ok.stdout.contains("slug=acme"),
        "{}",
        ok.stdout
    );

    for (args, why) in [
        (
            vec![
                "admin",
                "create-company",
                "--name",
                "Again",
                "--slug",
                "acme",
            ],
            "exists",
        ),
        (
            vec![
                "admin",
                "create-company",
                "--name",
                "Bad",
                "--slug",
                "Not A Slug",
            ],
            "slug",
        ),
        (
            vec![
                "admin",
                "create-user",
                "--company",
                "nope",
                "--email",
                "a@b.example.com",
                "--password",
                "long-enough",
                "--role",
                "admin",
            ],
            "no company",
        ),
        (
            vec![
                "admin",
                "create-user",
                "--company",
                "acme",
                "--email",
                "not-an-email",
                "--password",
                "long-enough",
                "--role",
                "admin",
            ],
            "email",
        ),
        (
            vec![
                "admin",
                "create-user",
                "--company",
                "acme",
                "--email",
                "a@b.example.com",
                "--password",
                "short",
                "--role",
                "admin",
            ],
            "password",
        ),
        (
            vec![
                "admin",
                "create-user",
                "--company",
                "acme",
                "--email",
                "a@b.example.com",
                "--password",
                "long-enough",
                "--role",
                "boss",
            ],
            "boss",
        ),
        (
            vec![
                "admin",
                "create-token",
                "--company",
                "acme",
                "--email",
                "nobody@b.example.com",
            ],
            "no user",
        ),
        (
            vec![
                "admin",
                "reset-password",
                "--email",
                "nobody@b.example.com",
                "--password",
                "long-enough",
            ],
            "no user",
        ),
    ] {
        let r = run(masterz(d).args(&args));
        assert_ne!(r.status, 0, "{args:?} should fail");
        assert_eq!(
            r.stderr.trim().lines().count(),
            1,
            "one-line reason for {args:?}: {:?}",
            r.stderr
        );
        assert!(r.stderr.contains(why), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }

    let r = run(masterz(d).args([
        "admin",
        "create-user",
        "--company",
        "acme",
        "--email",
        "Ann@Acme.example.com",
        "--password",
        "ann-password",
        "--role",
        "admin",
    ]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("email=ann@acme.example.com") && r.stdout.contains("role=admin"),
        "{}",
        r.stdout
    );
    let r = run(masterz(d).args([
        "admin",
        "create-user",
        "--company",
        "acme",
        "--email",
        "bo@acme.example.com",
        "--password",
        "bo-password",
        "--role",
        "agent",
    ]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let dup = run(masterz(d).args([
        "admin",
        "create-user",
        "--company",
        "acme",
        "--email",
        "ann@acme.example.com",
        "--password",
        "ann-password",
        "--role",
        "agent",
    ]));
    assert_ne!(dup.status, 0);

    let tok = run(masterz(d).args([
        "admin",
        "create-token",
        "--company",
        "acme",
        "--email",
        "ann@acme.example.com",
    ]));
    assert_eq!(tok.status, 0, "{}", tok.stderr);
    assert_eq!(
        tok.stdout.lines().count(),
        1,
        "the token alone: {:?}",
        tok.stdout
    );
    let token = tok.stdout.trim().to_owned();
    assert!(token.starts_with("mzt_"));

    let up = run(masterz(d).args([
        "admin",
        "update-company",
        "--slug",
        "acme",
        "--plan-tier",
        "business",
        "--time-zone",
        "Europe/Berlin",
    ]));
    assert_eq!(up.status, 0, "{}", up.stderr);
    assert!(up.stdout.contains("plan_tier=business"));
    let list = run(masterz(d).args(["admin", "list-companies"]));
    assert!(list.stdout.contains("acme"));
    let reset = run(masterz(d).args([
        "admin",
        "reset-password",
        "--email",
        "bo@acme.example.com",
        "--password",
        "bo-new-password",
    ]));
    assert_eq!(reset.status, 0, "{}", reset.stderr);
    assert_eq!(run(masterz(d).arg("migrate")).status, 0);
    assert_eq!(run(masterz(d).args(["admin", "--help"])).status, 0);

    // The server on the same environment accepts what the commands made.
    let mut s = Served::start(masterz(d));
    let base = s.base();
    let http = client();
    let r = http
        .get(format!("{base}/api/v1/customers"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        http.get(format!("{base}/api/v1/customers"))
            .send()
            .unwrap()
            .status(),
        401
    );
    let me: Value = http
        .get(format!("{base}/api/v1/company"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (me["slug"].as_str(), me["plan_tier"].as_str()),
        (Some("acme"), Some("business"))
    );
    let bo = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "bo@acme.example.com", "password": "bo-new-password"}))
        .send()
        .unwrap();
    assert_eq!(bo.status(), 200);
    // Every admin action is in the company's audit log.
    let log: Value = http
        .get(format!("{base}/api/v1/audit-logs"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let actions: Vec<String> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} by {}",
                e["action"].as_str().unwrap(),
                e["entity_type"].as_str().unwrap(),
                e["actor_label"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "create user by cli",
        "create api_token by cli",
        "update company by cli",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} missing from {actions:?}"
        );
    }
    assert_eq!(s.terminate().0, 0);
}

#[test]
// P23
fn rotate_key_re_encrypts_credentials_and_keeps_them_readable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        run(masterz(d).args(["admin", "create-company", "--name", "Rot", "--slug", "rot"])).status,
        0
    );
    assert_eq!(
        run(masterz(d).args([
            "admin",
            "create-user",
            "--company",
            "rot",
            "--email",
            "r@rot.example.com",
            "--password",
            "rot-password",
            "--role",
            "admin"
        ]))
        .status,
        0
    );
    let token = run(masterz(d).args([
        "admin",
        "create-token",
        "--company",
        "rot",
        "--email",
        "r@rot.example.com",
    ]))
    .stdout
    .trim()
    .to_owned();
    let mut s = Served::start(masterz(d));
    let base = s.base();
    let r = client().post(format!("{base}/api/v1/channel-accounts")).bearer_auth(&token)
        .json(&json!({"kind": "whatsapp_cloud", "name": "WA", "credentials": {"access_token": "EAAW-rotate-PLAINTEXT"}})).send().unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().unwrap()["id"].as_i64().unwrap();
    assert_eq!(s.terminate().0, 0);

    let old_key = std::fs::read_to_string(d.join("app.key")).unwrap();
    let rot = run(masterz(d).args(["admin", "rotate-key"]));
    assert_eq!(rot.status, 0, "{}", rot.stderr);
    assert!(
        rot.stderr.contains("re-encrypted 1 credential"),
        "{}",
        rot.stderr
    );
    let new_key = std::fs::read_to_string(d.join("app.key")).unwrap();
    assert_ne!(old_key, new_key);
    let keys = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .count()
    };
    assert_eq!(keys(&new_key), 1, "after rotation only the new key remains");

    // The credential opens with the new key alone.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ring = masterz::secrets::Keyring::parse(&new_key, masterz::secrets::KeySource::Config)
            .unwrap();
        let db =
            masterz::store::Db::connect(&format!("sqlite://{}", d.join("masterz.db").display()), 2)
                .await
                .unwrap();
        let mut c = db.conn().await.unwrap();
        let company = masterz::store::companies::by_slug(&mut c.ex(), "rot")
            .await
            .unwrap()
            .unwrap();
        let creds = masterz::store::channels::credentials(&mut c.ex(), &ring, company.id, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(creds.expose()["access_token"], "EAAW-rotate-PLAINTEXT");
        let old = masterz::secrets::Keyring::parse(&old_key, masterz::secrets::KeySource::Config)
            .unwrap();
        assert!(
            masterz::store::channels::credentials(&mut c.ex(), &old, company.id, id)
                .await
                .is_err()
        );
    });

    // With the key in MASTERZ_APP_KEY, the new key is saved and printed for the operator.
    let env_key = new_key
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .trim()
        .to_owned();
    std::fs::remove_file(d.join("app.key")).unwrap();
    let rot = run(masterz(d)
        .env("MASTERZ_APP_KEY", &env_key)
        .args(["admin", "rotate-key"]));
    assert_eq!(rot.status, 0, "{}", rot.stderr);
    let printed = rot.stdout.trim();
    assert_eq!(
        std::fs::read_to_string(d.join("app.key.rotated"))
            .unwrap()
            .lines()
            .find(|l| !l.starts_with('#'))
            .unwrap(),
        printed
    );
    let mut cmd = masterz(d);
    cmd.env("MASTERZ_APP_KEY", printed);
    let mut s = Served::start(cmd);
    let base = s.base();
    let r = client()
        .get(format!("{base}/api/v1/channel-accounts/{id}"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.text().unwrap().contains("PLAINTEXT"));
    assert_eq!(s.terminate().0, 0);
}

#[test]
// P22
fn serves_https_with_a_configured_certificate_and_logs_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "openssl is needed to make a test certificate"
    );
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
