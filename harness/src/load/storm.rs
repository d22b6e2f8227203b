//! How the cost of one key grows with the crowd on it: `clients` requests
//! with the same key and payload released at once, round after round
//! (a new key each round), on connections opened beforehand so only the
//! requests are timed. Per size: how long until every client of a round
//! had its answer (from the release), the answers' latency, the statuses
//! (exactly one 201 per round, the rest 200 replays) and the CPU per
//! request of the service and the database.

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::cpu::{CpuMeter, CpuUse};
use super::generator::{Endpoint, body};

/// Requests per storm size, spread over rounds of `clients` each (at
/// least 4 rounds, at most 100), so every size costs about the same time.
const REQUESTS_PER_SIZE: usize = 4_000;

/// One storm size, measured.
#[derive(Debug, Clone, Serialize)]
pub struct Storm {
    /// Clients on the key at once.
    pub clients: usize,
    /// Rounds (keys).
    pub rounds: usize,
    /// Release to last answer, median over rounds, ms.
    pub all_answered_p50_ms: f64,
    /// Release to last answer, slowest round, ms.
    pub all_answered_max_ms: f64,
    /// One request's latency from the release: median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 201 answers (one per round when correct).
    pub created: u64,
    /// 200 replays.
    pub replayed: u64,
    /// Anything else (409 after the wait, errors).
    pub other: u64,
    /// The first unexpected answer, to tell what went wrong.
    pub first_error: Option<String>,
    /// CPU per request over all rounds.
    pub cpu: Option<CpuUse>,
}

/// Storms of `clients` on `endpoint`.
pub async fn storm(endpoint: &Endpoint, clients: usize, meter: &CpuMeter) -> anyhow::Result<Storm> {
    let rounds = (REQUESTS_PER_SIZE / clients.max(1)).clamp(4, 100);
    let connections = open_connections(endpoint, clients).await?;
    let body = Arc::new(body());
    let mut latency = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    let mut all_answered = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    let (mut created, mut replayed, mut other, mut first_error) = (0, 0, 0, None);
    let before = meter.snapshot();
    for round in 0..rounds {
        let key = format!("{}-storm-{clients}-{round}", endpoint.nonce);
        let (release, released) = watch::channel(None::<Instant>);
        let senders: Vec<_> = connections
            .iter()
            .map(|client| {
                let (client, endpoint, body, key) = (client.clone(), endpoint.clone(), body.clone(), key.clone());
                let mut released = released.clone();
                tokio::spawn(async move {
                    let start = loop {
                        if let Some(at) = *released.borrow_and_update() {
                            break at;
                        }
                        if released.changed().await.is_err() {
                            return (Err("never released".to_owned()), Duration::ZERO);
                        }
                    };
                    let answer = client
                        .post(&endpoint.url)
                        .header("authorization", &endpoint.authorization)
                        .header("idempotency-key", format!("\"{key}\""))
                        .json(&*body)
                        .send()
                        .await;
                    let status = match answer {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            match response.bytes().await {
                                Ok(_) => Ok(status),
                                Err(e) => Err(format!("body lost: {e}")),
                            }
                        }
                        Err(e) => Err(format!("transport error: {e}")),
                    };
                    (status, start.elapsed())
                })
            })
            .collect();
        // Every sender is parked on the channel before the release.
        tokio::task::yield_now().await;
        let _ = release.send(Some(Instant::now()));
        let mut slowest = Duration::ZERO;
        for sender in senders {
            let (status, took) = sender.await?;
            slowest = slowest.max(took);
            let _ = latency.record(micros(took));
            match status {
                Ok(201) => created += 1,
                Ok(200) => replayed += 1,
                Ok(status) => {
                    other += 1;
                    first_error.get_or_insert(format!("status {status}"));
                }
                Err(e) => {
                    other += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        let _ = all_answered.record(micros(slowest));
    }
    let cpu = before.per_request(&meter.snapshot(), (rounds * clients) as u64);
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    if created != rounds as u64 {
        first_error.get_or_insert(format!("{created} creations in {rounds} rounds"));
    }
    Ok(Storm {
        clients,
        rounds,
        all_answered_p50_ms: ms(&all_answered, 0.5),
        all_answered_max_ms: all_answered.max() as f64 / 1000.0,
        p50_ms: ms(&latency, 0.5),
        p99_ms: ms(&latency, 0.99),
        created,
        replayed,
        other,
        first_error,
        cpu,
    })
}

/// `n` clients of one keep-alive connection each, opened (by a health
/// check) before the storms, so they do not time TCP handshakes.
async fn open_connections(endpoint: &Endpoint, n: usize) -> anyhow::Result<Vec<reqwest::Client>> {
    let base = endpoint.url.split("/api/").next().unwrap_or_default();
    let health = format!("{base}/healthz");
    let clients = (0..n)
        .map(|_| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let opened = futures::future::join_all(clients.iter().map(|c| c.get(&health).send())).await;
    for answer in opened {
        answer?.error_for_status()?;
    }
    Ok(clients)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}
