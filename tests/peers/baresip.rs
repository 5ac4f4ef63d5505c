//! baresip as a test peer: a softphone with one account, driven over its `ctrl_tcp` module.
//!
//! [`Baresip::builder`] writes a config directory (no audio device: a sine tone or a WAV file
//! as the source, baresip's `aubridge` as a sink nobody reads, optionally `sndfile` dumping
//! both directions to WAV files; G.711), starts `baresip -f <dir> -t <lifetime>` (baresip quits
//! by itself after the lifetime; the process is killed on drop), connects to `ctrl_tcp` and
//! only then adds the account with `uanew`, so that no event of the first registration is lost
//! (ctrl_tcp sends events only to a connected client, and the `account` module would register
//! at start-up, before the harness can connect; `accounts` stays a comment).
//!
//! The ctrl_tcp protocol of baresip 1.0.0 (`modules/ctrl_tcp/ctrl_tcp.c`, checked against a
//! live 1.0.0): one TCP client at a time; every message both ways is a netstring,
//! `<decimal length>:<JSON>,`.
//! - command: `{"command":"uanew","params":"<sip:…>;…","token":"t1"}`; `params` is optional.
//!   The command and params are joined with a space and run as a long command of the `menu`
//!   module (`dial <uri>`, `accept`, `hangup`, `reginfo`, `uanew <account>`, `listcalls`, …).
//! - response: `{"response":true,"ok":true,"data":"<the command's text output>","token":"t1"}`.
//! - event: `{"event":true,"type":"REGISTER_OK","class":"register",
//!   "accountaor":"sip:alice@127.0.0.1:5060","param":"200 OK"}`; call events add `direction`,
//!   `peeruri`, `peerdisplayname` and `id`. Types: REGISTERING, REGISTER_OK, REGISTER_FAIL,
//!   UNREGISTERING, CALL_INCOMING, CALL_RINGING, CALL_PROGRESS, CALL_ESTABLISHED, CALL_CLOSED,
//!   CALL_RTPESTAB, CALL_DTMF_START, CALL_DTMF_END, CALL_MENC, CALL_LOCAL_SDP, …
//!   With `answermode=auto` an incoming call gives no CALL_INCOMING (1.0.0 emits it only
//!   in manual mode): wait for CALL_ESTABLISHED with `"direction":"incoming"`.
//!
//! TLS: baresip 1.0.0 with libre 1.1.0 does not verify the server's certificate at all
//! (`sip_verify_server` only exists from baresip 1.1.0 on), so masterz's self-signed
//! certificate is accepted as is. [`BaresipBuilder::ca_file`] still sets `sip_cafile`, which
//! 1.0.0 loads (a broken file fails the start) but does not enforce.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{read_lossy, tail};

mod builder;
#[allow(unused_imports)] // the harness API; not every test crate uses all of it
pub use builder::{AnswerMode, BaresipBuilder, SipTransport};

/// Where Debian's baresip keeps its modules.
const MODULE_PATH: &str = "/usr/lib/baresip/modules";

/// How long a command may take to answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Event types (the `type` field) that tests wait for.
pub mod event {
    pub const REGISTERING: &str = "REGISTERING";
    pub const REGISTER_OK: &str = "REGISTER_OK";
    pub const REGISTER_FAIL: &str = "REGISTER_FAIL";
    pub const UNREGISTERING: &str = "UNREGISTERING";
    pub const CALL_INCOMING: &str = "CALL_INCOMING";
    pub const CALL_RINGING: &str = "CALL_RINGING";
    pub const CALL_PROGRESS: &str = "CALL_PROGRESS";
    pub const CALL_ESTABLISHED: &str = "CALL_ESTABLISHED";
    pub const CALL_RTPESTAB: &str = "CALL_RTPESTAB";
    pub const CALL_CLOSED: &str = "CALL_CLOSED";
    pub const CALL_DTMF_START: &str = "CALL_DTMF_START";
    pub const CALL_DTMF_END: &str = "CALL_DTMF_END";
}

/// A command's answer.
#[derive(Clone, Debug)]
pub struct CtrlResponse {
    /// Whether the command succeeded.
    pub ok: bool,
    /// The command's text output (with the terminal colour codes baresip puts in).
    pub data: String,
}

