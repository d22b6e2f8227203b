//! One service replica running as a child process: spawn, `kill -9`,
//! restart on the same port.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::ServiceSettings;
use super::child::{CHILD_ENV, READY_PREFIX, WORK_DELAY_COMMAND};

/// Set to a `RUST_LOG` filter to see the replicas' logs on stderr.
pub const CHILD_LOG_ENV: &str = "IDEMPROOF_CHILD_LOG";

/// A child-process replica.
pub struct ProcessReplica {
    /// Everything needed to start it again after a kill.
    env: Vec<(String, String)>,
    /// Fixed after the first start so clients keep their URL across
    /// restarts.
    pub port: u16,
    child: Option<Child>,
    /// The write end of the child's stdin: dropping it (or dying) tells
    /// the child to exit.
    stdin: Option<tokio::process::ChildStdin>,
    /// Extra time each creation takes; sent again after a restart.
    work_delay: Duration,
}

impl ProcessReplica {
    /// Starts a replica over `database_url` (in-memory store if `None`)
    /// and waits until it listens.
    pub async fn start(database_url: Option<&str>, settings: &ServiceSettings) -> anyhow::Result<Self> {
        let mut env = settings.env();
        if let Some(url) = database_url {
            env.push(("DATABASE_URL".into(), url.into()));
        }
        env.push((CHILD_ENV.into(), settings.strategy.name()));
        let mut replica = Self {
            env,
            port: 0,
            child: None,
            stdin: None,
            work_delay: Duration::ZERO,
        };
        replica.spawn().await?;
        Ok(replica)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("locating the harness executable")?;
        let mut child = Command::new(exe)
            .env_remove("DATABASE_URL")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("BIND", format!("127.0.0.1:{}", self.port))
            // Quiet unless asked: per-request log lines cost measurable time
            // under load.
            .env(
                "RUST_LOG",
                std::env::var(CHILD_LOG_ENV).unwrap_or_else(|_| "warn".into()),
            )
            // Kept open while we live: the child exits when it closes.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Replicas log every injected failure; keep the harness's
            // output readable unless asked for their logs.
            .stderr(if std::env::var_os(CHILD_LOG_ENV).is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .context("spawning a service replica")?;
        let stdout = child.stdout.take().context("replica stdout")?;
        self.stdin = child.stdin.take();
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(port) = line.strip_prefix(READY_PREFIX) {
                    return Ok::<_, anyhow::Error>(port.trim().parse::<u16>()?);
                }
            }
            anyhow::bail!("replica exited before listening")
        })
        .await
        .context("replica did not start within 60 s")??;
        self.port = ready;
        self.child = Some(child);
        if !self.work_delay.is_zero() {
            self.send_work_delay().await?;
        }
        Ok(())
    }

    /// `kill -9`: no shutdown hook runs, nothing is released.
    pub async fn kill(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Makes every creation take `delay` longer, between its start (and
    /// claim) and its write, as a call to another service would.
    pub async fn set_work_delay(&mut self, delay: Duration) -> anyhow::Result<()> {
        self.work_delay = delay;
        self.send_work_delay().await
    }

    async fn send_work_delay(&mut self) -> anyhow::Result<()> {
        if let Some(stdin) = &mut self.stdin {
            let line = format!("{WORK_DELAY_COMMAND} {}\n", self.work_delay.as_millis());
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await?;
        }
        Ok(())
    }

    /// Starts again on the same port after [`Self::kill`].
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let mut attempts = 0;
        while self.child.is_none() {
            match self.spawn().await {
                Ok(()) => {}
                // The port may linger for a moment after the kill.
                Err(_) if attempts < 10 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
