//! The yardsticks the service and the harness are measured against, run
//! in the same session on the same database and endpoint:
//! - `pgbench` running the very transaction a keyed creation commits, with
//!   as many connections: the ceiling the service could reach;
//! - `wrk` sending the same keyed creations to the same endpoint: shows
//!   whether the harness's own generator is the bottleneck.
//!
//! Both are optional tools; when one is missing the report says so.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use idemproof_service::domain::agent::Agent;
use idemproof_service::store::postgres::one_step_sql;
use serde::Serialize;
use tokio::process::Command;

use super::cpu::{CpuMeter, CpuUse};

/// A yardstick's result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum External {
    /// It ran.
    Ran {
        /// Transactions (pgbench) or requests (wrk) per second.
        rate: f64,
        /// The command line, for the report.
        command: String,
        /// wrk: answers that were not 2xx.
        failures: u64,
        /// CPU per transaction (pgbench: the database's) or per request
        /// (wrk: the service's and the database's) during the run.
        cpu: Option<CpuUse>,
    },
    /// It could not run.
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl External {
    /// The rate, if it ran.
    pub fn rate(&self) -> Option<f64> {
        match self {
            External::Ran { rate, .. } => Some(*rate),
            External::Unavailable { .. } => None,
        }
    }

    /// CPU per transaction or request, if it ran and was metered.
    pub fn cpu(&self) -> Option<CpuUse> {
        match self {
            External::Ran { cpu, .. } => *cpu,
            External::Unavailable { .. } => None,
        }
    }
}

/// Literal values for the one-step statement's parameters ($1 first): an
/// agent like the load generator's, with a new key per transaction.
const PGBENCH_VALUES: [&str; 19] = [
    "1",
    "1",
    "'load test agent'",
    "NULL::text",
    "NULL::text",
    r#"'{"model": "small", "tools": ["search"]}'::jsonb"#,
    "'{}'::jsonb",
    "'assistant'",
    "NULL::text",
    "false",
    "'pgbench-' || :client_id || '-' || :k",
    "now()",
    "1",
    "1",
    "'POST /api/v1/agents'",
    "'pgbench-' || :client_id || '-' || :k",
    "sha256('load test agent'::bytea)",
    "now()",
    "now() + interval '24 hours'",
];

/// The keyed creation's transaction: the service's own one-step statement
/// ([`one_step_sql`]) with its parameters filled in, on one line.
fn pgbench_script() -> String {
    let mut sql = one_step_sql::<Agent>().split_whitespace().collect::<Vec<_>>().join(" ");
    // From the highest number down, so `$1` never matches inside `$13`.
    for (i, value) in PGBENCH_VALUES.iter().enumerate().rev() {
        sql = sql.replace(&format!("${}", i + 1), value);
    }
    format!("\\set k random(1, 1000000000000)\n{sql};\n")
}

/// Runs pgbench with the keyed-creation transaction against `db_url`;
/// `meter` gives the database's CPU per transaction.
pub async fn pgbench(db_url: &str, connections: usize, duration: Duration, dir: &Path, meter: &CpuMeter) -> External {
    let script = dir.join("keyed-create.pgbench.sql");
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&script, pgbench_script())) {
        return External::Unavailable {
            reason: format!("cannot write the pgbench script: {e}"),
        };
    }
    let args = vec![
        "-n".to_owned(),
        "-M".into(),
        "prepared".into(),
        "-c".into(),
        connections.to_string(),
        "-j".into(),
        connections.min(2).to_string(),
        "-T".into(),
        duration.as_secs().max(1).to_string(),
        "-f".into(),
        script.display().to_string(),
        db_url.into(),
    ];
    let command = format!("pgbench {}", args.join(" "));
    let before = meter.database_us();
    let output = match Command::new("pgbench").args(&args).stdin(Stdio::null()).output().await {
        Ok(output) => output,
        Err(e) => {
            return External::Unavailable {
                reason: format!("pgbench not runnable ({e}); install postgresql-client"),
            };
        }
    };
    let after = meter.database_us();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let transactions = parse_after(&stdout, "number of transactions actually processed:").filter(|n| *n > 0.0);
    let cpu = match (before, after, transactions) {
        // pgbench's connection set-up and tear-down fall in the window too:
        // a few milliseconds against seconds of transactions.
        (Some(before), Some(after), Some(n)) => Some(CpuUse {
            database_us: Some(after.saturating_sub(before) as f64 / n),
            ..CpuUse::default()
        }),
        _ => None,
    };
    match parse_after(&stdout, "tps = ") {
        Some(rate) if output.status.success() => External::Ran {
            rate,
            command,
            failures: 0,
            cpu,
        },
        _ => External::Unavailable {
            reason: format!(
                "pgbench failed: {}",
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or("no output")
            ),
        },
    }
}

