//! Signed webhook ingestion under load: a release `masterz serve` on a fresh data directory (SQLite,
//! or a fresh PostgreSQL database when `MASTERZ_BENCH_POSTGRES_URL` is set), one company with a
//! Messenger channel made with the CLI, then `POST /webhooks/meta` with unique, correctly signed
//! Messenger message events (one per request, ~600 bytes, a unique `mid` each) from C keep-alive
//! connections for T seconds after a warm-up. Then the server is killed with SIGKILL while the load
//! is still running, and the database is opened to check that every event answered 200 is there.
//! Last, the server is started again on the same database for a few seconds, to see the processor
//! work through the backlog on its own.
//!
//! The client is a minimal HTTP/1.1 one on tokio (one thread): each request is prebuilt (headers,
//! signature and body in one buffer, one `write` per request) before the timed phase, so the
//! generator takes as little as possible of the two cores it shares with the server.
//!
//! ```text
//! cargo bench --bench webhooks                                   # SQLite, 64 connections, 10 s
//! MASTERZ_LOAD_CONNS="16 64 256" cargo bench --bench webhooks    # one fresh server per count
//! MASTERZ_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:55432/postgres cargo bench --bench webhooks
//! ```
//!
//! Environment: `MASTERZ_LOAD_CONNS` (64; a list runs each), `MASTERZ_LOAD_SECS` (10),
//! `MASTERZ_LOAD_WARMUP_SECS` (2), `MASTERZ_LOAD_DRAIN_SECS` (5; 0 skips the restart),
//! `MASTERZ_LOAD_MAX_RATE` (30000: requests prebuilt per second of load; past them requests are
//! built on the fly), `MASTERZ_LOAD_UNROUTED=1` (entries for a Page no channel has: stored as
//! `ignored`, so the processor has nothing to do; log level `error`, since each such request logs a
//! warning — to measure ingestion alone), `MASTERZ_LOAD_PROBE=committer` (no server: tasks hand
//! rows straight to masterz's group committer, in-process — the write path alone),
//! `MASTERZ_LOAD_KEEP=1` (keep the data directory).
//!
//! Prints one `RESULT {json}` line per run and a table.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_masterz");
/// The Page the channel account is for.
const PAGE_ID: &str = "104857600000001";
/// A Page no channel account has (`MASTERZ_LOAD_UNROUTED=1`).
const OTHER_PAGE_ID: &str = "104857600000999";
const APP_SECRET: &str = "bench-meta-app-secret-5f1c2a9e";
/// Distinct senders (customers) the events come from.
const SENDERS: usize = 5000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc.

/// utime + stime of `/proc/<pid>/stat` in ms (USER_HZ = 100).
fn cpu_ms(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name: state (field 3) … utime (14), stime (15).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (get(11) + get(12)) * 10
}

/// (busy, total) jiffies of the whole machine (`/proc/stat`).
fn host_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// The Messenger event number `idx`: a text message from one of [`SENDERS`] customers, compact as
/// Meta sends it, its `mid` ending in the ten digits of `idx`.
fn event_body(idx: usize, page: &str) -> String {
    let sender = 7_254_398_172_000_000u64 + (idx % SENDERS) as u64;
    let ts = 1_770_031_204_871u64 + idx as u64;
    // Real mids are ~90 characters of base64url; the last ten digits make this one unique.
    let mid = format!(
        "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_{idx:010}"
    );
    let text = "Hallo, ist mein Paket schon unterwegs? Bestellnummer 48213. Ich habe vor einer \
                Woche bestellt und noch keine Versandbestätigung bekommen. Können Sie bitte \
                nachsehen, wo es gerade ist? Die Lieferadresse ist die gleiche wie bei meiner \
                letzten Bestellung. Danke und viele Grüße";
    format!(
        r#"{{"object":"page","entry":[{{"id":"{page}","time":{t},"messaging":[{{"sender":{{"id":"{sender}"}},"recipient":{{"id":"{page}"}},"timestamp":{ts},"message":{{"mid":"{mid}","text":"{text} #{n}"}}}}]}}]}}"#,
        t = ts + 252,
        n = idx % 1000,
    )
}

