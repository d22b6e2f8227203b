//! Keys that share a shard and keys in different shards are decided
//! alike: while one key is held in flight and a duplicate waits on it, a
//! request for another key, in the same shard or another, creates and
//! completes freely; the waiter is woken by the owner's completion only,
//! and replays its result.

use std::convert::Infallible;

use idemproof_models::{Claim, KeyState, Scope};
use loom::thread;

use crate::support::{Ended, FP, Reached, apart, at, explore, request, request_traced, sharing_a_shard, table, token};

/// The model over `held` (claimed by the main thread, then completed) and
/// `other` (a request of its own).
fn model(name: &'static str, scopes: Vec<Scope>) {
    let reached = Reached::default();
    let noted = reached.clone();
    explore(name, move || {
        let [held, other] = <[Scope; 2]>::try_from(scopes.clone()).expect("two scopes");
        let table = table();
        assert_eq!(table.claim(&held, FP, token(1), at(0), None), Claim::Acquired);
        let duplicate = {
            let (table, held) = (table.clone(), held.clone());
            thread::spawn(move || request_traced(&table, &held, 10, at(1), 99))
        };
        let neighbour = {
            let (table, other) = (table.clone(), other.clone());
            thread::spawn(move || request(&table, &other, 20, at(1), 2))
        };
        assert_eq!(table.complete(&held, token(1), || Ok::<_, Infallible>(1)), Ok(1));
        let (ended, route) = duplicate.join().expect("duplicate finished");
        assert_eq!(ended, Ended::Replayed(1), "the duplicate replays the owner's result");
        assert!(route.waits <= 1, "woken once, by the completion: {route:?}");
        assert_eq!(neighbour.join().expect("neighbour finished"), Ended::Owned(2));
        assert_eq!(table.len(), 2);
        let record = table.record(&other).expect("the neighbour's record");
        assert!(matches!(record.state, KeyState::Completed { result: 2 }));
        noted.note(if route.waits == 1 { "waited" } else { "replayed at once" });
    });
    reached.assert_all(name, &["waited", "replayed at once"]);
}

#[test]
fn keys_sharing_a_shard_never_interfere() {
    model(
        "a held key, its waiting duplicate and another key in the same shard",
        sharing_a_shard(2),
    );
}

#[test]
fn keys_in_different_shards_never_interfere() {
    model(
        "a held key, its waiting duplicate and another key in another shard",
        apart(2),
    );
}
