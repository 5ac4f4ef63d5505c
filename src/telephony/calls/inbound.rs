//! Requests that reach call control: a new INVITE (from a trunk, or from an agent who must
//! authenticate), and the requests within a call's dialogs.

use std::sync::Arc;
use std::time::Instant;

use masterz_media::codec::Codec;
use masterz_media::sdp::{self, LocalMedia, SdpError, SessionDescription};
use masterz_sip::auth::{Credentials, VerifyError};
use masterz_sip::endpoint::{Endpoint, ServerTx};
use masterz_sip::headers::{From, SessionExpires, To};
use masterz_sip::message::{Message, Method, StdHeader};
use masterz_sip::transport::Peer;

use super::build::{self, reply, reply_reason};
use super::leg::{Leg, Party};
use super::route::{self, CallDirection, InboundRequest, Reject, Routed};
use super::{Call, CallControl, CallInput, CallKey, Phase, has_to_tag};
use crate::media_engine::Side;
use crate::store;

/// Who an agent's INVITE authenticated as, and what it dialled.
pub(crate) struct AgentRequest {
    pub(crate) credentials: Credentials,
    pub(crate) method: String,
    pub(crate) uri: String,
    pub(crate) dialled: String,
    pub(crate) from_uri: String,
    pub(crate) to_uri: String,
    pub(crate) sip_call_id: String,
    pub(crate) source_ip: String,
}

impl CallControl {
    pub(super) fn on_request(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        tx: ServerTx,
        request: Message,
        from: Peer,
    ) {
        if has_to_tag(&request) {
            return self.in_dialog(ep, now, tx, request, from);
        }
        match request.method() {
            Some(Method::Invite) => self.on_invite(ep, now, tx, request, from),
            Some(Method::Bye | Method::Update | Method::Info | Method::Refer | Method::Notify) => {
                // Outside any dialog there is nothing for them to act on (§12.2.2).
                let r = reply(&self.ctx, &request, 481, None);
                let _ = ep.send_response(now, tx, r);
            }
            _ => {
                let mut r = reply(&self.ctx, &request, 405, None);
                r.headers.push(StdHeader::Allow, build::ALLOW);
                let _ = ep.send_response(now, tx, r);
            }
        }
    }

    fn respond(&self, ep: &mut Endpoint, now: Instant, tx: ServerTx, r: Message) {
        if let Err(e) = ep.send_response(now, tx, r) {
            tracing::debug!(error = %e, "response for a finished transaction dropped");
        }
    }

