//! The external tools some tests run (`promtool`, `schemathesis`,
//! `openapi-spec-validator`): found on `PATH`, where `scripts/tools.sh`
//! puts them (`scripts/test.sh` sources it). A missing tool fails the test
//! that needs it, saying how to get it; nothing is skipped.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The executable `name` on `PATH`; panics, saying how to provision it,
/// if there is none.
pub fn find(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: run `bash scripts/tools.sh` (it installs promtool, schemathesis \
                 and openapi-spec-validator and prints the PATH to export), or `bash scripts/test.sh`"
            )
        })
}

/// A command running the tool `name`.
pub fn command(name: &str) -> Command {
    Command::new(find(name))
}

/// Runs `command` to its end, killing it if it runs longer than `limit`;
/// its output, or a panic saying what went wrong. Blocking: call it from
/// `tokio::task::spawn_blocking` inside async tests.
pub fn run(command: Command, limit: Duration) -> Output {
    run_with_input(command, Vec::new(), limit)
}

/// [`run`], with `input` written to the tool's standard input.
pub fn run_with_input(mut command: Command, input: Vec<u8>, limit: Duration) -> Output {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(if input.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    // Drain both pipes while waiting, so a chatty tool never blocks on a
    // full pipe.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let feed = child.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            use std::io::Write;
            // A tool that exits before reading everything closes the
            // pipe; its status says why.
            let _ = stdin.write_all(&input);
        })
    });
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let (status, timed_out) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (status, false),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                match child.wait() {
                    Ok(status) => break (status, true),
                    Err(e) => panic!("killing {shown}: {e}"),
                }
            }
            Err(e) => panic!("waiting for {shown}: {e}"),
        }
    };
    if let Some(feed) = feed {
        let _ = feed.join();
    }
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    if timed_out {
        panic!(
            "{shown} ran longer than {limit:?} and was killed; its output:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}
