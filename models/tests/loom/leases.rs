//! Lease expiry racing a late completion: the original owner stalls past
//! its lease and then tries to complete while two newcomers take the key
//! over. Whatever the interleaving, exactly one request's work runs and
//! sticks; the late owner's work never runs after it lost the key.

use std::convert::Infallible;

use idemproof_models::{Claim, CompleteError, KeyState};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use crate::support::{FP, LEASE_SECS, at, explore, scope, table, token};

#[test]
fn lease_expiry_racing_a_late_completion_never_keeps_two_results() {
    explore("lease expiry racing a late completion: one result sticks", || {
        let table = table();
        let key = scope(1, "k");
        let works = Arc::new(AtomicUsize::new(0));
        assert_eq!(table.claim(&key, FP, token(1), at(0), None), Claim::Acquired);
        let late_owner = {
            let (table, key, works) = (table.clone(), key.clone(), works.clone());
            thread::spawn(move || {
                table
                    .complete(&key, token(1), || {
                        works.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(1)
                    })
                    .ok()
            })
        };
        // Two requests arrive exactly when the original lease ends.
        let newcomers: Vec<_> = [2u32, 3]
            .into_iter()
            .map(|n| {
                let (table, key, works) = (table.clone(), key.clone(), works.clone());
                thread::spawn(move || {
                    let tok = token(u128::from(n));
                    match table.claim(&key, FP, tok, at(LEASE_SECS), None) {
                        Claim::Acquired => {
                            let done = table.complete(&key, tok, || {
                                works.fetch_add(1, Ordering::SeqCst);
                                Ok::<_, Infallible>(n)
                            });
                            assert_ne!(done, Err(CompleteError::NotOwner), "nobody can take over a live lease");
                            done.ok()
                        }
                        // The late owner completed first (its record
                        // lives for the TTL), or the other newcomer
                        // holds the key: nothing of ours sticks.
                        Claim::Replay(_) | Claim::InFlight { .. } => None,
                        Claim::Mismatch { .. } => panic!("the model sends a single payload"),
                        Claim::Full { .. } => panic!("the model's table is unbounded"),
                    }
                })
            })
            .collect();
        let mut stuck: Vec<u32> = late_owner.join().expect("late owner finished").into_iter().collect();
        for newcomer in newcomers {
            stuck.extend(newcomer.join().expect("newcomer finished"));
        }
        assert_eq!(stuck.len(), 1, "exactly one completion sticks: {stuck:?}");
        assert_eq!(
            works.load(Ordering::SeqCst),
            1,
            "only the request whose completion sticks does its work"
        );
        let record = table.record(&key).expect("the key completed");
        assert_eq!(record.state, KeyState::Completed { result: stuck[0] });
    });
}
