//! Telephony: the SIP transports, the core task that drives the sans-IO `masterz-sip` endpoint,
//! the registrar for softphones, registration to trunks, and call control (the B2BUA, in
//! `calls/`), which runs inside the core task and drives the media engine.
//!
//! ```text
//!  UDP/TCP/TLS/WS tasks ──Inbound──▶ core (owns Endpoint) ──Incoming──▶ registrar, … (async, DB)
//!          ▲                            │   ▲                                  │
//!          └──────── Transports::send ◀─┘   └─────────── Command ◀─────────────┘
//! ```

mod calls;
mod core;
mod registrar;
mod transport;
mod trunks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use masterz_sip::auth::{Algorithm, NonceIssuer};
use masterz_sip::endpoint::{Endpoint, EndpointConfig, ServerTx, response_to};
use masterz_sip::ident::{RandomSource, Tag};
use masterz_sip::message::{Limits, Message, StatusCode, StdHeader, Text};
use masterz_sip::transport::{Peer, Transport};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use crate::auth::RateLimiter;
use crate::http::AppState;

pub use self::calls::{AgentCommand, AgentRequest, CallMetrics, CallStartError, ClickTarget};
pub(crate) use self::core::{ClientEvent, Command};
use self::core::{Core, Inbound};
pub(crate) use self::transport::Transports;

/// Randomness from the operating system, for tags, branches, nonces and Call-IDs.
pub(crate) struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        if getrandom::fill(buf).is_err() {
            // Without an OS random source nothing here can be trusted; stop rather than send
            // predictable nonces.
            panic!("the operating system's random source failed");
        }
    }
}

/// A request for a transaction user.
pub(crate) struct Incoming {
    pub(crate) tx: ServerTx,
    pub(crate) request: Message,
    pub(crate) from: Peer,
}

/// SIP counters for `/metrics`.
#[derive(Default)]
pub struct SipMetrics {
    /// Messages received (datagrams and framed stream messages).
    pub received: AtomicU64,
    /// Messages handed to the transports.
    pub sent: AtomicU64,
    /// Datagrams dropped because the core was saturated.
    pub dropped: AtomicU64,
    /// Sends that failed (no connection, socket buffer full).
    pub send_errors: AtomicU64,
    /// Malformed messages.
    pub malformed: AtomicU64,
    /// Successful REGISTERs.
    pub registrations: AtomicU64,
    /// REGISTERs with wrong credentials.
    pub register_auth_failures: AtomicU64,
    /// REGISTERs refused by the failure rate limit.
    pub register_rate_limited: AtomicU64,
}

/// The registrar's settings, from [`crate::config::Config`].
pub(crate) struct RegistrarSettings {
    pub(crate) min_expires: u32,
    pub(crate) max_expires: u32,
    pub(crate) default_expires: u32,
}

/// What the transaction users share.
pub(crate) struct SipContext {
    pub(crate) state: Arc<AppState>,
    pub(crate) realm: String,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) config: RegistrarSettings,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) metrics: Arc<SipMetrics>,
    pub(crate) auth_failures_by_ip: RateLimiter,
    pub(crate) auth_failures_by_user: RateLimiter,
    pub(crate) unauthenticated_by_ip: RateLimiter,
    nonces: Mutex<NonceIssuer>,
    window: Duration,
    pub(crate) server_header: String,
    /// Where this server is reached, per transport: `host:port` for Via and Contact.
    pub(crate) local: Vec<(Transport, String)>,
}

pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::new(code).unwrap_or_else(|| unreachable!("a constant status code in range"))
}

impl SipContext {
    pub(crate) fn nonces(&self) -> MutexGuard<'_, NonceIssuer> {
        self.nonces.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn window_secs(&self) -> u64 {
        self.window.as_secs()
    }

    /// A response to `request` with a To tag (for final responses, §8.2.6.2) and our Server
    /// header.
    pub(crate) fn response(&self, request: &Message, code: StatusCode) -> Message {
        let tag = Tag::generate(&mut OsRandom);
        let mut r = response_to(request, code, Some(tag.as_str()));
        r.headers
            .push(StdHeader::Server, self.server_header.clone());
        r
    }

    pub(crate) fn response_with_reason(
        &self,
        request: &Message,
        code: StatusCode,
        reason: &str,
    ) -> Message {
        let mut r = self.response(request, code);
        if let masterz_sip::message::StartLine::Response { reason: phrase, .. } = &mut r.start {
            *phrase = Text::from(reason);
        }
        r
    }

