//! Real SIP peers for interop tests: SIPp ([`sipp`]) and baresip ([`baresip`]), each run as a
//! child process on 127.0.0.1 with free ports, bounded in time and killed when dropped.
//!
//! Include it from a test crate the way `tests/common` is included:
//!
//! ```ignore
//! #[path = "../peers/mod.rs"]   // from tests/<suite>/main.rs
//! mod peers;
//! ```
//!
//! A test first asks [`require`] whether the peer's binary is installed: without it the test
//! is skipped loudly, except under CI (`CI` set), where a missing peer is a failure
//! (`scripts/test.sh` installs both). Versions are Debian 12's: SIPp 3.6.1 (no TLS transport,
//! MD5 digest only) and baresip 1.0.0 (TLS, no server certificate check); see
//! `shared/contracts/test-peers.md`.
//!
//! Everything here blocks the calling thread. From an async test that runs masterz in the same
//! runtime, use the `*_async` variants, which wait without holding a runtime worker.
#![allow(dead_code, unreachable_pub)]

pub mod baresip;
pub mod sipp;

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// SIPp's binary (Debian package `sip-tester`).
pub const SIPP: &str = "sipp";
/// baresip's binary (Debian packages `baresip`, `baresip-core`).
pub const BARESIP: &str = "baresip";

/// Where the SIPp scenarios of this repository live (`tests/sipp`).
pub fn scenario_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp"))
}

/// The full path of `binary` if it is on `PATH`.
pub fn find_binary(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

/// Whether `binary` can be run. When it is missing the test should return early: this prints
/// a SKIPPED line and returns `false`, except under CI (`CI` set), where it panics, since CI
/// installs every peer and a silently skipped interop test proves nothing.
pub fn require(binary: &str) -> bool {
    if find_binary(binary).is_some() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{binary} is not installed: the interop tests must run in CI (scripts/test.sh installs it)"
        );
    }
    eprintln!("SKIPPED: {binary} is not installed (scripts/test.sh installs it)");
    false
}

/// A port on 127.0.0.1 that is free for both UDP and TCP at the time of asking (SIP may use
/// either on the same number). Never hands out the same port twice in one test binary, so
/// tests running in parallel do not race each other for it; another process still could.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    for _ in 0..200 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on 127.0.0.1");
        let port = udp.local_addr().expect("local address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        if given.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1 after 200 tries");
}

/// Waits for `child` to exit until `deadline`; `None` if it is still running then.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for a peer process: {e}"),
        }
    }
}

/// Ends `child`: SIGTERM first, so that the peer can flush its logs, then SIGKILL after
/// `grace`. Returns how it exited.
pub(crate) fn terminate(child: &mut Child, grace: Duration) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    // std sends only SIGKILL and the test crates have no libc: the shell's kill builtin
    // (procps' kill(1) is not on a minimal Debian).
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -TERM {}", child.id()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Some(status) = wait_until(child, Instant::now() + grace) {
        return status;
    }
    let _ = child.kill();
    child.wait().expect("wait for a killed peer")
}

/// The last `max` bytes of `text` (on a character boundary), for assertion messages.
pub(crate) fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A file's text, or an empty string when it was never written.
pub(crate) fn read_lossy(path: &std::path::Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
