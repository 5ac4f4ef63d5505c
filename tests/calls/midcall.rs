//! What happens inside an answered call: hold and resume, blind transfer, DTMF, session
//! refresh, and the media timeout.

use std::time::Duration;

use masterz::config::Config;

use crate::pbx::{Pbx, event_kinds, text, tone_8s};
use crate::peers::{self, sipp::SippRun};

/// A server with a trunk for [`DID`] taking calls from 127.0.0.1.
async fn setup(adjust: impl FnOnce(&mut Config)) -> Pbx {
    let pbx = Pbx::start(adjust).await;
    pbx.local_trunk().await;
    pbx
}

/// `t=` of the first log line containing `what`.
fn at(run: &SippRun, what: &str) -> Option<u64> {
    run.log_lines()
        .into_iter()
        .find(|l| l.contains(what))
        .and_then(|l| {
            l.split("t=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_reach_the_caller_with_the_matching_direction() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = setup(|_| {}).await;
    let agent = pbx.agent("hold1").await;
    let phone = pbx.phone(&agent, true, "call_agent_uas_hold", &[]).await;
    let caller = pbx.caller(&tone_8s(), 15_000, "1800").run_async().await;
    let phone = phone.wait_async().await;
    caller.assert_success();
    phone.assert_success();
    let c = caller.log_lines();
    let hold = c.iter().position(|l| l.contains("reinvite dir=sendonly"));
    let resume = c.iter().position(|l| l.contains("reinvite dir=sendrecv"));
    assert!(
        hold.is_some() && resume.is_some() && hold < resume,
        "the caller is re-INVITEd sendonly, then sendrecv: {c:#?}"
    );
    assert!(
        at(&caller, "bye-in").is_some(),
        "masterz hangs up the caller: {c:#?}"
    );
    assert!(
        phone.logs.contains("hold answered dir=recvonly")
            || phone.logs.contains("hold answered dir=inactive"),
        "{phone}"
    );
    assert!(
        phone.logs.contains("resume answered dir=sendrecv"),
        "{phone}"
    );
    let calls = pbx
        .wait_calls(Duration::from_secs(10), "one ended call", |c| {
            c.len() == 1 && c[0]["ended_at"].is_string()
        })
        .await;
    let kinds = event_kinds(&calls[0]);
    assert!(
        kinds
            .iter()
            .any(|k| k.contains("hold") || k.contains("held")),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k.contains("resum")), "{kinds:?}");
    assert_eq!(text(&calls[0], "hangup_by"), "agent", "{:#}", calls[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_transfer_hands_the_caller_to_another_agent() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = setup(|_| {}).await;
    let first = pbx.agent("xfer1").await;
    let second = pbx.agent("xfer2").await;
    let transferor = pbx
        .phone(
            &first,
            true,
            "call_agent_uas_refer",
            &[("refer_to", &format!("xfer2@{}", pbx.sip))],
        )
        .await;
    let caller = pbx.caller(&tone_8s(), 7_000, "1800").spawn();
    // Only the first agent is registered when the call comes in, so that it rings there.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let target = pbx.phone(&second, true, "call_agent_uas", &[]).await;
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let echoed_now = target.rtp_echoed_now();
    let echoed = echoed_now.unwrap_or(0);
    let caller = caller.wait_async().await;
    let transferor = transferor.wait_async().await;
    let target = target.wait_async().await;
    caller.assert_success();
    transferor.assert_success();
    target.assert_success();
    let t = transferor.log_lines();
    assert!(
        t.iter().any(|l| l.contains("frag=SIP/2.0 1")),
        "a NOTIFY with a provisional sipfrag: {t:#?}"
    );
    assert!(
        t.iter().any(|l| l.contains("frag=SIP/2.0 200")),
        "a NOTIFY with 200 OK: {t:#?}"
    );
    assert!(at(&transferor, "bye-in").is_some(), "{t:#?}");
    assert!(at(&target, "answered").is_some(), "{target}");
    assert!(
        echoed >= 50,
        "the caller's RTP reaches the second agent: {echoed_now:?} packets echoed\n{target}"
    );
    let calls = pbx
        .wait_calls(Duration::from_secs(10), "ended calls", |c| {
            !c.is_empty() && c.iter().all(|c| c["ended_at"].is_string())
        })
        .await;
    let trunk_call = calls
        .iter()
        .find(|c| text(c, "direction").starts_with("in"))
        .expect("the trunk call");
    let kinds = event_kinds(trunk_call);
    assert!(kinds.iter().any(|k| k.contains("transfer")), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_from_the_caller_is_recorded_and_reaches_the_agent() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = setup(|_| {}).await;
    let agent = pbx.agent("dtmf1").await;
    let phone = pbx.phone(&agent, true, "call_agent_uas", &[]).await;
    // The pcap holds one RFC 4733 event, digit 1 (ten packets, payload type 101).
    let caller = pbx
        .caller("/usr/share/sip-tester/dtmf_2833_1.pcap", 3_000, "1800")
        .spawn();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let echoed = phone.rtp_echoed_now().unwrap_or(0);
    let caller = caller.wait_async().await;
    let phone = phone.wait_async().await;
    caller.assert_success();
    phone.assert_success();
    assert!(
        echoed >= 3,
        "the agent gets the telephone-event packets: {echoed}\n{phone}"
    );
    let calls = pbx
        .wait_calls(Duration::from_secs(10), "one completed call", |c| {
            c.len() == 1 && c[0]["status"] == "completed"
        })
        .await;
    let dtmf: Vec<_> = calls[0]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["kind"] == "dtmf")
        .collect();
    // The agent's phone echoes RTP, so masterz may see the digit come back from that side too.
    assert!(!dtmf.is_empty(), "a dtmf event: {:#}", calls[0]);
    assert!(
        dtmf.iter().all(|e| text(e, "detail").starts_with('1')),
        "the digit is 1: {dtmf:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masterz_refreshes_a_short_session_in_time() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = setup(|c| {
        c.sip_min_se_secs = 2;
        c.sip_session_expires_secs = 4;
    })
    .await;
    let agent = pbx.agent("timer1").await;
    let phone = pbx.phone(&agent, true, "call_agent_uas", &[]).await;
    // The caller asks for 4 s with masterz (the UAS) as the refresher.
    let caller = pbx
        .caller(&tone_8s(), 6_000, "4;refresher=uas")
        .run_async()
        .await;
    let phone = phone.wait_async().await;
    caller.assert_success();
    phone.assert_success();
    let answered = at(&caller, "answered").expect("answered");
    let refreshed = at(&caller, "reinvite").or_else(|| at(&caller, "update"));
    let lines = caller.log_lines();
    let Some(refreshed) = refreshed else {
        panic!("no refresh (re-INVITE or UPDATE) reached the caller in 6 s: {lines:#?}\n{caller}")
    };
    assert!(
        refreshed - answered <= 3_500,
        "refresh {} ms after the answer; the session expires after 4 s: {lines:#?}",
        refreshed - answered
    );
    let answered_line = lines.iter().find(|l| l.contains("answered")).unwrap();
    assert!(
        answered_line.contains("Session-Expires"),
        "the 200 carries Session-Expires: {answered_line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_media_is_hung_up_on_both_legs() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = setup(|c| c.media_timeout_secs = 2).await;
    let agent = pbx.agent("quiet1").await;
    let phone = pbx.phone(&agent, true, "call_agent_uas", &[]).await;
    // One packet (so that masterz may latch), then silence for good.
    let caller = pbx
        .caller(
            &crate::pbx::fixture("pcmu_1khz_20ms.pcap")
                .display()
                .to_string(),
            20_000,
            "1800",
        )
        .run_async()
        .await;
    let phone = phone.wait_async().await;
    caller.assert_success();
    phone.assert_success();
    let answered = at(&caller, "answered").expect("answered");
    let bye = at(&caller, "bye-in");
    assert!(
        bye.is_some_and(|b| b - answered >= 1_500 && b - answered <= 6_000),
        "the caller gets BYE 2 s after the media stopped: {:#?}",
        caller.log_lines()
    );
    assert!(
        at(&phone, "bye-in").is_some(),
        "the agent gets BYE too\n{phone}"
    );
    let calls = pbx
        .wait_calls(Duration::from_secs(10), "one ended call", |c| {
            c.len() == 1 && c[0]["ended_at"].is_string()
        })
        .await;
    let reason = text(&calls[0], "end_reason").to_lowercase();
    assert!(
        reason.contains("media") && reason.contains("timeout"),
        "{:#}",
        calls[0]
    );
}