enum Frame {
    Json(Value),
    Garbled(String),
}

/// A running baresip with a ctrl_tcp connection. Killed when dropped.
pub struct Baresip {
    child: Option<Child>,
    dir: tempfile::TempDir,
    aor: String,
    sip_port: u16,
    ctrl: Option<TcpStream>,
    frames: Option<mpsc::Receiver<Frame>>,
    /// Events not yet taken by a wait.
    pending: VecDeque<Value>,
    /// Every event received, for messages.
    seen: Vec<Value>,
    responses: Vec<Value>,
    next_token: u64,
}

impl Baresip {
    /// The account's address of record, `sip:user@domain`.
    pub fn aor(&self) -> &str {
        &self.aor
    }

    /// Where baresip takes SIP over UDP and TCP (TLS is on the next port).
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    /// Where baresip takes SIP over TLS.
    pub fn tls_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port + 1))
    }

    /// The config directory (recordings land here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The WAV files `sndfile` wrote (with [`BaresipBuilder::record`]), sorted by name.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("dump-") && n.ends_with(".wav"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Every event received so far, in order.
    pub fn events(&self) -> &[Value] {
        &self.seen
    }

    /// baresip's stdout and stderr (with `-s`, every SIP message).
    pub fn log(&self) -> String {
        let out = read_lossy(&self.dir.path().join("stdout.txt"));
        let err = read_lossy(&self.dir.path().join("stderr.txt"));
        format!("{out}{err}")
    }

    /// Runs a ctrl_tcp command (`params` empty for none) and returns its answer. Panics when
    /// none comes within 10 s.
    #[track_caller]
    pub fn command(&mut self, name: &str, params: &str) -> CtrlResponse {
        let token = self.send(name, params);
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            if let Some(r) = self.take_response(&token) {
                return r;
            }
            if !self.pump(Some(deadline)) {
                panic!(
                    "baresip gave no answer to {name:?} {params:?}\n{}",
                    self.report()
                );
            }
        }
    }

    /// [`Baresip::command`] without blocking a runtime worker.
    pub async fn command_async(&mut self, name: &str, params: &str) -> CtrlResponse {
        let token = self.send(name, params);
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            while self.pump(None) {}
            if let Some(r) = self.take_response(&token) {
                return r;
            }
            if Instant::now() >= deadline {
                panic!(
                    "baresip gave no answer to {name:?} {params:?}\n{}",
                    self.report()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for an event of `kind` (e.g. [`event::REGISTER_OK`]) and takes it; events of
    /// other kinds stay for later waits. Panics, listing the events seen and baresip's log,
    /// when none comes within `timeout`.
    #[track_caller]
    pub fn wait_for_event(&mut self, kind: &str, timeout: Duration) -> Value {
        match self.try_wait_for_event(kind, timeout) {
            Some(e) => e,
            None => panic!(
                "baresip: no {kind} event within {timeout:?}\n{}",
                self.report()
            ),
        }
    }

    /// Like [`Baresip::wait_for_event`], `None` on timeout.
    pub fn try_wait_for_event(&mut self, kind: &str, timeout: Duration) -> Option<Value> {
        self.try_wait_for(timeout, |e| e["type"] == kind)
    }

    /// Waits for the first event that `matches` and takes it.
    pub fn try_wait_for(
        &mut self,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.pending.iter().position(&matches) {
                return self.pending.remove(i);
            }
            if !self.pump(Some(deadline)) {
                return None;
            }
        }
    }

    /// [`Baresip::wait_for_event`] without blocking a runtime worker.
    pub async fn wait_for_event_async(&mut self, kind: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            while self.pump(None) {}
            if let Some(i) = self.pending.iter().position(|e| e["type"] == kind) {
                return self.pending.remove(i).expect("a pending event");
            }
            if Instant::now() >= deadline {
                panic!(
                    "baresip: no {kind} event within {timeout:?}\n{}",
                    self.report()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `dial <uri>`: calls `uri` from the account.
    #[track_caller]
    pub fn dial(&mut self, uri: &str) -> CtrlResponse {
        self.command("dial", uri)
    }

    /// `accept`: answers the ringing call (with [`AnswerMode::Manual`]).
    #[track_caller]
    pub fn accept(&mut self) -> CtrlResponse {
        self.command("accept", "")
    }

    /// `hangup`: ends the current call.
    #[track_caller]
    pub fn hangup(&mut self) -> CtrlResponse {
        self.command("hangup", "")
    }

    /// `reginfo`: the registration status text.
    #[track_caller]
    pub fn reginfo(&mut self) -> String {
        self.command("reginfo", "").data
    }

    /// Stops baresip with SIGTERM (it unregisters first; SIGKILL after `grace`) and returns
    /// its log.
    pub fn stop(mut self, grace: Duration) -> String {
        if let Some(mut child) = self.child.take() {
            super::terminate(&mut child, grace);
        }
        self.log()
    }

    /// The events seen and the tail of the log, for assertion messages.
    pub fn report(&self) -> String {
        let mut r = String::from("--- ctrl_tcp events seen ---\n");
        for e in &self.seen {
            let _ = writeln!(r, "{e}");
        }
        let _ = write!(r, "--- baresip log (tail) ---\n{}", tail(&self.log(), 8000));
        r
    }

    fn connect(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                break s;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "baresip exited ({status}) before ctrl_tcp listened\n{}",
                    self.report()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "baresip's ctrl_tcp did not listen on 127.0.0.1:{port} within 10 s\n{}",
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let reader = stream.try_clone().expect("clone the ctrl_tcp stream");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || read_frames(reader, tx));
        self.ctrl = Some(stream);
        self.frames = Some(rx);
    }

    fn send(&mut self, name: &str, params: &str) -> String {
        self.next_token += 1;
        let token = format!("t{}", self.next_token);
        let mut msg = json!({ "command": name, "token": token });
        if !params.is_empty() {
            msg["params"] = Value::from(params);
        }
        let body = msg.to_string();
        let frame = format!("{}:{body},", body.len());
        let stream = self.ctrl.as_mut().expect("ctrl_tcp connected");
        if let Err(e) = stream.write_all(frame.as_bytes()) {
            panic!("send {body} to baresip: {e}\n{}", self.report());
        }
        token
    }

    fn take_response(&mut self, token: &str) -> Option<CtrlResponse> {
        let i = self.responses.iter().position(|r| r["token"] == token)?;
        let r = self.responses.remove(i);
        Some(CtrlResponse {
            ok: r["ok"].as_bool().unwrap_or(false),
            data: r["data"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Takes one frame off the connection, waiting until `deadline` (not at all with `None`).
    /// `false` when none came (or the connection is gone).
    fn pump(&mut self, deadline: Option<Instant>) -> bool {
        let Some(rx) = &self.frames else { return false };
        let frame = match deadline {
            None => rx.try_recv().ok(),
            Some(d) => rx
                .recv_timeout(d.saturating_duration_since(Instant::now()))
                .ok(),
        };
        match frame {
            Some(Frame::Json(v)) if v["event"] == true => {
                self.seen.push(v.clone());
                self.pending.push_back(v);
                true
            }
            Some(Frame::Json(v)) => {
                self.responses.push(v);
                true
            }
            Some(Frame::Garbled(text)) => {
                panic!(
                    "baresip sent a frame that is not JSON: {text:?}\n{}",
                    self.report()
                )
            }
            None => false,
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads netstrings (`<len>:<payload>,`) off ctrl_tcp until it closes.
fn read_frames(mut stream: TcpStream, tx: mpsc::Sender<Frame>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while let Some(colon) = buf.iter().position(|&b| b == b':') {
            let Some(len) = std::str::from_utf8(&buf[..colon])
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
            else {
                let text = String::from_utf8_lossy(&buf).into_owned();
                let _ = tx.send(Frame::Garbled(text));
                return;
            };
            let end = colon + 1 + len;
            if buf.len() <= end {
                break; // incomplete: wait for the rest and the trailing comma
            }
            let payload = &buf[colon + 1..end];
            let frame = match (serde_json::from_slice(payload), buf[end]) {
                (Ok(v), b',') => Frame::Json(v),
                _ => Frame::Garbled(String::from_utf8_lossy(&buf[..=end]).into_owned()),
            };
            buf.drain(..=end);
            if tx.send(frame).is_err() {
                return;
            }
        }
    }
}
