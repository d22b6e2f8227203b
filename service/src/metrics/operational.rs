//! The metrics an operator alerts on, beyond the creation counters:
//! request latency per route and status, requests in flight, how long
//! duplicates wait for an in-flight original, the database pool, and the
//! reaper's progress. Histograms and gauges from the `prometheus` crate,
//! in a registry of this application's own (tests run many applications
//! in one process), rendered in the text format.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::store::{KeyStore, PoolUse};

/// Request latency buckets, in seconds: from a replay served from memory
/// to the longest a creation may wait for a connection and its original.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Duplicate wait buckets, in seconds: polls start at 5 ms and a wait is
/// bounded by the policy's (`DUPLICATE_WAIT`, seconds).
const WAIT_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The methods the API serves; any other is labelled `other`, so a client
/// cannot grow the label set.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// How a wait for an in-flight original ended; its label in
/// `idemproof_duplicate_wait_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// The original completed: this request is its replay.
    Replayed,
    /// The original's lease ran out: this request took the key over.
    Claimed,
    /// Still in flight at the deadline: 409.
    GaveUp,
    /// The original turned out to have another payload: 422.
    Mismatch,
    /// The store failed while waiting.
    Error,
}

impl WaitEnd {
    /// Every way a wait ends.
    const ALL: [Self; 5] = [Self::Replayed, Self::Claimed, Self::GaveUp, Self::Mismatch, Self::Error];

    fn label(self) -> &'static str {
        match self {
            Self::Replayed => "replayed",
            Self::Claimed => "claimed",
            Self::GaveUp => "gave_up",
            Self::Mismatch => "mismatch",
            Self::Error => "error",
        }
    }
}

/// The operational metrics and their registry.
pub struct Operational {
    registry: Registry,
    requests: HistogramVec,
    in_flight: IntGauge,
    duplicate_wait: HistogramVec,
    reaper_runs: IntCounterVec,
    reaped: IntCounter,
    reaper_last_success: Gauge,
    /// The pool gauges, once a store with a pool is watched.
    pool: OnceLock<PoolGauges>,
}

/// The database pool, read from the store at every scrape.
struct PoolGauges {
    keys: Arc<dyn KeyStore>,
    in_use: IntGauge,
    idle: IntGauge,
    waiting: IntGauge,
    max: IntGauge,
}

impl std::fmt::Debug for Operational {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operational").finish_non_exhaustive()
    }
}

fn registered<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    // Names are constants, distinct and valid: registering cannot fail.
    registry
        .register(Box::new(metric.clone()))
        .expect("a fresh registry takes distinct metrics");
    metric
}

impl Default for Operational {
    fn default() -> Self {
        let registry = Registry::new();
        let requests = HistogramVec::new(
            HistogramOpts::new(
                "idemproof_http_request_duration_seconds",
                "API requests from arrival to response, by method, route template (unmatched: no route) and status.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route", "status"],
        )
        .expect("valid histogram");
        let in_flight = IntGauge::new(
            "idemproof_http_requests_in_flight",
            "API requests arrived and not yet answered.",
        )
        .expect("valid gauge");
        let duplicate_wait = HistogramVec::new(
            HistogramOpts::new(
                "idemproof_duplicate_wait_seconds",
                "Time a keyed request spent waiting for an in-flight original with its key, by how the wait ended.",
            )
            .buckets(WAIT_BUCKETS.to_vec()),
            &["result"],
        )
        .expect("valid histogram");
        let reaper_runs = IntCounterVec::new(
            Opts::new(
                "idemproof_reaper_runs_total",
                "Reaper passes over the expired idempotency keys, by result.",
            ),
            &["result"],
        )
        .expect("valid counter");
        let reaped = IntCounter::new(
            "idemproof_reaper_deleted_keys_total",
            "Expired idempotency keys the reaper deleted.",
        )
        .expect("valid counter");
        let reaper_last_success = Gauge::new(
            "idemproof_reaper_last_success_timestamp_seconds",
            "Unix time the last reaper pass finished without error (0: none yet).",
        )
        .expect("valid gauge");
        // Every series of a fixed label set is there from the start, at
        // zero: an alert on its rate sees 0, not an absent series.
        for result in ["ok", "failed"] {
            reaper_runs.with_label_values(&[result]);
        }
        for end in WaitEnd::ALL {
            duplicate_wait.with_label_values(&[end.label()]);
        }
        Self {
            requests: registered(&registry, requests),
            in_flight: registered(&registry, in_flight),
            duplicate_wait: registered(&registry, duplicate_wait),
            reaper_runs: registered(&registry, reaper_runs),
            reaped: registered(&registry, reaped),
            reaper_last_success: registered(&registry, reaper_last_success),
            pool: OnceLock::new(),
            registry,
        }
    }
}

