//! SIPp as a test peer: a builder for one `sipp` run, run to completion ([`Sipp::run`]) or in
//! the background as a UAS ([`Sipp::spawn`]).
//!
//! Every run binds 127.0.0.1 only (`-i 127.0.0.1 -bind_local`, media on `-mi 127.0.0.1`), on a
//! free port unless one is given, without stdin (`-nostdin`), and is bounded twice: SIPp's own
//! `-timeout … -timeout_error` (without `-timeout_error` SIPp 3.6.1 waits past the timeout for
//! open calls to end) and a wall-clock deadline a few seconds later, past which the process is
//! killed. Its error log, message log, `<log>` actions and final screen go to a temporary
//! directory and come back as text in [`SippRun`], whose `Display` is the assertion message.
//!
//! Scenario keywords the scenarios in `tests/sipp` use, set with `-key` (the run fills the
//! defaults unless [`Sipp::key`] overrides them): `[domain]` (the target's IP, else 127.0.0.1),
//! `[expires]` (3600), `[grant_expires]` (10), `[max_attempts]` (20), and `[auth_user]`,
//! `[auth_pass]` when [`Sipp::auth`] is given. The user part is `[service]` (`-s`,
//! [`Sipp::service`]).
//!
//! Exit codes (SIPp 3.6.1): 0 every call succeeded, 1 at least one failed, 99 no call was
//! made, 255 fatal (an `<error>` action, a bad scenario, or `-timeout_error` hit).

mod screen;
pub use screen::rtp_echoed;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{read_lossy, tail};

/// Extra time past SIPp's own `-timeout` before the process is killed.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Where the Debian package keeps the pcap files that `-sn uac_pcap` plays.
const PCAP_DIR: &str = "/usr/share/sip-tester";

/// SIP transport of a run. SIPp 3.6.1 from Debian has no TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `-t u1`: UDP, one socket.
    Udp,
    /// `-t t1`: TCP, one connection.
    Tcp,
}

/// How SIPp reads an injection file's lines (its first line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfOrder {
    Sequential,
    Random,
    User,
}

impl InfOrder {
    fn header(self) -> &'static str {
        match self {
            Self::Sequential => "SEQUENTIAL",
            Self::Random => "RANDOM",
            Self::User => "USER",
        }
    }
}

#[derive(Clone, Debug)]
enum Scenario {
    File(PathBuf),
    BuiltIn(String),
}

#[derive(Clone, Debug)]
enum Inf {
    File(PathBuf),
    Rows(InfOrder, Vec<Vec<String>>),
}

/// One `sipp` invocation, built up and then [run](Sipp::run) or [spawned](Sipp::spawn).
#[derive(Clone, Debug)]
#[must_use]
pub struct Sipp {
    scenario: Scenario,
    target: Option<SocketAddr>,
    local_port: Option<u16>,
    transport: Transport,
    calls: Option<u64>,
    rate: Option<f64>,
    rate_period: Option<Duration>,
    limit: Option<u64>,
    service: Option<String>,
    auth: Option<(String, String)>,
    keys: BTreeMap<String, String>,
    inf: Vec<Inf>,
    timeout: Duration,
    recv_timeout: Option<Duration>,
    media_port: Option<u16>,
    rtp_echo: bool,
    pcaps: bool,
    trace_messages: bool,
    extra: Vec<String>,
}

impl Sipp {
    fn new(scenario: Scenario) -> Self {
        Self {
            scenario,
            target: None,
            local_port: None,
            transport: Transport::Udp,
            calls: None,
            rate: None,
            rate_period: None,
            limit: None,
            service: None,
            auth: None,
            keys: BTreeMap::new(),
            inf: Vec::new(),
            timeout: Duration::from_secs(30),
            recv_timeout: None,
            media_port: None,
            rtp_echo: false,
            pcaps: false,
            trace_messages: true,
            extra: Vec::new(),
        }
    }

    /// A scenario of this repository: `tests/sipp/<name>.xml` (`name` with or without `.xml`).
    pub fn scenario(name: &str) -> Self {
        let file = name.strip_suffix(".xml").unwrap_or(name);
        let path = super::scenario_dir().join(format!("{file}.xml"));
        assert!(path.is_file(), "no SIPp scenario {}", path.display());
        Self::new(Scenario::File(path))
    }

