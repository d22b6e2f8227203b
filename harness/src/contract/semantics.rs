//! What a service promises about duplicates: the modes the checker judges
//! against and the times it allows for.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a reused key with another payload gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mismatch {
    /// Refused as "key reused" (IETF draft, Stripe, the reference service).
    Reject,
    /// The original result comes back, the new payload ignored.
    Replay,
}

/// What a duplicate gets while the original is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InFlight {
    /// It waits for the original, then gets its result.
    Wait,
    /// It is refused at once as "in flight" (and the client retries).
    Reject,
}

/// The promises and the times the checker allows for; a field left out
/// takes the reference service's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Semantics {
    /// Reused key, other payload.
    pub mismatch: Mismatch,
    /// Duplicate while the original runs.
    pub in_flight: InFlight,
    /// How long a claim abandoned by a dead owner blocks its key: after
    /// faults the harness waits this long before calling a key stuck.
    #[serde(with = "duration")]
    pub lease: Duration,
    /// How long a duplicate may wait for an in-flight original: part of
    /// the grace after faults before an error counts.
    #[serde(with = "duration")]
    pub wait: Duration,
}

impl Default for Semantics {
    /// The reference service's defaults.
    fn default() -> Self {
        Self {
            mismatch: Mismatch::Reject,
            in_flight: InFlight::Wait,
            lease: Duration::from_secs(30),
            wait: Duration::from_secs(10),
        }
    }
}

/// Durations as humantime strings (`"2s"`, `"500ms"`).
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// `"2s"`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// From `"2s"`, `"1m 30s"`, `"250ms"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| serde::de::Error::custom(format!("`{text}`: {e}")))
    }
}
