//! A small W3C WebDriver client (<https://www.w3.org/TR/webdriver2/>) over `reqwest`, for the
//! browser tests: Debian's `chromium` driven by its `chromedriver`, headless, on 127.0.0.1.
//!
//! Each [`Browser`] starts its own `chromedriver` on a free port and one session in it, with
//! an empty profile in a temporary directory and a fake microphone that plays a 1 kHz tone
//! ([`FAKE_MIC_HZ`], a WAV written with hound in [`tone`]). Commands: navigate, find (CSS),
//! click, send keys, text, attributes, properties, scripts (sync and async), screenshots, and
//! [`Browser::wait_for`], which polls the page until an element matches a predicate.
//!
//! What goes wrong in the page is kept: a script installed before every document (through
//! chromedriver's CDP bridge, and again after each navigation) copies console errors and
//! warnings, uncaught exceptions and unhandled rejections into `window.__errors`. A wait that
//! times out panics with them, the page's address, `window.masterz.state` and the texts of
//! `#call-error` and `#login-error`, and leaves a screenshot in [`artifacts_dir`].
//!
//! Dropping a [`Browser`] deletes the session (chromedriver closes Chromium), stops
//! chromedriver, and kills any process still running from the session's profile directory.
//! It blocks for that (at most a few seconds), without the async runtime: plain HTTP over a
//! `std` socket.
//!
//! Chromium is heavy and the CI box has two cores; WebRTC must connect within 10 s. Browser
//! tests take [`exclusive`] so that only one of them runs at a time.
//!
//! Here: the session and its commands. [`element`]: finding and using elements; [`wait`]:
//! polling the page; [`scripts`]: the JavaScript put into pages and the failure reports;
//! [`process`]: chromedriver's process, the cleanup on drop and the one-at-a-time lock.
// Commands that no test uses yet are kept: this is the tests' whole WebDriver surface.
#![allow(dead_code)]

mod element;
mod process;
mod scripts;
#[cfg(test)]
mod smoke;
mod tone;
mod wait;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::peers;

// Types of the client's signatures, where they were before the split, for a test that
// names them (none does yet).
#[allow(unused_imports)]
pub(crate) use element::Element;
pub(crate) use process::{alive, exclusive, processes_naming};
pub(crate) use scripts::{RTP_STATS, artifacts_dir, peak_frequency_script};
#[allow(unused_imports)]
pub(crate) use wait::Probe;

/// Chromium's binary (Debian package `chromium`).
pub(crate) const CHROMIUM: &str = "chromium";
/// Its WebDriver (Debian package `chromium-driver`).
pub(crate) const CHROMEDRIVER: &str = "chromedriver";
/// The tone the fake microphone plays.
pub(crate) const FAKE_MIC_HZ: f64 = 1000.0;

/// Bound of one WebDriver command (an async script may take up to the script timeout).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The session's script timeout: how long an async script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often [`Browser::wait_for`] looks.
const POLL: Duration = Duration::from_millis(100);

/// Whether Chromium and chromedriver are installed (see [`peers::require`]: skipped loudly
/// without them, a failure under CI).
pub(crate) fn require() -> bool {
    peers::require(CHROMIUM) && peers::require(CHROMEDRIVER)
}

