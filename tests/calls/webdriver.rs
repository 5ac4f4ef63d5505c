//! A small W3C WebDriver client (<https://www.w3.org/TR/webdriver2/>) over `reqwest`, for the
//! browser tests: Debian's `chromium` driven by its `chromedriver`, headless, on 127.0.0.1.
//!
//! Each [`Browser`] starts its own `chromedriver` on a free port and one session in it, with
//! an empty profile in a temporary directory and a fake microphone that plays a 1 kHz tone
//! ([`FAKE_MIC_HZ`], a WAV written here with hound). Commands: navigate, find (CSS), click,
//! send keys, text, attributes, properties, scripts (sync and async), screenshots, and
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
// Commands that no test uses yet are kept: this is the tests' whole WebDriver surface.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::peers;

/// Chromium's binary (Debian package `chromium`).
pub(crate) const CHROMIUM: &str = "chromium";
/// Its WebDriver (Debian package `chromium-driver`).
pub(crate) const CHROMEDRIVER: &str = "chromedriver";
/// The tone the fake microphone plays.
pub(crate) const FAKE_MIC_HZ: f64 = 1000.0;

/// W3C's key for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
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

/// One browser test at a time (see the module docs). Hold the guard for the whole test.
pub(crate) async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}

/// Where tests leave screenshots and other files for a person to look at:
/// `MASTERZ_TEST_ARTIFACTS`, else `target/test-artifacts` of this repository.
pub(crate) fn artifacts_dir() -> PathBuf {
    std::env::var_os("MASTERZ_TEST_ARTIFACTS").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/test-artifacts"
            ))
        },
        PathBuf::from,
    )
}

/// Copies console errors and warnings, uncaught exceptions and unhandled rejections into
/// `window.__errors` (the last 200). Idempotent.
const CAPTURE_ERRORS: &str = r#"(() => {
  if (window.__errors) return;
  window.__errors = [];
  const show = (x) => {
    if (x && x.stack) return String(x.stack);
    if (typeof x === 'object') { try { return JSON.stringify(x); } catch (e) { return String(x); } }
    return String(x);
  };
  const push = (kind, args) => {
    window.__errors.push(kind + ': ' + Array.from(args).map(show).join(' '));
    if (window.__errors.length > 200) window.__errors.shift();
  };
  for (const kind of ['error', 'warn']) {
    const original = console[kind].bind(console);
    console[kind] = (...args) => { push(kind, args); original(...args); };
  }
  window.addEventListener('error', (e) =>
    push('uncaught', [e.message + ' at ' + e.filename + ':' + e.lineno]));
  window.addEventListener('unhandledrejection', (e) => push('unhandled rejection', [e.reason]));
})();"#;

/// What [`Browser::wait_for`] sees of the first element matching a selector.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Probe {
    /// `innerText` (what a person reads), or `textContent` when the element has none.
    pub(crate) text: String,
    /// Its attributes.
    pub(crate) attrs: serde_json::Map<String, Value>,
    /// The `value` property (inputs, selects), if it has one.
    pub(crate) value: Option<String>,
    /// Laid out, not `display: none` nor `visibility: hidden`.
    pub(crate) displayed: bool,
}

impl Probe {
    /// An attribute's value.
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).and_then(Value::as_str)
    }
}

