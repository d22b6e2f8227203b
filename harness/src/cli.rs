//! The command line: `idemproof suite`, `mutants`, `load` and
//! `check-target`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use idemproof_service::config::DEV_AUTH_SECRET;
use idemproof_service::mutants::Strategy;
use idemproof_service::store::postgres::Schema;

use crate::contract::{Contract, Endpoint, InFlight, Mismatch, Semantics};
use crate::deploy::{ServiceSettings, Target};
use crate::mutants;
use crate::report::{self, RunReport};
use crate::scenario::Scenario;
use crate::suite::{self, Environment, Sizes};

/// Attack an idempotency-key service with concurrent duplicates, retries
/// and faults, and check every history.
#[derive(Debug, Parser)]
#[command(name = "idemproof", version, about)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the scenarios against one or more targets and check them.
    Suite(RunArgs),
    /// Run the suite against the correct strategy and each deliberately
    /// broken one; succeed only if every broken one is caught.
    Mutants(RunArgs),
    /// Measure throughput and latency (closed and open loop) beside pgbench
    /// and wrk, and check the benchmark targets.
    Load(LoadArgs),
    /// Validate a target file, send one creation, its replay and a reused
    /// key, and say what was understood.
    CheckTarget(CheckTargetArgs),
}

/// Options of `check-target`.
#[derive(Debug, Args)]
pub struct CheckTargetArgs {
    /// The target file.
    pub file: PathBuf,
    /// The service's base URL (default: the file's `base_url`).
    #[arg(long)]
    pub url: Option<String>,
}

/// Options of `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// `memory` (a service process on the in-memory store), `postgres`
    /// (on durable Postgres in a container), `url=http://...`, or `auto`
    /// (postgres when Docker is reachable, else memory).
    #[arg(long, default_value = "auto")]
    pub target: String,
    /// Closed-loop connections (also pgbench's and wrk's).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Measured time per run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Unrecorded warm-up before each run.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Open-loop arrival rate per second (default: half the closed-loop
    /// keyed throughput).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Workloads (default all). Repeatable or comma-separated.
    #[arg(long = "workload", value_enum, value_delimiter = ',')]
    pub workloads: Vec<crate::load::Workload>,
    /// Skip pgbench and wrk.
    #[arg(long)]
    pub no_external: bool,
    /// Skip the legacy design's comparison run.
    #[arg(long)]
    pub no_legacy: bool,
    /// Storm sizes: clients sending one key at once, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [16, 64, 256, 1000])]
    pub storm: Vec<usize>,
    /// Skip the open-loop runs.
    #[arg(long)]
    pub no_open: bool,
    /// Skip the storms.
    #[arg(long)]
    pub no_storm: bool,
    /// Skip the wake-up measurement of waiting duplicates (Postgres only).
    #[arg(long)]
    pub no_wake: bool,
    /// Seed of the request mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Secret of the service (a url target's `AUTH_SECRET`).
    #[arg(long, env = "AUTH_SECRET", default_value = DEV_AUTH_SECRET, hide_env_values = true)]
    pub auth_secret: String,
    /// Write the full report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report here (tables and latency plot).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Directory for the latency plot and the pgbench/wrk scripts.
    #[arg(long, default_value = "target/idemproof")]
    pub out: PathBuf,
}

/// Options shared by `suite` and `mutants`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// `memory`, `postgres`, `replicas=N`, `url=http://...` (the reference
    /// contract at that URL), `file=PATH` (a target file), or `auto`
    /// (memory, plus replicas=2 on Postgres when Docker is reachable).
    /// Repeatable.
    #[arg(long = "target", default_value = "auto")]
    pub targets: Vec<String>,
    /// Seed of every random choice (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Concurrent clients in the continuous scenarios.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Keys in the per-key scenarios.
    #[arg(long, default_value_t = 48)]
    pub keys: usize,
    /// Clients released together on each key in `storm` (at most 1000).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub storm_clients: u16,
    /// Load window of each scenario.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Scenarios to run (default: all). Repeatable or comma-separated.
    #[arg(long = "scenario", value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// Write the full report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report here: statistics, latency
    /// distributions, every violation as a swimlane timeline (and for
    /// `mutants` the strategy × target matrix).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write JUnit XML here: a test case per (target, scenario), or for
    /// `mutants` per (strategy, target).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Directory for the latency plots.
    #[arg(long, default_value = "target/idemproof")]
    pub out: PathBuf,
    /// Lease of the services the harness starts (default 2 s); for a
    /// service it did not start, overrides its target file's.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub lease: Option<Duration>,
    /// How long duplicates wait for an in-flight original (default 1 s;
    /// overrides a target file's).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
    /// In-flight mode (default wait; overrides a target file's).
    #[arg(long, value_enum)]
    pub in_flight: Option<InFlight>,
    /// Mismatch mode (default reject; overrides a target file's).
    #[arg(long, value_enum)]
    pub mismatch: Option<Mismatch>,
    /// HS256 secret of the services the harness starts, and of a `url=`
    /// target's tokens.
    #[arg(long, env = "AUTH_SECRET", default_value = DEV_AUTH_SECRET, hide_env_values = true)]
    pub auth_secret: String,
    /// Strategy of the services the harness starts (`suite` only).
    #[arg(long, value_enum, default_value_t = Strategy::Correct)]
    pub strategy: Strategy,
    /// Which creation endpoint of the reference service the targets the
    /// harness starts, and `url=`, are attacked through (each has its
    /// shipped target file in harness/targets/).
    #[arg(long, value_enum, default_value_t = Endpoint::Agents)]
    pub endpoint: Endpoint,
    /// How the Postgres targets declare their tables: `plain`, or
    /// `partitioned` by hash of the tenant (docs/scaling.md).
    #[arg(long, env = "DATABASE_SCHEMA", value_enum, default_value_t = Schema::Plain)]
    pub database_schema: Schema,
    /// Never draw progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

