//! Prometheus metrics in the text exposition format, without a metrics framework: HTTP request
//! counts and latency histograms per route, and security counters (P14).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    /// Failed logins (bad credentials).
    pub login_failures: AtomicU64,
    /// Logins refused by the rate limit.
    pub login_rate_limited: AtomicU64,
    /// Successful logins.
    pub login_successes: AtomicU64,
}

impl Metrics {
    /// Records one HTTP request; `route` is the matched route template, not the raw path, so
    /// ids do not explode the label set.
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let key = (method.to_owned(), route.to_owned());
        {
            let mut http = self.http.lock().unwrap_or_else(|e| e.into_inner());
            *http
                .entry((key.0.clone(), key.1.clone(), status))
                .or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = latency.entry(key).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP masterz_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE masterz_http_requests_total counter\n");
        for ((method, route, status), n) in
            self.http.lock().unwrap_or_else(|e| e.into_inner()).iter()
        {
            let _ = writeln!(
                out,
                "masterz_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP masterz_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE masterz_http_request_duration_seconds histogram\n");
        for ((method, route), h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "masterz_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "masterz_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "masterz_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "masterz_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        for (name, help, value) in [
            (
                "masterz_login_failures_total",
                "Logins refused for bad credentials.",
                &self.login_failures,
            ),
            (
                "masterz_login_rate_limited_total",
                "Logins refused by the rate limit.",
                &self.login_rate_limited,
            ),
            (
                "masterz_login_successes_total",
                "Successful logins.",
                &self.login_successes,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.http_request(
            "GET",
            "/api/v1/customers/{id}",
            200,
            Duration::from_millis(3),
        );
        m.http_request(
            "GET",
            "/api/v1/customers/{id}",
            404,
            Duration::from_millis(30),
        );
        let text = m.render();
        assert!(text.contains("masterz_http_requests_total{method=\"GET\",route=\"/api/v1/customers/{id}\",status=\"200\"} 1"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.05\"} 2"));
        assert!(text.contains("masterz_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/customers/{id}\"} 2"));
    }
}
