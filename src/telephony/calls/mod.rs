//! Call control: the B2BUA. Every call has two sides, `A` (where the call came from: a trunk,
//! or the agent's softphone) and `B` (the agents being rung, the trunk, the agent called). Each
//! side is a SIP leg with its own dialog; the media engine relays RTP between the two sides'
//! ports.
//!
//! Call control runs inside the SIP core task, next to the sans-IO endpoint it drives: a request
//! or response becomes an action on the endpoint without a hop through a channel. What needs the
//! database (routing a new call, checking an agent's password, writing progress) runs in spawned
//! jobs and writer tasks whose results come back as [`CallInput`]s; nothing here awaits.
//!
//! ```text
//!   trunk ──INVITE──▶ A leg (UAS) ─┐                 ┌─ B leg (UAC) ──INVITE──▶ agent 1
//!                                  ├─ Call ─ media ──┼─ B leg (UAC) ──INVITE──▶ agent 2
//!                                  │                 └─ …  first 200 wins, the others get CANCEL
//! ```

mod answer;
mod browser;
mod browser_media;
mod build;
mod click;
mod hangup;
mod inbound;
mod leg;
mod midcall;
mod persist;
mod recording;
mod ring;
mod route;
mod timers;
mod transfer;

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use masterz_media::sdp::SessionDescription;
use masterz_sip::endpoint::{ClientTx, Endpoint, Event, ServerTx};
use masterz_sip::message::{Message, Method};
use masterz_sip::transport::Peer;
use tokio::sync::{mpsc, oneshot};

use super::SipContext;
use crate::domain::{CompanyId, UserId};
use crate::media_engine::{MediaEngine, MediaNotice, MediaSession, Side};

pub use self::browser::{AgentCommand, AgentRequest};
pub(crate) use self::build::ALLOW;
pub(crate) use self::leg::{Leg, LegId};
pub(crate) use self::route::{TrunkEntry, refresh_trunks};
use self::timers::{Timer, TimerEntry};

/// Identifies a call inside call control (the database id comes later, from routing).
pub(crate) type CallKey = u64;

/// What a click-to-call rings after the agent answered.
#[derive(Clone, Debug)]
pub enum ClickTarget {
    /// A phone number (E.164, or anything [`crate::domain::phone::normalize_e164`] accepts),
    /// called through the company's trunk.
    Number(String),
    /// Another agent, by SIP username.
    Extension(String),
}

/// Why a call could not be started from the API.
#[derive(Debug, thiserror::Error)]
pub enum CallStartError {
    /// The agent has no registered softphone to ring.
    #[error("the agent has no registered softphone")]
    AgentNotRegistered,
    /// The number is not an international number.
    #[error("not a phone number in international format: {0}")]
    BadNumber(String),
    /// No such extension in the company.
    #[error("no agent with extension {0}")]
    UnknownExtension(String),
    /// The company has no trunk to call out through.
    #[error("the company has no SIP trunk for outgoing calls")]
    NoTrunk,
    /// No media ports left, or the database failed.
    #[error("the call could not be started: {0}")]
    Unavailable(String),
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct CallMetrics {
    /// Calls that reached routing.
    pub started: AtomicU64,
    /// Calls answered.
    pub answered: AtomicU64,
    /// Calls ended, for any reason.
    pub ended: AtomicU64,
    /// INVITEs refused with 403 (unknown trunk source).
    pub rejected_source: AtomicU64,
    /// INVITEs refused with 488 (no common codec, bad SDP).
    pub rejected_media: AtomicU64,
    /// Calls in progress.
    pub active: AtomicU64,
}

impl CallMetrics {
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        for (name, help, v) in [
            (
                "masterz_calls_started_total",
                "Calls routed.",
                &self.started,
            ),
            (
                "masterz_calls_answered_total",
                "Calls answered.",
                &self.answered,
            ),
            ("masterz_calls_ended_total", "Calls ended.", &self.ended),
            (
                "masterz_calls_rejected_source_total",
                "INVITEs refused because they came from no known trunk source.",
                &self.rejected_source,
            ),
            (
                "masterz_calls_rejected_media_total",
                "INVITEs refused for their SDP (no common codec).",
                &self.rejected_media,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP masterz_calls_active Calls in progress.\n# TYPE masterz_calls_active gauge\nmasterz_calls_active {}",
            self.active.load(Ordering::Relaxed)
        );
    }
}

/// Inputs to call control from outside the core task.
pub(crate) enum CallInput {
    /// A routing job finished.
    Routed {
        key: CallKey,
        result: Box<Result<route::Routed, route::Reject>>,
    },
    /// A transfer target was resolved.
    TransferRouted {
        key: CallKey,
        from: LegId,
        result: Result<Vec<route::Target>, u16>,
    },
    /// The overflow group of a call nobody answered.
    Overflow {
        key: CallKey,
        result: Result<(Vec<route::Target>, route::RouteInfo), route::Reject>,
    },
    /// A click-to-call is routed: ring the agent.
    ClickRouted {
        key: CallKey,
        routed: Box<click::ClickRouted>,
    },
    /// An `answered` row is on disk: the caller may get its 200.
    Persisted { key: CallKey },
    /// Something the media engine noticed.
    Media(MediaNotice),
    /// The current trunk table.
    Trunks(Arc<Vec<TrunkEntry>>),
    /// A recording's file and row are ready (or could not be made).
    Recording {
        key: CallKey,
        result: Result<crate::recording::Tap, String>,
    },
    /// A command from an agent's browser tab.
    Agent(AgentRequest),
    /// A browser leg's media connected, failed or closed.
    WebRtc(crate::media_engine::WebRtcNotice),
    /// Click-to-call from the API.
    Click {
        company: CompanyId,
        agent: UserId,
        target: ClickTarget,
        reply: oneshot::Sender<Result<i64, CallStartError>>,
    },
}

/// Where a call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the routing job.
    Routing,
    /// B legs are ringing.
    Ringing,
    /// A B leg answered; the A leg's 200 waits for the database.
    Connecting,
    /// Both sides talk.
    Connected,
    /// Over: legs are being torn down.
    Ended,
}