    /// A scenario file anywhere (`-sf`).
    pub fn scenario_file(path: impl Into<PathBuf>) -> Self {
        Self::new(Scenario::File(path.into()))
    }

    /// One of SIPp's built-in scenarios (`-sn`): `uac`, `uas`, `uac_pcap`, `regexp`, `branchc`,
    /// `branchs`, … (`sipp -sd <name>` prints one).
    pub fn builtin(name: &str) -> Self {
        Self::new(Scenario::BuiltIn(name.to_owned()))
    }

    /// The remote side (a UAC's destination). Without it SIPp runs as a server.
    pub fn target(mut self, addr: SocketAddr) -> Self {
        self.target = Some(addr);
        self
    }

    /// SIPp's own SIP port (`-p`); by default a free one.
    pub fn local_port(mut self, port: u16) -> Self {
        self.local_port = Some(port);
        self
    }

    /// UDP (default) or TCP.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Stop after this many calls (`-m`). A spawned UAS without it runs until stopped.
    pub fn calls(mut self, n: u64) -> Self {
        self.calls = Some(n);
        self
    }

    /// Calls per rate period (`-r`; the period is one second unless [`Sipp::rate_period`]).
    pub fn rate(mut self, calls: f64) -> Self {
        self.rate = Some(calls);
        self
    }

    /// The rate period (`-rp`).
    pub fn rate_period(mut self, period: Duration) -> Self {
        self.rate_period = Some(period);
        self
    }

    /// At most this many simultaneous calls (`-l`).
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// The user part of the Request-URI and `[service]` (`-s`); also the digest username when
    /// [`Sipp::auth`] is not given.
    pub fn service(mut self, user: &str) -> Self {
        self.service = Some(user.to_owned());
        self
    }

    /// Digest credentials: `-au`/`-ap` for `[authentication]` (a UAC answering a challenge),
    /// and the keys `[auth_user]`/`[auth_pass]` for `<verifyauth>` (a UAS checking one).
    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// A scenario keyword `[name]` (`-key name value`); overrides the defaults.
    pub fn key(mut self, name: &str, value: &str) -> Self {
        self.keys.insert(name.to_owned(), value.to_owned());
        self
    }

    /// An injection file with these rows (`-inf`): `[field0]`, `[field1]`, … of each call's
    /// row. Written into the run's directory; may be given more than once (`[fieldN file=…]`
    /// then names the file: `inf0.csv`, `inf1.csv`, …).
    pub fn inf_rows<R, F>(mut self, order: InfOrder, rows: R) -> Self
    where
        R: IntoIterator<Item = F>,
        F: IntoIterator,
        F::Item: ToString,
    {
        let rows = rows
            .into_iter()
            .map(|r| r.into_iter().map(|f| f.to_string()).collect())
            .collect();
        self.inf.push(Inf::Rows(order, rows));
        self
    }

