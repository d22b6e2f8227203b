//! Background deletion of expired idempotency keys, in batches, so the key
//! table stays proportional to one TTL's worth of traffic.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::{KeyStore, StoreError};

/// Rows deleted per statement: small enough to keep each delete short.
pub const BATCH: u32 = 1_000;

/// Reaps every `interval` until the task is dropped.
pub async fn run(keys: Arc<dyn KeyStore>, clock: Arc<dyn Clock>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match reap_all(keys.as_ref(), clock.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(reaped = n, "expired idempotency keys deleted"),
            Err(e) => {
                tracing::warn!(error = %e, "reaping expired idempotency keys failed; will retry")
            }
        }
    }
}

/// Deletes every key dead now, batch by batch; returns how many.
pub async fn reap_all(keys: &dyn KeyStore, clock: &dyn Clock) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = keys.reap_expired(clock.now(), BATCH).await?;
        total += n;
        if n < u64::from(BATCH) {
            return Ok(total);
        }
    }
}
