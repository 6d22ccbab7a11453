//! The gateway's metrics, in Prometheus' text exposition format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counters, a gauge and a histogram, shared by every connection.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16, &'static str), u64>>,
    denials: Mutex<BTreeMap<&'static str, u64>>,
    latency: Mutex<Histogram>,
    /// Request body bytes received.
    pub bytes_in: AtomicU64,
    /// Response body bytes sent.
    pub bytes_out: AtomicU64,
    /// Connections open now.
    pub connections: AtomicI64,
}

impl Metrics {
    /// Counts one finished request.
    pub fn request(&self, method: &str, status: u16, role: &'static str, took: Duration) {
        // Methods outside the few the protocol uses are counted together.
        let method = match method {
            "GET" | "HEAD" | "POST" | "DELETE" => method,
            _ => "other",
        };
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((method.to_owned(), status, role))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let mut h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts one denial by its reason (a fixed, short label).
    pub fn denial(&self, reason: &'static str) {
        *self
            .denials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP cairn_gateway_requests_total Requests answered, by method, status and role.\n",
        );
        out.push_str("# TYPE cairn_gateway_requests_total counter\n");
        for ((method, status, role), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "cairn_gateway_requests_total{{method=\"{method}\",status=\"{status}\",role=\"{role}\"}} {n}"
            );
        }
        out.push_str("# HELP cairn_gateway_denials_total Requests refused, by reason.\n");
        out.push_str("# TYPE cairn_gateway_denials_total counter\n");
        for (reason, n) in self
            .denials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "cairn_gateway_denials_total{{reason=\"{reason}\"}} {n}"
            );
        }
        for (name, help, v) in [
            ("received", "Request body bytes received.", &self.bytes_in),
            ("sent", "Response body bytes sent.", &self.bytes_out),
        ] {
            let _ = writeln!(out, "# HELP cairn_gateway_bytes_{name}_total {help}");
            let _ = writeln!(out, "# TYPE cairn_gateway_bytes_{name}_total counter");
            let _ = writeln!(
                out,
                "cairn_gateway_bytes_{name}_total {}",
                v.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP cairn_gateway_open_connections Connections open now.\n");
        out.push_str("# TYPE cairn_gateway_open_connections gauge\n");
        let _ = writeln!(
            out,
            "cairn_gateway_open_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        out.push_str("# HELP cairn_gateway_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE cairn_gateway_request_duration_seconds histogram\n");
        let h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        for (bound, n) in BUCKETS.iter().zip(h.counts) {
            let _ = writeln!(
                out,
                "cairn_gateway_request_duration_seconds_bucket{{le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "cairn_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "cairn_gateway_request_duration_seconds_sum {}", h.sum);
        let _ = writeln!(
            out,
            "cairn_gateway_request_duration_seconds_count {}",
            h.count
        );
        out
    }
}