    /// An existing injection file (`-inf`).
    pub fn inf_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.inf.push(Inf::File(path.into()));
        self
    }

    /// SIPp's global timeout (`-timeout`, with `-timeout_error`: reaching it fails the run);
    /// default 30 s. The process is killed 5 s later if it is still running.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A default receive timeout for every `<recv>` without its own (`-recv_timeout`).
    pub fn recv_timeout(mut self, timeout: Duration) -> Self {
        self.recv_timeout = Some(timeout);
        self
    }

    /// The RTP port (`-mp`); by default SIPp tries 6000, 6002, … until one binds.
    pub fn media_port(mut self, port: u16) -> Self {
        self.media_port = Some(port);
        self
    }

    /// Echo RTP received on the media port (`-rtp_echo`).
    pub fn rtp_echo(mut self) -> Self {
        self.rtp_echo = true;
        self
    }

    /// Link `pcap/` in the run's directory to the package's pcaps (`g711a.pcap`,
    /// `dtmf_2833_*.pcap`), as `-sn uac_pcap` and `play_pcap_audio="pcap/…"` expect.
    pub fn with_pcaps(mut self) -> Self {
        self.pcaps = true;
        self
    }

    /// Whether to log every message (`-trace_msg`; on by default). Turn off for load runs.
    pub fn trace_messages(mut self, on: bool) -> Self {
        self.trace_messages = on;
        self
    }

    /// Any other argument, passed as is (before the target).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// Runs to completion (or to the wall-clock deadline, then kills) and returns the result.
    pub fn run(self) -> SippRun {
        self.spawn().wait()
    }

    /// [`Sipp::run`] on a blocking thread, for async tests.
    pub async fn run_async(self) -> SippRun {
        tokio::task::spawn_blocking(move || self.run())
            .await
            .expect("the SIPp run panicked")
    }

    /// Starts SIPp in the background (e.g. a UAS that masterz talks to); see [`SippProcess`].
    /// Without a target (a server) it returns once SIPp listens on its port.
    pub fn spawn(self) -> SippProcess {
        assert!(
            super::find_binary(super::SIPP).is_some(),
            "sipp is not installed (call peers::require(peers::SIPP) first)"
        );
        let dir = tempfile::Builder::new()
            .prefix("masterz-sipp.")
            .tempdir()
            .expect("temp dir for SIPp");
        let port = self.local_port.unwrap_or_else(super::free_port);
        let args = self.args(dir.path(), port);
        let name = match &self.scenario {
            Scenario::File(p) => p
                .file_stem()
                .map_or_else(|| p.display().to_string(), |s| s.to_string_lossy().into()),
            Scenario::BuiltIn(n) => format!("-sn {n}"),
        };
        let command = format!("sipp {}", args.join(" "));
        let stdout = File::create(dir.path().join("stdout.txt")).expect("SIPp stdout file");
        let stderr = File::create(dir.path().join("stderr.txt")).expect("SIPp stderr file");
        let child = Command::new(super::SIPP)
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {command}: {e}"));
        let started = Instant::now();
        let mut child = child;
        if self.target.is_none() {
            // A server is of use only once it listens: until then a peer's first request
            // would be lost (UDP) or refused (TCP).
            wait_listening(&mut child, port, self.transport);
        }
        SippProcess {
            child: Some(child),
            name,
            command,
            local_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            started,
            deadline: started + self.timeout + KILL_GRACE,
            dir: Some(dir),
        }
    }

    fn args(&self, dir: &Path, port: u16) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
        match &self.scenario {
            Scenario::File(p) => push(&["-sf", &p.display().to_string()]),
            Scenario::BuiltIn(n) => push(&["-sn", n]),
        }
        push(&["-i", "127.0.0.1", "-bind_local", "-mi", "127.0.0.1"]);
        push(&["-p", &port.to_string()]);
        push(&[
            "-t",
            match self.transport {
                Transport::Udp => "u1",
                Transport::Tcp => "t1",
            },
        ]);
        push(&["-nostdin"]);
        let timeout_ms = self.timeout.as_millis().max(1).to_string() + "ms";
        push(&["-timeout", &timeout_ms, "-timeout_error"]);
        if let Some(t) = self.recv_timeout {
            push(&["-recv_timeout", &(t.as_millis().max(1).to_string() + "ms")]);
        }
        if let Some(n) = self.calls {
            push(&["-m", &n.to_string()]);
        }
        if let Some(r) = self.rate {
            push(&["-r", &r.to_string()]);
        }
        if let Some(p) = self.rate_period {
            push(&["-rp", &(p.as_millis().max(1).to_string() + "ms")]);
        }
        if let Some(l) = self.limit {
            push(&["-l", &l.to_string()]);
        }
        if let Some(s) = &self.service {
            push(&["-s", s]);
        }
        let mut keys = BTreeMap::new();
        let domain = self
            .target
            .map_or_else(|| "127.0.0.1".to_owned(), |t| t.ip().to_string());
        keys.insert("domain".to_owned(), domain);
        keys.insert("expires".to_owned(), "3600".to_owned());
        keys.insert("grant_expires".to_owned(), "10".to_owned());
        keys.insert("max_attempts".to_owned(), "20".to_owned());
        if let Some((user, pass)) = &self.auth {
            push(&["-au", user, "-ap", pass]);
            keys.insert("auth_user".to_owned(), user.clone());
            keys.insert("auth_pass".to_owned(), pass.clone());
        }
        keys.extend(self.keys.clone());
        for (k, v) in &keys {
            push(&["-key", k, v]);
        }
        for (i, inf) in self.inf.iter().enumerate() {
            let path = match inf {
                Inf::File(p) => p.clone(),
                Inf::Rows(order, rows) => {
                    let path = dir.join(format!("inf{i}.csv"));
                    let mut text = format!("{}\n", order.header());
                    for row in rows {
                        text.push_str(&row.join(";"));
                        text.push('\n');
                    }
                    std::fs::write(&path, text).expect("write the SIPp injection file");
                    path
                }
            };
            push(&["-inf", &path.display().to_string()]);
        }
        if let Some(p) = self.media_port {
            push(&["-mp", &p.to_string()]);
        }
        if self.rtp_echo {
            push(&["-rtp_echo"]);
        }
        if self.pcaps {
            std::os::unix::fs::symlink(PCAP_DIR, dir.join("pcap")).expect("link pcap/");
        }
        let file = |name: &str| dir.join(name).display().to_string();
        push(&["-trace_err", "-error_file", &file("errors.log")]);
        push(&["-trace_logs", "-log_file", &file("logs.log")]);
        push(&["-trace_screen", "-screen_file", &file("screen.log")]);
        if self.trace_messages {
            push(&["-trace_msg", "-message_file", &file("messages.log")]);
        }
        a.extend(self.extra.iter().cloned());
        if let Some(t) = self.target {
            a.push(t.to_string());
        }
        a
    }
}

