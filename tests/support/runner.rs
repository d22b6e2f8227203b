//! Runs async test cases under libtest-mimic, against each backend, with
//! one Postgres container for the whole binary (removed at the end).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};

use super::app::Backend;
use idemproof_harness::postgres::{PgServer, SKIP_VAR, docker_opted_out};

/// An async test case taking the backend to run on.
pub type Case = fn(Backend) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Which backends a case runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Backends {
    Both,
    PostgresOnly,
}

/// Lists cases as `(name, backends, case)`.
#[macro_export]
macro_rules! cases {
    ($backends:expr => $($name:ident),* $(,)?) => {
        vec![$((stringify!($name), $backends, (|b| Box::pin($name(b))) as $crate::support::runner::Case)),*]
    };
}

/// Builds one trial per case and backend and runs them.
pub fn run(cases: Vec<(&'static str, Backends, Case)>) -> std::process::ExitCode {
    let args = Arguments::from_args();
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
    );
    let wants_postgres = !args.list && (args.filter.as_deref().is_none_or(|f| !f.starts_with("memory")));
    let postgres: Option<Result<Arc<PgServer>, String>> = if docker_opted_out() || !wants_postgres {
        None
    } else {
        Some(runtime.block_on(PgServer::start()).map(Arc::new))
    };

    let mut trials = Vec::new();
    for (name, backends, case) in cases {
        if backends == Backends::Both {
            trials.push(trial(&runtime, format!("memory::{name}"), Ok(Backend::Memory), case));
        }
        let pg_name = format!("postgres::{name}");
        trials.push(match &postgres {
            Some(Ok(server)) => trial(&runtime, pg_name, Ok(Backend::Postgres(server.clone())), case),
            Some(Err(why)) => trial(&runtime, pg_name, Err(why.clone()), case),
            None if docker_opted_out() => Trial::test(pg_name, || Ok(())).with_ignored_flag(true),
            None => Trial::test(pg_name, || Err(Failed::from("Postgres was not started"))),
        });
    }
    if docker_opted_out() {
        eprintln!("note: {SKIP_VAR}=1: Postgres-backed cases are skipped (never do this in CI)");
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

fn trial(runtime: &Arc<tokio::runtime::Runtime>, name: String, backend: Result<Backend, String>, case: Case) -> Trial {
    let runtime = runtime.clone();
    Trial::test(name, move || {
        let backend = backend.map_err(Failed::from)?;
        // Run as a task so a panic fails only this case, with its message.
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
