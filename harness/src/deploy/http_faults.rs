//! What the harness does to answers between a service and its client, in
//! one place for both ways of being in between: the HTTP proxy in front
//! of a service on a socket ([`super::http_proxy`]) and an axum `Router`
//! driven in process ([`super::router`]). Each asks, for every answer the
//! service gave, how to deliver it; an answer not delivered whole is kept
//! by the attempt's tag ([`Unseen`]), so the history knows what the
//! service really said.
//!
//! Faults apply to the attempts the driver tags (headers [`ATTEMPT_HEADER`]
//! and [`TAG_HEADER`], stripped before the service sees the request):
//! logins, reads and probes pass untouched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::client::{ATTEMPT_HEADER, TAG_HEADER};
use crate::fault::Fault;

/// An answer as the service sent it.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

/// How an answer reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// As it is.
    Whole,
    /// Not at all: the connection is reset with nothing written (the lost
    /// acknowledgement: the work is done, the client hears nothing).
    Dropped,
    /// Its status, headers and half its body, then a reset.
    Half,
    /// Whole, after this long.
    Delayed(Duration),
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
enum Rule {
    #[default]
    Pass,
    DropFirst,
    ResetFirst,
    Delay(Duration),
}

/// The HTTP faults in force, and the answers they kept from clients.
#[derive(Default)]
pub struct HttpFaults {
    rule: Mutex<Rule>,
    unseen: Mutex<HashMap<u64, RawAnswer>>,
}

impl HttpFaults {
    /// Applies an HTTP fault (or, for `Heal` and any other fault, passes
    /// everything again).
    pub fn apply(&self, fault: Fault) {
        let rule = match fault {
            Fault::DropFirstAnswers => Rule::DropFirst,
            Fault::ResetFirstAnswers => Rule::ResetFirst,
            Fault::DelayAnswers(d) => Rule::Delay(d),
            _ => Rule::Pass,
        };
        *self.rule.lock().unwrap_or_else(|p| p.into_inner()) = rule;
    }

    /// How to deliver `answer` to the request that carried `tags` (see
    /// [`tags`]); an answer not delivered whole is kept as unseen.
    pub fn deliver(&self, tags: (Option<u64>, Option<u64>), answer: &RawAnswer) -> Delivery {
        let (attempt, tag) = tags;
        let rule = *self.rule.lock().unwrap_or_else(|p| p.into_inner());
        let first = attempt == Some(1);
        let delivery = match rule {
            Rule::DropFirst if first => Delivery::Dropped,
            // Half of nothing is nothing: an empty answer is dropped instead.
            Rule::ResetFirst if first && answer.body.is_empty() => Delivery::Dropped,
            Rule::ResetFirst if first => Delivery::Half,
            Rule::Delay(d) if tag.is_some() => Delivery::Delayed(d),
            _ => Delivery::Whole,
        };
        if matches!(delivery, Delivery::Dropped | Delivery::Half)
            && let Some(tag) = tag
        {
            self.unseen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(tag, answer.clone());
        }
        delivery
    }
}

/// The attempt number and tag a request carries, and its headers without
/// them (what the service is sent).
pub fn tags(headers: &HeaderMap) -> ((Option<u64>, Option<u64>), HeaderMap) {
    let num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let found = (num(ATTEMPT_HEADER), num(TAG_HEADER));
    let mut rest = headers.clone();
    rest.remove(ATTEMPT_HEADER);
    rest.remove(TAG_HEADER);
    (found, rest)
}

/// A handle on the answers kept from clients, for the clients' side.
#[derive(Clone)]
pub struct Unseen(pub(super) Arc<HttpFaults>);

impl Unseen {
    /// The answer the service gave to the attempt tagged `tag`, if it was
    /// kept from the client.
    pub fn take(&self, tag: u64) -> Option<RawAnswer> {
        self.0.unseen.lock().unwrap_or_else(|p| p.into_inner()).remove(&tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> RawAnswer {
        RawAnswer {
            status: 201,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn only_tagged_first_attempts_lose_their_answers_and_those_are_kept() {
        let faults = Arc::new(HttpFaults::default());
        let unseen = Unseen(faults.clone());
        assert_eq!(faults.deliver((Some(1), Some(7)), &answer("a")), Delivery::Whole);
        faults.apply(Fault::DropFirstAnswers);
        assert_eq!(faults.deliver((Some(2), Some(8)), &answer("b")), Delivery::Whole);
        assert_eq!(faults.deliver((None, None), &answer("read")), Delivery::Whole);
        assert_eq!(faults.deliver((Some(1), Some(9)), &answer("c")), Delivery::Dropped);
        faults.apply(Fault::ResetFirstAnswers);
        assert_eq!(faults.deliver((Some(1), Some(10)), &answer("d")), Delivery::Half);
        assert_eq!(faults.deliver((Some(1), Some(11)), &answer("")), Delivery::Dropped);
        faults.apply(Fault::DelayAnswers(Duration::from_millis(5)));
        assert_eq!(
            faults.deliver((Some(3), Some(12)), &answer("e")),
            Delivery::Delayed(Duration::from_millis(5))
        );
        faults.apply(Fault::Heal);
        assert_eq!(faults.deliver((Some(1), Some(13)), &answer("f")), Delivery::Whole);
        let kept: Vec<Option<Vec<u8>>> = [8, 9, 10, 11, 12]
            .iter()
            .map(|t| unseen.take(*t).map(|a| a.body))
            .collect();
        assert_eq!(
            kept,
            vec![None, Some(b"c".to_vec()), Some(b"d".to_vec()), Some(Vec::new()), None]
        );
        assert!(unseen.take(9).is_none(), "taken once");
    }
}
