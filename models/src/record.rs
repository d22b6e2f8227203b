//! The stored state of one key and the rule that decides what a new request
//! carrying it gets. Both stores apply [`decide`]: the in-memory table calls
//! it directly, the Postgres store mirrors its "may claim" arm in SQL and
//! calls it to classify a row it could not claim.

use chrono::{DateTime, Duration, Utc};

use crate::key::{Fingerprint, LeaseToken};

/// Wall-clock instant; injected by the caller everywhere so that leases and
/// expiry are deterministic under test.
pub type Timestamp = DateTime<Utc>;

/// How long records hold. One value per deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// How long an unfinished claim blocks its key once its owner stops
    /// making progress (crash, hang, lost connection).
    pub lease: Duration,
    /// How long a key is remembered after it was claimed; afterwards the
    /// same key creates anew.
    pub ttl: Duration,
}

impl Default for Terms {
    fn default() -> Self {
        Self {
            lease: Duration::seconds(30),
            ttl: Duration::hours(24),
        }
    }
}

/// Where a key is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState<R> {
    /// Claimed by a request that has not finished yet.
    InProgress {
        /// The claim's token; completion and release must present it.
        token: LeaseToken,
        /// After this instant the claim is considered abandoned.
        lease_expires_at: Timestamp,
    },
    /// Finished: replays return this result.
    Completed {
        /// What the original request produced (for agents: the agent id).
        result: R,
    },
}

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord<R> {
    /// Payload fingerprint of the request that claimed the key.
    pub fingerprint: Fingerprint,
    /// In progress or completed.
    pub state: KeyState<R>,
    /// When the key was claimed (start of its TTL).
    pub created_at: Timestamp,
    /// `created_at + ttl`: after it the record no longer counts.
    pub expires_at: Timestamp,
}

impl<R> KeyRecord<R> {
    /// A fresh claim made at `now`.
    pub fn claimed(fingerprint: Fingerprint, token: LeaseToken, now: Timestamp, terms: Terms) -> Self {
        Self {
            fingerprint,
            state: KeyState::InProgress {
                token,
                lease_expires_at: now + terms.lease,
            },
            created_at: now,
            expires_at: now + terms.ttl,
        }
    }

    /// Whether the record no longer binds its key at `now`: a completed
    /// record past its TTL, or a claim past its lease. Such a record may be
    /// overwritten by a new claim or reaped.
    pub fn is_dead(&self, now: Timestamp) -> bool {
        match &self.state {
            KeyState::InProgress { lease_expires_at, .. } => *lease_expires_at <= now,
            KeyState::Completed { .. } => self.expires_at <= now,
        }
    }

    /// The claim's token if the record is in progress.
    pub fn token(&self) -> Option<LeaseToken> {
        match &self.state {
            KeyState::InProgress { token, .. } => Some(*token),
            KeyState::Completed { .. } => None,
        }
    }
}

/// What a request carrying a key gets, given the key's current record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<R> {
    /// The key is free (never seen, released, expired or abandoned): the
    /// request may claim it and do the work.
    Claim,
    /// The key completed with the same payload: return the stored result.
    Replay(R),
    /// The key was used with another payload. Carries the original result
    /// when there is one, for deployments that choose to replay it anyway.
    Mismatch {
        /// The original result, if the original request completed.
        original: Option<R>,
    },
    /// Another request holds the key and has not finished.
    InFlight {
        /// When that claim becomes abandoned if its owner makes no progress.
        lease_expires_at: Timestamp,
    },
}

/// The rule every store follows. The order of the checks matters: a dead
/// record is free whatever its payload (nothing was promised under it), and
/// a payload mismatch is reported before "in flight" because it is the
/// client's bug and retrying will not fix it.
pub fn decide<R: Clone>(existing: Option<&KeyRecord<R>>, fingerprint: &Fingerprint, now: Timestamp) -> Decision<R> {
    let Some(record) = existing else {
        return Decision::Claim;
    };
    if record.is_dead(now) {
        return Decision::Claim;
    }
    match (&record.state, record.fingerprint == *fingerprint) {
        (KeyState::Completed { result }, true) => Decision::Replay(result.clone()),
        (KeyState::Completed { result }, false) => Decision::Mismatch {
            original: Some(result.clone()),
        },
        (KeyState::InProgress { .. }, false) => Decision::Mismatch { original: None },
        (KeyState::InProgress { lease_expires_at, .. }, true) => Decision::InFlight {
            lease_expires_at: *lease_expires_at,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid timestamp")
    }

    fn terms() -> Terms {
        Terms {
            lease: Duration::seconds(30),
            ttl: Duration::seconds(100),
        }
    }

    fn fp(b: u8) -> Fingerprint {
        Fingerprint([b; 32])
    }

    fn completed(record: KeyRecord<u32>, result: u32) -> KeyRecord<u32> {
        KeyRecord {
            state: KeyState::Completed { result },
            ..record
        }
    }

    #[test]
    fn absent_keys_are_claimed() {
        assert_eq!(decide::<u32>(None, &fp(1), t(0)), Decision::Claim);
    }

    #[test]
    fn live_claims_are_in_flight_until_their_lease_ends() {
        let r = KeyRecord::<u32>::claimed(fp(1), LeaseToken::random(), t(0), terms());
        assert_eq!(
            decide(Some(&r), &fp(1), t(29)),
            Decision::InFlight {
                lease_expires_at: t(30)
            }
        );
        assert_eq!(decide(Some(&r), &fp(1), t(30)), Decision::Claim);
        assert_eq!(decide(Some(&r), &fp(2), t(30)), Decision::Claim);
    }

    #[test]
    fn completed_keys_replay_until_their_ttl_ends() {
        let r = completed(KeyRecord::claimed(fp(1), LeaseToken::random(), t(0), terms()), 7);
        assert_eq!(decide(Some(&r), &fp(1), t(99)), Decision::Replay(7));
        assert_eq!(decide(Some(&r), &fp(1), t(100)), Decision::Claim);
    }

    #[test]
    fn another_payload_is_a_mismatch_in_flight_or_completed() {
        let claimed = KeyRecord::<u32>::claimed(fp(1), LeaseToken::random(), t(0), terms());
        assert_eq!(
            decide(Some(&claimed), &fp(2), t(1)),
            Decision::Mismatch { original: None }
        );
        let done = completed(claimed, 7);
        assert_eq!(
            decide(Some(&done), &fp(2), t(1)),
            Decision::Mismatch { original: Some(7) }
        );
    }
}
