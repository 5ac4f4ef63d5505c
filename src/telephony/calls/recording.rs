//! Recording in call control: whether a call is recorded (decided at routing, from the trunk's
//! setting or the company's switch), the consent prompt played to the caller as early media
//! before agents ring, and the start of the recording when the call is answered. The media
//! session carries the tap from then on, through holds and transfers, until the call ends.

use std::sync::Arc;
use std::time::Instant;

use masterz_sip::endpoint::Endpoint;

use super::build::{reply, with_sdp};
use super::route::{Routed, Target};
use super::{CallControl, CallInput, CallKey, Phase};
use crate::media_engine::Side;
use crate::recording::{PromptAudio, Tap};

/// How a call is recorded.
#[derive(Clone, Debug)]
pub(crate) struct RecordPlan {
    /// The side the customer is on (left channel).
    pub(crate) customer: Side,
    /// The consent prompt to play to an inbound caller before ringing.
    pub(crate) prompt: Option<Arc<PromptAudio>>,
}

/// Adds the recording decision to a routed call: only calls with a customer on a trunk are
/// recorded, and only when the trunk (or, when it does not say, the company) switched it on.
pub(super) async fn with_plan(
    recorder: &crate::recording::Recorder,
    mut routed: Routed,
    customer: Option<Side>,
) -> Routed {
    let (Some(customer), Some((trunk, setting))) = (customer, routed.trunk) else {
        return routed;
    };
    if !recorder.wanted(routed.company, setting).await {
        return routed;
    }
    // The prompt is for callers: an inbound call's customer is on side A.
    let prompt = if customer == Side::A {
        recorder.prompt(trunk).await
    } else {
        None
    };
    routed.record = Some(RecordPlan { customer, prompt });
    routed
}

/// The recording decision for a click-to-call: a number called through a trunk, with the
/// customer on side B (the agent's phone is A).
pub(super) async fn click_plan(
    recorder: &crate::recording::Recorder,
    routed: &super::click::ClickRouted,
) -> Option<RecordPlan> {
    let setting = routed.far.iter().find_map(|t| match t {
        Target::Trunk { trunk, .. } => Some(trunk.config.settings.recording),
        Target::Agent { .. } | Target::Browser { .. } => None,
    })?;
    recorder
        .wanted(routed.company, setting)
        .await
        .then_some(RecordPlan {
            customer: Side::B,
            prompt: None,
        })
}

impl CallControl {
    /// Rings `targets` on side B with the call's ring timeout.
    pub(super) fn start_ringing(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        targets: Vec<Target>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(ring) = call.routed.as_ref().map(|r| r.ring_timeout) else {
            return;
        };
        let deadline = now + ring;
        call.ring_deadline = Some(deadline);
        self.schedule(deadline, key, super::timers::Timer::Ring);
        self.ring_targets(ep, now, key, targets, Side::B);
    }

    /// Answers the caller's offer in a 183 (early media) and plays the consent prompt; the
    /// agents ring when it has played ([`CallControl::on_prompt_done`]).
    pub(super) fn play_prompt(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        prompt: Arc<PromptAudio>,
        targets: Vec<Target>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(sdp_a) = super::answer::answer_a(call, None) else {
            // No codec in common: ring without the prompt; the answer will fail the same way.
            return self.start_ringing(ep, now, key, targets);
        };
        let (Some(media), Some(n)) = (call.media.as_ref(), call.a.remote.as_ref()) else {
            return self.start_ringing(ep, now, key, targets);
        };
        media.configure(Side::A, super::answer::leg_params(n));
        media.play(Side::A, prompt.encoded(n.codec), n.codec);
        call.after_prompt = Some(targets);
        call.a.ringing = true;
        let tag = call.a.local_tag.clone();
        let r = with_sdp(reply(&self.ctx, &call.a.invite, 183, Some(&tag)), &sdp_a);
        if let Some(tx) = call.a.server_tx {
            let _ = ep.send_response(now, tx, r);
        }
    }

    /// The prompt has been played to `side`: ring the agents.
    pub(super) fn on_prompt_done(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        side: Side,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if side != Side::A || call.phase != Phase::Ringing {
            return;
        }
        let Some(targets) = call.after_prompt.take() else {
            return;
        };
        if let (Some(company), Some(row)) = (call.company, call.row) {
            self.db
                .event(company, row, "prompt_played", None, Some("consent".into()));
        }
        self.start_ringing(ep, now, key, targets);
    }

    /// The call is connected: start its recording when the plan says so.
    pub(super) fn start_recording(&mut self, key: CallKey) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let (Some(plan), Some(company), Some(row)) = (call.record.as_ref(), call.company, call.row)
        else {
            return;
        };
        let customer = plan.customer;
        let recorder = self.recorder.clone();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let result = recorder
                .start_call(company, row, customer)
                .await
                .map_err(|e| e.to_string());
            let _ = inputs.send(CallInput::Recording { key, result });
        });
    }

    /// The recording is ready: the media session copies the call's audio into it from now on.
    pub(super) fn on_recording(&mut self, key: CallKey, result: Result<Tap, String>) {
        let Some(call) = self.calls.get_mut(&key) else {
            // The call ended meanwhile: dropping the tap closes the (short) recording.
            return;
        };
        let (Some(company), Some(row)) = (call.company, call.row) else {
            return;
        };
        match result {
            Ok(tap) => {
                if let Some(m) = call.media.as_ref() {
                    m.record(tap);
                    self.db.event(company, row, "recording_started", None, None);
                }
            }
            Err(e) => {
                tracing::error!(call = row, error = %e, "the call could not be recorded");
                self.db
                    .event(company, row, "recording_failed", None, Some(e));
            }
        }
    }
}
