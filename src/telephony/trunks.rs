//! Registration to SIP trunks (RFC 3261 §10.2): for every `sip_trunk` channel account with
//! `register` on, a task keeps a registration alive at the provider — answering its 401/407,
//! refreshing before expiry, backing off exponentially with jitter after a failure. A supervisor
//! polls the trunk list, so a trunk created, changed or deleted (through the API or the CLI of
//! another process) takes effect without a restart.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use masterz_sip::auth::{ChallengeKind, ClientAuth, DigestError};
use masterz_sip::headers::{Contact, Expires, MinExpires};
use masterz_sip::ident::{CallId, RandomSource, Tag};
use masterz_sip::message::{Message, Method, StdHeader};
use masterz_sip::transport::{Peer, Transport};
use tokio::sync::mpsc;

use super::{ClientEvent, Command, OsRandom, SipContext};
use crate::domain::sip::{TrunkState, TrunkTransport};
use crate::domain::{CompanyId, Timestamp};
use crate::store::trunks::{self, TrunkConfig, TrunkStatus};

/// The first retry delay after a failure; doubled per further failure up to [`BACKOFF_MAX`].
const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How long one REGISTER may take before the attempt counts as failed (beyond Timer F).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(40);

/// The live state of each registering trunk, for `/metrics`.
#[derive(Default)]
pub(crate) struct TrunkStates {
    states: Mutex<BTreeMap<i64, TrunkState>>,
}

impl TrunkStates {
    fn set(&self, id: i64, state: Option<TrunkState>) {
        let mut s = self.states.lock().unwrap_or_else(|e| e.into_inner());
        match state {
            Some(state) => s.insert(id, state),
            None => s.remove(&id),
        };
    }

    pub(crate) fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str("# HELP masterz_trunk_registered Whether a trunk's registration is up (1) or not (0).\n");
        out.push_str("# TYPE masterz_trunk_registered gauge\n");
        for (id, state) in self.states.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let up = u8::from(*state == TrunkState::Registered);
            let _ = writeln!(
                out,
                "masterz_trunk_registered{{trunk=\"{id}\",state=\"{}\"}} {up}",
                state.as_str()
            );
        }
    }
}

/// What makes a running registration obsolete: any change of the trunk row.
fn fingerprint(t: &TrunkConfig) -> (i64, String) {
    (t.updated_at.0, format!("{:?}", t.settings))
}

/// A registration task that ends with its handle: when the supervisor is stopped (shutdown),
/// dropping its map stops every registration with it.
struct Registration(tokio::task::JoinHandle<()>);

impl Drop for Registration {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps one registration task per registering trunk, restarting it when the trunk changes.
pub(crate) async fn supervise(ctx: Arc<SipContext>, states: Arc<TrunkStates>, poll: Duration) {
    let mut running: HashMap<i64, ((i64, String), Registration)> = HashMap::new();
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let loaded = async {
            let mut conn = ctx.state.db.conn().await?;
            trunks::all_trunks(&mut conn.ex(), &ctx.state.keyring).await
        }
        .await;
        let all = match loaded {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "loading trunks failed");
                continue;
            }
        };
        let mut wanted = HashMap::new();
        for trunk in all {
            if trunk.settings.register {
                wanted.insert(trunk.id, trunk);
            }
        }
        running.retain(|id, (print, _task)| {
            // A dropped task is aborted (see `Registration`).
            let keep = wanted.get(id).is_some_and(|t| fingerprint(t) == *print);
            if !keep {
                states.set(*id, None);
            }
            keep
        });
        for (id, trunk) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            let print = fingerprint(&trunk);
            states.set(id, Some(TrunkState::Registering));
            let task = tokio::spawn(keep_registered(ctx.clone(), states.clone(), trunk));
            running.insert(id, (print, Registration(task)));
        }
    }
}

