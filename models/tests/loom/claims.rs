//! Concurrent claims of one key: exactly one owner. The same race is then
//! run over the deliberately broken split-lock claim (decide under one lock
//! acquisition, insert under another), and loom must find the interleaving
//! that gives the key two owners: proof that the model has teeth.

use idemproof_models::{Claim, ClaimTable, Decision, KeyState, LeaseToken, Scope, Timestamp};
use loom::thread;

use crate::support::{FP, LEASE_SECS, at, explore, explore_expecting_violation, scope, table, token};

/// The invariant's message; the teeth test looks for it in loom's report.
const TWO_OWNERS: &str = "more than one request owns the key";

/// A way of claiming a key; returns whether the caller became its owner.
type ClaimFn = fn(&ClaimTable<u32>, &Scope, LeaseToken, Timestamp) -> bool;

/// The real claim: decide and insert in one critical section.
fn atomic_claim(table: &ClaimTable<u32>, scope: &Scope, tok: LeaseToken, now: Timestamp) -> bool {
    match table.claim(scope, FP, tok, now, None) {
        Claim::Acquired => true,
        Claim::InFlight { lease_expires_at } => {
            assert_eq!(lease_expires_at, now + chrono::Duration::seconds(LEASE_SECS));
            false
        }
        other => panic!("a key with no record can only be acquired or in flight, got {other:?}"),
    }
}

/// BROKEN ON PURPOSE: the legacy check-then-insert, with the lock released
/// between the check and the insert.
fn split_lock_claim(table: &ClaimTable<u32>, scope: &Scope, tok: LeaseToken, now: Timestamp) -> bool {
    if table.decide_only(scope, &FP, now) == Decision::Claim {
        table.insert_claim(scope, FP, tok, now);
        true
    } else {
        false
    }
}

/// Three requests claim one key with no record at the same instant.
fn race(claim: ClaimFn) {
    let table = table();
    let key = scope(1, "k");
    let handles: Vec<_> = (1..=3u128)
        .map(|n| {
            let (table, key) = (table.clone(), key.clone());
            thread::spawn(move || claim(&table, &key, token(n), at(0)).then_some(token(n)))
        })
        .collect();
    let owners: Vec<LeaseToken> = handles
        .into_iter()
        .filter_map(|h| h.join().expect("claimer finished"))
        .collect();
    assert_eq!(owners.len(), 1, "{TWO_OWNERS}: {owners:?}");
    let record = table.record(&key).expect("the key is claimed");
    assert!(
        matches!(record.state, KeyState::InProgress { token, .. } if token == owners[0]),
        "the stored claim is the owner's: {record:?}"
    );
}

#[test]
fn concurrent_claims_of_one_key_have_exactly_one_owner() {
    explore("concurrent claims of one key: one owner", || race(atomic_claim));
}

#[test]
fn loom_catches_the_split_lock_claim() {
    let violation = explore_expecting_violation("split-lock claim (broken on purpose): loom must catch it", || {
        race(split_lock_claim)
    });
    let message = violation.expect("loom explored every interleaving of the split-lock claim and found no two owners");
    assert!(
        message.contains(TWO_OWNERS),
        "loom failed the broken claim for another reason: {message}"
    );
}
