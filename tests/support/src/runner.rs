//! Runs a test binary's cases under libtest-mimic, one trial per case and
//! backend (`memory::case`, `postgres::case`, `partitioned::case`), with
//! one tokio runtime and one Postgres container for the whole binary
//! (started only if a selected trial needs it, removed at the end). Docker
//! missing fails the Postgres trials, unless the developer opted out with
//! `IDEMPROOF_SKIP_DOCKER=1`, which marks them ignored.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use idemproof_harness::postgres::{PgServer, SKIP_VAR, docker_opted_out};
use libtest_mimic::{Arguments, Failed, Trial};
use tokio::runtime::Runtime;

use crate::app::Backend;

/// An async test case taking the backend to run on; a panic fails it.
pub type Case = fn(Backend) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Which backends a case runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Backends {
    /// Both stores: in memory, and on Postgres in each schema.
    Both,
    /// Both stores, Postgres in its plain schema only: for cases about the
    /// HTTP layer, which no table layout can change.
    Stores,
    /// Postgres only, in each schema.
    PostgresOnly,
    /// The in-memory store only (its bounds).
    MemoryOnly,
}

impl Backends {
    fn kinds(self) -> &'static [Kind] {
        match self {
            Backends::Both => &[Kind::Memory, Kind::Postgres, Kind::Partitioned],
            Backends::Stores => &[Kind::Memory, Kind::Postgres],
            Backends::PostgresOnly => &[Kind::Postgres, Kind::Partitioned],
            Backends::MemoryOnly => &[Kind::Memory],
        }
    }
}

/// One backend, as trial names spell it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `memory::`
    Memory,
    /// `postgres::` (plain schema)
    Postgres,
    /// `partitioned::` (Postgres, every table partitioned by tenant)
    Partitioned,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Postgres => "postgres",
            Kind::Partitioned => "partitioned",
        }
    }
}

/// What a test does on one backend, given the binary's runtime.
type Body = Arc<dyn Fn(&Runtime, Backend) -> Result<(), Failed> + Send + Sync>;

/// A named test and the backends it runs on.
pub struct Test {
    name: &'static str,
    kinds: &'static [Kind],
    body: Body,
}

impl Test {
    /// A synchronous test (one that drives the runtime itself).
    pub fn sync(
        name: &'static str,
        kinds: &'static [Kind],
        body: impl Fn(&Runtime, Backend) -> Result<(), Failed> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            kinds,
            body: Arc::new(body),
        }
    }

    /// An async test case, run as a task so that a panic fails only this
    /// trial, with its message.
    pub fn case(name: &'static str, backends: Backends, case: Case) -> Self {
        Self::sync(name, backends.kinds(), move |runtime, backend| {
            runtime
                .block_on(runtime.spawn(case(backend)))
                .map_err(|e| match e.try_into_panic() {
                    Ok(panic) => Failed::from(
                        panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_else(|| "panicked".into()),
                    ),
                    Err(e) => Failed::from(e.to_string()),
                })
        })
    }
}

/// Lists async cases as `(name, backends, case)`.
#[macro_export]
macro_rules! cases {
    ($backends:expr => $($name:ident),* $(,)?) => {
        vec![$((stringify!($name), $backends, (|b| Box::pin($name(b))) as $crate::runner::Case)),*]
    };
}

/// Runs async cases, each on the backends it names.
pub fn run(cases: Vec<(&'static str, Backends, Case)>) -> ExitCode {
    run_tests(
        cases
            .into_iter()
            .map(|(name, backends, case)| Test::case(name, backends, case))
            .collect(),
    )
}

/// Runs tests, each on the backends it names.
pub fn run_tests(tests: Vec<Test>) -> ExitCode {
    let args = Arguments::from_args();
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
    );
    let wants_postgres = !args.list
        && tests.iter().any(|t| {
            t.kinds
                .iter()
                .any(|k| *k != Kind::Memory && selected(&args, &trial_name(*k, t.name)))
        });
    let postgres: Option<Result<Arc<PgServer>, String>> =
        (wants_postgres && !docker_opted_out()).then(|| runtime.block_on(PgServer::start()).map(Arc::new));

    let mut trials = Vec::new();
    for test in &tests {
        for &kind in test.kinds {
            let name = trial_name(kind, test.name);
            let backend = match (kind, &postgres) {
                (Kind::Memory, _) => Ok(Backend::Memory),
                (Kind::Postgres, Some(Ok(server))) => Ok(Backend::Postgres(server.clone())),
                (Kind::Partitioned, Some(Ok(server))) => Ok(Backend::Partitioned(server.clone())),
                (_, Some(Err(why))) => Err(why.clone()),
                (_, None) if docker_opted_out() => {
                    trials.push(Trial::test(name, || Ok(())).with_ignored_flag(true));
                    continue;
                }
                (_, None) => Err("Postgres was not started".to_owned()),
            };
            let (runtime, body) = (runtime.clone(), test.body.clone());
            trials.push(Trial::test(name, move || {
                body(&runtime, backend.map_err(Failed::from)?)
            }));
        }
    }
    if docker_opted_out() {
        eprintln!("note: {SKIP_VAR}=1: Postgres-backed trials are skipped (never do this in CI)");
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(Ok(server)) = postgres {
        match Arc::try_unwrap(server) {
            Ok(server) => runtime.block_on(server.remove()),
            Err(_) => eprintln!("warning: the Postgres container is still referenced and was left running"),
        }
    }
    conclusion.exit_code()
}

fn trial_name(kind: Kind, name: &str) -> String {
    format!("{}::{name}", kind.prefix())
}

/// Whether libtest-mimic will run the trial `name` with `args`.
fn selected(args: &Arguments, name: &str) -> bool {
    let matches = |pattern: &str| {
        if args.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    };
    args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|s| matches(s))
}