/// Waits (at most 5 s) until a socket is bound to `port` (TCP: listening), as the kernel's
/// socket tables say; probing by binding the port ourselves could take it from SIPp. Returns
/// early when SIPp exits, which its run then reports.
fn wait_listening(child: &mut Child, port: u16, transport: Transport) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if bound(port, transport) || !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether /proc/net/{udp,tcp} list a socket on `port` (for TCP, in state LISTEN, `0A`).
fn bound(port: u16, transport: Transport) -> bool {
    let (table, state) = match transport {
        Transport::Udp => ("/proc/net/udp", None),
        Transport::Tcp => ("/proc/net/tcp", Some("0A")),
    };
    let suffix = format!(":{port:04X}");
    read_lossy(Path::new(table)).lines().skip(1).any(|line| {
        let mut cols = line.split_whitespace().skip(1);
        let local = cols.next().unwrap_or_default();
        let st = cols.nth(1).unwrap_or_default();
        local.ends_with(&suffix) && state.is_none_or(|s| s == st)
    })
}

/// A SIPp process running in the background. Killed when dropped.
pub struct SippProcess {
    child: Option<Child>,
    name: String,
    command: String,
    local_addr: SocketAddr,
    started: Instant,
    deadline: Instant,
    dir: Option<tempfile::TempDir>,
}

