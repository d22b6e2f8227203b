//! CPU time per request: the figure a shared machine does not blur. Wall
//! clock throughput moves with whatever else runs on the cores; the CPU a
//! request costs each process does not (much). Three meters, read before
//! and after each measured window:
//!
//! - the service: every child process of this harness that runs the
//!   harness's own executable (the replicas `idemproof load` starts are
//!   this binary, re-executed), `utime + stime` of `/proc/<pid>/stat`,
//!   which covers all its threads;
//! - the database: the Postgres container's cgroup (`usage_usec` of
//!   `cpu.stat` on cgroup v2, `cpuacct.usage` on v1), found by asking
//!   Docker which container serves the address the clients use. Every
//!   process of the server counts (backends, WAL writer, checkpointer,
//!   autovacuum): all of it is what the requests cost the database;
//! - the generator: this process.
//!
//! Resolution: the kernel counts process time in clock ticks (10 ms at
//! the usual 100 Hz) and cgroup time in nanoseconds; a 10 s window of a
//! busy service holds seconds of CPU, so the tick is well under 1 %.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

/// CPU microseconds per request, by process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuUse {
    /// The service process(es).
    pub service_us: Option<f64>,
    /// The database server (its container).
    pub database_us: Option<f64>,
    /// The load generator (this harness).
    pub generator_us: Option<f64>,
}

impl CpuUse {
    /// Service and database together: what a request costs the system
    /// under test.
    pub fn total_us(&self) -> Option<f64> {
        match (self.service_us, self.database_us) {
            (Some(s), Some(d)) => Some(s + d),
            (Some(s), None) => Some(s),
            (None, d) => d,
        }
    }
}

/// Reads the meters.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    /// `/proc/self/exe` as the kernel names it: children with the same
    /// executable are the service replicas.
    exe: Option<PathBuf>,
    /// Microseconds per clock tick.
    tick_us: u64,
    /// The database container's CPU counter, if found.
    database: Option<CgroupCounter>,
}

/// A cgroup's cumulative CPU time.
#[derive(Debug, Clone)]
enum CgroupCounter {
    /// cgroup v2 `cpu.stat`, `usage_usec`.
    V2(PathBuf),
    /// cgroup v1 `cpuacct.usage`, nanoseconds.
    V1(PathBuf),
}

impl CgroupCounter {
    fn read_us(&self) -> Option<u64> {
        match self {
            CgroupCounter::V2(path) => std::fs::read_to_string(path)
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse().ok()),
            CgroupCounter::V1(path) => std::fs::read_to_string(path)
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
                .map(|ns| ns / 1000),
        }
    }
}

/// Cumulative CPU at one instant, microseconds.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    /// Per service process, by pid.
    service: HashMap<u32, u64>,
    /// The database container.
    database: Option<u64>,
    /// This process.
    generator: Option<u64>,
}

impl CpuMeter {
    /// Meters for the service children and, if `database_url` is served by
    /// a local container, the database.
    pub fn new(database_url: Option<&str>) -> Self {
        let tick_us = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().ok())
            .filter(|hz| *hz > 0)
            .map_or(10_000, |hz| 1_000_000 / hz);
        let database = database_url.and_then(|url| {
            let counter = database_counter(url);
            if counter.is_none() {
                eprintln!("[load] note: no container found serving {url}; database CPU not measured");
            }
            counter
        });
        Self {
            exe: std::fs::read_link("/proc/self/exe").ok(),
            tick_us,
            database,
        }
    }

    /// Whether the database's CPU is measured.
    pub fn has_database(&self) -> bool {
        self.database.is_some()
    }

    /// Reads every meter now.
    pub fn snapshot(&self) -> CpuSnapshot {
        CpuSnapshot {
            service: self.service_processes(),
            database: self.database.as_ref().and_then(CgroupCounter::read_us),
            generator: process_ticks(Path::new("/proc/self/stat")).map(|t| t * self.tick_us),
        }
    }

    /// Only the database, for runs without a service (pgbench).
    pub fn database_us(&self) -> Option<u64> {
        self.database.as_ref().and_then(CgroupCounter::read_us)
    }

    /// CPU of every child of this process running this executable.
    fn service_processes(&self) -> HashMap<u32, u64> {
        let Some(exe) = &self.exe else {
            return HashMap::new();
        };
        let me = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return HashMap::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let fields = stat_fields(&stat)?;
                (fields.ppid == me).then_some(())?;
                (std::fs::read_link(format!("/proc/{pid}/exe")).ok()? == *exe).then_some(())?;
                Some((pid, (fields.utime + fields.stime) * self.tick_us))
            })
            .collect()
    }
}

