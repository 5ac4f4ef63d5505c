//! `kill -9` during a recorded call: after the restart the WAV is whole up to about a second
//! before the kill (hound and `sox --i` open it), its row is closed as `repaired`, and the call
//! is ended with the reason "server restart". Runs the real `masterz` binary, set up with
//! `masterz admin` as an operator would.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use masterz::store::{self, Db};

use crate::pbx::{CALLER, DID, fixture, free_media_port};
use crate::peers::{self, free_port, sipp::Sipp};

const BIN: &str = env!("CARGO_BIN_EXE_masterz");

fn masterz(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("MASTERZ_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("MASTERZ_DATA_DIR", dir).stdin(Stdio::null());
    cmd
}

fn admin(dir: &Path, args: &[&str]) -> String {
    let out = masterz(dir).arg("admin").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Served {
    fn start(dir: &Path) -> (Self, SocketAddr) {
        let mut child = masterz(dir)
            .arg("serve")
            .env("MASTERZ_HTTP_LISTEN", "127.0.0.1:0")
            .env("MASTERZ_SIP_LISTEN", "127.0.0.1:0")
            .env("MASTERZ_RTP_PORTS", "32000-32399")
            .env("MASTERZ_SIP_TRUNK_POLL_SECS", "1")
            .env("MASTERZ_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Self { child, lines };
        let line = s.wait_for("SIP listening");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let sip = v["fields"]["sip_addr"]
            .as_str()
            .or_else(|| v["sip_addr"].as_str())
            .unwrap_or_else(|| panic!("no sip_addr in {line}"))
            .parse()
            .unwrap();
        (s, sip)
    }

    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                if line.contains(needle) {
                    return line;
                }
                seen.push(line);
            }
        }
        panic!("no line with {needle:?} in:\n{}", seen.join("\n"));
    }

    fn kill9(mut self) {
        Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn db(dir: &Path) -> Db {
    Db::connect(&format!("sqlite://{}", dir.join("masterz.db").display()), 2)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_recorded_call_keeps_the_audio_up_to_the_last_second() {
    if !peers::require(peers::SIPP) || !peers::require("sox") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    admin(d, &["create-company", "--name", "Crash", "--slug", "crash"]);
    admin(
        d,
        &[
            "create-user",
            "--company",
            "crash",
            "--email",
            "ann@crash.example.com",
            "--password",
            "long-password",
            "--role",
            "agent",
            "--sip-username",
            "ann",
            "--sip-password",
            "ann-sip-secret-1",
        ],
    );
    admin(
        d,
        &[
            "create-trunk",
            "--company",
            "crash",
            "--name",
            "Carrier",
            "--host",
            "127.0.0.1",
            "--source",
            "127.0.0.1/32",
            "--did",
            DID,
        ],
    );
    admin(d, &["set-recording", "--company", "crash", "on"]);
    let (server, sip) = Served::start(d);

    let agent_port = free_port();
    Sipp::scenario("call_agent_register")
        .target(sip)
        .local_port(agent_port)
        .service("ann")
        .auth("ann", "ann-sip-secret-1")
        .calls(1)
        .timeout(Duration::from_secs(15))
        .run_async()
        .await
        .assert_success();
    let uas = Sipp::scenario("call_agent_uas_play")
        .local_port(agent_port)
        .service("ann")
        .media_port(free_media_port())
        .key("pcap", &fixture("pcmu_1khz_8s.pcap").display().to_string())
        .key("talk_ms", "600000")
        .timeout(Duration::from_secs(60))
        .spawn();
    let caller = Sipp::scenario("call_trunk_uac")
        .target(sip)
        .service(DID)
        .media_port(free_media_port())
        .key("caller", CALLER)
        .key("pcap", &fixture("pcmu_440hz_8s.pcap").display().to_string())
        .key("talk_ms", "60000")
        .key("session_expires", "1800")
        .calls(1)
        .timeout(Duration::from_secs(60))
        .spawn();

    // Wait for the recording to run, then let it record ~5 s.
    let db = db(d).await;
    let company = {
        let mut conn = db.conn().await.unwrap();
        store::companies::by_slug(&mut conn.ex(), "crash")
            .await
            .unwrap()
            .unwrap()
            .id
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let rec = loop {
        let mut conn = db.conn().await.unwrap();
        let r = store::recordings::list(&mut conn.ex(), company, &Default::default())
            .await
            .unwrap();
        if let Some(r) = r.into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "the call was never recorded");
        drop(conn);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let recorded_ms = store::now_ms() - rec.started_at.0;
    server.kill9();
    let _ = caller.stop();
    let _ = uas.stop();

    // Restart: recovery runs before SIP listens.
    let (server, _) = Served::start(d);
    let mut conn = db.conn().await.unwrap();
    let rec = store::recordings::get(&mut conn.ex(), company, rec.id)
        .await
        .unwrap()
        .unwrap();
    let call = store::calls::get(&mut conn.ex(), company, rec.call_id)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    drop(server);
    assert_eq!(rec.status, "repaired", "{rec:?}");
    assert_eq!(
        call.end_reason.as_deref(),
        Some("server restart"),
        "{call:?}"
    );
    assert!(call.ended_at.is_some());

    let path = d.join(&rec.path);
    let (left, right) = crate::recording::read_stereo(&path);
    let wav_ms = left.len() as i64 / 8;
    assert_eq!(rec.duration_ms, Some(wav_ms), "{rec:?}");
    // At most about a second lost (the header is made valid every second).
    assert!(
        wav_ms >= recorded_ms - 1600 && wav_ms <= recorded_ms + 200,
        "kept {wav_ms} ms of {recorded_ms} ms recorded before the kill"
    );
    // And it is the call's audio: the caller left, the agent right.
    let tail = |x: &[f64]| x[x.len().saturating_sub(16_000)..].to_vec();
    let (l, r) = (tail(&left), tail(&right));
    assert!(crate::recording::goertzel(&l, 440.0) > 100.0 * crate::recording::goertzel(&l, 1000.0));
    assert!(crate::recording::goertzel(&r, 1000.0) > 100.0 * crate::recording::goertzel(&r, 440.0));
    let sox = Command::new("sox").arg("--i").arg(&path).output().unwrap();
    let info = String::from_utf8_lossy(&sox.stdout);
    assert!(
        sox.status.success(),
        "sox --i: {info} {}",
        String::from_utf8_lossy(&sox.stderr)
    );
    assert!(info.contains("Channels       : 2"), "{info}");
    assert!(info.contains("Sample Rate    : 8000"), "{info}");
    assert_eq!(
        rec.size_bytes,
        Some(std::fs::metadata(&path).unwrap().len() as i64)
    );
}
