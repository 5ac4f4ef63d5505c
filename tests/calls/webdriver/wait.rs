//! Waiting for the page: [`Browser::wait_for`] polls an element until a predicate holds on
//! what [`PROBE`] reads of it, [`Browser::wait_js`] polls a script until it returns something
//! truthy. A wait that times out ends in [`Browser::timed_out`], the failure report.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Browser, POLL};

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

/// Reads a [`Probe`] of the first element matching `arguments[0]`, or `null`. Kept beside
/// [`Probe`]: the object it returns is what that struct deserialises.
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

impl Browser {
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
    /// errors and state, and a screenshot in [`super::artifacts_dir`] otherwise.
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
