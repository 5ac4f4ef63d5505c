//! One masterz for one test: a company with agents who have SIP credentials, trunks, and the
//! API views of calls, timelines and metrics that the tests check.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use masterz::config::{Config, PortRange};
use masterz::domain::UserId;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Backend, Tenant, TestServer, password_hash, seed_tenant};
use crate::peers::sipp::{Sipp, SippProcess, SippRun};

/// The DID the trunks in these tests carry.
pub(crate) const DID: &str = "+15551230000";
/// The caller's number (E.164) that trunk calls come from.
pub(crate) const CALLER: &str = "+4915112345678";

/// A media fixture (`tests/fixtures/media/<name>`), as an absolute path.
pub(crate) fn fixture(name: &str) -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media")).join(name);
    assert!(p.is_file(), "no media fixture {}", p.display());
    p
}

/// The 3 s PCMU 1 kHz tone.
pub(crate) fn tone_3s() -> String {
    fixture("pcmu_1khz_3s.pcap").display().to_string()
}

/// The 8 s PCMU 1 kHz tone.
pub(crate) fn tone_8s() -> String {
    fixture("pcmu_1khz_8s.pcap").display().to_string()
}

/// A distinct RTP port range for each server of this test binary (400 ports each, in
/// 20000–31999: below Linux's ephemeral range, 32768–60999, where the peers' free ports come
/// from), offset by the process id so that two runs of the binary rarely overlap.
fn rtp_range() -> PortRange {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) as u32;
    let slot = (std::process::id() * 7 + n) % 30;
    let first = 20000 + (slot * 400) as u16;
    PortRange {
        first,
        last: first + 399,
    }
}

