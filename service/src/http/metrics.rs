//! `GET /metrics` (on its own listener, `METRICS_BIND`): Prometheus text
//! exposition of the creation outcomes and of how many creations carried a
//! key. A handful of atomic counters; no metrics framework needed.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use clap::ValueEnum;

use crate::readiness::Probe;

/// How a creation request ended. Its label in `/metrics` is the variant's
/// name in snake case (derived, like a command-line value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Outcome {
    /// 201: this request created the agent.
    Created,
    /// 200: replay of an earlier request with the same key.
    Replayed,
    /// 422: key reused with another payload.
    Mismatch,
    /// 409: the original was still in flight.
    Conflict,
    /// Other 4xx: the request was refused as invalid.
    Invalid,
    /// 5xx: the store failed.
    Error,
    /// 429: the organisation was over its request rate.
    RateLimited,
    /// 429: the organisation had its most requests in flight already.
    ConcurrencyLimited,
    /// 503: the in-memory store had no room (nothing was written).
    StoreFull,
}

/// Process-wide counters.
#[derive(Debug)]
pub struct Metrics {
    /// Creation requests by [`Outcome`], in the order of its variants.
    outcomes: Vec<AtomicU64>,
    /// Valid creation requests, and those of them that carried a key: the
    /// share tells how far clients have adopted keys.
    creates: AtomicU64,
    keyed_creates: AtomicU64,
    /// Readiness write probes by [`Probe`] outcome, in variant order.
    probes: Vec<AtomicU64>,
    /// The readiness verdict after the last probe.
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            outcomes: Outcome::value_variants().iter().map(|_| AtomicU64::new(0)).collect(),
            creates: AtomicU64::new(0),
            keyed_creates: AtomicU64::new(0),
            probes: Probe::value_variants().iter().map(|_| AtomicU64::new(0)).collect(),
            ready: AtomicBool::new(true),
        }
    }
}

impl Metrics {
    /// Counts one finished creation request.
    pub fn record(&self, outcome: Outcome) {
        if let Some(i) = Outcome::value_variants().iter().position(|o| *o == outcome) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one valid creation request, keyed or not.
    pub fn record_create(&self, keyed: bool) {
        self.creates.fetch_add(1, Ordering::Relaxed);
        if keyed {
            self.keyed_creates.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one readiness probe and the verdict after it.
    pub fn record_probe(&self, probe: Probe, ready: bool) {
        if let Some(i) = Probe::value_variants().iter().position(|p| *p == probe) {
            self.probes[i].fetch_add(1, Ordering::Relaxed);
        }
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP idemproof_create_requests_total Creation requests (agents and deployments) by outcome."
        );
        let _ = writeln!(out, "# TYPE idemproof_create_requests_total counter");
        for (outcome, n) in Outcome::value_variants().iter().zip(&self.outcomes) {
            if let Some(label) = outcome.to_possible_value() {
                let (label, n) = (label.get_name(), n.load(Ordering::Relaxed));
                let _ = writeln!(out, "idemproof_create_requests_total{{outcome=\"{label}\"}} {n}");
            }
        }
        let creates = self.creates.load(Ordering::Relaxed);
        let keyed = self.keyed_creates.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP idemproof_valid_creates_total Valid creation requests (agents and deployments)."
        );
        let _ = writeln!(out, "# TYPE idemproof_valid_creates_total counter");
        let _ = writeln!(out, "idemproof_valid_creates_total {creates}");
        let _ = writeln!(
            out,
            "# HELP idemproof_keyed_creates_total Valid creation requests that carried an idempotency key."
        );
        let _ = writeln!(out, "# TYPE idemproof_keyed_creates_total counter");
        let _ = writeln!(out, "idemproof_keyed_creates_total {keyed}");
        let share = if creates == 0 {
            0.0
        } else {
            keyed as f64 / creates as f64
        };
        let _ = writeln!(
            out,
            "# HELP idemproof_keyed_create_share Share of valid creation requests that carried an idempotency key."
        );
        let _ = writeln!(out, "# TYPE idemproof_keyed_create_share gauge");
        let _ = writeln!(out, "idemproof_keyed_create_share {share}");
        let _ = writeln!(
            out,
            "# HELP idemproof_readiness_probes_total Readiness write probes by result (busy: no connection free, no verdict)."
        );
        let _ = writeln!(out, "# TYPE idemproof_readiness_probes_total counter");
        for (probe, n) in Probe::value_variants().iter().zip(&self.probes) {
            if let Some(label) = probe.to_possible_value() {
                let (label, n) = (label.get_name(), n.load(Ordering::Relaxed));
                let _ = writeln!(out, "idemproof_readiness_probes_total{{result=\"{label}\"}} {n}");
            }
        }
        let ready = u8::from(self.ready.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP idemproof_ready Whether /readyz answers ready (1) or not (0)."
        );
        let _ = writeln!(out, "# TYPE idemproof_ready gauge");
        let _ = writeln!(out, "idemproof_ready {ready}");
        out
    }
}

/// `GET /metrics` (on the metrics listener only).
pub async fn render(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_share() {
        let m = Metrics::default();
        m.record(Outcome::Created);
        m.record(Outcome::Replayed);
        m.record(Outcome::Replayed);
        m.record_create(true);
        m.record_create(true);
        m.record_create(true);
        m.record_create(false);
        let text = m.render();
        assert!(text.contains("idemproof_create_requests_total{outcome=\"created\"} 1\n"));
        assert!(text.contains("idemproof_create_requests_total{outcome=\"replayed\"} 2\n"));
        assert!(text.contains("idemproof_create_requests_total{outcome=\"error\"} 0\n"));
        assert!(text.contains("idemproof_create_requests_total{outcome=\"rate_limited\"} 0\n"));
        assert!(text.contains("idemproof_keyed_create_share 0.75\n"));
        let labels = text
            .lines()
            .filter(|l| l.starts_with("idemproof_create_requests_total{"))
            .count();
        assert_eq!(labels, Outcome::value_variants().len(), "one line per outcome:\n{text}");
        assert!(text.contains("idemproof_ready 1\n"));
        m.record_probe(Probe::Busy, true);
        m.record_probe(Probe::Failed, false);
        let text = m.render();
        assert!(
            text.contains("idemproof_readiness_probes_total{result=\"busy\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("idemproof_readiness_probes_total{result=\"wrote\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("idemproof_ready 0\n"), "{text}");
    }
}