async fn record(
    ctx: &SipContext,
    states: &TrunkStates,
    company: CompanyId,
    id: i64,
    status: TrunkStatus,
) {
    states.set(id, Some(status.state));
    let saved = async {
        let mut conn = ctx.state.db.conn().await?;
        trunks::set_trunk_status(&mut conn.ex(), company, id, &status).await
    }
    .await;
    if let Err(e) = saved {
        tracing::warn!(trunk = id, error = %e, "recording trunk status failed");
    }
}

/// The delay before retry number `failures` (1-based): exponential, capped, with ±50 % jitter so
/// that many trunks failing together do not retry in lockstep.
pub(crate) fn backoff(failures: u32, random: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1 << failures.saturating_sub(1).min(10));
    let capped = exp.min(BACKOFF_MAX);
    let jitter = f64::from(random % 1000) / 1000.0; // 0 ≤ jitter < 1
    capped.mul_f64(0.5 + jitter)
}

/// When to refresh a registration granted for `expires` seconds: comfortably before it lapses.
pub(crate) fn refresh_after(expires: u32) -> Duration {
    let secs = u64::from(expires);
    Duration::from_millis(if secs > 120 {
        (secs - 30) * 1000
    } else {
        secs * 800
    })
    .max(Duration::from_secs(1))
}