    fn on_invite(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        tx: ServerTx,
        request: Message,
        from: Peer,
    ) {
        let ctx = self.ctx.clone();
        let user = request
            .request_uri()
            .and_then(|u| masterz_sip::uri::Uri::parse(u).ok())
            .and_then(|u| u.user_unescaped())
            .unwrap_or_default();
        let ip = from.addr.ip();
        let trunk = self
            .trunks
            .iter()
            .find(|t| t.is_source(ip) && t.did(&user).is_some())
            .cloned();
        if trunk.is_none() && self.trunks.iter().any(|t| t.did(&user).is_some()) {
            // A call to one of our numbers from an address that is none of the trunk's.
            self.metrics
                .rejected_source
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(source = %crate::pii::Pii(ip.to_string()), "INVITE for a DID from an unknown source refused");
            let r = reply_reason(&ctx, &request, 403, None, "Forbidden (not a known trunk)");
            return self.respond(ep, now, tx, r);
        }

        // The offer: refused before anything is created when nothing in it is usable.
        let offer = match parse_offer(&request) {
            Ok(o) => o,
            Err(r) => {
                self.metrics
                    .rejected_media
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let r = reply_reason(&ctx, &request, 488, None, r);
                return self.respond(ep, now, tx, r);
            }
        };
        let a_remote = match sdp::inspect_offer(&offer, &Codec::ALL) {
            Ok(n) => n,
            Err(e) => {
                self.metrics
                    .rejected_media
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let reason = match e {
                    SdpError::NoCommonCodec => "Not Acceptable Here (no common codec)",
                    _ => "Not Acceptable Here (unusable SDP)",
                };
                let mut r = reply_reason(&ctx, &request, 488, None, reason);
                r.headers.push(StdHeader::Accept, build::SDP);
                return self.respond(ep, now, tx, r);
            }
        };
        if let Some(r) = self.check_session_interval(&request) {
            return self.respond(ep, now, tx, r);
        }

        let sip_call_id = request
            .headers
            .get(StdHeader::CallId)
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        if self.by_call_id.contains_key(&sip_call_id) {
            // A second INVITE with a known Call-ID and no To tag: a loop or a merged request
            // (§8.2.2.2).
            let r = reply_reason(&ctx, &request, 482, None, "Loop Detected");
            return self.respond(ep, now, tx, r);
        }
        let from_uri = request
            .typed::<From>()
            .ok()
            .flatten()
            .and_then(|f| f.uri().ok().map(|u| u.raw.to_owned()))
            .unwrap_or_default();
        let to_uri = request
            .typed::<To>()
            .ok()
            .flatten()
            .and_then(|t| t.uri().ok().map(|u| u.raw.to_owned()))
            .unwrap_or_default();
        let caller = request
            .typed::<From>()
            .ok()
            .flatten()
            .and_then(|f| f.uri().ok().and_then(|u| u.user_unescaped()))
            .unwrap_or_default();
        let caller_name = request
            .typed::<From>()
            .ok()
            .flatten()
            .and_then(|f| f.display_name().map(|d| d.into_owned()));

        let (party, job_kind) = match trunk {
            Some(trunk) => {
                let did = trunk.did(&user).unwrap_or_default();
                let trunk_id = trunk.config.id;
                (
                    Party::Trunk { trunk_id },
                    Job::Inbound(InboundRequest {
                        trunk,
                        did,
                        caller,
                        caller_name,
                        from_uri,
                        to_uri,
                        sip_call_id: sip_call_id.clone(),
                    }),
                )
            }
            None => {
                let creds = request
                    .headers
                    .get_all(StdHeader::ProxyAuthorization)
                    .chain(request.headers.get_all(StdHeader::Authorization))
                    .filter_map(|v| Credentials::parse(v).ok())
                    .find(|c| c.realm == ctx.realm);
                let Some(credentials) = creds else {
                    let ipk = ip.to_string();
                    ctx.unauthenticated_by_ip.fail(&ipk, now);
                    let r = if ctx.unauthenticated_by_ip.blocked_for(&ipk, now).is_some() {
                        reply_reason(&ctx, &request, 403, None, "Too Many Requests")
                    } else {
                        proxy_challenge(&ctx, &request, false)
                    };
                    return self.respond(ep, now, tx, r);
                };
                let ipk = ip.to_string();
                if ctx.auth_failures_by_ip.blocked_for(&ipk, now).is_some()
                    || ctx
                        .auth_failures_by_user
                        .blocked_for(&credentials.username, now)
                        .is_some()
                {
                    let r = reply_reason(&ctx, &request, 403, None, "Too Many Failed Attempts");
                    return self.respond(ep, now, tx, r);
                }
                (
                    Party::Agent {
                        user: crate::domain::UserId(0),
                    },
                    Job::Agent(AgentRequest {
                        method: "INVITE".to_owned(),
                        uri: request
                            .request_uri()
                            .map(|u| u.as_str().to_owned())
                            .unwrap_or_default(),
                        credentials,
                        dialled: user,
                        from_uri,
                        to_uri,
                        sip_call_id: sip_call_id.clone(),
                        source_ip: ipk,
                    }),
                )
            }
        };

        let key = self.next_key();
        let leg_id = self.next_leg();
        let local_tag = masterz_sip::ident::Tag::generate(&mut super::super::OsRandom).to_string();
        let a = Leg {
            id: leg_id,
            party,
            peer: from,
            call_id: sip_call_id.clone(),
            invite: request,
            server_tx: Some(tx),
            local_tag,
            client_tx: None,
            dialog: None,
            local: new_local_media(),
            offer: Some(offer),
            remote: Some(a_remote),
            our_sdp: None,
            auth: None,
            auth_attempts: 0,
            two_xx: None,
            last_ack: None,
            session: None,
            ringing: false,
            offered_direction: masterz_media::codec::Direction::SendRecv,
            allows_update: false,
            browser: None,
        };
        self.by_call_id.insert(sip_call_id, (key, leg_id));
        self.server_invites.insert(tx, key);
        let direction = match job_kind {
            Job::Inbound(_) => CallDirection::In,
            Job::Agent(_) => CallDirection::Out,
        };
        self.calls.insert(
            key,
            Call {
                row: None,
                company: None,
                direction,
                phase: Phase::Routing,
                a,
                b: None,
                ringing: Vec::new(),
                ringing_side: Side::B,
                media: None,
                a_answer: None,
                agent: None,
                routed: None,
                ring_deadline: None,
                end_deadline: None,
                best_failure: None,
                transfer: None,
                click_target: None,
                record: None,
                after_prompt: None,
                busy: Vec::new(),
            },
        );
        self.metrics
            .active
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.spawn_route(key, job_kind);
    }