/// The whole HTTP/1.1 request for event `idx`: head (with the signature) and body in one buffer.
fn build_request(idx: usize, page: &str) -> Vec<u8> {
    let body = event_body(idx, page);
    let sig = masterz::messaging::signature::meta_header(APP_SECRET.as_bytes(), body.as_bytes());
    let mut req = format!(
        "POST /webhooks/meta HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: facebookexternalua\r\n\
         Accept: */*\r\nContent-Type: application/json\r\nX-Hub-Signature-256: {sig}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body.as_bytes());
    req
}

/// The event number in a stored body's `mid`.
fn mid_index(mid: &str) -> Option<usize> {
    mid.get(mid.len().checked_sub(10)?..)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The load generator.

/// One request as the generator saw it.
#[derive(Clone, Copy)]
struct Rec {
    /// When it completed (or failed), µs since the epoch of the run.
    end_us: u64,
    /// Round trip in µs.
    lat_us: u32,
    /// HTTP status; 0 for a transport error.
    status: u16,
    /// The event it carried.
    idx: u32,
}

struct Load {
    addr: String,
    requests: Arc<Vec<Vec<u8>>>,
    page: &'static str,
    next: AtomicUsize,
    stop: AtomicBool,
    epoch: Instant,
    built_on_the_fly: AtomicUsize,
}

/// One request and its response on a keep-alive connection: (status, keep the connection).
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    req: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, bool)> {
    stream.write_all(req).await?;
    buf.clear();
    let head_end = loop {
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(std::io::Error::other)?;
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let mut length = 0usize;
    let mut keep = true;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(std::io::Error::other)?;
            } else if name.eq_ignore_ascii_case("connection") && value.trim() == "close" {
                keep = false;
            }
        }
    }
    while buf.len() < head_end + length {
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok((status, keep))
}

async fn connection(load: Arc<Load>) -> Vec<Rec> {
    let mut recs = Vec::with_capacity(4096);
    let mut stream: Option<tokio::net::TcpStream> = None;
    let mut buf = Vec::with_capacity(1024);
    while !load.stop.load(Ordering::Relaxed) {
        if stream.is_none() {
            match tokio::net::TcpStream::connect(&load.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                }
                Err(_) => {
                    recs.push(Rec {
                        end_us: load.epoch.elapsed().as_micros() as u64,
                        lat_us: 0,
                        status: 0,
                        idx: u32::MAX,
                    });
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let idx = load.next.fetch_add(1, Ordering::Relaxed);
        let owned;
        let req: &[u8] = match load.requests.get(idx) {
            Some(r) => r,
            None => {
                load.built_on_the_fly.fetch_add(1, Ordering::Relaxed);
                owned = build_request(idx, load.page);
                &owned
            }
        };
        let started = Instant::now();
        let result = exchange(s, req, &mut buf).await;
        let ended = Instant::now();
        let status = match result {
            Ok((status, keep)) => {
                if !keep {
                    stream = None;
                }
                status
            }
            Err(_) => {
                stream = None;
                0
            }
        };
        recs.push(Rec {
            end_us: ended.duration_since(load.epoch).as_micros() as u64,
            lat_us: ended
                .duration_since(started)
                .as_micros()
                .min(u32::MAX as u128) as u32,
            status,
            idx: idx as u32,
        });
    }
    recs
}

/// Runs `conns` connections on a one-thread runtime until `load.stop`; every request's record.
fn generate(load: Arc<Load>, conns: usize) -> Vec<Rec> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let tasks: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(connection(load.clone())))
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("connection task"));
        }
        all
    })
}

// ---------------------------------------------------------------------------------------------
// The server and its database.

#[derive(Clone)]
enum Backend {
    Sqlite,
    /// The server's URL, the admin URL and the database's name (dropped at the end).
    Postgres {
        url: String,
        admin: String,
        name: String,
    },
}

