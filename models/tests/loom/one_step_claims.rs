//! The one-step path (`ClaimTable::create_one_step`) racing the claim path on
//! one key. Whatever the interleaving, exactly one request's work runs and
//! its result is the one stored; every request that lost gets the answer
//! the winner's record calls for; nobody waits forever.
//!
//! `create_one_step` stores a completed record straight away and never an
//! in-progress one, so a claim can only be told "in flight" (and register a
//! waiter) by another claim, and `create_one_step` can only succeed on a scope
//! nobody waits on: whoever removed the previous record (a release here)
//! took its waiters along to wake them. The models check what follows from
//! that: a claim told "in flight" was told so by the winning claim and is
//! woken by its completion, and a waiter woken by a release is not lost
//! when the one-step path takes the key before the waiter's next claim.

use std::convert::Infallible;

use idemproof_models::{Claim, ClaimTable, CompleteError, Fingerprint, Scope, Timestamp};
use loom::sync::Arc;
use loom::thread;

use crate::support::{
    Ended, FP, LEASE_SECS, OTHER_FP, OneStep, Reached, Signal, at, completed, create_one_step, explore, request_traced,
    scope, table, token,
};

/// A request on the claim path, as the racers of these models run it.
#[derive(Clone, Copy)]
struct Claimer {
    /// Its token, and the result its work produces.
    n: u32,
    fingerprint: Fingerprint,
    now: Timestamp,
}

/// How a [`Claimer`] ended.
#[derive(Debug)]
struct Claimed {
    claim: Claim<u32>,
    /// The completion's outcome, if it acquired.
    completed: Option<Result<u32, CompleteError<Infallible>>>,
    worked: bool,
    /// Whether the waker it registered had fired once every racer was done.
    woken: bool,
}

/// One claim with a waker, the way the service's every attempt registers
/// one; if it acquires, it completes at once. It does not block: what it
/// was told, and whether its waker fired by the end, is the observation.
/// Returns the signal for the caller to read once every racer is done
/// (the owner may wake it after this returns).
fn claim_once(table: &ClaimTable<u32>, key: &Scope, c: Claimer) -> (Claimed, Arc<Signal>) {
    let tok = token(u128::from(c.n));
    let changed = Signal::new();
    let claim = table.claim(key, c.fingerprint, tok, c.now, Some(Signal::waker(&changed)));
    let mut worked = false;
    let completed = (claim == Claim::Acquired).then(|| {
        table.complete(key, tok, || {
            worked = true;
            Ok::<_, Infallible>(c.n)
        })
    });
    let claimed = Claimed {
        claim,
        completed,
        worked,
        woken: false,
    };
    (claimed, changed)
}

/// The request whose result the key ended with.
#[derive(Debug, Clone, Copy)]
struct Winner {
    fingerprint: Fingerprint,
    now: Timestamp,
    result: u32,
    /// Won on the claim path (so others may have seen its claim in flight).
    claimed: bool,
}