    fn spawn_route(&self, key: CallKey, job: Job) {
        let state = self.ctx.state.clone();
        let media = self.media.clone();
        let settings = self.settings.clone();
        let events = self.media_events.clone();
        let inputs = self.inputs.clone();
        let ctx = self.ctx.clone();
        let trunks = self.trunks.clone();
        let writer = self.db.clone();
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            let result = match job {
                Job::Inbound(req) => {
                    route::inbound(state, media, settings, writer, events, key, req)
                        .await
                        .map(|r| (r, Some(Side::A)))
                }
                Job::Agent(req) => agent_call(ctx, media, events, trunks, writer, key, req)
                    .await
                    .map(|r| (r, Some(Side::B))),
            };
            let result = match result {
                Ok((routed, customer)) => {
                    Ok(super::recording::with_plan(&recorder, routed, customer).await)
                }
                Err(e) => Err(e),
            };
            let _ = inputs.send(CallInput::Routed {
                key,
                result: Box::new(result),
            });
        });
    }

    /// 422 when the INVITE asks for a session interval below our minimum (RFC 4028 §8.1.1).
    fn check_session_interval(&self, request: &Message) -> Option<Message> {
        let se = request.typed::<SessionExpires>().ok().flatten()?;
        if se.delta >= self.settings.min_se {
            return None;
        }
        let mut r = reply(&self.ctx, request, 422, None);
        r.headers
            .push(StdHeader::MinSe, self.settings.min_se.to_string());
        Some(r)
    }

    /// A request inside a call's dialog.
    fn in_dialog(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        tx: ServerTx,
        request: Message,
        from: Peer,
    ) {
        let call_id = request
            .headers
            .get(StdHeader::CallId)
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        let Some(&(key, leg)) = self.by_call_id.get(&call_id) else {
            let r = reply(&self.ctx, &request, 481, None);
            return self.respond(ep, now, tx, r);
        };
        let Some(call) = self.calls.get_mut(&key) else {
            let r = reply(&self.ctx, &request, 481, None);
            return self.respond(ep, now, tx, r);
        };
        let Some(l) = Self::leg_mut(call, leg) else {
            let r = reply(&self.ctx, &request, 481, None);
            return self.respond(ep, now, tx, r);
        };
        // The dialog checks the CSeq order and takes a target refresh.
        let checked = match l.dialog.as_mut() {
            Some(d) => d.on_request(&request),
            None => Err(masterz_sip::dialog::DialogError::UnknownDialog),
        };
        if let Err(e) = checked {
            let code = e.status().as_u16();
            let r = reply(&self.ctx, &request, code, None);
            return self.respond(ep, now, tx, r);
        }
        l.peer = Peer {
            connection: from.connection,
            ..l.peer
        };
        match request.method() {
            Some(Method::Bye) => {
                let who = if l.is_agent() { "agent" } else { "caller" };
                if let Some(d) = l.dialog.as_mut() {
                    d.terminate();
                }
                let r = reply(&self.ctx, &request, 200, None);
                self.respond(ep, now, tx, r);
                self.peer_hung_up(ep, now, key, leg, who);
            }
            Some(Method::Invite | Method::Update) => {
                self.on_reoffer(ep, now, key, leg, tx, &request);
            }
            Some(Method::Info) => self.on_info(ep, now, key, leg, tx, &request),
            Some(Method::Refer) => self.on_refer(ep, now, key, leg, tx, &request),
            Some(Method::Options | Method::Notify) => {
                let r = reply(&self.ctx, &request, 200, None);
                self.respond(ep, now, tx, r);
            }
            _ => {
                let mut r = reply(&self.ctx, &request, 405, None);
                r.headers.push(StdHeader::Allow, build::ALLOW);
                self.respond(ep, now, tx, r);
            }
        }
    }

    /// The ACK for our 2xx (initial INVITE or re-INVITE).
    pub(super) fn on_ack(&mut self, _ep: &mut Endpoint, _now: Instant, ack: &Message) {
        let Some(call_id) = ack.headers.get(StdHeader::CallId) else {
            return;
        };
        let Some(&(key, leg)) = self.by_call_id.get(call_id.as_str()) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&key)
            && let Some(l) = Self::leg_mut(call, leg)
            && let Some(rtx) = l.two_xx.as_mut()
            && rtx.on_ack(ack)
        {
            l.two_xx = None;
        }
    }

    /// The result of a routing job.
    pub(super) fn on_routed(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        result: Result<Routed, Reject>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            // The caller cancelled while routing ran; the row (if any) was closed there.
            if let Ok(r) = result {
                self.db.write(super::persist::Write::Ended {
                    company: r.company,
                    row: r.row,
                    ended_at: super::unix_ms(),
                    status: "missed",
                    reason: "caller hung up while ringing".into(),
                    hangup_by: Some("caller"),
                    sip_status: Some(487),
                    media: None,
                });
            }
            return;
        };
        if call.phase != Phase::Routing {
            return;
        }
        match result {
            Err(reject) => {
                call.row = reject.row.map(|(_, r)| r);
                call.company = reject.row.map(|(c, _)| c);
                if reject.status == 407 {
                    let stale = reject.reason == "stale";
                    let r = proxy_challenge(&self.ctx, &call.a.invite, stale);
                    self.finish_unrouted(ep, now, key, r);
                } else {
                    self.fail_call(ep, now, key, reject.status, &reject.reason);
                }
            }
            Ok(routed) => {
                self.metrics
                    .started
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                call.row = Some(routed.row);
                call.company = Some(routed.company);
                if let Some(agent) = routed.caller_agent {
                    call.a.party = Party::Agent { user: agent };
                    call.agent = Some(agent);
                    if call.direction == CallDirection::Out
                        && routed
                            .targets
                            .iter()
                            .all(|t| matches!(t, route::Target::Agent { .. }))
                    {
                        call.direction = CallDirection::Internal;
                    }
                }
                let a_local = routed.media.local_rtp(Side::A);
                call.a.local.addr = a_local;
                call.media = Some(routed.media);
                call.routed = Some(routed.info.clone());
                call.phase = Phase::Ringing;
                call.end_deadline = Some(now + self.settings.max_duration);
                call.record = routed.record;
                let prompt = call.record.as_ref().and_then(|r| r.prompt.clone());
                let max = now + self.settings.max_duration;
                self.schedule(max, key, super::timers::Timer::MaxDuration);
                match prompt {
                    Some(prompt) => self.play_prompt(ep, now, key, prompt, routed.targets),
                    None => self.start_ringing(ep, now, key, routed.targets),
                }
            }
        }
    }

    /// Answers an A leg that never became a call (a challenge), and forgets it.
    fn finish_unrouted(&mut self, ep: &mut Endpoint, now: Instant, key: CallKey, r: Message) {
        if let Some(call) = self.calls.remove(&key) {
            if let Some(tx) = call.a.server_tx {
                self.respond(ep, now, tx, r);
            }
            self.forget_leg(&call.a);
            self.metrics
                .active
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// What a routing job does.
enum Job {
    Inbound(InboundRequest),
    Agent(AgentRequest),
}

/// Fresh SDP origin values for a leg.
pub(crate) fn new_local_media() -> LocalMedia {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    LocalMedia {
        addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        session_id: u64::from(u32::from_be_bytes(b)),
        version: 1,
    }
}

/// The SDP offer of an INVITE, or why it is refused.
fn parse_offer(request: &Message) -> Result<SessionDescription, &'static str> {
    if request.body.is_empty() {
        return Err("Not Acceptable Here (an SDP offer is required)");
    }
    let is_sdp = request
        .headers
        .get(StdHeader::ContentType)
        .is_some_and(|c| c.as_str().to_ascii_lowercase().starts_with(build::SDP));
    if !is_sdp {
        return Err("Not Acceptable Here (the body is not SDP)");
    }
    let text = std::str::from_utf8(&request.body).map_err(|_| "Not Acceptable Here (bad SDP)")?;
    SessionDescription::parse(text).map_err(|_| "Not Acceptable Here (bad SDP)")
}

/// A 407 with a fresh challenge per configured algorithm.
pub(crate) fn proxy_challenge(
    ctx: &super::super::SipContext,
    request: &Message,
    stale: bool,
) -> Message {
    let mut r = reply(ctx, request, 407, None);
    let now = unix_secs();
    let nonces = ctx.nonces();
    for algorithm in &ctx.algorithms {
        let c = nonces.challenge(
            &mut super::super::OsRandom,
            &ctx.realm,
            *algorithm,
            stale,
            now,
        );
        r.headers.push(StdHeader::ProxyAuthenticate, c.to_string());
    }
    r
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks an agent's digest answer and routes what it dialled.
async fn agent_call(
    ctx: Arc<super::super::SipContext>,
    media: Arc<crate::media_engine::MediaEngine>,
    events: tokio::sync::mpsc::UnboundedSender<crate::media_engine::MediaNotice>,
    trunks: Arc<Vec<route::TrunkEntry>>,
    writer: super::persist::Writer,
    key: CallKey,
    req: AgentRequest,
) -> Result<Routed, Reject> {
    let state = &ctx.state;
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "routing an agent's call failed");
        Reject::new(500, "internal error")
    };
    let mut conn = state.db.conn().await.map_err(|e| internal(&e))?;
    let login =
        store::sip::account_by_username(&mut conn.ex(), &state.keyring, &req.credentials.username)
            .await
            .map_err(|e| internal(&e))?;
    let password = login
        .as_ref()
        .map_or("\u{0}unknown", |l| l.password.expose().as_str());
    let verdict = ctx.nonces().verify(
        &req.credentials,
        &ctx.realm,
        &req.method,
        &req.uri,
        password,
        unix_secs(),
    );
    let login = match (verdict, login) {
        (Ok(()), Some(login)) => login,
        (Err(VerifyError::Stale | VerifyError::Replay), Some(_)) => {
            return Err(Reject::new(407, "stale"));
        }
        _ => {
            let now = Instant::now();
            ctx.auth_failures_by_ip.fail(&req.source_ip, now);
            ctx.auth_failures_by_user
                .fail(&req.credentials.username, now);
            return Err(Reject::new(407, "wrong credentials"));
        }
    };
    drop(conn);
    let company = login.company_id;
    let (direction, targets, _callee) =
        route::resolve_dialled(state, &trunks, company, &req.dialled).await?;
    let mut conn = state.db.conn().await.map_err(|e| internal(&e))?;
    let customer = match direction {
        CallDirection::Out => match crate::domain::phone::normalize_e164(&req.dialled) {
            Some(n) => Some(
                store::customers::find_or_create_by_phone(&mut conn.ex(), company, &n)
                    .await
                    .map_err(|e| internal(&e))?,
            ),
            None => None,
        },
        _ => None,
    };
    let trunk_id = targets.iter().find_map(|t| match t {
        route::Target::Trunk { trunk, .. } => Some(trunk.config.id),
        route::Target::Agent { .. } | route::Target::Browser { .. } => None,
    });
    drop(conn);
    let row = writer
        .create(super::persist::NewRow {
            company,
            customer_id: customer,
            direction: direction.as_str(),
            from_uri: req.from_uri.clone(),
            to_uri: req.to_uri.clone(),
            trunk_id,
            group_id: None,
            sip_call_id: req.sip_call_id.clone(),
            agent_user_id: Some(login.user_id),
            started_at: super::unix_ms(),
        })
        .await
        .map_err(|e| internal(&e))?;
    let session = media.allocate(key, events).await.map_err(|e| Reject {
        status: 503,
        reason: e.to_string(),
        row: Some((company, row)),
    })?;
    let caller_id = match targets.first() {
        Some(route::Target::Trunk { trunk, .. }) => route::trunk_caller_id(trunk),
        _ => login.username.clone(),
    };
    Ok(Routed {
        row,
        company,
        targets,
        info: route::RouteInfo {
            ring_timeout: ctx_ring_timeout(),
            no_answer_status: 480,
            overflow_group: None,
            caller_id,
            caller_name: Some(login.user_name.clone()),
            customer_id: None,
        },
        media: session,
        caller_agent: Some(login.user_id),
        trunk: trunk_id.and_then(|id| {
            trunks
                .iter()
                .find(|t| t.config.id == id)
                .map(|t| (id, t.config.settings.recording))
        }),
        record: None,
    })
}

/// How long an agent's own call may ring before we give up (the far end usually decides first).
fn ctx_ring_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(120)
}
