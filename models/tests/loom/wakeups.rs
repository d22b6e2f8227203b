//! Waiting for an in-flight owner: a completion racing waiters reaches
//! every waiter (no lost wake-up), and a release racing waiters and a
//! retry hands the key to exactly one new owner whose result everyone gets.
//!
//! A lost wake-up shows up as a waiter blocked forever on its signal, which
//! loom reports as a deadlock.

use std::convert::Infallible;

use idemproof_models::{Claim, KeyState};
use loom::thread;

use crate::support::{Ended, FP, at, explore, request, scope, table, token};

/// Result the original owner stores.
const ORIGINAL: u32 = 7;

#[test]
fn completion_racing_waiters_reaches_every_waiter() {
    explore("complete racing two waiters: no lost wake-up", || {
        let table = table();
        let key = scope(1, "k");
        assert_eq!(table.claim(&key, FP, token(1), at(0), None), Claim::Acquired);
        let owner = {
            let (table, key) = (table.clone(), key.clone());
            thread::spawn(move || table.complete(&key, token(1), || Ok::<_, Infallible>(ORIGINAL)))
        };
        let waiters: Vec<_> = [100u128, 200]
            .into_iter()
            .map(|first_token| {
                let (table, key) = (table.clone(), key.clone());
                // Still inside the original's lease: a waiter can only
                // replay, never take over.
                thread::spawn(move || request(&table, &key, first_token, at(1), 0))
            })
            .collect();
        assert_eq!(owner.join().expect("owner finished"), Ok(ORIGINAL));
        for waiter in waiters {
            assert_eq!(
                waiter.join().expect("waiter finished"),
                Ended::Replayed(ORIGINAL),
                "a waiter must get the original's result"
            );
        }
    });
}

#[test]
fn release_racing_waiters_and_a_retry_gives_one_new_owner() {
    explore("release racing a retry and two waiters: one new owner", || {
        let table = table();
        let key = scope(1, "k");
        assert_eq!(table.claim(&key, FP, token(1), at(0), None), Claim::Acquired);
        // The original fails, releases, and its client retries at once.
        let retrier = {
            let (table, key) = (table.clone(), key.clone());
            thread::spawn(move || {
                assert!(table.release(&key, token(1)), "the owner's release counts");
                request(&table, &key, 100, at(1), 1)
            })
        };
        // Duplicates that saw the original in flight, or arrive later.
        let waiters: Vec<_> = [(200u128, 2u32), (300, 3)]
            .into_iter()
            .map(|(first_token, result)| {
                let (table, key) = (table.clone(), key.clone());
                thread::spawn(move || request(&table, &key, first_token, at(1), result))
            })
            .collect();
        let mut ends = vec![retrier.join().expect("retrier finished")];
        ends.extend(waiters.into_iter().map(|w| w.join().expect("waiter finished")));
        let owned: Vec<u32> = ends
            .iter()
            .filter_map(|e| match e {
                Ended::Owned(r) => Some(*r),
                Ended::Replayed(_) => None,
            })
            .collect();
        assert_eq!(owned.len(), 1, "exactly one new owner: {ends:?}");
        let winner = owned[0];
        assert!(
            ends.iter()
                .all(|e| matches!(e, Ended::Owned(r) | Ended::Replayed(r) if *r == winner)),
            "everyone gets the new owner's result: {ends:?}"
        );
        let record = table.record(&key).expect("the key completed");
        assert_eq!(record.state, KeyState::Completed { result: winner });
    });
}
