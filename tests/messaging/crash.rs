//! `kill -9` under load: the real `masterz` binary takes signed Messenger webhooks from 16
//! concurrent senders and is killed while requests are in flight. Every event answered 200 must
//! be there after the restart: stored as an inbound `integration_logs` row, then processed into a
//! message. `masterz replay` on a processed row changes nothing.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use masterz::messaging::signature::meta_header;
use masterz::store::Db;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_masterz");
const APP_SECRET: &str = "crash-test-app-secret-61d0";
const PAGE_ID: &str = "104857600000001";
const SENDERS: usize = 16;
/// How long the senders run at least before the kill.
const LOAD_FOR: Duration = Duration::from_secs(3);
/// Events acknowledged before the kill, unless that takes longer than [`LOAD_AT_MOST`] (a loaded
/// machine): the kill comes after both.
const LOAD_EVENTS: usize = 200;
/// Longest time before the kill.
const LOAD_AT_MOST: Duration = Duration::from_secs(20);

/// The real binary on one data directory, with some environment.
pub(crate) struct Bin {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Bin {
    /// `masterz` on `dir` with `env` (and nothing inherited from `MASTERZ_*` or `RUST_LOG`).
    pub(crate) fn new(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self {
            dir: dir.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("MASTERZ_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.env("MASTERZ_DATA_DIR", &self.dir).stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `masterz <args>` to completion within 60 s; returns (success, stdout, stderr).
    pub(crate) fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut child = self
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn masterz");
        // Read both pipes while waiting, so that a chatty command cannot block on a full pipe.
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let read = |mut r: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            match child.try_wait().expect("wait for masterz") {
                Some(status) => break status,
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("masterz {args:?} did not finish within 60 s");
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        (
            status.success(),
            out.join().expect("stdout reader"),
            err.join().expect("stderr reader"),
        )
    }

    /// `masterz admin <args>`, which must succeed; returns (stdout, stderr).
    pub(crate) fn admin(&self, args: &[&str]) -> (String, String) {
        let mut all = vec!["admin"];
        all.extend_from_slice(args);
        let (ok, stdout, stderr) = self.run(&all);
        assert!(ok, "masterz admin {args:?} failed: {stderr}");
        (stdout, stderr)
    }

    /// `masterz serve` on port 0 with JSON logs, once it listens.
    pub(crate) fn serve(&self) -> Served {
        let mut cmd = self.command();
        cmd.arg("serve")
            .env("MASTERZ_HTTP_LISTEN", "127.0.0.1:0")
            .env("MASTERZ_SIP_LISTEN", "127.0.0.1:0")
            .env("MASTERZ_LOG_FORMAT", "json");
        if !self.env.iter().any(|(k, _)| k == "MASTERZ_RTP_PORTS") {
            cmd.env("MASTERZ_RTP_PORTS", "32400-32499");
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn masterz serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        let all = Arc::new(Mutex::new(Vec::new()));
        let kept = all.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut s = Served {
            child,
            lines,
            all,
            http: ([127, 0, 0, 1], 0).into(),
        };
        let line = s.wait_for("HTTP listening");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        s.http = v["fields"]["http_addr"]
            .as_str()
            .or_else(|| v["http_addr"].as_str())
            .unwrap_or_else(|| panic!("no http_addr in {line}"))
            .parse()
            .unwrap_or_else(|e| panic!("http_addr in {line}: {e}"));
        s
    }
}

/// A running `masterz serve`, killed on drop.
pub(crate) struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    all: Arc<Mutex<Vec<String>>>,
    http: SocketAddr,
}

impl Served {
    /// Waits (60 s at most) for a stderr line containing `needle`.
    pub(crate) fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "masterz serve printed no line with {needle:?}:\n{}",
            seen.join("\n")
        );
    }

    /// A URL on the server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM (a graceful shutdown, 30 s at most) and returns everything
    /// it wrote to stderr.
    pub(crate) fn terminate(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait().expect("wait for masterz serve") {
                Some(status) => {
                    assert!(status.success(), "masterz serve exited with {status}");
                    break;
                }
                None if Instant::now() > deadline => {
                    panic!("masterz serve ignored SIGTERM for 30 s")
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        // The reader thread ends at the pipe's end.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        std::mem::take(&mut *self.all.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Messenger text event from `psid` with the message id `mid`, as Meta sends it.
fn event(psid: &str, mid: &str) -> Vec<u8> {
    let now = masterz::store::now_ms();
    json!({"object": "page", "entry": [{"id": PAGE_ID, "time": now, "messaging": [{
        "sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": now,
        "message": {"mid": mid, "text": format!("load test {mid}")}}]}]})
    .to_string()
    .into_bytes()
}

/// What the senders saw.
#[derive(Default)]
struct Tally {
    /// Message ids answered 200.
    acked: Vec<String>,
    /// Other answers, by status.
    other: Vec<u16>,
    /// Requests sent before the kill that failed without an answer (in flight at the kill).
    in_flight: usize,
    /// Requests refused or failed after the kill.
    after_kill: usize,
}

async fn sender(
    http: reqwest::Client,
    url: String,
    task: usize,
    killed: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) {
    let psid = format!("90000000000{task:02}");
    for n in 0.. {
        if killed.load(Ordering::SeqCst) {
            return;
        }
        let mid = format!("m_crash_{task:02}_{n:06}");
        let body = event(&psid, &mid);
        let signature = meta_header(APP_SECRET.as_bytes(), &body);
        let result = http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await;
        let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(r) if r.status() == reqwest::StatusCode::OK => t.acked.push(mid),
            Ok(r) => t.other.push(r.status().as_u16()),
            Err(e) if killed.load(Ordering::SeqCst) => {
                if e.is_connect() {
                    t.after_kill += 1;
                } else {
                    t.in_flight += 1;
                }
                return;
            }
            Err(e) => panic!("request {mid} failed before the kill: {e:?}"),
        }
    }
}

/// Every Messenger message id in the stored inbound webhook bodies.
fn mids_in(bodies: &[Option<String>]) -> HashSet<String> {
    let mut out = HashSet::new();
    for body in bodies.iter().flatten() {
        let Ok(v) = serde_json::from_str::<Value>(body) else {
            continue;
        };
        for entry in v["entry"].as_array().into_iter().flatten() {
            for m in entry["messaging"].as_array().into_iter().flatten() {
                if let Some(mid) = m["message"]["mid"].as_str() {
                    out.insert(mid.to_owned());
                }
            }
        }
    }
    out
}

async fn sqlite(dir: &Path) -> sqlx::SqlitePool {
    let db = Db::connect(&format!("sqlite://{}", dir.join("masterz.db").display()), 2)
        .await
        .expect("open the server's SQLite file");
    match db {
        Db::Sqlite(pool) => pool,
        Db::Postgres(_) => unreachable!("a sqlite:// URL"),
    }
}

async fn message_ids(pool: &sqlx::SqlitePool) -> HashSet<String> {
    sqlx::query_scalar::<_, Option<String>>("SELECT external_id FROM messages")
        .fetch_all(pool)
        .await
        .expect("read messages")
        .into_iter()
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_webhook() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("temp dir");
    let d = tmp.path();
    let bin = Bin::new(
        d,
        &[
            ("MASTERZ_META_APP_SECRET", APP_SECRET),
            // Nothing here sends, but nothing may reach the real Graph API either.
            ("MASTERZ_META_GRAPH_URL", "http://127.0.0.1:9"),
        ],
    );
    bin.admin(&["create-company", "--name", "Crash", "--slug", "crash"]);
    bin.admin(&[
        "create-user",
        "--company",
        "crash",
        "--email",
        "admin@crash.example.com",
        "--password",
        "long-password-1",
        "--role",
        "admin",
    ]);
    let token = bin
        .admin(&[
            "create-token",
            "--company",
            "crash",
            "--email",
            "admin@crash.example.com",
        ])
        .0
        .trim()
        .to_owned();
    let (channel, _) = bin.admin(&[
        "create-channel",
        "--company",
        "crash",
        "--kind",
        "messenger",
        "--external-id",
        PAGE_ID,
        "--access-token",
        "EAAB-crash-page-token",
    ]);
    let channel: i64 = channel
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("create-channel printed no id: {channel:?}"));

    let server = bin.serve();
    let pid = server.pid();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("HTTP client");
    let killed = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let url = server.url("/webhooks/meta");
    let senders: Vec<_> = (0..SENDERS)
        .map(|task| {
            tokio::spawn(sender(
                http.clone(),
                url.clone(),
                task,
                killed.clone(),
                tally.clone(),
            ))
        })
        .collect();
    let killer = {
        let killed = killed.clone();
        let tally = tally.clone();
        tokio::spawn(async move {
            let load_started = Instant::now();
            let before = loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let acked = tally.lock().unwrap_or_else(|e| e.into_inner()).acked.len();
                let ran = load_started.elapsed();
                if (ran >= LOAD_FOR && acked >= LOAD_EVENTS) || ran >= LOAD_AT_MOST {
                    break acked;
                }
            };
            // Set first: a request that fails from here on failed because of the kill.
            killed.store(true, Ordering::SeqCst);
            let status = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -KILL {pid} failed");
            before
        })
    };
    let acked_before_kill = tokio::time::timeout(Duration::from_secs(30), killer)
        .await
        .expect("the killer ran")
        .expect("the killer task");
    for s in senders {
        tokio::time::timeout(Duration::from_secs(30), s)
            .await
            .expect("a sender stopped after the kill")
            .expect("a sender task");
    }
    drop(server);
    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    eprintln!(
        "acknowledged {} ({} before the kill signal), other answers {:?}, in flight at the kill {}, refused after {}",
        tally.acked.len(),
        acked_before_kill,
        tally.other,
        tally.in_flight,
        tally.after_kill
    );
    assert!(
        tally.acked.len() >= 100,
        "too little load to mean anything: {} events acknowledged in {LOAD_AT_MOST:?}",
        tally.acked.len()
    );
    assert!(
        tally.in_flight > 0,
        "no request was in flight when the server was killed ({} refused after)",
        tally.after_kill
    );
    let unique: HashSet<&String> = tally.acked.iter().collect();
    assert_eq!(unique.len(), tally.acked.len(), "message ids are unique");

    // Restart on the same data directory.
    let server = bin.serve();
    let pool = sqlite(d).await;
    let bodies: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT request_body FROM integration_logs WHERE direction = 'in' AND state <> 'rejected'",
    )
    .fetch_all(&pool)
    .await
    .expect("read integration_logs");
    let stored = mids_in(&bodies);
    let lost: BTreeSet<&String> = tally
        .acked
        .iter()
        .filter(|m| !stored.contains(*m))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged webhooks are not in integration_logs after the restart: {:?}",
        lost.len(),
        tally.acked.len(),
        lost.iter().take(20).collect::<Vec<_>>()
    );