const PROBE: &str = r#"
  const el = document.querySelector(arguments[0]);
  if (!el) return null;
  const attrs = {};
  for (const a of el.attributes) attrs[a.name] = a.value;
  const r = el.getBoundingClientRect();
  const st = getComputedStyle(el);
  const value = ('value' in el && el.value !== undefined && el.value !== null) ? String(el.value) : null;
  return {
    text: (el.innerText !== undefined ? el.innerText : el.textContent) || '',
    attrs, value,
    displayed: (r.width > 0 || r.height > 0) && st.visibility !== 'hidden' && st.display !== 'none',
  };"#;

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
        write_tone(&wav, FAKE_MIC_HZ);
        let profile = dir.path().join("profile");
        let port = peers::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} does not start: {e}"));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .expect("an HTTP client");
        let mut b = Self {
            name: name.to_owned(),
            http,
            driver: Some(driver),
            driver_addr: ([127, 0, 0, 1], port).into(),
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
                       "params": {"source": CAPTURE_ERRORS}}),
            )
            .await;
        b
    }

    async fn wait_driver_ready(&mut self) {
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
        let _ = self.try_execute(CAPTURE_ERRORS, vec![]).await;
    }

    /// The page's address.
    pub(crate) async fn url(&self) -> String {
        let v = self.cmd(Method::GET, "/url", Value::Null).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The first element matching `css`, or `None`.
    pub(crate) async fn try_find(&self, css: &str) -> Option<Element<'_>> {
        match self
            .try_cmd(
                Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await
        {
            Ok(v) => Some(Element::from_json(self, &v)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("{}: find {css}: {e}", self.name),
        }
    }

    /// The first element matching `css`; panics without one.
    pub(crate) async fn find(&self, css: &str) -> Element<'_> {
        match self.try_find(css).await {
            Some(el) => el,
            None => panic!(
                "{}: no element {css}\n{}",
                self.name,
                self.diagnostics().await
            ),
        }
    }

    /// Every element matching `css`.
    pub(crate) async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let v = self
            .cmd(
                Method::POST,
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_array()
            .map(|a| a.iter().map(|v| Element::from_json(self, v)).collect())
            .unwrap_or_default()
    }

    /// Clicks the first element matching `css`.
    pub(crate) async fn click(&self, css: &str) {
        self.find(css).await.click().await;
    }

    /// Replaces the text of the input matching `css` by typing `text`.
    pub(crate) async fn set_value(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.clear().await;
        el.send_keys(text).await;
    }

    /// Chooses `value` in the `<select>` matching `css`, as a person would (a `change` event).
    pub(crate) async fn select(&self, css: &str, value: &str) {
        let ok = self
            .execute(
                "const el = document.querySelector(arguments[0]);
                 if (!el) return false;
                 el.value = arguments[1];
                 el.dispatchEvent(new Event('input', {bubbles: true}));
                 el.dispatchEvent(new Event('change', {bubbles: true}));
                 return el.value === arguments[1];",
                vec![json!(css), json!(value)],
            )
            .await;
        assert_eq!(
            ok,
            true,
            "{}: cannot choose {value:?} in {css}\n{}",
            self.name,
            self.diagnostics().await
        );
    }

    /// The text of the first element matching `css`.
    pub(crate) async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await
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

    /// The state of the first element matching `css`, or `None` when there is none.
    pub(crate) async fn probe(&self, css: &str) -> Option<Probe> {
        let v = self.execute(PROBE, vec![json!(css)]).await;
        if v.is_null() {
            return None;
        }
        Some(serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("probe {v}: {e}")))
    }

    /// Polls the page (every 100 ms, at most `timeout`) until an element matches `css` and
    /// `pred` holds for it; returns what it saw. Panics with the last sight of it, the page's
    /// errors and state, and a screenshot in [`artifacts_dir`] otherwise.
    pub(crate) async fn wait_for(
        &self,
        css: &str,
        timeout: Duration,
        pred: impl Fn(&Probe) -> bool,
    ) -> Probe {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(p) = self.probe(css).await {
                if pred(&p) {
                    return p;
                }
                last = Some(p);
            }
            if Instant::now() >= deadline {
                self.timed_out(&format!("{css} (last seen: {last:?})"), timeout)
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// [`Browser::wait_for`] any element matching `css`.
    pub(crate) async fn wait_present(&self, css: &str, timeout: Duration) -> Probe {
        self.wait_for(css, timeout, |_| true).await
    }

    /// [`Browser::wait_for`] a displayed element matching `css`.
    pub(crate) async fn wait_visible(&self, css: &str, timeout: Duration) -> Probe {
        self.wait_for(css, timeout, |p| p.displayed).await
    }

    /// Polls `script` (a function body, as for [`Browser::execute`]) until it returns
    /// something truthy, at most `timeout`; returns that. `what` names it in the panic.
    pub(crate) async fn wait_js(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
        args: Vec<Value>,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.try_execute(script, args.clone()).await {
                Ok(v) if truthy(&v) => return v,
                Ok(v) => v,
                Err(e) => json!(format!("script error: {e}")),
            };
            if Instant::now() >= deadline {
                self.timed_out(&format!("{what} (last: {last})"), timeout)
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn timed_out(&self, what: &str, timeout: Duration) -> ! {
        let shot = artifacts_dir().join(format!("{}-timeout.png", file_name(&self.name)));
        let saved = match self.try_cmd(Method::GET, "/screenshot", Value::Null).await {
            Ok(Value::String(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .and_then(|png| {
                    std::fs::create_dir_all(artifacts_dir()).ok()?;
                    std::fs::write(&shot, png).ok()
                })
                .map_or_else(
                    || "(no screenshot)".to_owned(),
                    |()| shot.display().to_string(),
                ),
            _ => "(no screenshot)".to_owned(),
        };
        panic!(
            "{}: waited {timeout:?} for {what}\nscreenshot: {saved}\n{}",
            self.name,
            self.diagnostics().await
        );
    }

    /// What the page logged as errors (see the module docs).
    pub(crate) async fn errors(&self) -> Vec<String> {
        match self
            .try_execute("return window.__errors || [];", vec![])
            .await
        {
            Ok(Value::Array(a)) => a
                .into_iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The page's address, errors and state, for assertion messages. Never panics.
    pub(crate) async fn diagnostics(&self) -> String {
        let script = r#"
          const text = (css) => { const el = document.querySelector(css); return el ? el.innerText : null; };
          let state = null;
          try { state = window.masterz ? JSON.parse(JSON.stringify(window.masterz.state ?? null)) : null; }
          catch (e) { state = 'unserialisable: ' + e; }
          const ws = document.querySelector('#ws-status');
          const panel = document.querySelector('#call-panel');
          return {
            url: location.href,
            errors: window.__errors || [],
            ws_status: ws ? ws.getAttribute('data-state') : null,
            call_panel: panel ? {state: panel.getAttribute('data-state'), leg: panel.getAttribute('data-leg')} : null,
            call_error: text('#call-error'),
            login_error: text('#login-error'),
            masterz_state: state,
          };"#;
        match self.try_execute(script, vec![]).await {
            Ok(v) => format!(
                "--- page of {} ---\n{}",
                self.name,
                serde_json::to_string_pretty(&v).unwrap_or_default()
            ),
            Err(e) => format!(
                "--- page of {}: unreadable ({e}) ---\n{}",
                self.name,
                self.driver_log()
            ),
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

/// An element of a [`Browser`]'s page (a W3C element reference).
pub(crate) struct Element<'a> {
    b: &'a Browser,
    id: String,
}

impl<'a> Element<'a> {
    fn from_json(b: &'a Browser, v: &Value) -> Self {
        let id = v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element reference: {v}"))
            .to_owned();
        Self { b, id }
    }

    /// The reference, to pass an element to a script.
    pub(crate) fn to_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    async fn get(&self, what: &str) -> Value {
        self.b
            .cmd(
                Method::GET,
                &format!("/element/{}{what}", self.id),
                Value::Null,
            )
            .await
    }

    async fn post(&self, what: &str, body: Value) -> Result<Value, WdError> {
        self.b
            .try_cmd(Method::POST, &format!("/element/{}{what}", self.id), body)
            .await
    }

    /// Clicks it (scrolled into view; refused when another element covers it).
    pub(crate) async fn try_click(&self) -> Result<(), WdError> {
        self.post("/click", json!({})).await.map(drop)
    }

    /// [`Element::try_click`], panicking on a refusal.
    pub(crate) async fn click(&self) {
        if let Err(e) = self.try_click().await {
            panic!(
                "{}: click: {e}\n{}",
                self.b.name,
                self.b.diagnostics().await
            );
        }
    }

    /// Types `text` into it.
    pub(crate) async fn send_keys(&self, text: &str) {
        if let Err(e) = self.post("/value", json!({ "text": text })).await {
            panic!("{}: send keys: {e}", self.b.name);
        }
    }

    /// Empties an input.
    pub(crate) async fn clear(&self) {
        if let Err(e) = self.post("/clear", json!({})).await {
            panic!("{}: clear: {e}", self.b.name);
        }
    }

    /// Its rendered text.
    pub(crate) async fn text(&self) -> String {
        self.get("/text")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An attribute, `None` when absent.
    pub(crate) async fn attribute(&self, name: &str) -> Option<String> {
        self.get(&format!("/attribute/{name}"))
            .await
            .as_str()
            .map(str::to_owned)
    }

    /// A DOM property.
    pub(crate) async fn property(&self, name: &str) -> Value {
        self.get(&format!("/property/{name}")).await
    }

    /// Whether it is displayed.
    pub(crate) async fn displayed(&self) -> bool {
        self.get("/displayed").await == true
    }
}

/// JavaScript's truthiness of a script's result.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `name` with anything but letters, digits, `-` and `_` replaced, for a file name.
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A 48 kHz mono WAV of `hz` for the fake microphone: 10 s, which Chromium loops. 1 kHz fits
/// 48 kHz a whole number of times, so the loop has no click.
fn write_tone(path: &Path, hz: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("write the tone WAV");
    for n in 0..48_000 * 10 {
        let v = (2.0 * std::f64::consts::PI * hz * f64::from(n) / 48_000.0).sin();
        w.write_sample((v * 16_000.0) as i16)
            .expect("write a sample");
    }
    w.finalize().expect("finish the tone WAV");
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

/// A script body for [`Browser::eval_async`] that measures the loudest frequency of the
/// `MediaStream` `stream` (a JavaScript expression) in the page: a WebAudio AnalyserNode
/// (FFT of 8192) listens for 1.5 s, then five spectra 100 ms apart are summed and the peak
/// between 100 Hz and 4 kHz is refined by parabolic interpolation. Returns
/// `{hz, db, rate}` (`db`: the peak's level, dBFS, to tell a tone from silence).
pub(crate) fn peak_frequency_script(stream: &str) -> String {
    format!(
        r#"
        const stream = {stream};
        if (!stream || stream.getAudioTracks().length === 0)
          throw new Error('no audio track in {stream_text}');
        const ctx = new AudioContext();
        await ctx.resume();
        const source = ctx.createMediaStreamSource(stream);
        const analyser = ctx.createAnalyser();
        analyser.fftSize = 8192;
        analyser.smoothingTimeConstant = 0;
        // Pulled by the destination (silently), so that the graph surely runs.
        const mute = ctx.createGain();
        mute.gain.value = 0;
        source.connect(analyser);
        analyser.connect(mute);
        mute.connect(ctx.destination);
        const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
        await sleep(1500);
        const bins = new Float32Array(analyser.frequencyBinCount);
        const power = new Float64Array(analyser.frequencyBinCount);
        for (let i = 0; i < 5; i++) {{
          analyser.getFloatFrequencyData(bins);
          for (let k = 0; k < bins.length; k++) power[k] += Math.pow(10, bins[k] / 10);
          await sleep(100);
        }}
        const binHz = ctx.sampleRate / analyser.fftSize;
        const from = Math.ceil(100 / binHz), to = Math.min(power.length - 2, Math.floor(4000 / binHz));
        let best = from;
        for (let k = from; k <= to; k++) if (power[k] > power[best]) best = k;
        const db = (k) => 10 * Math.log10(Math.max(power[k] / 5, 1e-30));
        const [a, b, c] = [db(best - 1), db(best), db(best + 1)];
        const shift = (a - 2 * b + c) === 0 ? 0 : 0.5 * (a - c) / (a - 2 * b + c);
        source.disconnect();
        await ctx.close();
        return {{hz: (best + shift) * binHz, db: b, rate: ctx.sampleRate}};
        "#,
        stream_text = stream.replace('\'', "\\'"),
    )
}

/// A script body for [`Browser::eval_async`]: the audio RTP counters of
/// `window.masterz.pc` (`getStats()`), as `{inbound, outbound, connection, ice}`;
/// `{pc: false}` when the page has no peer connection.
pub(crate) const RTP_STATS: &str = r#"
  const pc = window.masterz && window.masterz.pc;
  if (!pc) return {pc: false, inbound: 0, outbound: 0};
  const stats = await pc.getStats();
  let inbound = 0, outbound = 0;
  stats.forEach((r) => {
    if (r.type === 'inbound-rtp' && (r.kind || r.mediaType) === 'audio') inbound += r.packetsReceived || 0;
    if (r.type === 'outbound-rtp' && (r.kind || r.mediaType) === 'audio') outbound += r.packetsSent || 0;
  });
  return {pc: true, inbound, outbound, connection: pc.connectionState, ice: pc.iceConnectionState};
"#;

#[cfg(test)]
mod smoke {
    //! The client against Chromium and a page served here: nothing of masterz is involved.

    use std::time::Duration;

    use serde_json::json;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::{Browser, FAKE_MIC_HZ, alive, artifacts_dir, peak_frequency_script};

    const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>webdriver smoke</title></head>
<body>
  <button id="b" onclick="this.textContent = 'clicked'; document.getElementById('out').dataset.state = 'done'">click me</button>
  <input id="name" value="x">
  <p id="out" data-state="idle">waiting</p>
  <p id="hidden" style="display: none">hidden</p>
  <script>
    window.mic = navigator.mediaDevices.getUserMedia({audio: true})
      .then((s) => { window.localStream = s; document.getElementById('out').dataset.mic = 'on'; return s; })
      .catch((e) => console.error('getUserMedia failed', e));
  </script>
</body></html>"#;

    /// Serves [`PAGE`] at every path of 127.0.0.1:<port> until the test ends.
    async fn serve() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
                        PAGE.len()
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webdriver_smoke() {
        if !super::require() {
            return;
        }
        let _one = super::exclusive().await;
        let url = serve().await;
        let b = Browser::start("webdriver-smoke").await;
        let (driver_pid, browser_pid) = (
            b.driver.as_ref().map(std::process::Child::id),
            b.browser_pid,
        );
        assert!(
            browser_pid.is_some_and(alive),
            "no Chromium process from the session"
        );

        b.navigate(&url).await;
        assert_eq!(b.url().await, url);
        assert_eq!(b.text("#b").await, "click me");
        assert!(b.try_find("#nothing-here").await.is_none());
        assert_eq!(b.find_all("p").await.len(), 2);
        assert!(!b.find("#hidden").await.displayed().await);

        // Click, then wait for the page to change.
        b.click("#b").await;
        let out = b
            .wait_for("#out", Duration::from_secs(5), |p| {
                p.attr("data-state") == Some("done")
            })
            .await;
        assert_eq!(out.text, "waiting");
        assert_eq!(b.text("#b").await, "clicked");
        assert_eq!(
            b.find("#out")
                .await
                .attribute("data-state")
                .await
                .as_deref(),
            Some("done")
        );

        // Typing.
        b.set_value("#name", "hello").await;
        assert_eq!(b.find("#name").await.property("value").await, "hello");
        assert_eq!(
            b.probe("#name").await.and_then(|p| p.value).as_deref(),
            Some("hello")
        );

        // Scripts, sync and async, with arguments and elements.
        let el = b.find("#b").await;
        let v = b
            .execute(
                "return [arguments[0] + 1, arguments[1].id];",
                vec![json!(41), el.to_json()],
            )
            .await;
        assert_eq!(v, json!([42, "b"]));
        let v = b
            .execute_async(
                "const done = arguments[arguments.length - 1]; setTimeout(() => done(arguments[0] * 2), 50);",
                vec![json!(21)],
            )
            .await;
        assert_eq!(v, 42);
        let v = b
            .eval_async(
                "await new Promise((r) => setTimeout(r, 50)); return arguments[0] + '!';",
                vec![json!("async")],
            )
            .await;
        assert_eq!(v, "async!");
        b.wait_js(
            "a truthy script",
            Duration::from_secs(5),
            "return document.readyState === 'complete' && 7;",
            vec![],
        )
        .await;

        // Console errors are kept for the messages.
        b.execute("console.error('planted', {code: 7}); return null;", vec![])
            .await;
        let errors = b.errors().await;
        assert!(
            errors
                .iter()
                .any(|e| e.contains("planted") && e.contains("\"code\":7")),
            "{errors:?}"
        );

        // The fake microphone plays the tone.
        b.wait_for("#out", Duration::from_secs(10), |p| {
            p.attr("data-mic") == Some("on")
        })
        .await;
        let m = b
            .eval_async(&peak_frequency_script("window.localStream"), vec![])
            .await;
        let hz = m["hz"].as_f64().unwrap();
        assert!(
            (hz - FAKE_MIC_HZ).abs() <= 15.0,
            "the fake microphone plays {hz} Hz, not {FAKE_MIC_HZ}: {m}"
        );
        assert!(m["db"].as_f64().unwrap() > -60.0, "too quiet: {m}");

        // A screenshot is a PNG.
        let png = b.screenshot().await;
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        let path = artifacts_dir().join("webdriver-smoke.png");
        b.save_screenshot(&path).await;
        assert!(std::fs::metadata(&path).unwrap().len() > 1000);

        // Dropping the browser ends chromedriver and Chromium.
        let dir = b.dir.path().display().to_string();
        drop(b);
        assert!(!driver_pid.is_some_and(alive), "chromedriver still runs");
        assert!(!browser_pid.is_some_and(alive), "Chromium still runs");
        assert!(
            super::processes_naming(&dir).is_empty(),
            "processes of the profile are left"
        );
    }
}