    pub(crate) fn bad_request(&self, request: &Message, reason: &str) -> Message {
        // A reason phrase is one line (§25.1); ours come from header names and fixed texts.
        let reason: String = reason.chars().filter(|c| !c.is_control()).collect();
        self.response_with_reason(request, status(400), &reason)
    }

    pub(crate) fn server_error(&self, request: &Message, error: &dyn std::fmt::Display) -> Message {
        tracing::error!(%error, "SIP request failed");
        let mut r = self.response(request, status(500));
        r.headers.push(StdHeader::RetryAfter, "5");
        r
    }

    /// A 401 with one fresh challenge per configured algorithm (RFC 8760 §2.4).
    pub(crate) fn challenge(&self, request: &Message, stale: bool) -> Message {
        let mut r = self.response(request, status(401));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let nonces = self.nonces();
        for algorithm in &self.algorithms {
            let c = nonces.challenge(&mut OsRandom, &self.realm, *algorithm, stale, now);
            r.headers.push(StdHeader::WwwAuthenticate, c.to_string());
        }
        r
    }

    pub(crate) fn respond(&self, tx: ServerTx, response: Message) {
        let _ = self.commands.send(Command::Respond { tx, response });
    }

    /// `host:port` this server puts in Via and Contact for `transport`.
    pub(crate) fn local_for(&self, transport: Transport) -> Option<&str> {
        self.local
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, s)| s.as_str())
    }
}

/// Handles to the running SIP service.
pub struct Telephony {
    /// The UDP (and TCP) address SIP listens on.
    pub sip_addr: SocketAddr,
    /// The TLS address, when configured.
    pub sip_tls_addr: Option<SocketAddr>,
    pub(crate) transports: Arc<Transports>,
    /// Counters.
    pub metrics: Arc<SipMetrics>,
    pub(crate) trunks: Arc<trunks::TrunkStates>,
    /// Call counters.
    pub call_metrics: Arc<CallMetrics>,
    /// The RTP media engine.
    pub media: Arc<crate::media_engine::MediaEngine>,
    /// The call recorder.
    pub recorder: Arc<crate::recording::Recorder>,
    call_inputs: mpsc::UnboundedSender<calls::CallInput>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Telephony {
    /// Stops every SIP task.
    pub fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Click-to-call: rings `agent`'s softphone, then `target`; returns the call's id.
    pub async fn click_to_call(
        &self,
        company: crate::domain::CompanyId,
        agent: crate::domain::UserId,
        target: ClickTarget,
    ) -> Result<i64, CallStartError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.call_inputs
            .send(calls::CallInput::Click {
                company,
                agent,
                target,
                reply,
            })
            .map_err(|_| CallStartError::Unavailable("call control is not running".into()))?;
        rx.await
            .map_err(|_| CallStartError::Unavailable("call control stopped".into()))?
    }

    /// Hands a command from an agent's browser tab to call control.
    pub fn agent_command(&self, req: calls::AgentRequest) -> bool {
        self.call_inputs.send(calls::CallInput::Agent(req)).is_ok()
    }

    /// Serves a SIP-over-WebSocket connection accepted by the HTTP server.
    pub(crate) async fn websocket(
        self: Arc<Self>,
        socket: axum::extract::ws::WebSocket,
        addr: SocketAddr,
        secure: bool,
    ) {
        self.transports
            .clone()
            .run_websocket(socket, addr, secure)
            .await;
    }

    /// The metrics in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let m = &self.metrics;
        for (name, help, v) in [
            (
                "masterz_sip_received_total",
                "SIP messages received.",
                &m.received,
            ),
            ("masterz_sip_sent_total", "SIP messages sent.", &m.sent),
            (
                "masterz_sip_dropped_total",
                "SIP datagrams dropped under overload.",
                &m.dropped,
            ),
            (
                "masterz_sip_send_errors_total",
                "SIP sends that failed.",
                &m.send_errors,
            ),
            (
                "masterz_sip_malformed_total",
                "Malformed SIP messages.",
                &m.malformed,
            ),
            (
                "masterz_sip_registrations_total",
                "Successful REGISTERs.",
                &m.registrations,
            ),
            (
                "masterz_sip_register_auth_failures_total",
                "REGISTERs with wrong credentials.",
                &m.register_auth_failures,
            ),
            (
                "masterz_sip_register_rate_limited_total",
                "REGISTERs refused by the failure limit.",
                &m.register_rate_limited,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP masterz_sip_connections Open SIP stream connections.\n# TYPE masterz_sip_connections gauge\nmasterz_sip_connections {}",
            self.transports.connections()
        );
        self.trunks.render_metrics(out);
        self.call_metrics.render(out);
        self.media.render_metrics(out);
        self.recorder.render_metrics(out);
    }
}

