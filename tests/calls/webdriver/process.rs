//! chromedriver's process and what is left of a session: starting chromedriver on a free port
//! and waiting until it is ready, and on drop deleting the session, stopping chromedriver and
//! killing whatever still runs from the profile directory. Also the lock that lets one
//! browser test run at a time.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;

use super::{Browser, CHROMEDRIVER, POLL};
use crate::peers;

/// One browser test at a time (see the module docs). Hold the guard for the whole test.
pub(crate) async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}

/// Starts chromedriver on a free port of 127.0.0.1, its log in `dir`; its address.
pub(super) fn spawn_driver(dir: &Path) -> (Child, SocketAddr) {
    let port = peers::free_port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg(format!(
            "--log-path={}",
            dir.join("chromedriver.log").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{CHROMEDRIVER} does not start: {e}"));
    (driver, ([127, 0, 0, 1], port).into())
}

impl Browser {
    /// Polls chromedriver's `/status` until it is ready; panics when it exits or is not
    /// ready within 20 s.
    pub(super) async fn wait_driver_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(v) = self.raw(Method::GET, "/status", None).await
                && v["ready"] == true
            {
                return;
            }
            let exited = self
                .driver
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "{CHROMEDRIVER} exited ({exited:?})\n{}",
                self.driver_log()
            );
            assert!(
                Instant::now() < deadline,
                "{CHROMEDRIVER} not ready on {} within 20 s\n{}",
                self.driver_addr,
                self.driver_log()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            delete_session(self.driver_addr, &session);
        }
        if let Some(mut driver) = self.driver.take() {
            peers::terminate(&mut driver, Duration::from_secs(3));
        }
        // Whatever still runs from this profile (Chromium if chromedriver could not close it,
        // its helpers) is ours: the directory's name is unique.
        kill_from_dir(self.dir.path(), self.browser_pid);
    }
}

/// `DELETE /session/{id}` with a plain socket (from `Drop`, which may run inside the async
/// runtime, where a blocking reqwest client must not be used). Chromedriver answers once
/// Chromium has closed; at most 15 s.
fn delete_session(driver: SocketAddr, session: &str) {
    let Ok(mut s) = TcpStream::connect_timeout(&driver, Duration::from_secs(2)) else {
        return;
    };
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    let req = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: {driver}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return;
    }
    // Chromedriver keeps the connection open whatever the request says: read one answer
    // (headers, then Content-Length bytes), not to the end of the stream.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if answer.len() >= end + 4 + len {
                return;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
}

/// Kills (SIGKILL) every process whose command line names `dir` (and `pid`, if it still
/// runs and names it), then waits up to 5 s for them to go.
fn kill_from_dir(dir: &Path, pid: Option<u32>) {
    let needle = dir.display().to_string();
    let mut ours: Vec<u32> = processes_naming(&needle);
    if let Some(pid) = pid
        && !ours.contains(&pid)
        && cmdline(pid).is_some_and(|c| c.contains(&needle))
    {
        ours.push(pid);
    }
    if ours.is_empty() {
        return;
    }
    let list = ours
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -KILL {list} 2>/dev/null"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while ours.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ids of the processes whose command line contains `needle`.
pub(crate) fn processes_naming(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id() && alive(pid))
        .filter(|&pid| cmdline(pid).is_some_and(|c| c.contains(needle)))
        .collect()
}

fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// Whether `pid` runs (exists and is not a zombie waiting for its parent).
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S …": the state follows the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|state| state != 'Z' && state != 'X')
}