/// The settings call control reads on every call.
#[derive(Clone, Debug)]
pub(crate) struct CallSettings {
    pub(crate) ring_timeout: Duration,
    pub(crate) no_answer_status: u16,
    pub(crate) max_duration: Duration,
    pub(crate) session_expires: u32,
    pub(crate) min_se: u32,
    pub(crate) t1: Duration,
    pub(crate) t2: Duration,
    /// ICE and DTLS of a browser leg must complete within this after its answer.
    pub(crate) webrtc_timeout: Duration,
}

/// One call: its two sides and what connects them.
pub(crate) struct Call {
    /// The `calls` row, once routing created it.
    pub(crate) row: Option<i64>,
    pub(crate) company: Option<CompanyId>,
    pub(crate) direction: route::CallDirection,
    pub(crate) phase: Phase,
    pub(crate) a: Leg,
    /// The answered (or only) B leg.
    pub(crate) b: Option<Leg>,
    /// Legs still ringing: the forks of ring-all, or the target of a transfer.
    pub(crate) ringing: Vec<Leg>,
    /// Which side `ringing` will take over when one answers (B for new calls; either side for
    /// a transfer).
    pub(crate) ringing_side: Side,
    pub(crate) media: Option<MediaSession>,
    /// Our answer to the A leg's offer, once made (183 and 200 carry the same one).
    pub(crate) a_answer: Option<SessionDescription>,
    pub(crate) agent: Option<UserId>,
    pub(crate) routed: Option<route::RouteInfo>,
    pub(crate) ring_deadline: Option<Instant>,
    pub(crate) end_deadline: Option<Instant>,
    /// Final failure status the B legs gave, to pass on when all failed.
    pub(crate) best_failure: Option<u16>,
    pub(crate) transfer: Option<transfer::Transfer>,
    /// Click-to-call: the B target to call once the agent (A) answered.
    pub(crate) click_target: Option<Vec<route::Target>>,
    /// Recorded calls: which side the customer is on, and the consent prompt.
    pub(crate) record: Option<recording::RecordPlan>,
    /// The targets to ring once the consent prompt has played.
    pub(crate) after_prompt: Option<Vec<route::Target>>,
    /// Agents marked on a call in the hub while this call is connected.
    pub(crate) busy: Vec<UserId>,
}

/// What a client transaction of ours is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The INVITE that creates a leg.
    Invite,
    /// A re-INVITE (hold, resume, session refresh, moving media).
    ReInvite,
    /// BYE.
    Bye,
    /// NOTIFY of a transfer's progress.
    Notify,
    /// CANCEL and other requests whose answer needs no action.
    Other,
}

/// The B2BUA's state, owned by the SIP core task.
pub(crate) struct CallControl {
    pub(crate) ctx: Arc<SipContext>,
    pub(crate) media: Arc<MediaEngine>,
    pub(crate) recorder: Arc<crate::recording::Recorder>,
    pub(crate) inputs: mpsc::UnboundedSender<CallInput>,
    pub(crate) media_events: mpsc::UnboundedSender<MediaNotice>,
    pub(crate) db: persist::Writer,
    pub(crate) settings: CallSettings,
    pub(crate) metrics: Arc<CallMetrics>,
    pub(crate) calls: HashMap<CallKey, Call>,
    /// Call-ID of every leg → its call.
    pub(crate) by_call_id: HashMap<String, (CallKey, LegId)>,
    pub(crate) client_txs: HashMap<ClientTx, (CallKey, LegId, Purpose)>,
    pub(crate) server_invites: HashMap<ServerTx, CallKey>,
    pub(crate) trunks: Arc<Vec<TrunkEntry>>,
    pub(crate) timers: BinaryHeap<TimerEntry>,
    /// Agents online (browser tabs, presence).
    pub(crate) hub: Arc<crate::agents::AgentHub>,
    /// Where browser legs report; forwarded to `inputs`.
    pub(crate) webrtc_events: mpsc::UnboundedSender<crate::media_engine::WebRtcNotice>,
    /// ICE and DTLS must complete within this after the browser's answer.
    pub(crate) webrtc_timeout: Duration,
    /// Browser legs → their call.
    pub(crate) browser_legs: HashMap<LegId, CallKey>,
    next_key: CallKey,
    next_leg: u64,
}