impl Backend {
    fn label(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

struct Server {
    data: std::path::PathBuf,
    backend: Backend,
    log_level: &'static str,
}

impl Server {
    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("MASTERZ_DATA_DIR", &self.data)
            .env("MASTERZ_SIP_LISTEN", "127.0.0.1:0")
            .env("MASTERZ_LOG_LEVEL", self.log_level)
            .env("MASTERZ_META_APP_SECRET", APP_SECRET)
            .env(
                "MASTERZ_DATABASE_URL",
                match &self.backend {
                    Backend::Sqlite => "",
                    Backend::Postgres { url, .. } => url,
                },
            );
        c
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(args)
            .env("MASTERZ_HTTP_LISTEN", "127.0.0.1:0")
            .output()
            .expect("run masterz");
        assert!(
            out.status.success(),
            "masterz {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `masterz serve` on a free port, once `/readyz` answers 200: (child, port).
    fn start(&self, log: &str) -> (Child, u16) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log_file = std::fs::File::create(self.data.join(log)).expect("log file");
        let mut child = self
            .command()
            .arg("serve")
            .env("MASTERZ_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start masterz serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(self.data.join(log)).unwrap_or_default();
                panic!("masterz serve exited ({status}):\n{text}");
            }
            if ready(port) {
                return (child, port);
            }
            assert!(Instant::now() < deadline, "masterz serve not ready in 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn ready(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

enum Store {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Store {
    async fn open(server: &Server) -> Store {
        match &server.backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", server.data.join("masterz.db").display());
                Store::Sqlite(
                    sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect(&url)
                        .await
                        .expect("open the SQLite database"),
                )
            }
            Backend::Postgres { url, .. } => Store::Pg(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .expect("connect to PostgreSQL"),
            ),
        }
    }

    async fn count(&self, filter: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM integration_logs WHERE direction = 'in' {filter}");
        match self {
            // The filters are this file's own constants.
            Store::Sqlite(p) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(p)
                    .await
            }
            Store::Pg(p) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(p)
                    .await
            }
        }
        .expect("count integration_logs")
    }

    /// The `mid` of every stored inbound event.
    async fn mids(&self) -> Vec<Option<String>> {
        match self {
            Store::Sqlite(p) => {
                sqlx::query_scalar(
                    "SELECT json_extract(request_body, '$.entry[0].messaging[0].message.mid') \
                 FROM integration_logs WHERE direction = 'in'",
                )
                .fetch_all(p)
                .await
            }
            Store::Pg(p) => {
                sqlx::query_scalar(
                    "SELECT request_body::jsonb #>> '{entry,0,messaging,0,message,mid}' \
                 FROM integration_logs WHERE direction = 'in'",
                )
                .fetch_all(p)
                .await
            }
        }
        .expect("read integration_logs")
    }

    async fn close(self) {
        match self {
            Store::Sqlite(p) => p.close().await,
            Store::Pg(p) => p.close().await,
        }
    }
}

async fn admin_sql(admin: &str, sql: String) {
    let mut c = sqlx::PgConnection::connect(admin)
        .await
        .expect("connect to the PostgreSQL admin URL");
    // Database names made by this file.
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(&mut c)
        .await
        .expect(&sql);
    let _ = c.close().await;
}

// ---------------------------------------------------------------------------------------------
// The committer alone (`MASTERZ_LOAD_PROBE=committer`): no HTTP, no processor.

/// `conns` tasks on a two-worker runtime (as the server's) each hand one inbound row at a time to
/// masterz's group committer on a fresh database, as the webhook handler does after its checks:
/// what the write path alone sustains, without HTTP, signatures or the processor.
fn probe_committer(opts: &Opts, backend: &Backend, conns: usize) -> serde_json::Value {
    use masterz::messaging::ingest::{Committer, WriteGate};
    use masterz::store::integration_logs::NewLog;

    let dir = tempfile::Builder::new()
        .prefix("masterz-webhooks-probe.")
        .tempdir()
        .expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("probe.db").display()),
        Backend::Postgres { url, admin, name } => {
            rt.block_on(admin_sql(admin, format!("CREATE DATABASE \"{name}\"")));
            url.clone()
        }
    };
    let headers = format!(
        r#"{{"content-type":"application/json","user-agent":"facebookexternalua","x-hub-signature-256":"{}"}}"#,
        masterz::messaging::signature::meta_header(b"k", b"{}")
    );
    let (ok, lat, cpu, secs) = rt.block_on(async {
        let db = masterz::store::Db::connect(&url, 16)
            .await
            .expect("database");
        db.migrate().await.expect("migrate");
        let committer = Arc::new(Committer::default());
        committer.spawn(
            db.clone(),
            Arc::new(tokio::sync::Notify::new()),
            WriteGate::default(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..conns)
            .map(|_| {
                let (committer, stop, next, headers) = (
                    committer.clone(),
                    stop.clone(),
                    next.clone(),
                    headers.clone(),
                );
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut ok = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let idx = next.fetch_add(1, Ordering::Relaxed);
                        let row = NewLog {
                            company_id: None,
                            channel_account_id: None,
                            direction: "in",
                            provider: "meta",
                            method: "POST",
                            endpoint: "/webhooks/meta".into(),
                            status: Some(200),
                            duration_ms: None,
                            request_headers: Some(headers.clone()),
                            request_body: Some(event_body(idx, OTHER_PAGE_ID)),
                            response_body: None,
                            error: None,
                            state: "ignored",
                            message_id: None,
                            created_at: 1_770_031_204_871,
                        };
                        let started = Instant::now();
                        if committer.commit(vec![row]).await {
                            ok += 1;
                        }
                        lat.push(started.elapsed().as_micros() as u32);
                    }
                    (ok, lat)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(opts.warmup)).await;
        let (c0, n0, started) = (cpu_ms("self"), next.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs_f64(opts.secs)).await;
        let (c1, n1, secs) = (
            cpu_ms("self"),
            next.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64(),
        );
        stop.store(true, Ordering::Relaxed);
        let mut lat = Vec::new();
        for t in tasks {
            let (_, l) = t.await.expect("probe task");
            lat.extend(l);
        }
        db.close().await;
        (n1 - n0, lat, c1 - c0, secs)
    });
    if let Backend::Postgres { admin, name, .. } = backend {
        rt.block_on(admin_sql(
            admin,
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        ));
    }
    let mut lat = lat;
    lat.sort_unstable();
    json!({
        "bench": "webhooks_committer_probe",
        "backend": backend.label(),
        "conns": conns,
        "rows_per_s": whole(ok as f64 / secs),
        "p50_ms": round(percentile(&lat, 0.50), 2),
        "p99_ms": round(percentile(&lat, 0.99), 2),
        "cpu_pct": whole(cpu as f64 / secs / 10.0),
        "cpu_ms_per_1000": if ok > 0 { round(cpu as f64 / ok as f64 * 1000.0, 1) } else { 0.0 },
    })
}

// ---------------------------------------------------------------------------------------------
// One run.

struct Opts {
    secs: f64,
    warmup: f64,
    drain: f64,
    unrouted: bool,
    keep: bool,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// `x` as a whole number (rates, percentages).
fn whole(x: f64) -> i64 {
    x.round() as i64
}

fn run(
    rt: &tokio::runtime::Runtime,
    opts: &Opts,
    backend: Backend,
    conns: usize,
    requests: Arc<Vec<Vec<u8>>>,
) -> serde_json::Value {
    let dir = tempfile::Builder::new()
        .prefix("masterz-webhooks.")
        .tempdir()
        .expect("temp dir");
    let server = Server {
        data: dir.path().join("data"),
        backend: backend.clone(),
        log_level: if opts.unrouted { "error" } else { "warn" },
    };
    std::fs::create_dir_all(&server.data).expect("data dir");
    if let Backend::Postgres { admin, name, .. } = &backend {
        rt.block_on(admin_sql(admin, format!("CREATE DATABASE \"{name}\"")));
    }
    server.cli(&[
        "admin",
        "create-company",
        "--name",
        "Bench",
        "--slug",
        "bench",
    ]);
    let channel = server.cli(&[
        "admin",
        "create-channel",
        "--company",
        "bench",
        "--kind",
        "messenger",
        "--external-id",
        PAGE_ID,
        "--access-token",
        "bench-page-access-token",
    ]);
    let channel_id = channel.lines().next().unwrap_or_default().trim().to_owned();
    let (mut child, port) = server.start("serve.log");
    let pid = child.id().to_string();
    let loadavg_before = loadavg();

    let load = Arc::new(Load {
        addr: format!("127.0.0.1:{port}"),
        requests,
        page: if opts.unrouted {
            OTHER_PAGE_ID
        } else {
            PAGE_ID
        },
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        epoch: Instant::now(),
        built_on_the_fly: AtomicUsize::new(0),
    });
    let generator = {
        let load = load.clone();
        std::thread::spawn(move || generate(load, conns))
    };

    std::thread::sleep(Duration::from_secs_f64(opts.warmup));
    let t0 = load.epoch.elapsed();
    let (mz0, gen0, host0) = (cpu_ms(&pid), cpu_ms("self"), host_jiffies());
    std::thread::sleep(Duration::from_secs_f64(opts.secs));
    let t1 = load.epoch.elapsed();
    let (mz1, gen1, host1) = (cpu_ms(&pid), cpu_ms("self"), host_jiffies());
    // Crash the server under full load: whatever was answered 200 must be in the database.
    child.kill().expect("SIGKILL masterz");
    let killed_at = load.epoch.elapsed();
    let _ = child.wait();
    load.stop.store(true, Ordering::Relaxed);
    let recs = generator.join().expect("generator thread");

    // The timed window: requests that completed in [t0, t1].
    let (w0, w1) = (t0.as_micros() as u64, t1.as_micros() as u64);
    let window: Vec<&Rec> = recs
        .iter()
        .filter(|r| r.end_us >= w0 && r.end_us <= w1)
        .collect();
    let ok = window.iter().filter(|r| r.status == 200).count();
    let non200 = window
        .iter()
        .filter(|r| r.status != 200 && r.status != 0)
        .count();
    let transport_errors = window.iter().filter(|r| r.status == 0).count();
    let mut lat: Vec<u32> = window
        .iter()
        .filter(|r| r.status != 0)
        .map(|r| r.lat_us)
        .collect();
    lat.sort_unstable();
    let over_10ms = lat.iter().filter(|&&l| l > 10_000).count();
    let secs = (t1 - t0).as_secs_f64();
    let rps = ok as f64 / secs;

    // Durability: every event answered 200 (warm-up, window and the tail before the kill).
    let acked: Vec<usize> = recs
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.idx as usize)
        .collect();
    let acked_total = acked.len();
    let after_kill = recs
        .iter()
        .filter(|r| r.status == 200 && r.end_us > killed_at.as_micros() as u64)
        .count();
    let sent_max = recs
        .iter()
        .filter(|r| r.idx != u32::MAX)
        .map(|r| r.idx as usize + 1)
        .max()
        .unwrap_or(0);
    let (rows_in, pending, processed, mids) = rt.block_on(async {
        let store = Store::open(&server).await;
        let rows = store.count("").await;
        let pending = store.count("AND state = 'pending'").await;
        let processed = store.count("AND state IN ('processed', 'failed')").await;
        let mids = store.mids().await;
        store.close().await;
        (rows, pending, processed, mids)
    });
    let mut stored = vec![false; sent_max.max(1)];
    let mut foreign = 0usize;
    for m in mids.iter().flatten() {
        match mid_index(m) {
            Some(i) if i < stored.len() => stored[i] = true,
            _ => foreign += 1,
        }
    }
    let missing = acked.iter().filter(|&&i| !stored[i]).count();
    let durable = rows_in >= acked_total as i64 && missing == 0;
    let load_secs = killed_at.as_secs_f64();