async fn keep_registered(ctx: Arc<SipContext>, states: Arc<TrunkStates>, trunk: TrunkConfig) {
    let (id, company) = (trunk.id, trunk.company_id);
    let mut failures = 0u32;
    let mut session = Session::new(&ctx, &trunk);
    loop {
        let outcome = match resolve(&trunk).await {
            Ok(peer) => session.register(&ctx, peer).await,
            Err(reason) => Err(reason),
        };
        let now = Timestamp::now().0;
        let wait = match outcome {
            Ok(granted) => {
                failures = 0;
                let wait = refresh_after(granted);
                record(
                    &ctx,
                    &states,
                    company,
                    id,
                    TrunkStatus {
                        state: TrunkState::Registered,
                        reason: None,
                        registered_until: Some(now + i64::from(granted) * 1000),
                        next_attempt_at: Some(now + wait.as_millis() as i64),
                    },
                )
                .await;
                tracing::info!(trunk = id, expires = granted, "trunk registered");
                wait
            }
            Err(reason) => {
                failures = failures.saturating_add(1);
                let mut r = [0u8; 4];
                OsRandom.fill(&mut r);
                let wait = backoff(failures, u32::from_le_bytes(r));
                tracing::warn!(trunk = id, %reason, retry_in = ?wait, "trunk registration failed");
                record(
                    &ctx,
                    &states,
                    company,
                    id,
                    TrunkStatus {
                        state: TrunkState::Failed,
                        reason: Some(reason),
                        registered_until: None,
                        next_attempt_at: Some(now + wait.as_millis() as i64),
                    },
                )
                .await;
                // A new attempt starts a fresh registration (new Call-ID), as after a restart.
                session = Session::new(&ctx, &trunk);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Where to send the REGISTER: an IP literal as is; a name with a port by A/AAAA; a name
/// without a port by DNS SRV (`_sip._udp`, `_sip._tcp`, `_sips._tcp`, RFC 3263 §4.2), then
/// A/AAAA on the default port.
pub(crate) async fn resolve(trunk: &TrunkConfig) -> Result<Peer, String> {
    let s = &trunk.settings;
    let transport = match s.transport {
        TrunkTransport::Udp => Transport::Udp,
        TrunkTransport::Tcp => Transport::Tcp,
        TrunkTransport::Tls => {
            return Err("TLS to trunks is not supported yet; use udp or tcp".into());
        }
    };
    let host = s.host.trim_start_matches('[').trim_end_matches(']');
    let default_port = 5060;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(peer(
            transport,
            SocketAddr::new(ip, s.port.unwrap_or(default_port)),
        ));
    }
    let resolver = hickory_resolver::Resolver::builder_tokio()
        .map_err(|e| format!("DNS resolver unavailable: {e}"))?
        .build()
        .map_err(|e| format!("DNS resolver unavailable: {e}"))?;
    let (name, port) = match s.port {
        Some(port) => (host.to_owned(), port),
        None => {
            let service = match transport {
                Transport::Tcp => "_sip._tcp",
                _ => "_sip._udp",
            };
            match resolver.srv_lookup(format!("{service}.{host}.")).await {
                Ok(srv) => {
                    let mut records: Vec<_> = srv
                        .answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            hickory_resolver::proto::rr::RData::SRV(srv) => Some(srv.clone()),
                            _ => None,
                        })
                        .collect();
                    records.sort_by_key(|r| (r.priority, std::cmp::Reverse(r.weight)));
                    match records.first() {
                        Some(r) => (r.target.to_utf8().trim_end_matches('.').to_owned(), r.port),
                        None => (host.to_owned(), default_port),
                    }
                }
                Err(_) => (host.to_owned(), default_port),
            }
        }
    };
    let ips = resolver
        .lookup_ip(format!("{name}."))
        .await
        .map_err(|e| format!("cannot resolve {name}: {e}"))?;
    let ip = ips
        .iter()
        .next()
        .ok_or_else(|| format!("no address for {name}"))?;
    Ok(peer(transport, SocketAddr::new(ip, port)))
}

fn peer(transport: Transport, addr: SocketAddr) -> Peer {
    Peer {
        transport,
        addr,
        connection: None,
    }
}

/// One registration: its Call-ID, From tag and CSeq stay for its refreshes (§10.2.4).
struct Session {
    call_id: CallId,
    from_tag: Tag,
    cseq: u32,
    auth: ClientAuth,
    username: String,
    host: String,
    port: Option<u16>,
    expires: u32,
}

impl Session {
    fn new(ctx: &SipContext, trunk: &TrunkConfig) -> Self {
        let s = &trunk.settings;
        let username = s.username.clone().unwrap_or_default();
        let password = trunk
            .password
            .as_ref()
            .map(|p| p.expose().clone())
            .unwrap_or_default();
        let local_host = ctx.local_for(Transport::Udp).unwrap_or("masterz.invalid");
        let host_only = local_host.rsplit_once(':').map_or(local_host, |(h, _)| h);
        Self {
            call_id: CallId::generate(&mut OsRandom, host_only),
            from_tag: Tag::generate(&mut OsRandom),
            cseq: 0,
            auth: ClientAuth::new(username.clone(), password),
            username,
            host: s.host.clone(),
            port: s.port,
            expires: s.expires,
        }
    }

    fn request(&mut self, ctx: &SipContext, transport: Transport) -> Message {
        self.cseq += 1;
        let target = match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        };
        let uri = format!("sip:{target}");
        let aor = format!("sip:{}@{}", self.username, self.host);
        let local = ctx.local_for(transport).unwrap_or("masterz.invalid");
        let mut m = Message::request(Method::Register, uri.clone());
        let h = &mut m.headers;
        h.push(StdHeader::From, format!("<{aor}>;tag={}", self.from_tag));
        h.push(StdHeader::To, format!("<{aor}>"));
        h.push(StdHeader::CallId, self.call_id.to_string());
        h.push(StdHeader::CSeq, format!("{} REGISTER", self.cseq));
        let transport_param = match transport {
            Transport::Tcp => ";transport=tcp",
            _ => "",
        };
        h.push(
            StdHeader::Contact,
            format!("<sip:{}@{local}{transport_param}>", self.username),
        );
        h.push(StdHeader::Expires, self.expires.to_string());
        h.push(StdHeader::Allow, super::registrar::ALLOW);
        h.push(StdHeader::UserAgent, super::server_header());
        for (kind, creds) in self.auth.authorize(&mut OsRandom, "REGISTER", &uri) {
            h.push(kind.answer_header(), creds.to_string());
        }
        m.set_body(bytes::Bytes::new(), None);
        m
    }

    /// One REGISTER exchange, answering up to two challenges. `Ok(seconds granted)`.
    async fn register(&mut self, ctx: &SipContext, to: Peer) -> Result<u32, String> {
        for _ in 0..3 {
            let request = self.request(ctx, to.transport);
            let response = send(ctx, request, to).await?;
            let code = response.status().map_or(0, |s| s.as_u16());
            match code {
                200..=299 => return Ok(self.granted(&response)),
                401 | 407 => {
                    let (kind, name) = if code == 401 {
                        (ChallengeKind::Www, StdHeader::WwwAuthenticate)
                    } else {
                        (ChallengeKind::Proxy, StdHeader::ProxyAuthenticate)
                    };
                    let values = response.headers.get_all(name).map(|v| v.as_str());
                    match self.auth.handle_challenges(kind, values) {
                        Ok(()) => continue,
                        Err(DigestError::Rejected(_)) => {
                            return Err(
                                "authentication rejected (wrong username or password)".into()
                            );
                        }
                        Err(e) => return Err(format!("unusable challenge: {e}")),
                    }
                }
                423 => {
                    // §10.2.8: retry with at least Min-Expires.
                    match response.typed::<MinExpires>() {
                        Ok(Some(m)) if m.0 > self.expires => self.expires = m.0,
                        _ => {
                            return Err(
                                "423 Interval Too Brief without a usable Min-Expires".into()
                            );
                        }
                    }
                }
                _ => {
                    let reason = match &response.start {
                        masterz_sip::message::StartLine::Response { reason, .. } => {
                            reason.to_string()
                        }
                        _ => String::new(),
                    };
                    return Err(format!("{code} {reason}").trim().to_owned());
                }
            }
        }
        Err("too many challenges".into())
    }

    /// The expiry the registrar granted: our Contact's `expires`, else Expires, else what we
    /// asked for (§10.2.4).
    fn granted(&self, response: &Message) -> u32 {
        let mine = format!("sip:{}@", self.username);
        let from_contact = response
            .typed_all::<Contact>()
            .filter_map(Result::ok)
            .find_map(|c| {
                let addr = c.addr()?;
                addr.uri
                    .starts_with(&mine)
                    .then(|| c.expires())
                    .flatten()?
                    .ok()
            });
        from_contact
            .or_else(|| response.typed::<Expires>().ok().flatten().map(|e| e.0))
            .unwrap_or(self.expires)
    }
}

