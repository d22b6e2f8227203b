//! Two requests for a key with no record take the one-step path at once
//! (`ClaimTable::create_one_step`): exactly one stores its result, the other
//! gets `None` and its work never runs. The same race is then run over a
//! deliberately broken one-step path that looks for a record under one
//! lock acquisition and stores under another, and loom must find the
//! interleaving where both requests do their work: proof that the model
//! has teeth.

use std::convert::Infallible;

use idemproof_models::{ClaimTable, Fingerprint, Scope, Timestamp};
use loom::thread;

use crate::support::{
    FP, OTHER_FP, OneStep, Reached, at, completed, create_one_step, explore, explore_expecting_violation, scope, table,
    token,
};

/// The invariant's message; the teeth test looks for it in loom's report.
const ONE_RESULT: &str = "the key must end with exactly one result, made by the only work that ran";

/// A way of taking the one-step path (see [`create_one_step`]).
type OneStepFn = fn(&ClaimTable<u32>, &Scope, Fingerprint, Timestamp, u32) -> OneStep;

/// BROKEN ON PURPOSE: a check-then-act one-step path. It looks for a
/// record, lets go of the lock, does the work, then stores the result
/// through a claim it completes at once (the table has no public way to
/// store a completed record unconditionally).
fn split_one_step(
    table: &ClaimTable<u32>,
    scope: &Scope,
    fingerprint: Fingerprint,
    now: Timestamp,
    result: u32,
) -> OneStep {
    if table.record(scope).is_some() {
        return OneStep {
            created: None,
            worked: false,
        };
    }
    let tok = token(u128::from(result));
    table.insert_claim(scope, fingerprint, tok, now);
    OneStep {
        created: table.complete(scope, tok, || Ok::<_, Infallible>(result)).ok(),
        worked: true,
    }
}

/// Two requests find the key absent and take the one-step path. They
/// differ in payload and instant, so the stored record shows whose it is
/// down to every field.
fn race(one_step: OneStepFn, reached: &Reached) {
    let table = table();
    let key = scope(1, "k");
    let racers = [(FP, at(0), 1u32), (OTHER_FP, at(1), 2)];
    let handles: Vec<_> = racers
        .iter()
        .map(|&(fingerprint, now, result)| {
            let (table, key) = (table.clone(), key.clone());
            thread::spawn(move || one_step(&table, &key, fingerprint, now, result))
        })
        .collect();
    let ends: Vec<OneStep> = handles
        .into_iter()
        .map(|h| h.join().expect("creator finished"))
        .collect();
    let winners: Vec<_> = racers
        .iter()
        .zip(&ends)
        .filter(|(_, end)| end.created.is_some())
        .map(|(racer, _)| *racer)
        .collect();
    assert_eq!(winners.len(), 1, "{ONE_RESULT}: {ends:?}");
    let first_won = ends[0].created.is_some();
    reached.note(if first_won {
        "the first racer won"
    } else {
        "the second racer won"
    });
    for (&(_, _, result), end) in racers.iter().zip(&ends) {
        match end.created {
            Some(created) => {
                assert!(
                    end.worked && created == result,
                    "the winner stores its own work: {ends:?}"
                );
            }
            None => assert!(
                !end.worked,
                "{ONE_RESULT}: a request that stored nothing did its work: {ends:?}"
            ),
        }
    }
    let (fingerprint, now, result) = winners[0];
    assert_eq!(
        table.record(&key),
        Some(completed(fingerprint, now, result)),
        "the stored record is the winner's, whole"
    );
    assert_eq!(table.len(), 1, "one key, one record");
}

#[test]
fn concurrent_one_step_creations_of_one_key_store_one_result() {
    const NAME: &str = "create_one_step racing create_one_step: one result, the loser does no work";
    let reached = Reached::default();
    let noted = reached.clone();
    explore(NAME, move || race(create_one_step, &noted));
    reached.assert_all(NAME, &["the first racer won", "the second racer won"]);
}

#[test]
fn loom_catches_a_split_one_step_creation() {
    let violation = explore_expecting_violation(
        "split-lock create_one_step (broken on purpose): loom must catch it",
        || race(split_one_step, &Reached::default()),
    );
    let message = violation.expect("loom explored every interleaving of the split one-step creation and found nothing");
    assert!(
        message.contains(ONE_RESULT),
        "loom failed the broken one-step creation for another reason: {message}"
    );
}