    // The backlog after the crash, with the server started again and no load.
    let mut drain = json!(null);
    if opts.drain > 0.0 && !opts.unrouted {
        let (mut child, _) = server.start("restart.log");
        let pid = child.id().to_string();
        let (p0, c0, started) = (
            rt.block_on(async {
                let s = Store::open(&server).await;
                let n = s.count("AND state = 'pending'").await;
                s.close().await;
                n
            }),
            cpu_ms(&pid),
            Instant::now(),
        );
        std::thread::sleep(Duration::from_secs_f64(opts.drain));
        let (c1, took) = (cpu_ms(&pid), started.elapsed().as_secs_f64());
        let p1 = rt.block_on(async {
            let s = Store::open(&server).await;
            let n = s.count("AND state = 'pending'").await;
            s.close().await;
            n
        });
        let _ = child.kill();
        let _ = child.wait();
        let done = (p0 - p1).max(0);
        drain = json!({
            "secs": round(took, 2),
            "pending_before": p0,
            "pending_after": p1,
            "processed_per_s": whole(done as f64 / took),
            "mz_cpu_ms_per_1000_processed": if done > 0 { round((c1 - c0) as f64 / done as f64 * 1000.0, 1) } else { 0.0 },
            "mz_cpu_pct": whole((c1 - c0) as f64 / took / 10.0),
        });
    }

