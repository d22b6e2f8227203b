//! Different keys never block each other: while one key is held in flight,
//! the same key string in another tenant and another key of the same
//! tenant are claimed, completed and released freely, and none of that
//! wakes the first key's waiter.

use std::convert::Infallible;

use idemproof_models::{Claim, KeyState};
use loom::thread;

use crate::support::{FP, Signal, at, explore, scope, table, token};

#[test]
fn different_keys_never_block_each_other() {
    explore("different keys never block each other", || {
        let table = table();
        let held = scope(1, "k");
        assert_eq!(table.claim(&held, FP, token(1), at(0), None), Claim::Acquired);
        // Same key string, other tenant: claimed and completed.
        let other_tenant = {
            let table = table.clone();
            thread::spawn(move || {
                let key = scope(2, "k");
                assert_eq!(table.claim(&key, FP, token(2), at(1), None), Claim::Acquired);
                table.complete(&key, token(2), || Ok::<_, Infallible>(2))
            })
        };
        // Another key of the same tenant: claimed and released.
        let other_key = {
            let table = table.clone();
            thread::spawn(move || {
                let key = scope(1, "k2");
                assert_eq!(table.claim(&key, FP, token(3), at(1), None), Claim::Acquired);
                table.release(&key, token(3))
            })
        };
        // A duplicate of the held key waits on it.
        let waiter = {
            let (table, held) = (table.clone(), held.clone());
            thread::spawn(move || {
                let changed = Signal::new();
                let claim = table.claim(&held, FP, token(4), at(1), Some(Signal::waker(&changed)));
                (claim, changed)
            })
        };
        assert_eq!(other_tenant.join().expect("other tenant finished"), Ok(2));
        assert!(other_key.join().expect("other key finished"));
        let (claim, changed) = waiter.join().expect("waiter finished");
        assert!(matches!(claim, Claim::InFlight { .. }), "{claim:?}");
        assert!(
            !changed.fired(),
            "work on other keys must not wake the held key's waiter"
        );
        let record = table.record(&held).expect("still held");
        assert!(matches!(record.state, KeyState::InProgress { token: t, .. } if t == token(1)));
    });
}