/// Prints the server's logs when `MASTERZ_TEST_LOG` names a filter (`masterz=debug`).
fn init_logs() {
    if let Ok(filter) = std::env::var("MASTERZ_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// An agent with SIP credentials.
#[derive(Clone, Debug)]
pub(crate) struct Agent {
    pub(crate) user: UserId,
    pub(crate) sip_user: String,
    pub(crate) password: String,
}

/// A server with one company.
pub(crate) struct Pbx {
    pub(crate) s: TestServer,
    pub(crate) t: Tenant,
    /// masterz's SIP address (UDP).
    pub(crate) sip: SocketAddr,
}

impl Pbx {
    /// A server on SQLite with short timers for tests, adjusted by `adjust`.
    pub(crate) async fn start(adjust: impl FnOnce(&mut Config)) -> Self {
        init_logs();
        let s = TestServer::start_with(Backend::Sqlite, |c| {
            c.rtp_ports = rtp_range();
            c.sip_trunk_poll_secs = 1;
            adjust(c);
        })
        .await
        .expect("SQLite is always there");
        let t = seed_tenant(s.store(), "acme").await;
        let sip = s
            .server
            .as_ref()
            .and_then(|s| s.state.telephony.get())
            .expect("SIP is running")
            .sip_addr;
        Self { s, t, sip }
    }

    /// A new agent `name` (role agent) with SIP username `name` and a password.
    pub(crate) async fn agent(&self, name: &str) -> Agent {
        let mut tx = self.s.store().begin().await.unwrap();
        let role = masterz::store::users::role_by_name(&mut tx.ex(), self.t.company, "agent")
            .await
            .unwrap()
            .expect("role agent");
        let email = format!("{name}@acme.example.com");
        let user = masterz::store::users::create_user(
            &mut tx.ex(),
            self.t.company,
            &masterz::store::users::NewUser {
                role_id: role.id,
                name,
                email: &email,
                password_hash: password_hash(),
                avatar_url: None,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let password = format!("{name}-sip-secret-1");
        let r = self
            .req(
                Method::PUT,
                &format!("/api/v1/users/{}/sip-credentials", user.id.0),
            )
            .json(&json!({"username": name, "password": password}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        Agent {
            user: user.id,
            sip_user: name.to_owned(),
            password,
        }
    }

    /// A trunk whose provider is at `host`, taking calls from `sources` for `dids`, with
    /// digest credentials for outbound calls when given. Returns its id.
    ///
    /// Trunk callers in these tests send from a port of their own (127.0.0.1 is the source
    /// that counts), not from `host`: a port picked before this call's 1.5 s wait could be
    /// taken by then (an ephemeral port of an HTTP client, say), and SIPp would not start.
    pub(crate) async fn trunk(
        &self,
        host: SocketAddr,
        sources: &[&str],
        dids: &[&str],
        auth: Option<(&str, &str)>,
    ) -> i64 {
        let mut settings = json!({
            "host": host.ip().to_string(), "port": host.port(), "transport": "udp",
            "register": false, "sources": sources, "dids": dids,
        });
        let mut body = json!({"kind": "sip_trunk", "name": format!("Trunk {}", host.port())});
        if let Some((user, pass)) = auth {
            settings["username"] = json!(user);
            body["credentials"] = json!({"password": pass});
        }
        body["settings"] = settings;
        let r = self
            .req(Method::POST, "/api/v1/channel-accounts")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "create trunk: {}", r.text().await.unwrap());
        let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        // Trunk changes are picked up by a poll (sip_trunk_poll_secs = 1).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        id
    }

    /// An API request as the company's admin.
    pub(crate) fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.s.req(method, path, &self.t.admin_token)
    }

    /// Posts `body` to `/webhooks/meta`, signed with `app_secret` as Meta signs; the status.
    pub(crate) async fn meta_webhook(
        &self,
        app_secret: &str,
        body: Vec<u8>,
    ) -> reqwest::StatusCode {
        let signature = masterz::messaging::signature::meta_header(app_secret.as_bytes(), &body);
        self.s
            .http
            .post(self.s.url("/webhooks/meta"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .expect("POST /webhooks/meta")
            .status()
    }

    /// Polls `GET path` as the company's admin (250 ms apart, 15 s at most) until `done` holds.
    pub(crate) async fn wait_api(
        &self,
        path: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let r = self.req(Method::GET, path).send().await.expect("GET");
            let status = r.status();
            let body = r.text().await.expect("GET body");
            last = serde_json::from_str(&body)
                .unwrap_or(json!({ "status": status.as_u16(), "body": body }));
            if status.is_success() && done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("GET {path}: {what} within 15 s; last answer:\n{last:#}");
    }

    async fn get_json(&self, path: &str) -> Value {
        let r = self.req(Method::GET, path).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// Every call of the company (`GET /api/v1/calls`, all pages).
    pub(crate) async fn calls(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/calls?limit=200&cursor={c}"),
                None => "/api/v1/calls?limit=200".to_owned(),
            };
            let v = self.get_json(&path).await;
            match v {
                Value::Array(items) => return items,
                Value::Object(ref o) => {
                    all.extend(o["items"].as_array().cloned().unwrap_or_default());
                    match o.get("next_cursor").and_then(Value::as_str) {
                        Some(c) => cursor = Some(c.to_owned()),
                        None => return all,
                    }
                }
                other => panic!("GET /api/v1/calls: not a list: {other}"),
            }
        }
    }

    /// One call (`GET /api/v1/calls/{id}`).
    pub(crate) async fn call(&self, id: i64) -> Value {
        self.get_json(&format!("/api/v1/calls/{id}")).await
    }

    /// Polls the calls until `done` holds for the list (at most `timeout`), then returns the
    /// list with each call's detail; panics with the last list otherwise.
    pub(crate) async fn wait_calls(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            let calls = self.calls().await;
            if done(&calls) {
                let mut detailed = Vec::new();
                for c in &calls {
                    detailed.push(self.call(c["id"].as_i64().expect("call id")).await);
                }
                return detailed;
            }
            last = calls;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("calls: {what} within {timeout:?}; last seen:\n{last:#?}");
    }

    /// The timeline of a customer.
    pub(crate) async fn timeline(&self, customer: i64) -> Vec<Value> {
        let v = self
            .get_json(&format!("/api/v1/customers/{customer}/timeline?limit=200"))
            .await;
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// `/metrics` samples whose name starts with `prefix`: (name with labels, value).
    pub(crate) async fn metrics(&self, prefix: &str) -> Vec<(String, f64)> {
        parse_metrics(&self.s.metrics().await, prefix)
    }

    /// Registers `agent` on a free port and starts `scenario` there as its phone (one call,
    /// 40 s at most), echoing the RTP it gets when `echo`, with `keys`.
    pub(crate) async fn phone(
        &self,
        agent: &Agent,
        echo: bool,
        scenario: &str,
        keys: &[(&str, &str)],
    ) -> SippProcess {
        let port = crate::peers::free_port();
        self.register(agent, port).await;
        let mut s = Sipp::scenario(scenario)
            .local_port(port)
            .service(&agent.sip_user)
            .media_port(free_media_port())
            .key("talk_ms", "600000")
            .calls(1)
            .timeout(Duration::from_secs(40));
        if echo {
            s = s.rtp_echo();
        }
        for (k, v) in keys {
            s = s.key(k, v);
        }
        s.spawn()
    }

    /// The trunk caller to [`DID`] from [`CALLER`], playing `pcap` and hanging up after
    /// `talk_ms` unless masterz does first (one call, 40 s at most).
    pub(crate) fn caller(&self, pcap: &str, talk_ms: u64, session_expires: &str) -> Sipp {
        Sipp::scenario("call_trunk_uac")
            .target(self.sip)
            .service(DID)
            .media_port(free_media_port())
            .key("caller", CALLER)
            .key("pcap", pcap)
            .key("talk_ms", &talk_ms.to_string())
            .key("session_expires", session_expires)
            .calls(1)
            .timeout(Duration::from_secs(40))
    }

    /// A trunk for [`DID`] taking calls from 127.0.0.1; returns its id.
    pub(crate) async fn local_trunk(&self) -> i64 {
        self.trunk(
            ([127, 0, 0, 1], crate::peers::free_port()).into(),
            &["127.0.0.1/32"],
            &[DID],
            None,
        )
        .await
    }

    /// Registers `agent` from SIPp on `port` (127.0.0.1) and leaves it registered.
    pub(crate) async fn register(&self, agent: &Agent, port: u16) -> SippRun {
        let run = Sipp::scenario("call_agent_register")
            .target(self.sip)
            .local_port(port)
            .service(&agent.sip_user)
            .auth(&agent.sip_user, &agent.password)
            .calls(1)
            .timeout(Duration::from_secs(15))
            .run_async()
            .await;
        run.assert_success();
        run
    }
}

/// Samples of a Prometheus text exposition whose name starts with `prefix`.
pub(crate) fn parse_metrics(text: &str, prefix: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The items of a list answer (a bare array, or a page's `items`).
pub(crate) fn items(v: &Value) -> Vec<Value> {
    v.as_array()
        .or_else(|| v["items"].as_array())
        .cloned()
        .unwrap_or_default()
}

/// A string field of a JSON value, or "" (for messages).
pub(crate) fn text(v: &Value, field: &str) -> String {
    match &v[field] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A number field of a JSON value, 0 when absent.
pub(crate) fn num(v: &Value, field: &str) -> i64 {
    v[field].as_i64().unwrap_or(0)
}

/// The kinds of a call's events.
pub(crate) fn event_kinds(call: &Value) -> Vec<String> {
    call["events"]
        .as_array()
        .map(|e| e.iter().map(|e| text(e, "kind")).collect())
        .unwrap_or_default()
}

/// A port for SIPp's media (`-mp`): SIPp binds it and the port two above (video).
pub(crate) fn free_media_port() -> u16 {
    for _ in 0..100 {
        let p = crate::peers::free_port();
        if p < 65000
            && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", p + 2)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", p + 3)).is_ok()
        {
            return p;
        }
    }
    panic!("no free media port quadruple on 127.0.0.1");
}

/// The kernel's view of the UDP socket bound to 127.0.0.1:`port`: (bytes waiting in its
/// receive queue, datagrams dropped). Shows that packets reached a socket nobody reads, such
/// as the media socket of a SIPp caller that plays a pcap and does not echo.
pub(crate) fn udp_socket_stats(port: u16) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let suffix = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if !cols.get(1)?.ends_with(&suffix) {
            return None;
        }
        let rx = u64::from_str_radix(cols.get(4)?.split(':').nth(1)?, 16).ok()?;
        let drops = cols.last()?.parse().ok()?;
        Some((rx, drops))
    })
}
