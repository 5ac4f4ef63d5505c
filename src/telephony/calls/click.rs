//! Click-to-call from the API: the agent's softphone rings first; when the agent answers, the
//! customer (or the other agent) is called and the two are connected.

use std::sync::Arc;
use std::time::Instant;

use masterz_sip::endpoint::Endpoint;
use tokio::sync::oneshot;

use super::leg::{Leg, Party};
use super::route::{self, CallDirection, RouteInfo, Target};
use super::{Call, CallControl, CallInput, CallKey, CallStartError, ClickTarget, Phase};
use crate::domain::{CompanyId, UserId};
use crate::http::AppState;
use crate::media_engine::{MediaEngine, MediaNotice, MediaSession, Side};
use crate::store;

/// A routed click-to-call.
pub(crate) struct ClickRouted {
    pub(crate) company: CompanyId,
    pub(crate) agent: UserId,
    pub(crate) row: i64,
    pub(crate) agent_targets: Vec<Target>,
    pub(crate) far: Vec<Target>,
    pub(crate) direction: CallDirection,
    pub(crate) caller_id: String,
    pub(crate) media: MediaSession,
    /// Whether the call is recorded (a number through a trunk that records, or whose company does).
    pub(crate) record: Option<super::recording::RecordPlan>,
    /// The customer called, when a number.
    pub(crate) customer_id: Option<i64>,
    /// Dialled from the web app: the tab whose WebRTC leg is side A (else the softphone rings).
    pub(crate) browser_tab: Option<String>,
}

impl CallControl {
    /// Starts a click-to-call: routing runs in a job; the agent's softphone rings (or, from
    /// the web app, `browser_tab`'s WebRTC leg is set up) once it is done.
    pub(super) fn start_click_from(
        &mut self,
        company: CompanyId,
        agent: UserId,
        target: ClickTarget,
        reply: oneshot::Sender<Result<i64, CallStartError>>,
        browser_tab: Option<String>,
    ) {
        let key = self.next_key();
        let state = self.ctx.state.clone();
        let media = self.media.clone();
        let events = self.media_events.clone();
        let trunks = self.trunks.clone();
        let inputs = self.inputs.clone();
        let writer = self.db.clone();
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            let browser = browser_tab.is_some();
            let mut result = route_click(
                state, media, events, trunks, writer, key, company, agent, target, browser,
            )
            .await;
            if let Ok(r) = &mut result {
                r.record = super::recording::click_plan(&recorder, r).await;
                r.browser_tab = browser_tab;
            }
            match result {
                Ok(routed) => {
                    let _ = reply.send(Ok(routed.row));
                    let _ = inputs.send(CallInput::ClickRouted {
                        key,
                        routed: Box::new(routed),
                    });
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        });
    }

    /// Rings the agent of a routed click-to-call.
    pub(super) fn on_click_routed(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        r: ClickRouted,
    ) {
        let placeholder = Leg::without_dialog(self.next_leg(), Party::Agent { user: r.agent });
        let ring = self.settings.ring_timeout;
        self.calls.insert(
            key,
            Call {
                row: Some(r.row),
                company: Some(r.company),
                direction: r.direction,
                phase: Phase::Ringing,
                a: placeholder,
                b: None,
                ringing: Vec::new(),
                ringing_side: Side::A,
                media: Some(r.media),
                a_answer: None,
                agent: Some(r.agent),
                routed: Some(RouteInfo {
                    ring_timeout: ring,
                    no_answer_status: 480,
                    overflow_group: None,
                    caller_id: r.caller_id,
                    caller_name: None,
                    customer_id: r.customer_id,
                }),
                ring_deadline: Some(now + ring),
                end_deadline: Some(now + self.settings.max_duration),
                best_failure: None,
                transfer: None,
                click_target: Some(r.far),
                record: r.record,
                after_prompt: None,
                busy: Vec::new(),
            },
        );
        self.metrics
            .active
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics
            .started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.schedule(now + ring, key, super::timers::Timer::Ring);
        self.schedule(
            now + self.settings.max_duration,
            key,
            super::timers::Timer::MaxDuration,
        );
        match r.browser_tab {
            Some(tab) => self.ring_browser_dialler(key, r.agent, tab),
            None => self.ring_targets(ep, now, key, r.agent_targets, Side::A),
        }
    }

