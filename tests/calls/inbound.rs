//! Trunk calls to a DID: many answered calls with RTP both ways, and a call the caller gives up
//! while two agents ring.

use std::time::{Duration, Instant};

use crate::pbx::{
    CALLER, DID, Pbx, event_kinds, free_media_port, num, text, tone_3s, udp_socket_stats,
};
use crate::peers::{self, free_port, sipp::Sipp};

/// Packets in the 3 s tone.
const TONE_PACKETS: i64 = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_trunk_calls_reach_a_sipp_agent_with_rtp_both_ways() {
    if !peers::require(peers::SIPP) {
        return;
    }
    const CALLS: u64 = 50;
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("ag1").await;
    let agent_port = free_port();
    pbx.register(&agent, agent_port).await;
    let agent_media = free_media_port();
    let uas = Sipp::scenario("call_agent_uas")
        .local_port(agent_port)
        .service(&agent.sip_user)
        .media_port(agent_media)
        .rtp_echo()
        .key("talk_ms", "600000")
        // No -m: the echo count can only be read from a running SIPp (see screen_now), so it
        // is stopped after the last call, and judged by its log.
        .trace_messages(false)
        .timeout(Duration::from_secs(90))
        .spawn();
    let trunk_port = free_port();
    pbx.trunk(
        ([127, 0, 0, 1], trunk_port).into(),
        &["127.0.0.1/32"],
        &[DID],
        None,
    )
    .await;

    let caller_media = free_media_port();
    let uac = Sipp::scenario("call_trunk_uac")
        .target(pbx.sip)
        .service(DID)
        .media_port(caller_media)
        .key("caller", CALLER)
        .key("pcap", &tone_3s())
        .key("talk_ms", "3500")
        .key("session_expires", "1800")
        .calls(CALLS)
        .rate(5.0)
        .limit(CALLS)
        .trace_messages(false)
        .timeout(Duration::from_secs(60))
        .spawn();
    // While the calls run: what reaches the caller's media socket (SIPp does not read it: the
    // kernel queues, then drops) shows the agent's echo coming back through masterz.
    let mut caller_rx = (0u64, 0u64);
    let mut echoed_during = None;
    let started = Instant::now();
    let mut uac = uac;
    while uac.is_running() && started.elapsed() < Duration::from_secs(70) {
        if let Some((rx, drops)) = udp_socket_stats(caller_media) {
            caller_rx = (caller_rx.0.max(rx), caller_rx.1.max(drops));
        }
        if started.elapsed() > Duration::from_secs(8) && echoed_during.is_none() {
            echoed_during = uas.rtp_echoed_now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let uac = uac.wait_async().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let echoed = uas.rtp_echoed_now();
    let uas = uas.stop();
    uac.assert_success();
    let answered = uas
        .log_lines()
        .iter()
        .filter(|l| l.contains(" answered"))
        .count();
    let ended = uas
        .log_lines()
        .iter()
        .filter(|l| l.contains(" bye-in"))
        .count();
    assert!(
        answered as u64 == CALLS && ended as u64 == CALLS && !uas.errors.contains("Aborting"),
        "the agent answered {answered} and saw {ended} calls end of {CALLS}\n{uas}"
    );

    let calls = pbx
        .wait_calls(Duration::from_secs(15), "50 calls completed", |c| {
            c.len() as u64 == CALLS && c.iter().all(|c| c["status"] == "completed")
        })
        .await;
    // Per call: packets in and out at masterz, and its loss figure, for the messages below.
    let figures: Vec<String> = calls
        .iter()
        .map(|c| {
            format!(
                "#{} in={} out={} lost={} jitter_us={}",
                c["id"],
                c["rtp_packets_in"],
                c["rtp_packets_out"],
                c["rtp_packets_lost"],
                c["rtp_jitter_us"]
            )
        })
        .collect();
    let echoed = echoed.unwrap_or_else(|| {
        panic!("SIPp showed no RTP echo count (seen during the run: {echoed_during:?})")
    });
    assert!(
        echoed as i64 >= CALLS as i64 * TONE_PACKETS * 8 / 10,
        "the agent got (and echoed) {echoed} RTP packets for {CALLS} calls of {TONE_PACKETS}; masterz counted: {figures:#?}"
    );
    assert!(
        caller_rx.0 > 0 || caller_rx.1 > 0,
        "no RTP came back to the caller's media port {caller_media} (queue/drops {caller_rx:?})"
    );

    for c in &calls {
        assert_eq!(c["agent_user_id"], agent.user.0, "{c:#}");
        assert!(text(c, "direction").starts_with("in"), "{c:#}");
        assert!(c["answered_at"].is_string(), "{c:#}");
        assert!(c["ended_at"].is_string(), "{c:#}");
        assert!(!text(c, "end_reason").is_empty(), "{c:#}");
        assert_eq!(text(c, "hangup_by"), "caller", "{c:#}");
        // At least one direction's worth of the tone each way, whichever legs are summed.
        assert!(num(c, "rtp_packets_in") >= TONE_PACKETS * 8 / 10, "{c:#}");
        assert!(num(c, "rtp_packets_out") >= TONE_PACKETS * 8 / 10, "{c:#}");
        let kinds = event_kinds(c);
        assert!(kinds.iter().any(|k| k.contains("answer")), "{kinds:?}");
    }
    // The media engine's counters, matched by prefix: masterz_media_rtp_packets_total{direction}.
    let rtp = pbx.metrics("masterz_media_rtp_").await;
    for direction in ["in", "out"] {
        let packets: f64 = rtp
            .iter()
            .filter(|(n, _)| {
                n.contains("packets") && n.contains(&format!("direction=\"{direction}\""))
            })
            .map(|(_, v)| v)
            .sum();
        assert!(
            packets >= (CALLS as i64 * TONE_PACKETS * 2 * 8 / 10) as f64,
            "RTP packets {direction} in /metrics for {CALLS} calls: {rtp:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_hangs_up_while_two_agents_ring_cancels_both() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let mut ringing = Vec::new();
    for name in ["ring1", "ring2"] {
        let agent = pbx.agent(name).await;
        let port = free_port();
        pbx.register(&agent, port).await;
        ringing.push(
            Sipp::scenario("call_agent_uas_ring")
                .local_port(port)
                .service(&agent.sip_user)
                .calls(1)
                .timeout(Duration::from_secs(20))
                .spawn(),
        );
    }
    let trunk_port = free_port();
    pbx.trunk(
        ([127, 0, 0, 1], trunk_port).into(),
        &["127.0.0.1/32"],
        &[DID],
        None,
    )
    .await;
    let caller = Sipp::scenario("call_trunk_uac_cancel")
        .target(pbx.sip)
        .service(DID.trim_start_matches('+')) // a DID matches with or without '+'
        .key("caller", CALLER)
        .calls(1)
        .timeout(Duration::from_secs(15))
        .run_async()
        .await;
    caller.assert_success();
    for agent in ringing {
        let run = agent.wait_async().await;
        run.assert_success();
        assert!(
            run.logs.contains("cancelled"),
            "every ringing agent gets CANCEL\n{run}"
        );
    }
    let calls = pbx
        .wait_calls(Duration::from_secs(10), "one ended call", |c| {
            c.len() == 1 && c[0]["ended_at"].is_string()
        })
        .await;
    let call = &calls[0];
    let status = text(call, "status");
    assert!(
        status == "missed" || status == "cancelled",
        "status {status}: {call:#}"
    );
    assert!(call["answered_at"].is_null(), "{call:#}");
    assert_eq!(text(call, "hangup_by"), "caller", "{call:#}");
    let customer = call["customer_id"]
        .as_i64()
        .expect("the caller became a customer");
    let timeline = pbx.timeline(customer).await;
    assert!(
        timeline
            .iter()
            .any(|i| i["kind"] == "call" && i["id"] == call["id"] && i["status"] == call["status"]),
        "the call is in the customer's timeline: {timeline:#?}"
    );
}