/// Runs wrk sending keyed creations (a new key per request) to `url`;
/// `meter` gives the service's and the database's CPU per request.
pub async fn wrk(
    url: &str,
    authorization: &str,
    connections: usize,
    duration: Duration,
    dir: &Path,
    meter: &CpuMeter,
) -> External {
    let body = crate::load::generator::body().to_string();
    let script = format!(
        r#"-- Keyed agent creations, a new Idempotency-Key per request.
local counter = 0
local prefix = "wrk"
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  prefix = "wrk-" .. tostring(id) .. "-" .. tostring(os.time())
end
local n = 0
function request()
  n = n + 1
  return wrk.format("POST", nil, {{
    ["Content-Type"] = "application/json",
    ["Authorization"] = "{authorization}",
    ["Idempotency-Key"] = '"' .. prefix .. "-" .. n .. '"',
  }}, '{body}')
end
"#
    );
    let path = dir.join("keyed-create.wrk.lua");
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, script)) {
        return External::Unavailable {
            reason: format!("cannot write the wrk script: {e}"),
        };
    }
    let args = vec![
        "-t".to_owned(),
        connections.min(2).to_string(),
        "-c".into(),
        connections.to_string(),
        "-d".into(),
        format!("{}s", duration.as_secs().max(1)),
        "-s".into(),
        path.display().to_string(),
        url.into(),
    ];
    let command = format!("wrk {}", args.join(" "));
    let before = meter.snapshot();
    let output = match Command::new("wrk").args(&args).stdin(Stdio::null()).output().await {
        Ok(output) => output,
        Err(e) => {
            return External::Unavailable {
                reason: format!("wrk not runnable ({e}); install wrk"),
            };
        }
    };
    let after = meter.snapshot();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let cpu = wrk_requests(&stdout)
        .and_then(|n| before.per_request(&after, n))
        // wrk's CPU is not this process's.
        .map(|cpu| CpuUse {
            generator_us: None,
            ..cpu
        });
    match parse_after(&stdout, "Requests/sec:") {
        Some(rate) if output.status.success() => External::Ran {
            rate,
            command,
            failures: parse_after(&stdout, "Non-2xx or 3xx responses:").unwrap_or(0.0) as u64,
            cpu,
        },
        _ => External::Unavailable {
            reason: format!("wrk failed: {}", stdout.lines().last().unwrap_or("no output")),
        },
    }
}

/// How many requests wrk made: "  37230 requests in 10.00s, 21.49MB read".
fn wrk_requests(stdout: &str) -> Option<u64> {
    stdout
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
}

/// The number following `label` on its line.
fn parse_after(text: &str, label: &str) -> Option<f64> {
    let rest = &text[text.find(label)? + label.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{parse_after, pgbench_script, wrk_requests};

    #[test]
    fn pgbench_runs_the_one_step_statement_with_every_parameter_filled() {
        let script = pgbench_script();
        assert!(!script.contains('$'), "a parameter left unfilled: {script}");
        assert!(script.contains("ON CONFLICT ON CONSTRAINT idempotency_keys_scope DO NOTHING"));
        assert_eq!(script.lines().count(), 2, "one meta-command, one statement");
    }

    #[test]
    fn parses_pgbench_and_wrk_summaries() {
        let pgbench = "number of transactions actually processed: 37903\nlatency average = 2.1 ms\ninitial connection time = 3.2 ms\ntps = 3790.581234 (without initial connection time)\n";
        assert_eq!(parse_after(pgbench, "tps = "), Some(3790.581234));
        assert_eq!(
            parse_after(pgbench, "number of transactions actually processed:"),
            Some(37903.0)
        );
        let wrk = "  2 threads and 16 connections\n  51234 requests in 10.00s, 21.49MB read\nRequests/sec:   5123.45\nTransfer/sec:      1.2MB\n";
        assert_eq!(parse_after(wrk, "Requests/sec:"), Some(5123.45));
        assert_eq!(parse_after(wrk, "Non-2xx or 3xx responses:"), None);
        assert_eq!(wrk_requests(wrk), Some(51234));
    }
}
