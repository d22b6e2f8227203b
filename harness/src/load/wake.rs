//! How soon a duplicate waiting for an in-flight original learns that it
//! finished, across replicas: the time from the original's answer to each
//! waiting duplicate's answer.
//!
//! Two service processes on one database. Each round takes a new key and
//! gives it an abandoned claim (a record in progress whose lease has
//! ended, written directly into the database, as a crashed replica leaves
//! one), so the original takes the long way: it claims the key over and
//! holds it while its work runs. The original goes to replica A, whose
//! every creation takes [`WORK`] longer (the harness's work delay, before
//! its one-step attempt and again before its completion); once A holds
//! the claim, [`WAITERS`] duplicates go to replica B, which has no delay,
//! find the key in flight and wait. Each duplicate's answer time minus the
//! original's is recorded (zero if it came first: both follow the same
//! commit).

use std::time::Duration;

use hdrhistogram::Histogram;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;

use super::generator::{Endpoint, body};
use crate::SeededRng;
use crate::deploy::ProcessReplica;

/// How long the original's work takes, before each of its two writes.
pub const WORK: Duration = Duration::from_millis(100);
/// Duplicates per round, all on the other replica.
pub const WAITERS: usize = 4;
/// Rounds (keys).
pub const ROUNDS: usize = 40;

/// The wake-up latency of waiting duplicates.
#[derive(Debug, Clone, Serialize)]
pub struct Wake {
    /// Rounds run.
    pub rounds: usize,
    /// Duplicates per round.
    pub waiters: usize,
    /// The original's answer to a duplicate's, median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Answers other than 201 (original) or 200 (duplicate).
    pub errors: u64,
    /// The first of them.
    pub first_error: Option<String>,
}

/// Runs the rounds against replicas `a` (its work delay is set here) and
/// `b`, both serving `endpoint_a`'s and `endpoint_b`'s organisation 1 over
/// the database at `db_url`.
pub async fn measure(
    a: &mut ProcessReplica,
    endpoint_a: &Endpoint,
    endpoint_b: &Endpoint,
    db_url: &str,
    seed: u64,
) -> anyhow::Result<Wake> {
    a.set_work_delay(WORK).await?;
    let mut db = PgConnection::connect(db_url).await?;
    let (client_a, client_b) = (client()?, client()?);
    let mut rng = SeededRng::seed_from_u64(seed);
    let mut after = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut errors, mut first_error) = (0u64, None);
    let body = body();
    for round in 0..ROUNDS {
        let key = format!("{}-wake-{round}", endpoint_a.nonce);
        abandoned_claim(&mut db, &key).await?;
        let sent = Instant::now();
        let original = tokio::spawn(answer(client_a.clone(), endpoint_a.clone(), key.clone(), body.clone()));
        // A holds the claim from about WORK after the send until about
        // 2 × WORK; the duplicates arrive in between, at varied phases.
        let join = Duration::from_millis(rng.random_range(15..55));
        tokio::time::sleep_until(sent + WORK + join).await;
        let duplicates: Vec<_> = (0..WAITERS)
            .map(|_| tokio::spawn(answer(client_b.clone(), endpoint_b.clone(), key.clone(), body.clone())))
            .collect();
        let (status, original_at) = original.await?;
        if status != Ok(201) {
            errors += 1;
            first_error.get_or_insert(format!("original: {status:?}"));
        }
        for duplicate in duplicates {
            let (status, at) = duplicate.await?;
            if status != Ok(200) {
                errors += 1;
                first_error.get_or_insert(format!("duplicate: {status:?}"));
                continue;
            }
            let gap = at.saturating_duration_since(original_at);
            let _ = after.record(u64::try_from(gap.as_micros()).unwrap_or(u64::MAX).max(1));
        }
    }
    a.set_work_delay(Duration::ZERO).await?;
    let _ = db.close().await;
    let ms = |q: f64| after.value_at_quantile(q) as f64 / 1000.0;
    Ok(Wake {
        rounds: ROUNDS,
        waiters: WAITERS,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: after.max() as f64 / 1000.0,
        errors,
        first_error,
    })
}

fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(WAITERS)
        .tcp_nodelay(true)
        .build()
}

/// Sends one keyed creation; its status and when its answer was in.
async fn answer(
    client: reqwest::Client,
    endpoint: Endpoint,
    key: String,
    body: serde_json::Value,
) -> (Result<u16, String>, Instant) {
    let sent = client
        .post(&endpoint.url)
        .header("authorization", &endpoint.authorization)
        .header("idempotency-key", format!("\"{key}\""))
        .json(&body)
        .send()
        .await;
    let status = match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            response.bytes().await.map(|_| status).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    (status, Instant::now())
}

/// Writes an abandoned claim of `key` (user 1, organisation 1, the agents
/// endpoint): in progress, its lease ended a minute ago.
async fn abandoned_claim(db: &mut PgConnection, key: &str) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO idempotency_keys
             (organization_id, user_id, endpoint, key, fingerprint,
              lease_token, lease_expires_at, resource_id, created_at, expires_at)
         VALUES (1, 1, $1, $2, decode(repeat('00', 32), 'hex'),
                 gen_random_uuid(), now() - interval '1 minute', NULL,
                 now() - interval '2 minutes', now() + interval '1 day')",
    )
    .bind(idemproof_service::http::agents::CREATE_ENDPOINT)
    .bind(key)
    .execute(db)
    .await?;
    Ok(())
}
