//! The interop harness (`tests/peers`) and the scenarios in `tests/sipp`, tested against each
//! other without masterz: SIPp against SIPp, baresip against SIPp, baresip over TLS against
//! `openssl s_server`. Each test is skipped when its peer is not installed, except under CI.

#[path = "peers/mod.rs"]
mod peers;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use peers::baresip::{AnswerMode, Baresip, SipTransport, event};
use peers::sipp::{Sipp, Transport};

const SECS_10: Duration = Duration::from_secs(10);

#[test]
fn sipp_builtin_uac_against_builtin_uas() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let uas = Sipp::builtin("uas").calls(3).timeout(SECS_10).spawn();
    let uac = Sipp::builtin("uac")
        .target(uas.local_addr())
        .calls(3)
        .rate(10.0)
        .limit(3)
        .timeout(SECS_10)
        .run();
    uac.assert_success();
    uas.wait().assert_success();
}

#[test]
fn sipp_register_auth_against_trunk_registrar() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let registrar = Sipp::scenario("trunk_registrar_uas")
        .auth("alice", "s3cret")
        .calls(1)
        .timeout(SECS_10)
        .spawn();
    let ua = Sipp::scenario("register_auth")
        .target(registrar.local_addr())
        .service("alice")
        .auth("alice", "s3cret")
        .calls(1)
        .timeout(SECS_10)
        .run();
    ua.assert_success();
    assert_eq!(
        ua.log_lines(),
        [
            "register_auth: challenged",
            "register_auth: registered",
            "register_auth: unregistered"
        ],
        "{ua}"
    );
    let registrar = registrar.wait();
    registrar.assert_success();
    let logs = registrar.logs.as_str();
    assert!(
        logs.contains("REGISTER 2 username=alice valid=true"),
        "{registrar}"
    );
    assert!(logs.contains("refreshed"), "{registrar}");
    // The refresh (here: the unregister) carried the cached credentials, nc=2.
    let received = registrar.received();
    assert_eq!(received.len(), 3, "{registrar}");
    assert!(received[2].contains("nc=00000002"), "{registrar}");
}

#[test]
fn sipp_register_auth_over_tcp() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let registrar = Sipp::scenario("trunk_registrar_uas")
        .transport(Transport::Tcp)
        .auth("alice", "s3cret")
        .calls(1)
        .timeout(SECS_10)
        .spawn();
    let ua = Sipp::scenario("register_auth")
        .transport(Transport::Tcp)
        .target(registrar.local_addr())
        .service("alice")
        .auth("alice", "s3cret")
        .calls(1)
        .timeout(SECS_10)
        .run();
    ua.assert_success();
    assert!(ua.messages.contains("TCP message received"), "{ua}");
    registrar.wait().assert_success();
}

#[test]
fn sipp_trunk_registrar_refuses_a_wrong_password() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let registrar = Sipp::scenario("trunk_registrar_uas")
        .auth("alice", "s3cret")
        .calls(1)
        .timeout(SECS_10)
        .spawn();
    let ua = Sipp::scenario("register_auth")
        .target(registrar.local_addr())
        .service("alice")
        .auth("alice", "not-it")
        .calls(1)
        .timeout(SECS_10)
        .run();
    assert!(!ua.success(), "{ua}");
    assert!(ua.messages.contains("SIP/2.0 403 Forbidden"), "{ua}");
    let registrar = registrar.wait();
    assert!(!registrar.success(), "{registrar}");
    assert!(registrar.logs.contains("valid=false"), "{registrar}");
}

#[test]
fn sipp_wrong_password_until_rate_limited() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let limiter = Sipp::scenario("selftest_limiter_uas")
        .calls(1)
        .timeout(SECS_10)
        .spawn();
    let guesser = Sipp::scenario("register_wrong_password")
        .target(limiter.local_addr())
        .service("alice")
        .auth("alice", "wrong")
        .calls(1)
        .timeout(SECS_10)
        .run();
    guesser.assert_success();
    let lines = guesser.log_lines();
    let challenged = lines.iter().filter(|l| l.ends_with("status=401")).count();
    assert_eq!(challenged, 3, "{guesser}");
    assert_eq!(
        lines.last().copied(),
        Some("register_wrong_password: limited attempt=4.000000 status=403"),
        "{guesser}"
    );
    limiter.wait().assert_success();

    // Never limited within max_attempts: a fatal error, exit code 255.
    let limiter = Sipp::scenario("selftest_limiter_uas")
        .timeout(Duration::from_secs(5))
        .spawn();
    let guesser = Sipp::scenario("register_wrong_password")
        .target(limiter.local_addr())
        .service("alice")
        .auth("alice", "wrong")
        .key("max_attempts", "2")
        .calls(1)
        .timeout(SECS_10)
        .run();
    assert_eq!(guesser.code, Some(255), "{guesser}");
    assert!(guesser.stderr.contains("never rate-limited"), "{guesser}");
    drop(limiter.stop());
}

