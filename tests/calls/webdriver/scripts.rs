//! The JavaScript put into pages — the error capture installed in every document, and the
//! audio measurements the tests run — and what a failure reports: the page's errors and
//! state ([`Browser::diagnostics`]) and, for a wait that timed out, a screenshot in
//! [`artifacts_dir`].

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::Value;

use super::Browser;

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
pub(super) const CAPTURE_ERRORS: &str = r#"(() => {
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

impl Browser {
    /// The failure report of a wait: panics with `what` it waited for, a screenshot in
    /// [`artifacts_dir`] (if one can still be taken) and [`Browser::diagnostics`].
    pub(super) async fn timed_out(&self, what: &str, timeout: Duration) -> ! {
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
