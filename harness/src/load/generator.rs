//! The harness's own load generator: closed loop (N connections, each
//! sending its next request when the previous answered) and open loop (a
//! fixed arrival rate, latency counted from when each request was due, so
//! queueing is not hidden). Latencies go into HDR histograms.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers each generator run, so no two runs ever send the same key.
static RUNS: AtomicU64 = AtomicU64::new(0);
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::cpu::{CpuMeter, CpuSnapshot, CpuUse};
use crate::SeededRng;

/// What each request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Creation without a key (the backward-compatible path).
    Unkeyed,
    /// Creation with a new key every time.
    Keyed,
    /// The same request again for a key that already completed.
    Replay,
    /// 70 % new keys, 20 % duplicates of a recent key, 10 % without key.
    Mixed,
}

impl Workload {
    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Unkeyed => "unkeyed",
            Workload::Keyed => "keyed",
            Workload::Replay => "replay",
            Workload::Mixed => "mixed",
        }
    }
}

/// Everything a generator needs to build requests.
#[derive(Clone)]
pub struct Endpoint {
    /// `http://127.0.0.1:PORT/api/v1/agents?organization_id=1`.
    pub url: String,
    /// `Bearer …` for user 1 in organisation 1.
    pub authorization: String,
    /// Keys of completed agents, for `replay`.
    pub replay_pool: Arc<Vec<String>>,
    /// Makes this run's keys unique.
    pub nonce: String,
}

/// The body every load request sends: fixed, so every workload costs the
/// same to parse and fingerprint.
pub fn body() -> Value {
    json!({"name": "load test agent", "config": {"model": "small", "tools": ["search"]}})
}

/// Latency and counts of one measured run.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// Answers with the expected status.
    pub ok: u64,
    /// Anything else (wrong status, transport error).
    pub errors: u64,
    /// Open loop only: requests not sent because too many were in flight.
    pub shed: u64,
    /// The first error, to tell what went wrong.
    pub first_error: Option<String>,
    /// Measured seconds.
    pub seconds: f64,
    /// `ok / seconds`.
    pub throughput: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// `(latency ms, cumulative share)` for plots.
    pub cdf: Vec<(f64, f64)>,
    /// CPU per request (answered or not) over the measured window.
    pub cpu: Option<CpuUse>,
}

impl Measured {
    fn from(
        histogram: &Histogram<u64>,
        ok: u64,
        errors: u64,
        shed: u64,
        first_error: Option<String>,
        seconds: f64,
    ) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        let q = |p: f64| {
            if histogram.is_empty() {
                0.0
            } else {
                ms(histogram.value_at_quantile(p))
            }
        };
        let cdf = if histogram.is_empty() {
            Vec::new()
        } else {
            [
                0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0,
            ]
            .iter()
            .map(|&p| (q(p), p))
            .collect()
        };
        Self {
            ok,
            errors,
            shed,
            first_error,
            seconds,
            throughput: ok as f64 / seconds.max(1e-9),
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: if histogram.is_empty() { 0.0 } else { ms(histogram.max()) },
            cdf,
            cpu: None,
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Builds the next request of a workload for one sender.
struct Requests {
    workload: Workload,
    endpoint: Endpoint,
    /// Which generator run this is (keys are unique per run).
    run: u64,
    sender: usize,
    sent: u64,
    rng: SeededRng,
    /// Keys this sender created recently, for `mixed` duplicates.
    recent: Vec<String>,
}

impl Requests {
    fn new(workload: Workload, endpoint: Endpoint, run: u64, sender: usize, seed: u64) -> Self {
        Self {
            workload,
            endpoint,
            run,
            sender,
            sent: 0,
            rng: SeededRng::seed_from_u64(seed ^ (sender as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            recent: Vec::new(),
        }
    }

    /// The key to send (if any) and the status the answer must have (0:
    /// any 2xx, for a key whose duplicate may overtake the original).
    fn next(&mut self) -> (Option<String>, u16) {
        self.sent += 1;
        let fresh = |this: &Self| format!("{}-{}-{}-{}", this.endpoint.nonce, this.run, this.sender, this.sent);
        match self.workload {
            Workload::Unkeyed => (None, 201),
            Workload::Keyed => (Some(fresh(self)), 201),
            Workload::Replay => {
                let pool = &self.endpoint.replay_pool;
                let key = pool[self.rng.random_range(0..pool.len())].clone();
                (Some(key), 200)
            }
            Workload::Mixed => match self.rng.random_range(0..10) {
                0..=6 => {
                    let key = fresh(self);
                    self.recent.push(key.clone());
                    if self.recent.len() > 64 {
                        self.recent.remove(0);
                    }
                    (Some(key), 0)
                }
                7 | 8 if !self.recent.is_empty() => {
                    let i = self.rng.random_range(0..self.recent.len());
                    (Some(self.recent[i].clone()), 0)
                }
                _ => (None, 201),
            },
        }
    }
}

/// Sends one request; `Err` describes an answer other than `expect`.
pub(super) async fn send(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    body: &Value,
    key: Option<&str>,
    expect: u16,
) -> Result<(), String> {
    let mut request = client
        .post(&endpoint.url)
        .header("authorization", &endpoint.authorization)
        .json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", format!("\"{key}\""));
    }
    let response = request.send().await.map_err(|e| format!("transport error: {e}"))?;
    let status = response.status().as_u16();
    // Read the body: the request is not done until it arrived.
    let body = response.bytes().await.map_err(|e| format!("body lost: {e}"))?;
    if status == expect || (expect == 0 && (200..300).contains(&status)) {
        Ok(())
    } else {
        Err(format!(
            "expected {expect}, got {status}: {}",
            String::from_utf8_lossy(&body)
        ))
    }
}

/// Reads `meter` when the measured window opens.
fn snapshot_at(meter: &CpuMeter, at: Instant) -> tokio::task::JoinHandle<CpuSnapshot> {
    let meter = meter.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until(at).await;
        meter.snapshot()
    })
}