/// The address other parties should use to reach `listen`: `sip_public_host` when set, else the
/// listening IP, else (listening on every interface) the address of the default route.
fn advertised_host(configured: Option<&str>, listen: SocketAddr) -> String {
    if let Some(h) = configured.filter(|h| !h.is_empty()) {
        return h.to_owned();
    }
    let ip = if listen.ip().is_unspecified() {
        // Connecting a UDP socket sends nothing; it only asks the kernel for the route.
        std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
            .and_then(|s| s.local_addr())
            .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |a| a.ip())
    } else {
        listen.ip()
    };
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }
}

/// Binds the SIP sockets and starts the core, the registrar, the trunk registrations and the
/// housekeeping of bindings.
pub async fn start(state: Arc<AppState>) -> anyhow::Result<Telephony> {
    let config = &state.config;
    let (udp, tcp) = bind_udp_and_tcp(config.sip_listen).await?;
    let sip_addr = udp.local_addr()?;
    let tls = match config.sip_tls_listen {
        Some(addr) => {
            let Some((cert, key)) = config.sip_tls_files() else {
                anyhow::bail!(
                    "sip_tls_listen needs sip_tls_cert and sip_tls_key (or tls_cert and tls_key)"
                );
            };
            let server = crate::app::rustls_server_config(cert, key, &[])?;
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for SIP on TLS {addr}"))?;
            Some((listener, tokio_rustls::TlsAcceptor::from(Arc::new(server))))
        }
        None => None,
    };
    let sip_tls_addr = match &tls {
        Some((l, _)) => Some(l.local_addr()?),
        None => None,
    };

    let host = advertised_host(config.sip_public_host.as_deref(), sip_addr);
    let mut local = vec![
        (Transport::Udp, format!("{host}:{}", sip_addr.port())),
        (Transport::Tcp, format!("{host}:{}", sip_addr.port())),
    ];
    if let Some(a) = sip_tls_addr {
        local.push((Transport::Tls, format!("{host}:{}", a.port())));
    }
    // WebSocket clients cannot be reached at an address of theirs; RFC 7118 §5 suggests an
    // invalid domain in Via.
    local.push((Transport::Ws, "masterz.invalid".to_owned()));
    local.push((Transport::Wss, "masterz.invalid".to_owned()));

    let limits = Limits::default();
    let t1 = Duration::from_millis(config.sip_t1_ms);
    let endpoint = Endpoint::new(
        EndpointConfig {
            t1,
            t2: Duration::from_secs(4).max(t1),
            t4: Duration::from_secs(5),
            limits,
            user_agent: Some(server_header()),
            local: local.clone(),
        },
        Box::new(OsRandom),
    );
    let metrics = Arc::new(SipMetrics::default());
    let (inbound_tx, inbound_rx) = mpsc::channel::<Inbound>(16_384);
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let (requests_tx, mut requests_rx) = mpsc::unbounded_channel::<Incoming>();
    let udp = Arc::new(udp);
    let transports = Transports::new(udp, inbound_tx, limits, metrics.clone());

    let mut key = [0u8; 32];
    OsRandom.fill(&mut key);
    let window = Duration::from_secs(config.login_window_secs);
    let ctx = Arc::new(SipContext {
        state: state.clone(),
        realm: config.sip_realm.clone(),
        algorithms: registrar::parse_algorithms(&config.sip_digest_algorithms)
            .map_err(anyhow::Error::msg)?,
        config: RegistrarSettings {
            min_expires: config.sip_min_expires,
            max_expires: config.sip_max_expires,
            default_expires: 3600,
        },
        commands: commands_tx,
        metrics: metrics.clone(),
        auth_failures_by_ip: RateLimiter::new(config.sip_max_auth_failures, window),
        auth_failures_by_user: RateLimiter::new(config.sip_max_auth_failures, window),
        unauthenticated_by_ip: RateLimiter::new(config.sip_max_unauthenticated, window),
        nonces: Mutex::new(NonceIssuer::new(key)),
        window,
        server_header: server_header(),
        local,
    });

    let media_ip = config.rtp_listen_ip.unwrap_or(sip_addr.ip());
    let public_ip = config
        .rtp_public_ip
        .or_else(|| host.parse().ok())
        .unwrap_or(media_ip);
    let public_ip = if public_ip.is_unspecified() {
        advertised_host(None, SocketAddr::new(public_ip, 0))
            .parse()
            .unwrap_or(public_ip)
    } else {
        public_ip
    };
    let media = crate::media_engine::MediaEngine::new(crate::media_engine::MediaConfig {
        ports: config.rtp_ports,
        bind_ip: media_ip,
        public_ip,
        media_timeout: Duration::from_secs(config.media_timeout_secs.max(1)),
        webrtc_public_ip: config.webrtc_public_ip.unwrap_or(public_ip),
    });
    // Calls and recordings a crash left open are closed before any new call can start.
    crate::recording::recover(&state.db, &config.data_dir).await?;
    let recorder = crate::recording::Recorder::start(
        state.db.clone(),
        &config.data_dir,
        config.recording_queue_frames,
        Duration::from_secs(config.recording_retention_check_secs.max(1)),
    )?;
    let (call_inputs_tx, call_inputs_rx) = mpsc::unbounded_channel();
    let (media_events_tx, media_events_rx) = mpsc::unbounded_channel();
    let call_metrics = Arc::new(CallMetrics::default());
    let call_control = calls::CallControl::new(
        ctx.clone(),
        media.clone(),
        recorder.clone(),
        call_inputs_tx.clone(),
        media_events_tx,
        calls::CallSettings {
            ring_timeout: Duration::from_secs(config.call_ring_timeout_secs.max(1)),
            no_answer_status: config.call_no_answer_status,
            max_duration: Duration::from_secs(config.call_max_duration_secs.max(1)),
            session_expires: config.sip_session_expires_secs.max(config.sip_min_se_secs),
            min_se: config.sip_min_se_secs.max(1),
            t1,
            t2: Duration::from_secs(4).max(t1),
            webrtc_timeout: Duration::from_secs(config.webrtc_connect_timeout_secs.max(1)),
        },
        call_metrics.clone(),
    );

    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(calls::refresh_trunks(
        state.clone(),
        call_inputs_tx.clone(),
        Duration::from_secs(config.sip_trunk_poll_secs.max(1)),
    )));
    let core = Core {
        endpoint,
        inbound: inbound_rx,
        commands: commands_rx,
        requests: requests_tx,
        transports: transports.clone(),
        metrics: metrics.clone(),
        calls: call_control,
        call_inputs: call_inputs_rx,
        media_events: media_events_rx,
    };
    tasks.push(tokio::spawn(core.run()));
    tasks.push(tokio::spawn(transports.clone().run_udp()));
    tasks.push(tokio::spawn(transports.clone().run_listener(tcp, None)));
    if let Some((listener, acceptor)) = tls {
        tasks.push(tokio::spawn(
            transports.clone().run_listener(listener, Some(acceptor)),
        ));
    }
    let dispatch_ctx = ctx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(incoming) = requests_rx.recv().await {
            tokio::spawn(registrar::handle(dispatch_ctx.clone(), incoming));
        }
    }));
    tasks.push(tokio::spawn(expire_bindings(state.clone())));
    let trunk_states = Arc::new(trunks::TrunkStates::default());
    tasks.push(tokio::spawn(trunks::supervise(
        ctx.clone(),
        trunk_states.clone(),
        Duration::from_secs(config.sip_trunk_poll_secs.max(1)),
    )));
    tracing::info!(%sip_addr, tls = ?sip_tls_addr, "SIP listening (UDP, TCP)");
    Ok(Telephony {
        sip_addr,
        sip_tls_addr,
        transports,
        metrics,
        trunks: trunk_states,
        call_metrics,
        media,
        recorder,
        call_inputs: call_inputs_tx,
        tasks,
    })
}

/// Binds UDP and TCP on one port (§18: both on 5060). When the system picks the port (port 0),
/// the UDP port it picked may be taken for TCP by someone else: then another one is tried.
async fn bind_udp_and_tcp(listen: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let mut attempt = 0;
    loop {
        let udp = UdpSocket::bind(listen)
            .await
            .with_context(|| format!("cannot listen for SIP on UDP {listen}"))?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e)
                if listen.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < 20 =>
            {
                attempt += 1;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot listen for SIP on TCP {addr}"));
            }
        }
    }
}

fn server_header() -> String {
    format!("masterz/{}", env!("CARGO_PKG_VERSION"))
}

/// Deletes expired bindings once a minute, so the API and routing never see them and the table
/// stays small.
async fn expire_bindings(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let now = crate::domain::Timestamp::now().0;
        let deleted = async {
            let mut conn = state.db.conn().await?;
            crate::store::sip::delete_expired(&mut conn.ex(), now).await
        }
        .await;
        match deleted {
            Ok(n) if n > 0 => tracing::debug!(bindings = n, "expired SIP bindings removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "expiring SIP bindings failed"),
        }
    }
}