impl CallControl {
    pub(crate) fn new(
        ctx: Arc<SipContext>,
        media: Arc<MediaEngine>,
        recorder: Arc<crate::recording::Recorder>,
        inputs: mpsc::UnboundedSender<CallInput>,
        media_events: mpsc::UnboundedSender<MediaNotice>,
        settings: CallSettings,
        metrics: Arc<CallMetrics>,
    ) -> Self {
        let db = persist::Writer::start(ctx.state.clone(), inputs.clone());
        let (webrtc_events, mut webrtc_rx) = mpsc::unbounded_channel();
        let forward = inputs.clone();
        tokio::spawn(async move {
            while let Some(n) = webrtc_rx.recv().await {
                if forward.send(CallInput::WebRtc(n)).is_err() {
                    break;
                }
            }
        });
        let hub = ctx.state.agents.clone();
        Self {
            hub,
            webrtc_events,
            webrtc_timeout: settings.webrtc_timeout,
            browser_legs: HashMap::new(),
            ctx,
            media,
            recorder,
            inputs,
            media_events,
            db,
            settings,
            metrics,
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            client_txs: HashMap::new(),
            server_invites: HashMap::new(),
            trunks: Arc::new(Vec::new()),
            timers: BinaryHeap::new(),
            next_key: 1,
            next_leg: 1,
        }
    }

    pub(crate) fn next_key(&mut self) -> CallKey {
        let k = self.next_key;
        self.next_key += 1;
        k
    }

    pub(crate) fn next_leg(&mut self) -> LegId {
        let l = self.next_leg;
        self.next_leg += 1;
        LegId(l)
    }

    /// Whether call control takes this request (everything but REGISTER and out-of-dialog
    /// OPTIONS, which the registrar answers).
    pub(crate) fn wants(request: &Message) -> bool {
        match request.method() {
            Some(Method::Register) => false,
            Some(Method::Options) => has_to_tag(request),
            _ => true,
        }
    }

    /// An endpoint event meant for call control.
    pub(crate) fn on_event(&mut self, ep: &mut Endpoint, now: Instant, event: Event) {
        match event {
            Event::Request { tx, request, from } => self.on_request(ep, now, tx, request, from),
            Event::Cancelled { tx, .. } => self.on_cancelled(ep, now, tx),
            Event::Ack { request, .. } => self.on_ack(ep, now, &request),
            Event::Response { tx, response } => self.on_response(ep, now, tx, response),
            Event::Timeout { tx } | Event::TransportError { tx } => {
                self.on_client_failure(ep, now, tx, 408);
            }
            Event::AckTimeout { tx } => {
                self.server_invites.remove(&tx);
            }
            Event::StrayResponse { response, from } => self.on_stray(ep, &response, from),
            Event::Malformed { .. } => {}
        }
    }

    /// An input from a job, the writer, the media engine or the API.
    pub(crate) fn on_input(&mut self, ep: &mut Endpoint, now: Instant, input: CallInput) {
        match input {
            CallInput::Routed { key, result } => self.on_routed(ep, now, key, *result),
            CallInput::TransferRouted { key, from, result } => {
                self.on_transfer_routed(ep, now, key, from, result);
            }
            CallInput::Persisted { key } => self.on_persisted(ep, now, key),
            CallInput::Overflow { key, result } => self.on_overflow(ep, now, key, result),
            CallInput::ClickRouted { key, routed } => self.on_click_routed(ep, now, key, *routed),
            CallInput::Recording { key, result } => self.on_recording(key, result),
            CallInput::Media(notice) => self.on_media(ep, now, notice),
            CallInput::Trunks(t) => self.trunks = t,
            CallInput::Agent(req) => self.on_agent(ep, now, req),
            CallInput::WebRtc(notice) => self.on_webrtc(ep, now, notice),
            CallInput::Click {
                company,
                agent,
                target,
                reply,
            } => self.start_click_from(company, agent, target, reply, None),
        }
    }