#[test]
fn sipp_options_answered() {
    if !peers::require(peers::SIPP) {
        return;
    }
    // -aa: SIPp answers OPTIONS outside any call with 200.
    let server = Sipp::builtin("uas").arg("-aa").timeout(SECS_10).spawn();
    let ping = Sipp::scenario("options")
        .target(server.local_addr())
        .calls(2)
        .timeout(SECS_10)
        .run();
    ping.assert_success();
    assert_eq!(ping.received().len(), 2, "{ping}");
    drop(server.stop());
}

#[test]
fn sipp_injection_file_fields() {
    if !peers::require(peers::SIPP) {
        return;
    }
    // Each call takes the next row: [field0] is the user here.
    let scenario =
        std::env::temp_dir().join(format!("masterz-selftest-inf-{}.xml", std::process::id()));
    let text = std::fs::read_to_string(peers::scenario_dir().join("options.xml"))
        .expect("options.xml")
        .replace("From: <sip:[service]@", "From: <sip:[field0]@");
    std::fs::write(&scenario, text).expect("write scenario");
    let server = Sipp::builtin("uas").arg("-aa").timeout(SECS_10).spawn();
    let ping = Sipp::scenario_file(&scenario)
        .target(server.local_addr())
        .inf_rows(peers::sipp::InfOrder::Sequential, [["carol"], ["dave"]])
        .calls(2)
        .timeout(SECS_10)
        .run();
    let _ = std::fs::remove_file(&scenario);
    ping.assert_success();
    assert!(ping.messages.contains("From: <sip:carol@"), "{ping}");
    assert!(ping.messages.contains("From: <sip:dave@"), "{ping}");
    drop(server.stop());
}