    if let Backend::Postgres { admin, name, .. } = &backend {
        rt.block_on(admin_sql(
            admin,
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        ));
    }
    if opts.keep || !durable || non200 > 0 {
        let kept = dir.keep();
        eprintln!("# kept {}", kept.display());
    }

    let host_busy = (host1.0 - host0.0) as f64 / (host1.1 - host0.1).max(1) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mz_cpu = (mz1 - mz0) as f64;
    let gen_cpu = (gen1 - gen0) as f64;
    let per_1000 = |cpu: f64| {
        if ok > 0 {
            round(cpu / ok as f64 * 1000.0, 1)
        } else {
            0.0
        }
    };
    json!({
        "bench": "webhooks",
        "backend": backend.label(),
        "unrouted": opts.unrouted,
        "conns": conns,
        "secs": round(secs, 2),
        "warmup_secs": opts.warmup,
        "channel_id": channel_id,
        "body_bytes": event_body(0, PAGE_ID).len(),
        "acked_in_window": ok,
        "events_per_s": whole(rps),
        "p50_ms": round(percentile(&lat, 0.50), 2),
        "p90_ms": round(percentile(&lat, 0.90), 2),
        "p99_ms": round(percentile(&lat, 0.99), 2),
        "max_ms": round(lat.last().copied().map_or(0.0, |l| f64::from(l) / 1000.0), 2),
        "over_10ms": over_10ms,
        "non200": non200,
        "transport_errors": transport_errors,
        "mz_cpu_pct": whole(mz_cpu / secs / 10.0),
        "mz_cpu_ms_per_1000": per_1000(mz_cpu),
        "gen_cpu_pct": whole(gen_cpu / secs / 10.0),
        "gen_cpu_ms_per_1000": per_1000(gen_cpu),
        "host_busy_pct": whole(host_busy * 100.0),
        // Every other process, in % of one core: other work on the machine (and PostgreSQL).
        "others_cpu_pct": whole(host_busy * 100.0 * cores - (mz_cpu + gen_cpu) / secs / 10.0),
        "loadavg_before": loadavg_before,
        "built_on_the_fly": load.built_on_the_fly.load(Ordering::Relaxed),
        "acked_total": acked_total,
        "acked_after_kill": after_kill,
        "rows_in": rows_in,
        "missing_acked": missing,
        "unparsed_rows": foreign,
        "durable": durable,
        "pending_at_kill": pending,
        "processed_at_kill": processed,
        "processed_per_s": whole(processed as f64 / load_secs),
        "ingested_per_s": whole(rows_in as f64 / load_secs),
        "drain": drain,
    })
}

fn main() {
    let conns: Vec<usize> = std::env::var("MASTERZ_LOAD_CONNS")
        .unwrap_or_else(|_| "64".into())
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter_map(|s| s.parse().ok())
        .filter(|&c| c > 0)
        .collect();
    let opts = Opts {
        secs: env_f64("MASTERZ_LOAD_SECS", 10.0),
        warmup: env_f64("MASTERZ_LOAD_WARMUP_SECS", 2.0),
        drain: env_f64("MASTERZ_LOAD_DRAIN_SECS", 5.0),
        unrouted: std::env::var("MASTERZ_LOAD_UNROUTED").is_ok_and(|v| v == "1"),
        keep: std::env::var("MASTERZ_LOAD_KEEP").is_ok_and(|v| v == "1"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut backend = Backend::Sqlite;
    if let Ok(admin) = std::env::var("MASTERZ_BENCH_POSTGRES_URL")
        && !admin.is_empty()
    {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let name = format!("mz_bench_{}_{stamp}", std::process::id());
        backend = Backend::Postgres {
            url: with_database(&admin, &name),
            admin,
            name,
        };
    }

    if std::env::var("MASTERZ_LOAD_PROBE").is_ok_and(|v| v == "committer") {
        for (i, &c) in conns.iter().enumerate() {
            let mut backend = backend.clone();
            if let Backend::Postgres { url, admin, name } = &mut backend {
                *name = format!("{name}_{i}");
                *url = with_database(admin, name);
            }
            println!("RESULT {}", probe_committer(&opts, &backend, c));
        }
        return;
    }

    let page = if opts.unrouted {
        OTHER_PAGE_ID
    } else {
        PAGE_ID
    };
    let count = (env_u64("MASTERZ_LOAD_MAX_RATE", 30_000) as f64 * (opts.secs + opts.warmup + 1.0))
        as usize;
    let started = Instant::now();
    let requests: Vec<Vec<u8>> = (0..count).map(|i| build_request(i, page)).collect();
    println!(
        "# {} requests prebuilt in {:.2} s ({} body bytes each); {} cores, load average {}",
        count,
        started.elapsed().as_secs_f64(),
        event_body(0, page).len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let requests = Arc::new(requests);

    let mut results = Vec::new();
    for (i, &c) in conns.iter().enumerate() {
        let mut backend = backend.clone();
        if let Backend::Postgres { url, admin, name } = &mut backend {
            *name = format!("{name}_{i}");
            *url = with_database(admin, name);
        }
        let result = run(&rt, &opts, backend, c, requests.clone());
        println!("RESULT {result}");
        results.push(result);
    }

    println!(
        "\n| backend | conns | events/s (200) | p50 ms | p90 ms | p99 ms | max ms | non-200 | masterz CPU % | masterz CPU ms/1000 | generator CPU ms/1000 | others CPU % | acked | rows | durable | pending at kill | processed/s | processed/s alone |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["backend"].as_str().unwrap_or_default(),
            r["conns"],
            r["events_per_s"],
            r["p50_ms"],
            r["p90_ms"],
            r["p99_ms"],
            r["max_ms"],
            r["non200"],
            r["mz_cpu_pct"],
            r["mz_cpu_ms_per_1000"],
            r["gen_cpu_ms_per_1000"],
            r["others_cpu_pct"],
            r["acked_total"],
            r["rows_in"],
            r["durable"],
            r["pending_at_kill"],
            r["processed_per_s"],
            r["drain"]["processed_per_s"],
        );
    }
    let failed = results.iter().any(|r| r["durable"] != json!(true));
    if failed {
        eprintln!("DURABILITY CHECK FAILED: an event answered 200 is not in the database");
        std::process::exit(1);
    }
}
