//! The verdicts on hand-made histories: what a correct service with other
//! habits (201 replays, lost answers, timeouts) must not be blamed for,
//! and what a broken one must be.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Context, Invariant, check};
use crate::client::Wording;
use crate::contract::{Class, Semantics};
use crate::form::Form;
use crate::history::final_state::FinalState;
use crate::history::{Event, Expect, History, Outcome, Phase, RetryPolicy, Submission};

fn form(name: &str) -> Form {
    Form::new(name.into(), 1)
}

fn submission(client: usize, key: &str, form: Form) -> Submission {
    Submission {
        client,
        tenant: 0,
        user: 0,
        key: Some(key.into()),
        form,
        wording: Wording::Plain,
        replica: 0,
        retry: RetryPolicy::default(),
        expect: Expect::Any,
    }
}

fn answer(status: u16, class: Class, id: Option<&str>) -> Outcome {
    Outcome::Response {
        status,
        class,
        replayed: None,
        code: None,
        id: id.map(str::to_owned),
        owner: None,
        fields: BTreeMap::new(),
        resource: None,
    }
}

fn event(submission: usize, attempt: u32, at: (u64, u64), outcome: Outcome) -> Event {
    Event {
        submission,
        attempt,
        phase: Phase::Load,
        replica: 0,
        invoke_us: at.0,
        return_us: at.1,
        outcome,
        unseen: None,
    }
}

fn history(submissions: Vec<Submission>, events: Vec<Event>) -> History {
    History {
        submissions,
        events,
        tenants: vec!["1".into()],
        users: vec!["1".into()],
        ..History::default()
    }
}

fn verdicts(h: &History) -> Vec<Invariant> {
    let view = FinalState::default();
    let ctx = Context {
        view: &view,
        semantics: Semantics::default(),
        grace: Duration::from_secs(1),
    };
    check(h, &ctx).into_iter().map(|v| v.invariant).collect()
}

#[test]
fn a_replay_is_recognised_by_its_id_whatever_its_status() {
    let h = history(
        vec![submission(0, "k", form("a")), submission(1, "k", form("a"))],
        vec![
            event(0, 1, (0, 10), answer(201, Class::Success, Some("7"))),
            event(1, 1, (20, 30), answer(201, Class::Success, Some("7"))),
        ],
    );
    assert_eq!(verdicts(&h), vec![]);
}

#[test]
fn a_second_resource_for_one_key_is_a_duplicate() {
    let h = history(
        vec![submission(0, "k", form("a")), submission(1, "k", form("a"))],
        vec![
            event(0, 1, (0, 10), answer(201, Class::Success, Some("7"))),
            event(1, 1, (1, 11), answer(200, Class::Success, Some("8"))),
        ],
    );
    let v = verdicts(&h);
    assert!(v.contains(&Invariant::AtMostOneCreation), "{v:?}");
    assert!(v.contains(&Invariant::OneAgentPerKey), "{v:?}");
}

#[test]
fn an_identical_retry_refused_as_key_reused_is_a_violation() {
    let h = history(
        vec![submission(0, "k", form("a")), submission(1, "k", form("a"))],
        vec![
            event(0, 1, (0, 10), answer(201, Class::Success, Some("7"))),
            event(1, 1, (20, 30), answer(422, Class::KeyReused, None)),
        ],
    );
    assert_eq!(verdicts(&h), vec![Invariant::IdenticalRetryHonoured]);
}

#[test]
fn another_payload_refused_as_key_reused_is_right() {
    let h = history(
        vec![submission(0, "k", form("a")), submission(1, "k", form("b"))],
        vec![
            event(0, 1, (0, 10), answer(201, Class::Success, Some("7"))),
            event(1, 1, (20, 30), answer(422, Class::KeyReused, None)),
        ],
    );
    assert_eq!(verdicts(&h), vec![]);
}

#[test]
fn another_payload_answered_with_the_resource_is_a_violation() {
    let h = history(
        vec![submission(0, "k", form("a")), submission(1, "k", form("b"))],
        vec![
            event(0, 1, (0, 10), answer(201, Class::Success, Some("7"))),
            event(1, 1, (20, 30), answer(200, Class::Success, Some("7"))),
        ],
    );
    assert_eq!(verdicts(&h), vec![Invariant::MismatchRefused]);
}