/// Runs the command; the exit code says whether everything held.
pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn execute(cli: Cli) -> anyhow::Result<bool> {
    let (args, is_mutants) = match cli.command {
        Command::Suite(args) => (args, false),
        Command::Mutants(args) => (args, true),
        Command::Load(args) => return load(args).await,
        Command::CheckTarget(args) => return check_target(args).await,
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let sizes = Sizes {
        seed,
        clients: args.clients.max(1),
        keys: args.keys.max(1),
        storm_clients: usize::from(args.storm_clients),
        duration: args.duration,
    };
    let scenarios = if args.scenarios.is_empty() {
        Scenario::all().to_vec()
    } else {
        args.scenarios.clone()
    };
    let mut settings = ServiceSettings {
        strategy: args.strategy,
        endpoint: args.endpoint,
        schema: args.database_schema,
        ..ServiceSettings::new(args.auth_secret.clone())
    };
    settings.semantics = overridden(settings.semantics, &args);
    let (targets, env) = resolve_targets(&args.targets, &args).await?;
    if is_mutants && targets.iter().any(|t| !t.is_reference()) {
        anyhow::bail!("mutants needs targets the harness starts itself (memory, postgres, replicas=N)");
    }
    let progress = !args.no_progress;
    eprintln!("seed {seed}");

    let ok = if is_mutants {
        let report = mutants::run(&targets, &env, &settings, &sizes, |_| scenarios.clone(), progress).await;
        env.stop().await;
        let report = report?;
        mutants::print(&report);
        if let Some(path) = &args.json {
            report::write_json(path, &report)?;
        }
        if let Some(path) = &args.html {
            report::html::write(path, &report::html::mutants(&report))?;
            println!("HTML report: {}", path.display());
        }
        if let Some(path) = &args.junit {
            report::junit::write(path, &report::junit::mutants(&report)?)?;
        }
        report.passed
    } else {
        let mut runs: Vec<RunReport> = Vec::new();
        for target in &targets {
            match suite::run(target, &env, &settings, &sizes, &scenarios, progress).await {
                Ok(run) => {
                    report::print_summary(&run);
                    report::print_violations(&run, 3);
                    let plot = args.out.join(format!("latency-{}.svg", file_safe(&run.target)));
                    match report::latency_svg(&run, &plot) {
                        Ok(()) => println!("latency plot: {}", plot.display()),
                        Err(e) => eprintln!("warning: could not draw {}: {e}", plot.display()),
                    }
                    runs.push(run);
                }
                Err(e) => {
                    env.stop().await;
                    return Err(e);
                }
            }
        }
        env.stop().await;
        if let Some(path) = &args.json {
            report::write_json(path, &runs)?;
        }
        if let Some(path) = &args.html {
            report::html::write(path, &report::html::suite(&runs))?;
            println!("HTML report: {}", path.display());
        }
        if let Some(path) = &args.junit {
            report::junit::write(path, &report::junit::suite(&runs)?)?;
        }
        let violations: usize = runs.iter().map(RunReport::violations).sum();
        let failures: usize = runs.iter().map(RunReport::failures).sum();
        println!("\n{violations} violations, {failures} scenarios the harness could not run (seed {seed})");
        violations == 0 && failures == 0
    };
    Ok(ok)
}

/// The semantics with the command line's overrides.
fn overridden(base: Semantics, args: &RunArgs) -> Semantics {
    Semantics {
        mismatch: args.mismatch.unwrap_or(base.mismatch),
        in_flight: args.in_flight.unwrap_or(base.in_flight),
        lease: args.lease.unwrap_or(base.lease),
        wait: args.wait.unwrap_or(base.wait),
    }
}

/// Parses the targets, expands `auto` and starts the Postgres container
/// when a target needs it. `auto` degrades to memory only, saying why,
/// when Docker is missing; an explicit Postgres target fails instead. A
/// `url=` target's tokens use `--auth-secret`; every target file's
/// semantics take the command line's overrides.
async fn resolve_targets(raw: &[String], args: &RunArgs) -> anyhow::Result<(Vec<Target>, Environment)> {
    let mut targets = Vec::new();
    let mut auto = false;
    for t in raw {
        if t == "auto" {
            auto = true;
            targets.push(Target::Memory);
            continue;
        }
        let target = match Target::parse(t)? {
            Target::External { contract, label } => {
                let mut contract = Contract::clone(&contract);
                if let Some(url) = t.strip_prefix("url=") {
                    contract = Contract::reference_for(args.endpoint)?.at(url);
                    contract.auth.secret = Some(args.auth_secret.clone());
                }
                contract.semantics = overridden(contract.semantics, args);
                Target::External {
                    contract: Arc::new(contract),
                    label,
                }
            }
            other => other,
        };
        targets.push(target);
    }
    let explicit_pg = targets.iter().any(Target::needs_postgres);
    if explicit_pg || auto {
        match Environment::start(true).await {
            Ok(env) => {
                if auto && !explicit_pg {
                    targets.push(Target::Postgres { replicas: 2 });
                }
                return Ok((targets, env));
            }
            Err(why) if !explicit_pg => {
                eprintln!(
                    "note: Docker is not reachable, so the Postgres targets are skipped and only the \
                     in-memory target runs.\n      ({})",
                    why.lines().next().unwrap_or_default()
                );
            }
            Err(why) => anyhow::bail!(why),
        }
    }
    Ok((targets, Environment::start(false).await.map_err(anyhow::Error::msg)?))
}

fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

async fn check_target(args: CheckTargetArgs) -> anyhow::Result<bool> {
    let contract = Contract::from_file(&args.file)?;
    let base = match args.url.as_deref().or(contract.base_url.as_deref()) {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => anyhow::bail!("{} has no base_url: pass --url", args.file.display()),
    };
    let findings = crate::check_target::run(Arc::new(contract), &base).await?;
    findings.print();
    Ok(findings.problems() == 0)
}

async fn load(args: LoadArgs) -> anyhow::Result<bool> {
    use crate::load::{LoadOptions, LoadTarget, Workload};
    let target = match args.target.as_str() {
        "memory" => LoadTarget::Memory,
        "postgres" => LoadTarget::Postgres,
        "auto" => {
            if std::process::Command::new("docker")
                .arg("info")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                LoadTarget::Postgres
            } else {
                eprintln!("note: Docker is not reachable: measuring the in-memory service only");
                LoadTarget::Memory
            }
        }
        other => match other.strip_prefix("url=") {
            Some(url) => LoadTarget::Url(url.trim_end_matches('/').to_owned()),
            None => anyhow::bail!("unknown load target `{other}`: use memory, postgres, url=... or auto"),
        },
    };
    let opts = LoadOptions {
        target,
        connections: args.connections.max(1),
        duration: args.duration,
        warmup: args.warmup,
        rate: args.rate,
        workloads: if args.workloads.is_empty() {
            vec![Workload::Unkeyed, Workload::Keyed, Workload::Replay, Workload::Mixed]
        } else {
            args.workloads.clone()
        },
        external: !args.no_external,
        legacy: !args.no_legacy,
        open: !args.no_open,
        storm: if args.no_storm { Vec::new() } else { args.storm.clone() },
        wake: !args.no_wake,
        seed: args.seed,
        secret: args.auth_secret.clone(),
        out: args.out.clone(),
    };
    let report = crate::load::run(&opts).await?;
    crate::load::print(&report);
    let plot = args.out.join("load-latency.svg");
    match crate::load::latency_svg(&report, &plot) {
        Ok(()) => println!("latency plot: {}", plot.display()),
        Err(e) => eprintln!("warning: could not draw {}: {e}", plot.display()),
    }
    if let Some(path) = &args.json {
        report::write_json(path, &report)?;
    }
    if let Some(path) = &args.html {
        report::html::write(path, &report::html::load(&report))?;
        println!("HTML report: {}", path.display());
    }
    // Targets are reported, not enforced: a missed ratio is a finding.
    let failed = report.runs.iter().any(|r| r.measured.ok == 0);
    Ok(!failed)
}
