//! The faults the harness injects, and when each counts as "in force".
//! A leaf module: scenarios schedule these, deployments apply them, the
//! history records them.

use std::time::Duration;

use serde::Serialize;

/// A fault the harness injects.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// `kill -9` of one replica.
    Crash(usize),
    /// Start a killed replica again.
    Restart(usize),
    /// Database stopped (container stop).
    DbDown,
    /// Database started again.
    DbUp,
    /// Latency added between service and database.
    DbSlow(#[serde(with = "humantime_ser")] Duration),
    /// Connections between service and database keep being cut.
    DbDrop,
    /// The next this-many agent inserts fail inside the database.
    FailInserts(u32),
    /// Every creation takes this long between its claim and its write.
    SlowWork(#[serde(with = "humantime_ser")] Duration),
    /// The HTTP proxy in front of the service drops the answer to every
    /// first attempt after the service sent it: the service did the
    /// work, the client never hears of it (a lost acknowledgement).
    DropFirstAnswers,
    /// The HTTP proxy sends half of the answer to every first attempt,
    /// then resets the connection.
    ResetFirstAnswers,
    /// The HTTP proxy holds every answer this long before passing it on.
    DelayAnswers(#[serde(with = "humantime_ser")] Duration),
    /// Every fault removed (crashed replicas restarted).
    Heal,
}

impl Fault {
    /// Whether the HTTP fault proxy applies it (rather than the backend).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Fault::DropFirstAnswers | Fault::ResetFirstAnswers | Fault::DelayAnswers(_)
        )
    }

    /// Whether it can leave a claim abandoned at the service (a killed
    /// owner, a lost database): then the run waits one lease before
    /// judging what is still in progress. A lost answer abandons nothing:
    /// the service finished the work.
    pub fn may_orphan_claims(self) -> bool {
        !self.is_http() && !matches!(self, Fault::Heal | Fault::SlowWork(_))
    }

    /// Whether `later` ends this fault (besides `Heal`, which ends all).
    fn ended_by(self, later: Fault) -> bool {
        match (self, later) {
            (_, Fault::Heal) => true,
            (Fault::Crash(a), Fault::Restart(b)) => a == b,
            (Fault::DbDown, Fault::DbUp) => true,
            _ => false,
        }
    }
}

/// A fault injected at some time.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// Microseconds from the scenario start.
    pub at_us: u64,
    /// Which fault.
    pub fault: Fault,
}

/// When one fault was in force, for reports (timelines shade these).
#[derive(Debug, Clone, Serialize)]
pub struct FaultWindow {
    /// Microseconds from the scenario start.
    pub from_us: u64,
    /// When it ended (`None`: still in force when the load ended).
    pub to_us: Option<u64>,
    /// Which fault.
    pub fault: Fault,
}

/// The window of every fault in `records` (in injection order).
pub fn windows(records: &[FaultRecord]) -> Vec<FaultWindow> {
    records
        .iter()
        .enumerate()
        .filter(|(_, r)| !matches!(r.fault, Fault::Heal | Fault::Restart(_) | Fault::DbUp))
        .map(|(i, r)| FaultWindow {
            from_us: r.at_us,
            to_us: records[i + 1..]
                .iter()
                .find(|later| r.fault.ended_by(later.fault))
                .map(|later| later.at_us),
            fault: r.fault,
        })
        .collect()
}

mod humantime_ser {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_end_at_their_counterpart_or_heal() {
        let at = |at_us, fault| FaultRecord { at_us, fault };
        let w = windows(&[
            at(0, Fault::SlowWork(Duration::from_millis(5))),
            at(10, Fault::Crash(0)),
            at(20, Fault::Restart(0)),
            at(30, Fault::DbDown),
            at(40, Fault::Heal),
        ]);
        let spans: Vec<_> = w.iter().map(|w| (w.from_us, w.to_us)).collect();
        assert_eq!(spans, vec![(0, Some(40)), (10, Some(20)), (30, Some(40))]);
        assert!(windows(&[at(5, Fault::DbDrop)])[0].to_us.is_none());
    }
}