/// Sends a request through the core and waits for its final response.
async fn send(ctx: &SipContext, request: Message, to: Peer) -> Result<Message, String> {
    let (reply, mut events) = mpsc::unbounded_channel();
    ctx.commands
        .send(Command::Request { request, to, reply })
        .map_err(|_| "SIP core stopped".to_owned())?;
    let wait = async {
        while let Some(event) = events.recv().await {
            match event {
                ClientEvent::Response(r) if r.status().is_some_and(|s| s.is_final()) => {
                    return Ok(r);
                }
                ClientEvent::Response(_) => {}
                ClientEvent::Timeout => return Err("no answer (timeout)".to_owned()),
            }
        }
        Err("SIP core stopped".to_owned())
    };
    tokio::time::timeout(ATTEMPT_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| Err("no answer (timeout)".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        assert_eq!(backoff(1, 500), Duration::from_secs(5));
        assert_eq!(backoff(2, 500), Duration::from_secs(10));
        assert_eq!(backoff(20, 500), BACKOFF_MAX);
        assert_eq!(backoff(1, 0), Duration::from_millis(2500));
        assert!(backoff(1, 999) < Duration::from_millis(7500));
    }

    #[test]
    fn refresh_before_expiry() {
        assert_eq!(refresh_after(3600), Duration::from_secs(3570));
        assert_eq!(refresh_after(10), Duration::from_secs(8));
        assert_eq!(refresh_after(0), Duration::from_secs(1));
    }
}