    // The processor turns every stored event into a message.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let messages = message_ids(&pool).await;
        let missing: BTreeSet<&String> = tally
            .acked
            .iter()
            .filter(|m| !messages.contains(*m))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged events are no message 20 s after the restart: {:?}",
            missing.len(),
            tally.acked.len(),
            missing.iter().take(20).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM integration_logs WHERE direction = 'in' AND state = 'pending'",
    )
    .fetch_one(&pool)
    .await
    .expect("count pending rows");
    let failed: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT id, error FROM integration_logs WHERE direction = 'in' AND state = 'failed'",
    )
    .fetch_all(&pool)
    .await
    .expect("read failed rows");
    assert!(failed.is_empty(), "rows failed to process: {failed:?}");

    // The API (with a token from the CLI) shows the same.
    let r = http
        .get(server.url("/api/v1/integration-logs?direction=in&limit=5"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET /api/v1/integration-logs");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let logs: Value = r.json().await.expect("integration logs JSON");
    assert!(
        logs["items"].as_array().is_some_and(|i| !i.is_empty()),
        "{logs:#}"
    );
    let customers: Value = http
        .get(server.url("/api/v1/customers?limit=200"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET /api/v1/customers")
        .json()
        .await
        .expect("customers JSON");
    let senders_acked: HashSet<&str> = tally.acked.iter().map(|m| &m[8..10]).collect();
    assert_eq!(
        customers["items"].as_array().map(Vec::len),
        Some(senders_acked.len()),
        "one customer per sender: {customers:#}"
    );

    // Replay one processed row: it succeeds and adds nothing.
    let (row, body): (i64, String) = sqlx::query_as(
        "SELECT id, request_body FROM integration_logs WHERE direction = 'in' AND state = 'processed' \
           AND channel_account_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(channel)
    .fetch_one(&pool)
    .await
    .expect("a processed inbound row");
    let replayed_mids = mids_in(&[Some(body)]);
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM messages")
            .fetch_one(&pool)
            .await
            .expect("count messages")
    };
    let before = count().await;
    let (ok, stdout, stderr) = bin.run(&["replay", &row.to_string()]);
    assert!(ok, "masterz replay {row} failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("0 messages added"),
        "replay of {row}: {stdout}"
    );
    assert_eq!(count().await, before, "replay added messages");
    for mid in &replayed_mids {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE external_id = $1")
            .bind(mid)
            .fetch_one(&pool)
            .await
            .expect("count the replayed message");
        assert_eq!(n, 1, "message {mid} after the replay");
    }
    pool.close().await;
    drop(server);
    eprintln!(
        "kill -9 under load: {} acknowledged, all stored and processed ({pending} pending at the end); {:.1} s",
        tally.acked.len(),
        started.elapsed().as_secs_f64()
    );
}