/// A command chromedriver refused: the W3C error code and message.
#[derive(Debug)]
pub(crate) struct WdError {
    /// `no such element`, `invalid session id`, `javascript error`, … (or `http` when the
    /// request itself failed).
    pub(crate) error: String,
    pub(crate) message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// A Chromium session with its own chromedriver; see the module docs.
pub(crate) struct Browser {
    /// A name for messages and artefact files.
    name: String,
    http: reqwest::Client,
    driver: Option<Child>,
    driver_addr: SocketAddr,
    session: Option<String>,
    /// Chromium's main process (`goog:processID`).
    browser_pid: Option<u32>,
    /// The profile, the fake microphone's WAV and chromedriver's log.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; `name` labels messages and
    /// screenshots. Panics when either does not come up (within 20 s).
    pub(crate) async fn start(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("masterz-chromium.")
            .tempdir()
            .expect("a temporary directory for Chromium");
        let wav = dir.path().join("tone.wav");
        tone::write_tone(&wav, FAKE_MIC_HZ);
        let profile = dir.path().join("profile");
        let (driver, driver_addr) = process::spawn_driver(dir.path());
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .expect("an HTTP client");
        let mut b = Self {
            name: name.to_owned(),
            http,
            driver: Some(driver),
            driver_addr,
            session: None,
            browser_pid: None,
            dir,
        };
        b.wait_driver_ready().await;

        let binary = peers::find_binary(CHROMIUM).unwrap_or_else(|| "/usr/bin/chromium".into());
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-crash-reporter".into(),
            // Everything is on 127.0.0.1: no proxy from the environment.
            "--no-proxy-server".into(),
            format!("--user-data-dir={}", profile.display()),
            "--window-size=1366,860".into(),
            "--use-fake-ui-for-media-stream".into(),
            "--use-fake-device-for-media-stream".into(),
            format!("--use-file-for-fake-audio-capture={}", wav.display()),
            "--autoplay-policy=no-user-gesture-required".into(),
            "--allow-loopback-in-peer-connection".into(),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": args},
        }}});
        let created = b
            .raw(Method::POST, "/session", Some(caps))
            .await
            .unwrap_or_else(|e| panic!("{}: no session: {e}\n{}", b.name, b.driver_log()));
        b.session = Some(
            created["sessionId"]
                .as_str()
                .unwrap_or_else(|| panic!("no sessionId in {created}"))
                .to_owned(),
        );
        b.browser_pid = created["capabilities"]["goog:processID"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok());
        b.cmd(
            Method::POST,
            "/timeouts",
            json!({"script": SCRIPT_TIMEOUT.as_millis() as u64, "pageLoad": 30_000, "implicit": 0}),
        )
        .await;
        // Before every document, so that errors of a page's first script are caught too. A
        // chromedriver without the CDP bridge still gets it after each navigation.
        let _ = b
            .try_cmd(
                Method::POST,
                "/goog/cdp/execute",
                json!({"cmd": "Page.addScriptToEvaluateOnNewDocument",
                       "params": {"source": scripts::CAPTURE_ERRORS}}),
            )
            .await;
        b
    }

    /// The end of chromedriver's log, for messages.
    pub(crate) fn driver_log(&self) -> String {
        let log = peers::read_lossy(&self.dir.path().join("chromedriver.log"));
        peers::tail(&log, 4000).to_owned()
    }

    /// One WebDriver request on the driver (`path` from the root); the `value` of the answer.
    async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let url = format!("http://{}{path}", self.driver_addr);
        let mut req = self.http.request(method, &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let http_err = |e: reqwest::Error| WdError {
            error: "http".into(),
            message: format!("{url}: {e}"),
        };
        let res = req.send().await.map_err(http_err)?;
        let status = res.status();
        let v: Value = res.json().await.map_err(http_err)?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        Err(WdError {
            error: value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned(),
            message: value["message"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned),
        })
    }

    /// A command of this session (`path` under `/session/{id}`).
    pub(crate) async fn try_cmd(
        &self,
        method: Method,
        path: &str,
        body: Value,
    ) -> Result<Value, WdError> {
        let session = self.session.as_deref().expect("a session");
        let body = (method != Method::GET && method != Method::DELETE).then_some(body);
        self.raw(method, &format!("/session/{session}{path}"), body)
            .await
    }

    /// [`Browser::try_cmd`] that panics with the command and the page's state on an error.
    pub(crate) async fn cmd(&self, method: Method, path: &str, body: Value) -> Value {
        match self.try_cmd(method.clone(), path, body).await {
            Ok(v) => v,
            Err(e) => panic!(
                "{}: {method} {path}: {e}\n{}",
                self.name,
                self.diagnostics().await
            ),
        }
    }

    /// Opens `url` and waits for it to load.
    pub(crate) async fn navigate(&self, url: &str) {
        self.cmd(Method::POST, "/url", json!({ "url": url })).await;
        let _ = self.try_execute(scripts::CAPTURE_ERRORS, vec![]).await;
    }

    /// The page's address.
    pub(crate) async fn url(&self) -> String {
        let v = self.cmd(Method::GET, "/url", Value::Null).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns what it returns.
    /// A returned promise is awaited (W3C: the result of a thenable is its value).
    pub(crate) async fn try_execute(
        &self,
        script: &str,
        args: Vec<Value>,
    ) -> Result<Value, WdError> {
        self.try_cmd(
            Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// [`Browser::try_execute`] that panics on a script error.
    pub(crate) async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        match self.try_execute(script, args).await {
            Ok(v) => v,
            Err(e) => panic!(
                "{}: script failed: {e}\n--- script ---\n{script}\n{}",
                self.name,
                self.diagnostics().await
            ),
        }
    }

    /// Runs `script` as a W3C async script: it ends by calling the callback that comes as its
    /// last argument (`arguments[arguments.length - 1]`), within the script timeout (30 s).
    pub(crate) async fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        match self
            .try_cmd(
                Method::POST,
                "/execute/async",
                json!({"script": script, "args": args}),
            )
            .await
        {
            Ok(v) => v,
            Err(e) => panic!(
                "{}: async script failed: {e}\n--- script ---\n{script}\n{}",
                self.name,
                self.diagnostics().await
            ),
        }
    }

    /// Runs `body` as the body of an `async` function (it may `await`; `args` are its
    /// `arguments`) through [`Browser::execute_async`], and returns its value; panics with the
    /// exception it threw, stack included.
    pub(crate) async fn eval_async(&self, body: &str, args: Vec<Value>) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             const args = Array.prototype.slice.call(arguments, 0, arguments.length - 1);
             (async function () {{ {body} \n}}).apply(null, args).then(
               (value) => done({{ok: value === undefined ? null : value}}),
               (e) => done({{err: String(e && e.stack ? e.stack : e)}}));"
        );
        let v = self.execute_async(&script, args).await;
        if let Some(err) = v.get("err") {
            panic!(
                "{}: the script threw: {}\n--- script ---\n{body}\n{}",
                self.name,
                err.as_str().unwrap_or_default(),
                self.diagnostics().await
            );
        }
        v.get("ok").cloned().unwrap_or(Value::Null)
    }

    /// A PNG of the viewport.
    pub(crate) async fn screenshot(&self) -> Vec<u8> {
        let v = self.cmd(Method::GET, "/screenshot", Value::Null).await;
        let b64 = v.as_str().expect("a screenshot as base64");
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("a screenshot in valid base64")
    }

    /// Saves a PNG of the viewport to `path` (creating its directory).
    pub(crate) async fn save_screenshot(&self, path: &Path) {
        let png = self.screenshot().await;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}