    /// The agent answered a click-to-call: it becomes side A, and the far end is called.
    /// True when the leg was taken that way.
    pub(super) fn click_agent_answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: Leg,
    ) -> Result<(), Box<Leg>> {
        let Some(call) = self.calls.get_mut(&key) else {
            return Err(Box::new(leg));
        };
        if call.ringing_side != Side::A || call.click_target.is_none() {
            return Err(Box::new(leg));
        }
        Self::cancel_ringing(ep, now, call, &mut self.by_call_id);
        if let (Some(m), Some(n)) = (call.media.as_ref(), leg.remote.as_ref()) {
            m.configure(Side::A, super::answer::leg_params(n));
        }
        let far = call.click_target.take().unwrap_or_default();
        let caller = leg.call_id.clone();
        let id = leg.id;
        call.a = leg;
        self.by_call_id.insert(caller, (key, id));
        self.ring_targets(ep, now, key, far, Side::B);
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
async fn route_click(
    state: Arc<AppState>,
    media: Arc<MediaEngine>,
    events: tokio::sync::mpsc::UnboundedSender<MediaNotice>,
    trunks: Arc<Vec<route::TrunkEntry>>,
    writer: super::persist::Writer,
    key: CallKey,
    company: CompanyId,
    agent: UserId,
    target: ClickTarget,
    browser: bool,
) -> Result<ClickRouted, CallStartError> {
    let unavailable = |e: &dyn std::fmt::Display| CallStartError::Unavailable(e.to_string());
    let agent_targets = route::agent_targets(&state, company, Some(&[agent]))
        .await
        .map_err(|e| unavailable(&e))?;
    if agent_targets.is_empty() && !browser {
        return Err(CallStartError::AgentNotRegistered);
    }
    let dialled = match &target {
        ClickTarget::Number(n) => crate::domain::phone::normalize_e164(n)
            .ok_or_else(|| CallStartError::BadNumber(n.clone()))?,
        ClickTarget::Extension(e) => e.clone(),
    };
    let (direction, far, _) = route::resolve_dialled(&state, &trunks, company, &dialled)
        .await
        .map_err(|r| match (&target, r.status) {
            (ClickTarget::Extension(e), 404) => CallStartError::UnknownExtension(e.clone()),
            (ClickTarget::Extension(_), 480) => CallStartError::AgentNotRegistered,
            (ClickTarget::Number(_), 503) => CallStartError::NoTrunk,
            (_, _) => CallStartError::Unavailable(r.reason),
        })?;
    if matches!(target, ClickTarget::Extension(_)) && direction != CallDirection::Internal {
        return Err(CallStartError::UnknownExtension(dialled));
    }
    let mut conn = state.db.conn().await.map_err(|e| unavailable(&e))?;
    let customer = match direction {
        CallDirection::Out => Some(
            store::customers::find_or_create_by_phone(&mut conn.ex(), company, &dialled)
                .await
                .map_err(|e| unavailable(&e))?,
        ),
        _ => None,
    };
    let extension = store::routing::extension_of(&mut conn.ex(), company, agent)
        .await
        .map_err(|e| unavailable(&e))?
        .unwrap_or_default();
    let trunk_id = far.iter().find_map(|t| match t {
        Target::Trunk { trunk, .. } => Some(trunk.config.id),
        Target::Agent { .. } | Target::Browser { .. } => None,
    });
    drop(conn);
    let row = writer
        .create(super::persist::NewRow {
            company,
            customer_id: customer,
            direction: direction.as_str(),
            from_uri: format!("sip:{extension}@masterz"),
            to_uri: format!("sip:{dialled}@masterz"),
            trunk_id,
            group_id: None,
            sip_call_id: String::new(),
            agent_user_id: Some(agent),
            started_at: super::unix_ms(),
        })
        .await
        .map_err(|e| unavailable(&e))?;
    let session = media
        .allocate(key, events)
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(ClickRouted {
        company,
        agent,
        row,
        agent_targets,
        far,
        direction,
        caller_id: dialled,
        media: session,
        record: None,
        customer_id: customer,
        browser_tab: None,
    })
}