#[test]
fn baresip_registers_and_refreshes_with_a_sipp_registrar() {
    if !peers::require(peers::SIPP) || !peers::require(peers::BARESIP) {
        return;
    }
    let registrar = Sipp::scenario("trunk_registrar_uas")
        .auth("alice", "s3cret")
        .key("grant_expires", "2")
        .calls(1)
        .timeout(SECS_10)
        .spawn();
    let mut phone = Baresip::builder("alice", registrar.local_addr())
        .password("s3cret")
        .start();
    let ok = phone.wait_for_event(event::REGISTER_OK, SECS_10);
    assert_eq!(ok["class"], "register");
    assert_eq!(ok["accountaor"], phone.aor());
    assert_eq!(ok["param"], "200 OK");
    // baresip refreshes at 90 % of the 2 s it was granted.
    phone.wait_for_event(event::REGISTER_OK, SECS_10);
    let registrar = registrar.wait();
    registrar.assert_success();
    assert!(registrar.logs.contains("refreshed"), "{registrar}");
    assert!(phone.reginfo().contains("OK"), "{}", phone.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_a_sipp_uas_async() {
    if !peers::require(peers::SIPP) || !peers::require(peers::BARESIP) {
        return;
    }
    let callee = Sipp::builtin("uas").calls(1).timeout(SECS_10).spawn();
    let target = callee.local_addr();
    let mut phone = Baresip::builder("bob", target).regint(0).record().start();
    let r = phone
        .command_async("dial", &format!("sip:service@{target}"))
        .await;
    assert!(r.ok, "dial: {}", r.data);
    let up = phone
        .wait_for_event_async(event::CALL_ESTABLISHED, SECS_10)
        .await;
    assert_eq!(up["direction"], "outgoing");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = phone.command_async("hangup", "").await;
    assert!(r.ok, "hangup: {}", r.data);
    phone
        .wait_for_event_async(event::CALL_CLOSED, SECS_10)
        .await;
    callee.wait_async().await.assert_success();
    assert!(
        !phone.log().contains("start_source failed"),
        "{}",
        phone.report()
    );
    let recordings = phone.recordings();
    assert_eq!(recordings.len(), 2, "{recordings:?}\n{}", phone.report());
    // What baresip sent (the encoder side) is the tone, not silence.
    let sent = recordings
        .iter()
        .find(|p| p.to_string_lossy().ends_with("-enc.wav"))
        .expect("an -enc.wav recording");
    let wav = std::fs::read(sent).expect("read the recording");
    let loudest = wav[44..]
        .chunks_exact(2)
        .map(|s| i16::from_le_bytes([s[0], s[1]]).unsigned_abs())
        .max()
        .unwrap_or(0);
    assert!(loudest > 1000, "{} is silent", sent.display());
}

#[test]
fn baresip_auto_answers_a_sipp_uac() {
    if !peers::require(peers::SIPP) || !peers::require(peers::BARESIP) {
        return;
    }
    // Sends a WAV file this time (aufile), one second of 8 kHz mono silence.
    let wav = tempfile::Builder::new()
        .suffix(".wav")
        .tempfile()
        .expect("temp file");
    std::fs::write(wav.path(), silent_wav(8000, 8000)).expect("write wav");
    let mut phone = Baresip::builder("carol", "127.0.0.1:9".parse().unwrap())
        .regint(0)
        .source_file(wav.path(), 8000)
        .start();
    let caller = Sipp::builtin("uac")
        .target(phone.sip_addr())
        .service("carol")
        .calls(1)
        .arg("-d")
        .arg("500")
        .timeout(SECS_10)
        .spawn();
    // Auto-answered calls give no CALL_INCOMING in baresip 1.0.0.
    let up = phone.wait_for_event(event::CALL_ESTABLISHED, SECS_10);
    assert_eq!(up["direction"], "incoming");
    assert_eq!(up["peeruri"], format!("sip:sipp@{}", caller.local_addr()));
    phone.wait_for_event(event::CALL_CLOSED, SECS_10);
    caller.wait().assert_success();
    assert!(
        !phone.log().contains("start_source failed"),
        "{}",
        phone.report()
    );
}

#[test]
fn baresip_rings_until_accepted() {
    if !peers::require(peers::SIPP) || !peers::require(peers::BARESIP) {
        return;
    }
    let mut phone = Baresip::builder("erin", "127.0.0.1:9".parse().unwrap())
        .regint(0)
        .answer_mode(AnswerMode::Manual)
        .start();
    let caller = Sipp::builtin("uac")
        .target(phone.sip_addr())
        .service("erin")
        .calls(1)
        .timeout(SECS_10)
        .spawn();
    let ringing = phone.wait_for_event(event::CALL_INCOMING, SECS_10);
    assert_eq!(ringing["direction"], "incoming");
    let r = phone.accept();
    assert!(r.ok, "accept: {}", r.data);
    phone.wait_for_event(event::CALL_ESTABLISHED, SECS_10);
    phone.wait_for_event(event::CALL_CLOSED, SECS_10);
    caller.wait().assert_success();
}

/// A mono 16-bit PCM WAV file of `samples` zero samples.
fn silent_wav(rate: u32, samples: u32) -> Vec<u8> {
    let data = samples * 2;
    let mut w = Vec::with_capacity(44 + data as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    w.resize(44 + data as usize, 0);
    w
}

#[test]
fn baresip_registers_over_tls_to_a_self_signed_server() {
    if !peers::require(peers::BARESIP) || !peers::require("openssl") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl req");
    assert!(made.status.success(), "{made:?}");

    // A TLS server that prints what it receives; its stdin stays open so it does not quit.
    let port = peers::free_port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    let (tx, rx) = mpsc::channel();
    let out = server.stdout.take().expect("s_server stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // s_server is ready once it says ACCEPT.
    let deadline = Instant::now() + SECS_10;
    let mut seen = Vec::new();
    let ready = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains("ACCEPT") => break true,
            Ok(line) => seen.push(line),
            Err(_) => break false,
        }
    };
    assert!(ready, "openssl s_server did not start: {seen:?}");

    let phone = Baresip::builder("dave", format!("127.0.0.1:{port}").parse().unwrap())
        .transport(SipTransport::Tls)
        .password("pw")
        .ca_file(&cert)
        .start();
    let deadline = Instant::now() + SECS_10;
    let mut register = None;
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.starts_with("REGISTER sip:") {
            register = Some(line);
            break;
        }
        seen.push(line);
    }
    let _ = server.kill();
    let _ = server.wait();
    let register = register.unwrap_or_else(|| {
        panic!(
            "no REGISTER over TLS; s_server said {seen:?}\n{}",
            phone.report()
        )
    });
    assert!(register.contains("transport=tls"), "{register}");
    assert!(phone.log().contains("adding SIP CA"), "{}", phone.report());
}