impl CpuSnapshot {
    /// CPU per request between `self` and `later`, over `requests`.
    pub fn per_request(&self, later: &CpuSnapshot, requests: u64) -> Option<CpuUse> {
        if requests == 0 {
            return None;
        }
        let n = requests as f64;
        let service = (!later.service.is_empty()).then(|| {
            // A process started in between counts from zero.
            later
                .service
                .iter()
                .map(|(pid, t)| t.saturating_sub(self.service.get(pid).copied().unwrap_or(0)))
                .sum::<u64>()
        });
        let delta = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?) as f64 / n);
        Some(CpuUse {
            service_us: service.map(|us| us as f64 / n),
            database_us: delta(self.database, later.database),
            generator_us: delta(self.generator, later.generator),
        })
    }
}

/// The fields of `/proc/<pid>/stat` used here.
struct StatFields {
    ppid: u32,
    utime: u64,
    stime: u64,
}

/// Parses `/proc/<pid>/stat`: the command name is in parentheses and may
/// hold spaces, so fields are counted from the last `)`.
fn stat_fields(stat: &str) -> Option<StatFields> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (3), ppid (4), ..., utime (14), stime (15).
    Some(StatFields {
        ppid: fields.get(1)?.parse().ok()?,
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
    })
}

fn process_ticks(stat: &Path) -> Option<u64> {
    let fields = stat_fields(&std::fs::read_to_string(stat).ok()?)?;
    Some(fields.utime + fields.stime)
}

/// The CPU counter of the container serving `url` (`postgres://user@HOST:PORT/db`):
/// the container whose bridge address is HOST, or, for a loopback HOST,
/// whose published port is PORT.
fn database_counter(url: &str) -> Option<CgroupCounter> {
    let authority = url.split("://").nth(1)?.split('/').next()?;
    let hostport = authority.rsplit('@').next()?;
    let (host, port) = hostport.rsplit_once(':')?;
    let loopback = host == "127.0.0.1" || host == "localhost";
    let ids = Command::new("docker").args(["ps", "-q"]).output().ok()?;
    let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return None;
    }
    let format = "{{.State.Pid}}|{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}|\
                  {{range $p, $c := .NetworkSettings.Ports}}{{range $c}}{{.HostPort}} {{end}}{{end}}";
    let inspected = Command::new("docker")
        .args(["inspect", "--format", format])
        .args(&ids)
        .output()
        .ok()?;
    let pid = String::from_utf8_lossy(&inspected.stdout).lines().find_map(|line| {
        let mut parts = line.split('|');
        let pid = parts.next()?.trim().parse::<u32>().ok()?;
        let addresses = parts.next()?;
        let ports = parts.next()?;
        let serves = if loopback {
            ports.split_whitespace().any(|p| p == port)
        } else {
            port == "5432" && addresses.split_whitespace().any(|a| a == host)
        };
        serves.then_some(pid)
    })?;
    cgroup_counter(pid)
}

/// The CPU counter of the cgroup process `pid` lives in.
fn cgroup_counter(pid: u32) -> Option<CgroupCounter> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.is_empty() {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let stat = PathBuf::from(format!("{root}{path}/cpu.stat"));
                let counter = CgroupCounter::V2(stat);
                if counter.read_us().is_some() {
                    return Some(counter);
                }
            }
        }
    }
    cgroups.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == "cpuacct").then_some(())?;
        ["/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"]
            .iter()
            .map(|root| CgroupCounter::V1(PathBuf::from(format!("{root}{path}/cpuacct.usage"))))
            .find(|c| c.read_us().is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let stat = "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        let f = stat_fields(stat).expect("parses");
        assert_eq!((f.ppid, f.utime, f.stime), (17, 250, 75));
    }

    #[test]
    fn per_request_counts_only_what_happened_in_between() {
        let before = CpuSnapshot {
            service: HashMap::from([(1, 1_000), (2, 500)]),
            database: Some(10_000),
            generator: Some(0),
        };
        let after = CpuSnapshot {
            // Process 3 started in between; process 2 is gone.
            service: HashMap::from([(1, 3_000), (3, 1_000)]),
            database: Some(16_000),
            generator: Some(400),
        };
        let cpu = before.per_request(&after, 10).expect("requests were made");
        assert_eq!(cpu.service_us, Some(300.0));
        assert_eq!(cpu.database_us, Some(600.0));
        assert_eq!(cpu.generator_us, Some(40.0));
        assert_eq!(cpu.total_us(), Some(900.0));
        assert_eq!(before.per_request(&after, 0), None);
    }

    #[test]
    fn this_process_is_metered() {
        let meter = CpuMeter::new(None);
        let snapshot = meter.snapshot();
        assert!(snapshot.generator.is_some(), "/proc/self/stat is readable");
        assert!(!meter.has_database());
    }
}
