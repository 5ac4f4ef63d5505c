//! Calls placed by agents: out through a trunk that challenges masterz with 407, and to
//! another agent's extension.

use std::time::Duration;

use crate::pbx::{Pbx, free_media_port, num, text, tone_3s, udp_socket_stats};
use crate::peers::{self, free_port, sipp::Sipp};

const NUMBER: &str = "+4930123456";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_calls_out_through_a_trunk_that_challenges_with_407() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("out1").await;
    let trunk_port = free_port();
    let provider = Sipp::scenario("call_trunk_uas_challenge")
        .local_port(trunk_port)
        .auth("acme-trunk", "trunk-pass-9")
        .rtp_echo()
        .media_port(free_media_port())
        .calls(1)
        .timeout(Duration::from_secs(30))
        .spawn();
    // No inbound calls on this trunk: its source is elsewhere, so the agent's INVITE (from
    // 127.0.0.1 too) cannot pass for one.
    pbx.trunk(
        ([127, 0, 0, 1], trunk_port).into(),
        &["10.9.9.9/32"],
        &["+15551239999"],
        Some(("acme-trunk", "trunk-pass-9")),
    )
    .await;
    let agent_media = free_media_port();
    let phone = Sipp::scenario("call_trunk_uac")
        .target(pbx.sip)
        .service(NUMBER)
        .auth(&agent.sip_user, &agent.password)
        .arg("-auth_uri")
        .arg(format!("{NUMBER}@{}", pbx.sip))
        .media_port(agent_media)
        .key("caller", &agent.sip_user)
        .key("pcap", &tone_3s())
        .key("talk_ms", "3500")
        .key("session_expires", "1800")
        .calls(1)
        .timeout(Duration::from_secs(20))
        .spawn();
    let mut phone = phone;
    let mut back = (0, 0);
    let mut echoed = None;
    while phone.is_running() {
        if let Some((rx, drops)) = udp_socket_stats(agent_media) {
            back = (back.0.max(rx), back.1.max(drops));
        }
        if phone.logs_now().contains("answered") && echoed.is_none() {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            echoed = provider.rtp_echoed_now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let phone = phone.wait_async().await;
    let provider = provider.wait_async().await;
    phone.assert_success();
    provider.assert_success();
    assert!(
        phone.logs.contains("challenged"),
        "masterz challenges its agent\n{phone}"
    );
    assert!(
        provider
            .logs
            .contains(&format!("ruri=sip:{NUMBER}@127.0.0.1:{trunk_port}"))
            || provider.logs.contains(&format!("ruri=sip:{}@", NUMBER)),
        "{provider}"
    );
    check_proxy_digest(&provider.received(), "acme-trunk", "trunk-pass-9");
    let echoed = echoed.unwrap_or(0);
    assert!(
        echoed >= 100,
        "the provider got {echoed} RTP packets of 150\n{provider}"
    );
    assert!(
        back.0 > 0 || back.1 > 0,
        "no RTP came back to the agent's media port (queue/drops {back:?})"
    );
    let calls = pbx
        .wait_calls(Duration::from_secs(10), "one completed call", |c| {
            c.len() == 1 && c[0]["status"] == "completed"
        })
        .await;
    let c = &calls[0];
    assert!(text(c, "direction").starts_with("out"), "{c:#}");
    assert_eq!(c["agent_user_id"], agent.user.0, "{c:#}");
    assert!(c["answered_at"].is_string(), "{c:#}");
    assert!(
        num(c, "rtp_packets_in") >= 100 && num(c, "rtp_packets_out") >= 100,
        "{c:#}"
    );
}

/// The second INVITE the provider got carries a Proxy-Authorization whose MD5 digest
/// (RFC 2617, qop=auth) is right for `user`/`password`: computed here with Python's hashlib,
/// independently of masterz's digest code and of SIPp (whose verifyauth reads Authorization
/// only).
fn check_proxy_digest(received: &[&str], user: &str, password: &str) {
    let invite = received
        .iter()
        .filter(|m| m.starts_with("INVITE "))
        .find(|m| m.contains("Proxy-Authorization:"))
        .unwrap_or_else(|| panic!("no INVITE with Proxy-Authorization: {received:#?}"));
    let header = invite
        .lines()
        .find(|l| l.starts_with("Proxy-Authorization:"))
        .unwrap();
    let param = |name: &str| -> String {
        let key = format!("{name}=");
        let at = header
            .match_indices(&key)
            .find(|(i, _)| {
                let before = header[..*i].chars().last().unwrap_or(' ');
                before == ' ' || before == ','
            })
            .unwrap_or_else(|| panic!("no {name} in {header}"))
            .0
            + key.len();
        let rest = &header[at..];
        if let Some(q) = rest.strip_prefix('"') {
            q[..q.find('"').unwrap()].to_owned()
        } else {
            rest.split([',', ' ']).next().unwrap().to_owned()
        }
    };
    assert_eq!(param("username"), user, "{header}");
    let script = "import hashlib,sys\nh=lambda s: hashlib.md5(s.encode()).hexdigest()\n\
        u,r,p,n,nc,cn,q,uri=sys.argv[1:9]\n\
        print(h(':'.join([h(f'{u}:{r}:{p}'),n,nc,cn,q,h('INVITE:'+uri)])))";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args([
            user,
            &param("realm"),
            password,
            &param("nonce"),
            &param("nc"),
            &param("cnonce"),
            &param("qop"),
            &param("uri"),
        ])
        .output()
        .expect("python3 computes the digest");
    let expected = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        param("response"),
        expected,
        "the digest response is wrong for {user}: {header}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_calls_another_agents_extension() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let caller = pbx.agent("ext1").await;
    let callee = pbx.agent("ext2").await;
    let port = free_port();
    pbx.register(&callee, port).await;
    let uas = Sipp::scenario("call_agent_uas")
        .local_port(port)
        .service(&callee.sip_user)
        .rtp_echo()
        .media_port(free_media_port())
        .key("talk_ms", "600000")
        .calls(1)
        .timeout(Duration::from_secs(25))
        .spawn();
    let phone = Sipp::scenario("call_trunk_uac")
        .target(pbx.sip)
        .service(&callee.sip_user)
        .auth(&caller.sip_user, &caller.password)
        .arg("-auth_uri")
        .arg(format!("{}@{}", callee.sip_user, pbx.sip))
        .key("caller", &caller.sip_user)
        .key("pcap", &tone_3s())
        .key("talk_ms", "3500")
        .key("session_expires", "1800")
        .calls(1)
        .timeout(Duration::from_secs(20))
        .spawn();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let echoed = uas.rtp_echoed_now().unwrap_or(0);
    let phone = phone.wait_async().await;
    let uas = uas.wait_async().await;
    phone.assert_success();
    uas.assert_success();
    assert!(echoed >= 50, "the callee got {echoed} RTP packets\n{uas}");
    let calls = pbx
        .wait_calls(Duration::from_secs(10), "one completed call", |c| {
            c.len() == 1 && c[0]["status"] == "completed"
        })
        .await;
    assert!(calls[0]["answered_at"].is_string(), "{:#}", calls[0]);
}
