//! The `masterz` binary as an operator uses it: first run, admin commands, key rotation, TLS, JSON logs, graceful shutdown. Runs the real executable on SQLite in temporary directories.

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod calls;
mod export;
mod recording;
mod serve;
mod sip;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_masterz");

/// A `masterz` command on `dir` as its data directory, with a clean MASTERZ_* environment.
pub(crate) fn masterz(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("MASTERZ_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("MASTERZ_DATA_DIR", dir).stdin(Stdio::null());
    cmd
}

/// Runs `masterz ARGS` on `d`, which must succeed; returns its stdout.
pub(crate) fn ok(args: &[&str], d: &Path) -> String {
    let r = run(masterz(d).args(args));
    assert_eq!(r.status, 0, "{args:?}: {}", r.stderr);
    r.stdout
}

/// Fails with one line on stderr containing `why`, and nothing on stdout.
pub(crate) fn refused(args: &[&str], d: &Path, why: &str) {
    let r = run(masterz(d).args(args));
    assert_ne!(r.status, 0, "{args:?} should fail");
    assert_eq!(
        r.stderr.trim().lines().count(),
        1,
        "one-line reason for {args:?}: {:?}",
        r.stderr
    );
    assert!(r.stderr.contains(why), "{args:?}: {}", r.stderr);
    assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
}

pub(crate) struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

pub(crate) fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("run masterz");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running `masterz serve` whose stderr lines are collected.
pub(crate) struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Served {
    fn start(cmd: Command) -> Self {
        Self::start_with_args(cmd, &[])
    }

    /// Like [`Served::start`] with extra arguments after `serve`.
    fn start_with_args(mut cmd: Command, args: &[&str]) -> Self {
        let mut child = cmd
            .arg("serve")
            .args(args)
            .env("MASTERZ_HTTP_LISTEN", "127.0.0.1:0")
            .env("MASTERZ_SIP_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle` (at most 60 s) and returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!("no line with {needle:?} in:\n{}", self.seen.join("\n"));
    }

    /// The HTTP base URL from the "HTTP listening" log line.
    fn base(&mut self) -> String {
        let line = self.wait_for("HTTP listening");
        let addr = line
            .split("http_addr=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(|a| a.trim_matches('"').to_owned());
        let addr = addr.or_else(|| {
            let v: Value = serde_json::from_str(&line).ok()?;
            v["http_addr"].as_str().map(str::to_owned)
        });
        let scheme = if line.contains("https") {
            "https"
        } else {
            "http"
        };
        format!(
            "{scheme}://{}",
            addr.expect("address in the listening line")
        )
    }

    /// Sends SIGTERM and returns the exit code, failing if the process takes over 15 s.
    fn terminate(mut self) -> (i32, Vec<String>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                    self.seen.push(l);
                }
                return (status.code().unwrap_or(-1), std::mem::take(&mut self.seen));
            }
            assert!(Instant::now() < deadline, "masterz did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Logs in on `base`, asserting success, and returns the `name=value` of the session cookie.
pub(crate) fn log_in(
    http: &reqwest::blocking::Client,
    base: &str,
    email: &str,
    password: &str,
) -> String {
    let login = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .unwrap();
    assert_eq!(login.status(), 200, "login as {email}");
    let set = login.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}