    /// When [`CallControl::handle_timeout`] must run next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|t| t.0.0)
    }

    /// Runs the timers that are due.
    pub(crate) fn handle_timeout(&mut self, ep: &mut Endpoint, now: Instant) {
        while let Some(top) = self.timers.peek() {
            if top.0.0 > now {
                break;
            }
            let Some(std::cmp::Reverse((_, key, timer))) = self.timers.pop() else {
                break;
            };
            self.on_timer(ep, now, key, timer);
        }
    }

    pub(crate) fn schedule(&mut self, at: Instant, key: CallKey, timer: Timer) {
        self.timers.push(std::cmp::Reverse((at, key, timer)));
        // Timers of ended calls stay in the heap until they would fire (a maximum duration is
        // hours away): drop them once they outnumber the live calls' by far.
        if self.timers.len() > 4096 && self.timers.len() > 16 * self.calls.len() {
            let calls = &self.calls;
            self.timers.retain(|t| calls.contains_key(&t.0.1));
        }
    }

    /// Schedules a leg's session timer: our refresh, or the peer's deadline.
    pub(crate) fn schedule_session(&mut self, key: CallKey, leg: LegId, s: &leg::SessionTimer) {
        let (at, timer) = if s.we_refresh {
            (s.refresh_at, Timer::Refresh(leg))
        } else {
            (s.expires_at, Timer::Expire(leg))
        };
        self.schedule(at, key, timer);
    }

    /// Cancels every ringing leg of `call` (CANCEL on its INVITE) and forgets it.
    pub(crate) fn cancel_ringing(
        ep: &mut Endpoint,
        now: Instant,
        call: &mut Call,
        by_call_id: &mut HashMap<String, (CallKey, LegId)>,
    ) {
        for l in call.ringing.drain(..) {
            if let Some(tx) = l.client_tx {
                let _ = ep.cancel(now, tx);
            }
            by_call_id.remove(&l.call_id);
        }
    }

    /// Finds a leg of a call by id: the A leg, the B leg or a ringing one.
    pub(crate) fn leg_mut(call: &mut Call, id: LegId) -> Option<&mut Leg> {
        if call.a.id == id {
            return Some(&mut call.a);
        }
        if let Some(b) = call.b.as_mut().filter(|b| b.id == id) {
            return Some(b);
        }
        call.ringing.iter_mut().find(|l| l.id == id)
    }

    /// Which side a leg is on (`None`: still ringing).
    pub(crate) fn side_of(call: &Call, id: LegId) -> Option<Side> {
        if call.a.id == id {
            Some(Side::A)
        } else if call.b.as_ref().is_some_and(|b| b.id == id) {
            Some(Side::B)
        } else {
            None
        }
    }

    pub(crate) fn side_leg(call: &mut Call, side: Side) -> Option<&mut Leg> {
        match side {
            Side::A => Some(&mut call.a),
            Side::B => call.b.as_mut(),
        }
    }

    pub(crate) fn forget_leg(&mut self, leg: &Leg) {
        self.by_call_id.remove(leg.call_id.as_str());
        if let Some(tx) = leg.server_tx {
            self.server_invites.remove(&tx);
        }
    }

    fn on_overflow(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        result: Result<(Vec<route::Target>, route::RouteInfo), route::Reject>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.phase != Phase::Ringing {
            return;
        }
        match result {
            Ok((targets, mut info)) => {
                if let Some(old) = call.routed.as_ref() {
                    info.caller_id = old.caller_id.clone();
                    info.caller_name = old.caller_name.clone();
                }
                let deadline = now + info.ring_timeout;
                call.routed = Some(info);
                call.ring_deadline = Some(deadline);
                self.schedule(deadline, key, Timer::Ring);
                self.ring_targets(ep, now, key, targets, Side::B);
            }
            Err(r) => self.fail_call(ep, now, key, r.status, &r.reason),
        }
    }

    fn on_stray(&mut self, ep: &mut Endpoint, response: &Message, from: Peer) {
        // A 2xx retransmitted after its INVITE transaction ended: ACK it again (§13.2.2.4).
        let Some(call_id) = response
            .headers
            .get(masterz_sip::message::StdHeader::CallId)
        else {
            return;
        };
        let Some(&(key, leg)) = self.by_call_id.get(call_id.as_str()) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if let Some(l) = Self::leg_mut(call, leg)
            && let Some(ack) = l.last_ack.clone()
        {
            ep.send_stateless(from, ack);
        }
    }
}

/// Whether a request carries a To tag (is within a dialog).
pub(crate) fn has_to_tag(request: &Message) -> bool {
    request
        .typed::<masterz_sip::headers::To>()
        .ok()
        .flatten()
        .is_some_and(|t| t.tag().is_some())
}

/// The current Unix time in milliseconds.
pub(crate) fn unix_ms() -> i64 {
    crate::domain::Timestamp::now().0
}