impl SippProcess {
    /// Where SIPp receives SIP (127.0.0.1 and its `-p` port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The process id (for signals).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The screen file as it is now, after asking SIPp for its screens twice: SIPp writes
    /// them to the screen file on SIGUSR2, through a stdio buffer (4 KiB blocks), so the second
    /// dump pushes the first one out to the file. Only a screen written while SIPp runs has
    /// the RTP lines (`-rtp_echo`, `play_pcap_audio`): SIPp 3.6.1 prints them only when time
    /// has passed since its last periodic screen, never on the final one. See [`rtp_echoed`].
    pub fn screen_now(&self) -> String {
        let (Some(pid), Some(dir)) = (self.pid(), self.dir.as_ref()) else {
            return String::new();
        };
        for _ in 0..2 {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!("kill -USR2 {pid}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(150));
        }
        read_lossy(&dir.path().join("screen.log"))
    }

    /// The RTP packets SIPp has echoed so far (`-rtp_echo`), from [`SippProcess::screen_now`];
    /// asks again (up to five times, 200 ms apart) when a screen comes without the RTP lines.
    pub fn rtp_echoed_now(&self) -> Option<u64> {
        for _ in 0..5 {
            if let Some(n) = rtp_echoed(&self.screen_now()) {
                return Some(n);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }

    /// The lines the scenario's `<log>` actions wrote so far (the file grows while SIPp runs).
    pub fn logs_now(&self) -> String {
        self.dir
            .as_ref()
            .map(|d| read_lossy(&d.path().join("logs.log")))
            .unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits for SIPp to end by itself (`-m` calls done, or its `-timeout`); past the
    /// wall-clock deadline it is killed and the run marked `killed`.
    pub fn wait(mut self) -> SippRun {
        let mut child = self.child.take().expect("a SIPp child");
        let (code, killed) = match super::wait_until(&mut child, self.deadline) {
            Some(status) => (status.code(), false),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                (None, true)
            }
        };
        self.finish(code, killed, false)
    }

    /// [`SippProcess::wait`] on a blocking thread, for async tests.
    pub async fn wait_async(self) -> SippRun {
        tokio::task::spawn_blocking(move || self.wait())
            .await
            .expect("waiting for SIPp panicked")
    }

    /// Stops SIPp now (SIGTERM, then SIGKILL after 3 s), e.g. a UAS without `-m`. SIPp exits
    /// 0 on SIGTERM whatever its calls did: judge such a run by its logs.
    pub fn stop(mut self) -> SippRun {
        let mut child = self.child.take().expect("a SIPp child");
        let status = super::terminate(&mut child, Duration::from_secs(3));
        self.finish(status.code(), false, true)
    }

    fn finish(&mut self, code: Option<i32>, killed: bool, stopped: bool) -> SippRun {
        let dir = self.dir.take().expect("the SIPp run directory");
        let read = |name: &str| read_lossy(&dir.path().join(name));
        SippRun {
            name: self.name.clone(),
            command: self.command.clone(),
            code,
            killed,
            stopped,
            elapsed: self.started.elapsed(),
            stdout: read("stdout.txt"),
            stderr: read("stderr.txt"),
            errors: read("errors.log"),
            messages: read("messages.log"),
            logs: read("logs.log"),
            screen: read("screen.log"),
            dir,
        }
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The outcome of one SIPp run, with everything it wrote.
pub struct SippRun {
    /// The scenario's file stem, or `-sn <name>`.
    pub name: String,
    /// The command line, for messages.
    pub command: String,
    /// The exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Killed at the wall-clock deadline.
    pub killed: bool,
    /// Ended by [`SippProcess::stop`].
    pub stopped: bool,
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
    /// `-trace_err`: unexpected messages and errors.
    pub errors: String,
    /// `-trace_msg`: every message sent and received.
    pub messages: String,
    /// `-trace_logs`: the scenario's `<log>` actions, one per line.
    pub logs: String,
    /// `-trace_screen`: the final statistics screen.
    pub screen: String,
    /// The run's directory (kept until the run is dropped), for other files.
    pub dir: tempfile::TempDir,
}

impl SippRun {
    /// Every call succeeded: exit code 0, neither killed nor stopped.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.killed && !self.stopped
    }

    /// Panics with the whole report unless [`SippRun::success`].
    #[track_caller]
    pub fn assert_success(&self) {
        assert!(self.success(), "SIPp run failed\n{self}");
    }

    /// The scenario's `<log>` lines.
    pub fn log_lines(&self) -> Vec<&str> {
        self.logs.lines().filter(|l| !l.trim().is_empty()).collect()
    }

    /// The SIP messages SIPp received, each as its text (from the message log).
    pub fn received(&self) -> Vec<&str> {
        self.messages
            .split("----------------------------------------------- ")
            .filter_map(|block| {
                // "<timestamp>\n<TRANSPORT> message received [n] bytes :\n<message>"
                let (_timestamp, body) = block.split_once('\n')?;
                let (direction, message) = body.split_once('\n')?;
                direction
                    .contains("message received")
                    .then(|| message.trim())
            })
            .collect()
    }
}

impl fmt::Display for SippRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match (self.code, self.killed, self.stopped) {
            (_, true, _) => "killed at the wall-clock deadline".to_owned(),
            (Some(c), _, true) => format!("stopped (exit code {c})"),
            (Some(c), _, _) => format!("exit code {c}"),
            (None, _, _) => "killed by a signal".to_owned(),
        };
        writeln!(
            f,
            "SIPp {}: {outcome} after {:.1} s",
            self.name,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "command: {}", self.command)?;
        for (title, text, max) in [
            ("stderr", &self.stderr, 4000),
            ("error log", &self.errors, 6000),
            ("<log> lines", &self.logs, 4000),
            ("final screen", &self.screen, 3000),
            ("message log (tail)", &self.messages, 8000),
        ] {
            if !text.trim().is_empty() {
                writeln!(f, "--- {title} ---\n{}", tail(text, max))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SippRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