/// A request with `FP` takes the one-step path at instant 0 while
/// `claimers` claim the same key one second later.
fn race_one_step_against(claimers: [Claimer; 2], reached: &Reached) {
    const ONE_STEP_RESULT: u32 = 1;
    let table = table();
    let key = scope(1, "k");
    let one_step = {
        let (table, key) = (table.clone(), key.clone());
        thread::spawn(move || create_one_step(&table, &key, FP, at(0), ONE_STEP_RESULT))
    };
    let handles: Vec<_> = claimers
        .iter()
        .map(|&c| {
            let (table, key) = (table.clone(), key.clone());
            thread::spawn(move || claim_once(&table, &key, c))
        })
        .collect();
    let one_step = one_step.join().expect("one-step creator finished");
    let ends: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("claimer finished"))
        .collect();
    // Every racer has joined, so a waker that was ever going to fire has.
    let claimed: Vec<Claimed> = ends
        .into_iter()
        .map(|(claimed, changed)| Claimed {
            woken: changed.fired(),
            ..claimed
        })
        .collect();

    let mut winners: Vec<Winner> = Vec::new();
    if let Some(result) = one_step.created {
        assert_eq!(result, ONE_STEP_RESULT);
        winners.push(Winner {
            fingerprint: FP,
            now: at(0),
            result,
            claimed: false,
        });
    }
    for (c, end) in claimers.iter().zip(&claimed) {
        match &end.completed {
            Some(Ok(result)) => winners.push(Winner {
                fingerprint: c.fingerprint,
                now: c.now,
                result: *result,
                claimed: true,
            }),
            Some(Err(e)) => panic!("nothing can take over a live lease here, yet completion failed: {e:?}"),
            None => {}
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one result sticks (never a one-step result and an owner's): one-step {one_step:?}, claims {claimed:?}"
    );
    let winner = winners[0];
    reached.note(if winner.claimed {
        "a claim won"
    } else {
        "the one-step path won"
    });

    if winner.claimed {
        assert_eq!(
            one_step,
            OneStep {
                created: None,
                worked: false
            },
            "a key claimed first sends the one-step path the long way without running its work"
        );
    } else {
        assert!(one_step.worked, "the one-step winner did its work");
    }
    for (c, end) in claimers.iter().zip(&claimed) {
        check_loser_answer(c, end, &winner, reached);
    }
    assert_eq!(
        table.record(&key),
        Some(completed(winner.fingerprint, winner.now, winner.result)),
        "the stored record is the winner's, whole"
    );
    assert_eq!(table.len(), 1, "one key, one record");
}

/// What a claimer must have been told, given who won.
fn check_loser_answer(c: &Claimer, end: &Claimed, winner: &Winner, reached: &Reached) {
    if let Some(Ok(_)) = end.completed {
        assert!(end.worked, "the owner did its work");
        return;
    }
    assert!(!end.worked, "a claimer that did not own the key ran its work: {end:?}");
    let same_payload = c.fingerprint == winner.fingerprint;
    reached.note(match end.claim {
        Claim::Acquired => unreachable!("an acquired claim completes (checked above)"),
        Claim::Replay(_) => "replay",
        Claim::Mismatch { original: Some(_) } => "mismatch on a completed key",
        Claim::Mismatch { original: None } => "mismatch on a claim in progress",
        Claim::InFlight { .. } => "in flight",
        Claim::Full { .. } => unreachable!("the model's table is unbounded"),
    });
    match end.claim {
        Claim::Acquired => unreachable!("an acquired claim completes (checked above)"),
        Claim::Replay(r) => assert!(
            same_payload && r == winner.result,
            "replay of {r} with {:?}, but the winner is {winner:?}",
            c.fingerprint
        ),
        Claim::Mismatch { original: Some(r) } => assert!(
            !same_payload && r == winner.result,
            "mismatch against {r} with {:?}, but the winner is {winner:?}",
            c.fingerprint
        ),
        // Only a claim is ever in progress: the one-step path stores a
        // completed record directly.
        Claim::Mismatch { original: None } => assert!(
            winner.claimed && !same_payload,
            "mismatch against an in-progress key, but the winner is {winner:?}"
        ),
        Claim::InFlight { lease_expires_at } => {
            assert!(
                winner.claimed && same_payload,
                "told in flight, but the winner is {winner:?}: the one-step path exposed a claim"
            );
            assert_eq!(lease_expires_at, winner.now + chrono::Duration::seconds(LEASE_SECS));
        }
        Claim::Full { .. } => unreachable!("the model's table is unbounded"),
    }
    let waited = matches!(end.claim, Claim::InFlight { .. });
    assert_eq!(
        end.woken, waited,
        "a registered waiter is woken by the completion, and a claim that was not told to wait never is: {end:?}"
    );
}

/// Two claimers one second after the one-step request: `n` 2 with `FP`,
/// and `n` 3 with `third`.
fn claimers(third: Fingerprint) -> [Claimer; 2] {
    [(2, FP), (3, third)].map(|(n, fingerprint)| Claimer {
        n,
        fingerprint,
        now: at(1),
    })
}

#[test]
fn one_step_creation_racing_claims_of_the_same_payload_stores_one_result() {
    const NAME: &str = "create_one_step racing two claims, same payload: one result, losers replay or wait";
    let reached = Reached::default();
    let noted = reached.clone();
    explore(NAME, move || race_one_step_against(claimers(FP), &noted));
    reached.assert_all(NAME, &["the one-step path won", "a claim won", "replay", "in flight"]);
}

#[test]
fn one_step_creation_racing_claims_of_either_payload_stores_one_result() {
    const NAME: &str = "create_one_step racing two claims, two payloads: one result, mismatches name it";
    let reached = Reached::default();
    let noted = reached.clone();
    explore(NAME, move || race_one_step_against(claimers(OTHER_FP), &noted));
    reached.assert_all(
        NAME,
        &[
            "the one-step path won",
            "a claim won",
            "replay",
            "mismatch on a completed key",
            "mismatch on a claim in progress",
        ],
    );
}

#[test]
fn release_racing_a_one_step_creation_and_a_waiter_loses_no_wake_up() {
    const NAME: &str = "release racing create_one_step and a waiter: one result, the waiter is woken";
    let reached = Reached::default();
    let noted = reached.clone();
    explore(NAME, move || {
        const WAITER_RESULT: u32 = 2;
        const ONE_STEP_RESULT: u32 = 3;
        let table = table();
        let key = scope(1, "k");
        assert_eq!(table.claim(&key, FP, token(1), at(0), None), Claim::Acquired);
        // The owner fails and releases: the key has no record again, so
        // the one-step path may now succeed.
        let releaser = {
            let (table, key) = (table.clone(), key.clone());
            thread::spawn(move || table.release(&key, token(1)))
        };
        // A duplicate running the service's loop: the one-step path, then
        // claims, waiting on the owner while it holds the key.
        let waiter = {
            let (table, key) = (table.clone(), key.clone());
            thread::spawn(move || request_traced(&table, &key, 100, at(1), WAITER_RESULT))
        };
        // Another new request, on the one-step path only.
        let one_step = {
            let (table, key) = (table.clone(), key.clone());
            thread::spawn(move || create_one_step(&table, &key, FP, at(1), ONE_STEP_RESULT))
        };
        assert!(
            releaser.join().expect("releaser finished"),
            "nothing else can remove a live claim"
        );
        // A lost wake-up leaves the waiter blocked: loom reports a deadlock.
        let (ended, route) = waiter.join().expect("waiter finished");
        let one_step = one_step.join().expect("one-step creator finished");
        let winner = match (ended, one_step.created) {
            (Ended::Owned(r), None) => r,
            (Ended::Replayed(r), Some(created)) if r == created => created,
            _ => panic!("exactly one result sticks and the waiter ends with it: {ended:?}, {one_step:?}"),
        };
        assert_eq!(
            one_step.worked,
            one_step.created.is_some(),
            "only the winner works: {one_step:?}"
        );
        assert_eq!(
            table.record(&key),
            Some(completed(FP, at(1), winner)),
            "the stored record is the winner's"
        );
        let how = match (one_step.created, route.one_step) {
            (Some(_), _) => "the one-step racer won",
            (None, true) => "the waiter won on the one-step path",
            (None, false) => "the waiter won by claiming",
        };
        noted.note(format!("{how}, after {} waits", route.waits));
    });
    reached.assert_all(
        NAME,
        &[
            // The race the model is about: the release wakes the waiter,
            // and the one-step path takes the key before its next claim.
            "the one-step racer won, after 1 waits",
            "the one-step racer won, after 0 waits",
            "the waiter won on the one-step path, after 0 waits",
            "the waiter won by claiming, after 1 waits",
            "the waiter won by claiming, after 0 waits",
        ],
    );
}