/// Decrements the in-flight gauge when the request ends, answered or not.
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Operational {
    /// Counts a request in flight until the guard drops.
    pub fn request_started(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Records one answered request. `route` is the route template, or
    /// [`UNMATCHED`].
    pub fn request_answered(&self, method: &str, route: &str, status: u16, took: Duration) {
        let method = METHODS.iter().find(|m| **m == method).copied().unwrap_or("other");
        let status = status.to_string();
        self.requests
            .with_label_values(&[method, route, status.as_str()])
            .observe(took.as_secs_f64());
    }

    /// Records one wait for an in-flight original.
    pub fn duplicate_waited(&self, took: Duration, end: WaitEnd) {
        self.duplicate_wait
            .with_label_values(&[end.label()])
            .observe(took.as_secs_f64());
    }

    /// Records one reaper pass: how many keys it deleted, or that it
    /// failed; `now` is the Unix time it ended.
    pub fn reaped(&self, result: Result<u64, ()>, now_unix: f64) {
        match result {
            Ok(deleted) => {
                self.reaper_runs.with_label_values(&["ok"]).inc();
                self.reaped.inc_by(deleted);
                self.reaper_last_success.set(now_unix);
            }
            Err(()) => self.reaper_runs.with_label_values(&["failed"]).inc(),
        }
    }

    /// Exports the pool of `keys`' store, if it has one (the in-memory
    /// store has none: no pool gauges then). Only the first call counts.
    pub fn watch_pool(&self, keys: Arc<dyn KeyStore>) {
        if keys.pool_use().is_none() || self.pool.get().is_some() {
            return;
        }
        let gauge =
            |name: &str, help: &str| registered(&self.registry, IntGauge::new(name, help).expect("valid gauge"));
        let gauges = PoolGauges {
            keys,
            in_use: gauge(
                "idemproof_db_pool_connections_in_use",
                "Database connections held by a store call.",
            ),
            idle: gauge(
                "idemproof_db_pool_connections_idle",
                "Database connections open and free.",
            ),
            waiting: gauge(
                "idemproof_db_pool_waiting",
                "Statements waiting for a database connection.",
            ),
            max: gauge(
                "idemproof_db_pool_connections_max",
                "The most connections the pool opens (DATABASE_MAX_CONNECTIONS).",
            ),
        };
        let _ = self.pool.set(gauges);
    }

    /// The text format of every metric here.
    pub fn render(&self) -> String {
        if let Some(pool) = self.pool.get()
            && let Some(PoolUse {
                in_use,
                idle,
                waiting,
                max,
            }) = pool.keys.pool_use()
        {
            pool.in_use.set(i64::from(in_use));
            pool.idle.set(i64::from(idle));
            pool.waiting.set(i64::from(waiting));
            pool.max.set(i64::from(max));
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_counts_until_the_guard_drops_and_methods_are_bounded() {
        let metrics = Operational::default();
        let first = metrics.request_started();
        let second = metrics.request_started();
        assert!(metrics.render().contains("idemproof_http_requests_in_flight 2\n"));
        drop((first, second));
        assert!(metrics.render().contains("idemproof_http_requests_in_flight 0\n"));

        metrics.request_answered("BREW", UNMATCHED, 405, Duration::from_millis(3));
        metrics.request_answered("GET", "/healthz", 200, Duration::from_millis(3));
        let text = metrics.render();
        assert!(
            text.contains(
                r#"idemproof_http_request_duration_seconds_count{method="other",route="unmatched",status="405"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains("BREW"), "{text}");
        assert!(
            text.contains(r#"idemproof_http_request_duration_seconds_bucket{method="GET",route="/healthz",status="200",le="0.005"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn waits_and_reaper_passes_are_recorded_and_start_at_zero() {
        let metrics = Operational::default();
        let text = metrics.render();
        for end in WaitEnd::ALL {
            let line = format!(
                "idemproof_duplicate_wait_seconds_count{{result=\"{}\"}} 0\n",
                end.label()
            );
            assert!(text.contains(&line), "{text}");
        }
        metrics.duplicate_waited(Duration::from_millis(40), WaitEnd::Replayed);
        metrics.reaped(Ok(3), 1_000.5);
        metrics.reaped(Err(()), 2_000.0);
        let text = metrics.render();
        assert!(
            text.contains("idemproof_duplicate_wait_seconds_count{result=\"replayed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("idemproof_duplicate_wait_seconds_bucket{result=\"replayed\",le=\"0.05\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("idemproof_reaper_deleted_keys_total 3\n"), "{text}");
        assert!(
            text.contains("idemproof_reaper_runs_total{result=\"failed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("idemproof_reaper_last_success_timestamp_seconds 1000.5\n"),
            "the failure leaves it: {text}"
        );
        assert!(!text.contains("idemproof_db_pool"), "no pool watched: {text}");
    }
}