/// `connections` senders, each on its own connection, each sending its
/// next request when the previous one answered, for `warmup` (unrecorded)
/// then `duration`; `meter` is read when the measured window opens and
/// once every answer of it is in.
pub async fn closed_loop(
    endpoint: &Endpoint,
    workload: Workload,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    seed: u64,
    meter: &CpuMeter,
) -> anyhow::Result<Measured> {
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let window_opened = snapshot_at(meter, measure_from);
    let mut tasks = Vec::new();
    for sender in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .build()?;
        let mut requests = Requests::new(workload, endpoint.clone(), run, sender, seed);
        let endpoint = endpoint.clone();
        tasks.push(tokio::spawn(async move {
            let body = body();
            let mut h = histogram();
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            loop {
                let sent_at = Instant::now();
                if sent_at >= end {
                    break;
                }
                let (key, expect) = requests.next();
                let answer = send(&client, &endpoint, &body, key.as_deref(), expect).await;
                if sent_at >= measure_from {
                    match answer {
                        Ok(()) => {
                            ok += 1;
                            let _ = h.record(sent_at.elapsed().as_micros().max(1) as u64);
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
            (h, ok, errors, first_error)
        }));
    }
    let mut all = histogram();
    let (mut ok, mut errors, mut first_error) = (0, 0, None);
    for task in tasks {
        let (h, o, e, first) = task.await?;
        all.add(&h)?;
        ok += o;
        errors += e;
        first_error = first_error.or(first);
    }
    let cpu = window_opened.await?.per_request(&meter.snapshot(), ok + errors);
    Ok(Measured {
        cpu,
        ..Measured::from(&all, ok, errors, 0, first_error, duration.as_secs_f64())
    })
}

/// Requests arrive at `rate` per second whatever the answers do; latency
/// counts from each request's due time. At most `max_in_flight` wait at
/// once; beyond that a request is shed (counted, not sent).
pub async fn open_loop(
    endpoint: &Endpoint,
    workload: Workload,
    rate: f64,
    warmup: Duration,
    duration: Duration,
    seed: u64,
    meter: &CpuMeter,
) -> anyhow::Result<Measured> {
    const MAX_IN_FLIGHT: usize = 2048;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .tcp_nodelay(true)
        .build()?;
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let mut requests = Requests::new(workload, endpoint.clone(), run, 0, seed);
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let shed = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Result<(), String>, u64)>();
    let start = Instant::now();
    let measure_from = start + warmup;
    let window_opened = snapshot_at(meter, measure_from);
    let total = ((warmup + duration).as_secs_f64() * rate).ceil() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let body = Arc::new(body());
    for n in 0..total {
        let due = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due).await;
        let (key, expect) = requests.next();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if due >= measure_from {
                shed.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        };
        let (client, endpoint, body, tx) = (client.clone(), endpoint.clone(), body.clone(), tx.clone());
        tokio::spawn(async move {
            let answer = send(&client, &endpoint, &body, key.as_deref(), expect).await;
            if due >= measure_from {
                let _ = tx.send((answer, due.elapsed().as_micros().max(1) as u64));
            }
            drop(permit);
        });
    }
    drop(tx);
    let mut h = histogram();
    let (mut ok, mut errors, mut first_error) = (0, 0, None);
    while let Some((answer, us)) = rx.recv().await {
        match answer {
            Ok(()) => {
                ok += 1;
                let _ = h.record(us);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let shed = shed.load(Ordering::Relaxed);
    let cpu = window_opened.await?.per_request(&meter.snapshot(), ok + errors);
    Ok(Measured {
        cpu,
        ..Measured::from(&h, ok, errors, shed, first_error, duration.as_secs_f64())
    })
}