#[test]
fn a_retry_after_a_lost_answer_must_get_the_lost_resource() {
    let mut lost = event(0, 1, (0, 10), Outcome::Transport { error: "closed".into() });
    lost.unseen = Some(answer(201, Class::Success, Some("7")));
    let retry_same = event(0, 2, (20, 30), answer(200, Class::Success, Some("7")));
    let h = history(vec![submission(0, "k", form("a"))], vec![lost.clone(), retry_same]);
    // The dropped connection has no fault window here: that is the only
    // complaint, and no duplicate is suspected.
    assert_eq!(verdicts(&h), vec![Invariant::CleanErrors]);

    let retry_new = event(0, 2, (20, 30), answer(201, Class::Success, Some("8")));
    let h = history(vec![submission(0, "k", form("a"))], vec![lost, retry_new]);
    let v = verdicts(&h);
    assert!(v.contains(&Invariant::NoRecreateAfterSuccess), "{v:?}");
}

#[test]
fn indeterminate_outcomes_are_not_failures() {
    let h = history(
        vec![submission(0, "k", form("a"))],
        vec![
            event(0, 1, (0, 5), Outcome::Timeout),
            event(0, 2, (10, 20), answer(200, Class::Success, Some("7"))),
        ],
    );
    assert_eq!(verdicts(&h), vec![]);
}

#[test]
fn every_offending_attempt_is_reported_in_one_timeline() {
    let h = history(
        vec![submission(0, "k", form("a"))],
        vec![
            event(0, 1, (0, 5), answer(500, Class::Other, None)),
            event(0, 2, (10, 15), answer(500, Class::Other, None)),
            event(0, 3, (20, 30), answer(201, Class::Success, Some("7"))),
        ],
    );
    let view = FinalState::default();
    let ctx = Context {
        view: &view,
        semantics: Semantics::default(),
        grace: Duration::ZERO,
    };
    let violations = check(&h, &ctx);
    assert_eq!(violations.len(), 1);
    let v = &violations[0];
    assert_eq!(v.invariant, Invariant::CleanErrors);
    assert_eq!(v.events.iter().filter(|e| e.offending).count(), 2);
    assert_eq!(v.events.len(), 3);
    assert!(v.detail.starts_with("2 × status 500"), "{}", v.detail);
}

#[test]
fn the_final_state_is_judged_as_reported() {
    let h = history(
        vec![submission(0, "k", form("a"))],
        vec![event(0, 1, (0, 5), answer(201, Class::Success, Some("7")))],
    );
    let view = FinalState {
        acknowledged: [("7".to_owned(), None)].into(),
        duplicates: vec![((0, 0, "k".to_owned()), 2)],
        ..FinalState::default()
    };
    let ctx = Context {
        view: &view,
        semantics: Semantics::default(),
        grace: Duration::ZERO,
    };
    let v: Vec<Invariant> = check(&h, &ctx).into_iter().map(|v| v.invariant).collect();
    assert_eq!(v, vec![Invariant::AcknowledgedDurable, Invariant::NoExtraAgents]);
}

#[test]
fn every_invariant_and_scenario_has_a_row_in_the_docs() {
    let doc = include_str!("../../../docs/harness.md");
    for i in Invariant::all() {
        assert!(
            doc.contains(&format!("| `{i}` |")),
            "docs/harness.md has no row for {i}"
        );
    }
    for s in crate::scenario::Scenario::all() {
        assert!(
            doc.contains(&format!("| `{s}` |")),
            "docs/harness.md has no row for {s}"
        );
    }
}

#[test]
fn a_malformed_submit_must_be_refused_and_leave_its_key_usable() {
    let malformed = || Submission {
        wording: Wording::Malformed,
        expect: Expect::Rejected,
        ..submission(0, "k", form("a"))
    };
    let fixed = || Submission {
        expect: Expect::Created,
        ..submission(0, "k", form("a"))
    };
    // Refused with a 400, then the fixed submit creates: clean.
    let right = history(
        vec![malformed(), fixed()],
        vec![
            event(0, 1, (0, 10), answer(400, Class::Other, None)),
            event(1, 1, (20, 30), answer(201, Class::Success, Some("7"))),
        ],
    );
    assert_eq!(verdicts(&right), vec![]);
    // The 400 replayed to the fixed submit: an unexpected error, and no
    // resource for the form.
    let cached = history(
        vec![malformed(), fixed()],
        vec![
            event(0, 1, (0, 10), answer(400, Class::Other, None)),
            event(1, 1, (20, 30), answer(400, Class::Other, None)),
        ],
    );
    assert_eq!(verdicts(&cached), vec![Invariant::CleanErrors, Invariant::Expectation]);
    // A malformed body accepted is not what was promised.
    let accepted = history(
        vec![malformed()],
        vec![event(0, 1, (0, 10), answer(201, Class::Success, Some("7")))],
    );
    assert_eq!(verdicts(&accepted), vec![Invariant::Expectation]);
}
