//! Calls and packets masterz must refuse: an INVITE from a source no trunk lists, an offer
//! with no codec in common, and RTP that is not from the call's peer or not RTP at all.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::pbx::{CALLER, DID, Pbx, free_media_port, tone_8s};
use crate::peers::{self, free_port, sipp::Sipp};
use crate::rtp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_from_an_unknown_source_gets_403_and_leaves_no_call() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let trunk_port = free_port();
    pbx.trunk(
        ([127, 0, 0, 1], trunk_port).into(),
        &["10.9.9.9/32"],
        &[DID],
        None,
    )
    .await;
    let run = Sipp::scenario("call_trunk_uac_refused")
        .target(pbx.sip)
        .service(DID)
        .key("caller", CALLER)
        .key("sdp_pts", "0")
        .key("sdp_rtpmap", "a=rtpmap:0 PCMU/8000")
        .calls(1)
        .timeout(Duration::from_secs(15))
        .run_async()
        .await;
    run.assert_success();
    assert!(run.logs.contains("refused status=403"), "{run}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        pbx.calls().await.is_empty(),
        "no call row for a refused source"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_of_g729_only_gets_488() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("codec1").await;
    let port = free_port();
    pbx.register(&agent, port).await;
    let trunk_port = free_port();
    pbx.trunk(
        ([127, 0, 0, 1], trunk_port).into(),
        &["127.0.0.1/32"],
        &[DID],
        None,
    )
    .await;
    let run = Sipp::scenario("call_trunk_uac_refused")
        .target(pbx.sip)
        .service(DID)
        .key("caller", CALLER)
        .key("sdp_pts", "18")
        .key("sdp_rtpmap", "a=rtpmap:18 G729/8000")
        .calls(1)
        .timeout(Duration::from_secs(15))
        .run_async()
        .await;
    run.assert_success();
    assert!(run.logs.contains("refused status=488"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_spoofed_rtp_are_dropped_and_counted_and_the_call_goes_on() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("spoof1").await;
    let port = free_port();
    pbx.register(&agent, port).await;
    let phone = Sipp::scenario("call_agent_uas")
        .local_port(port)
        .service(&agent.sip_user)
        .rtp_echo()
        .media_port(free_media_port())
        .key("talk_ms", "600000")
        .calls(1)
        .timeout(Duration::from_secs(30))
        .spawn();
    let trunk_port = free_port();
    pbx.trunk(
        ([127, 0, 0, 1], trunk_port).into(),
        &["127.0.0.1/32"],
        &[DID],
        None,
    )
    .await;
    let caller = Sipp::scenario("call_trunk_uac")
        .target(pbx.sip)
        .service(DID)
        .key("caller", CALLER)
        .key("pcap", &tone_8s())
        .key("talk_ms", "6000")
        .key("session_expires", "1800")
        .calls(1)
        .timeout(Duration::from_secs(25))
        .spawn();
    // masterz's media port for the caller, from the 200's SDP.
    let deadline = Instant::now() + Duration::from_secs(10);
    let media_port = loop {
        let logs = caller.logs_now();
        if let Some(p) = logs
            .split("answered media=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse::<u16>().ok())
        {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the call was not answered: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = phone.rtp_echoed_now().unwrap_or(0);
    let to: SocketAddr = ([127, 0, 0, 1], media_port).into();
    rtp::send_spoofed(to, 50);
    rtp::send_garbage(to, 30);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = phone.rtp_echoed_now().unwrap_or(0);
    let caller = caller.wait_async().await;
    let phone = phone.wait_async().await;
    caller.assert_success();
    phone.assert_success();
    assert!(
        after >= before + 50,
        "RTP still flows after the bad packets: {before} then {after} echoed"
    );
    let calls = pbx
        .wait_calls(Duration::from_secs(10), "one completed call", |c| {
            c.len() == 1 && c[0]["status"] == "completed"
        })
        .await;
    let metrics = pbx.metrics("masterz_media_rtp_dropped").await;
    let dropped: f64 = metrics.iter().map(|(_, v)| v).sum();
    assert!(
        dropped >= 80.0,
        "the 50 spoofed and 30 garbage datagrams are counted as dropped: {metrics:?}; the call's media: {:#}",
        calls[0]["media"]
    );
}
