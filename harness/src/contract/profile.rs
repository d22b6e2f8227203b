//! Semantics profiles: named sets of defaults a target file starts from
//! (`profile = "ietf"`) and overrides field by field. Each is a partial
//! target file, merged under the user's: tables merge key by key, any
//! other value (arrays included) is replaced.

use serde::{Deserialize, Serialize};

/// A named set of defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// The IETF `Idempotency-Key` header draft: the key as an sf-string
    /// header, 400 without a key where one is required, 409 while the
    /// original runs, 422 for a key reused with another payload. A replay
    /// carries no marker (recognised by the id it names).
    Ietf,
    /// Stripe's practice: the key as a raw header, the original status
    /// replayed with `Idempotent-Replayed: true`, 409 while the original
    /// runs, 400 `idempotency_error` for another payload.
    Stripe,
    /// This project's reference service: 201 then 200 with
    /// `Idempotent-Replayed: true`, problem `code`s for 409, 422 and 503.
    Idemproof,
}

impl Profile {
    /// The partial target file of the profile.
    pub fn defaults(self) -> &'static str {
        match self {
            Profile::Ietf => IETF,
            Profile::Stripe => STRIPE,
            Profile::Idemproof => IDEMPROOF,
        }
    }
}

const IETF: &str = r#"
[key]
in = "header"
name = "Idempotency-Key"
format = "sf-string"

[response]
replay = "none"

[statuses]
created = [200, 201]
replayed = [200, 201]
in_flight = [409]
key_reused = [422]
missing_key = [400]
unavailable = [503]

[semantics]
mismatch = "reject"
in_flight = "reject"
"#;

const STRIPE: &str = r#"
[key]
in = "header"
name = "Idempotency-Key"
format = "raw"

[response]
replay = "header"
replay_header = "Idempotent-Replayed: true"
code = "/error/type"

[statuses]
created = [200, 201]
replayed = [200, 201]
in_flight = [409]
key_reused = [{ status = 400, code = "idempotency_error" }]
unavailable = [503]

[semantics]
mismatch = "reject"
in_flight = "reject"
"#;

const IDEMPROOF: &str = r#"
[key]
in = "header"
name = "Idempotency-Key"
format = "sf-string"

[response]
replay = "both"
replay_header = "Idempotent-Replayed: true"
code = "/code"

[statuses]
created = [201]
replayed = [200]
in_flight = [{ status = 409, code = "idempotency_key_conflict" }]
key_reused = [{ status = 422, code = "idempotency_key_reused" }]
unavailable = [{ status = 503, code = "service_unavailable" }]

[semantics]
mismatch = "reject"
in_flight = "wait"
lease = "30s"
wait = "10s"
"#;

/// `overlay` merged over `base`: tables key by key, anything else replaced.
pub fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_parses_and_overlays_replace_arrays() {
        for p in <Profile as clap::ValueEnum>::value_variants() {
            assert!(p.defaults().parse::<toml::Table>().is_ok(), "{p:?}");
        }
        let mut base: toml::Table = IETF.parse().unwrap_or_default();
        let overlay: toml::Table = "[statuses]\nkey_reused = [400]".parse().unwrap_or_default();
        merge(&mut base, overlay);
        let statuses = &base["statuses"];
        assert_eq!(statuses["key_reused"].as_array().map(Vec::len), Some(1));
        assert_eq!(statuses["in_flight"].as_array().map(Vec::len), Some(1));
    }
}
