//! A bounded table never holds more records than its bound and never drops
//! a live record to make room: two requests for new keys race for the one
//! slot a dead record frees; exactly one gets it (whichever reaps the dead
//! record), the other is refused as full, and the live record survives.
//! Checked with all four keys in one shard (the racers meet on its lock)
//! and with each in a shard of its own (the racers share only the
//! table-wide count, and make room by visiting the dead record's shard).

use std::convert::Infallible;

use idemproof_models::{Claim, ClaimTable, Scope};
use loom::sync::Arc;
use loom::thread;

use crate::support::{FP, Reached, TTL_SECS, apart, at, create_one_step, explore, sharing_a_shard, terms, token};

/// How a request for a new key ended on a bounded table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Stored,
    Full,
}

/// The service's path for a new key: one step, else a claim (completed at
/// once if acquired).
fn new_key(table: &ClaimTable<u32>, scope: &Scope, n: u32) -> Ended {
    let now = at(TTL_SECS);
    if create_one_step(table, scope, FP, now, n).created.is_some() {
        return Ended::Stored;
    }
    match table.claim(scope, FP, token(u128::from(n)), now, None) {
        Claim::Acquired => {
            let done = table.complete(scope, token(u128::from(n)), || Ok::<_, Infallible>(n));
            assert_eq!(done, Ok(n), "an owner completes");
            Ended::Stored
        }
        Claim::Full { room_at } => {
            assert!(
                room_at.is_some_and(|at| at > now),
                "room comes when the live record expires"
            );
            Ended::Full
        }
        other => panic!("a new key on a bounded table is stored or full, got {other:?}"),
    }
}

/// The race, over `scopes`: the dead record's, the live one's, then the
/// two racers'.
fn race(name: &'static str, scopes: Vec<Scope>) {
    let reached = Reached::default();
    let noted = reached.clone();
    explore(name, move || {
        let [dead, live, a, b] = <[Scope; 4]>::try_from(scopes.clone()).expect("four scopes");
        let table = Arc::new(ClaimTable::<u32>::bounded(terms(), 2));
        // A record that is dead at the race's time, and a live one.
        create_one_step(&table, &dead, FP, at(0), 1);
        create_one_step(&table, &live, FP, at(TTL_SECS - 1), 2);
        let racers: Vec<_> = [(a, 10), (b, 20)]
            .into_iter()
            .map(|(scope, n)| {
                let table = table.clone();
                thread::spawn(move || new_key(&table, &scope, n))
            })
            .collect();
        let ends: Vec<Ended> = racers.into_iter().map(|r| r.join().expect("racer finished")).collect();
        let stored = ends.iter().filter(|e| **e == Ended::Stored).count();
        assert_eq!(stored, 1, "exactly one new key fits: {ends:?}");
        assert_eq!(table.len(), 2, "the table never holds more than its bound");
        assert!(table.record(&live).is_some(), "a live record was dropped");
        assert!(table.record(&dead).is_none(), "the dead record made the room");
        noted.note(if ends[0] == Ended::Stored {
            "first stored"
        } else {
            "second stored"
        });
    });
    reached.assert_all(name, &["first stored", "second stored"]);
}

#[test]
fn a_bounded_table_frees_only_dead_records_and_never_overfills() {
    race(
        "two new keys racing for the slot of one dead record, every key in its own shard: one stored, one full",
        apart(4),
    );
}

#[test]
fn a_bounded_table_frees_only_dead_records_and_never_overfills_within_one_shard() {
    race(
        "two new keys racing for the slot of one dead record, all keys in one shard: one stored, one full",
        sharing_a_shard(4),
    );
}
