//! Executes a scenario's plan against a deployment: client chains run
//! concurrently, the fault schedule runs beside them, every attempt is
//! recorded. Every loop here is bounded in count (attempts, steps) and in
//! time (the load window, each submission's give-up time).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::ProgressBar;
use tokio::sync::Barrier;
use tokio::time::Instant;

use crate::client::{ApiClient, CreateRequest, Who, Wording, classify};
use crate::deploy::{Deployment, Unseen};
use crate::fault::{Fault, FaultRecord};
use crate::history::{Event, History, Outcome, Phase, RetryPolicy, Submission, micros};

/// Tags every proxied attempt uniquely, across runs.
static TAGS: AtomicU64 = AtomicU64::new(1);

/// What one client does: submissions one after another.
#[derive(Debug, Clone)]
pub struct Chain {
    /// When the chain starts, from the scenario start.
    pub start: Duration,
    /// Chains sharing a group start together, released by one barrier.
    pub group: Option<usize>,
    /// Pause between consecutive submissions.
    pub gap: Duration,
    /// Indices into the plan's submissions.
    pub steps: Vec<usize>,
}

/// A scenario's workload.
#[derive(Debug, Default)]
pub struct Plan {
    /// Every submission any chain may send.
    pub submissions: Vec<Submission>,
    /// Who sends what, when.
    pub chains: Vec<Chain>,
    /// Faults and when to inject them; `Fault::Heal` ends the fault window.
    pub faults: Vec<(Duration, Fault)>,
    /// No chain starts a new submission after this.
    pub window: Duration,
}

impl Plan {
    /// Whether a fault needs the HTTP proxy in front of the service.
    pub fn needs_proxy(&self) -> bool {
        self.faults.iter().any(|(_, f)| f.is_http())
    }
}

impl Plan {
    /// Adds a submission, returning its index.
    pub fn submit(&mut self, s: Submission) -> usize {
        self.submissions.push(s);
        self.submissions.len() - 1
    }

    /// Adds a chain of one submission.
    pub fn single(&mut self, s: Submission, start: Duration, group: Option<usize>) -> usize {
        let i = self.submit(s);
        self.chains.push(Chain {
            start,
            group,
            gap: Duration::ZERO,
            steps: vec![i],
        });
        i
    }
}

/// Runs `plan` and returns its history (load phase only).
pub async fn run(plan: Plan, deployment: &mut Deployment, client: &Arc<ApiClient>, progress: &ProgressBar) -> History {
    let urls = Arc::new(deployment.urls());
    prepare_sessions(&plan, &urls, client).await;
    let t0 = Instant::now();
    let unseen = Arc::new(deployment.unseen());
    let submissions = Arc::new(plan.submissions);
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut group_sizes: HashMap<usize, usize> = HashMap::new();
    for chain in &plan.chains {
        if let Some(g) = chain.group {
            *group_sizes.entry(g).or_default() += 1;
        }
    }
    let barriers: BTreeMap<usize, Arc<Barrier>> = group_sizes
        .into_iter()
        .map(|(g, n)| (g, Arc::new(Barrier::new(n))))
        .collect();

    let window = plan.window;
    let tasks: Vec<_> = plan
        .chains
        .into_iter()
        .map(|chain| {
            let ctx = ChainCtx {
                t0,
                window,
                urls: urls.clone(),
                unseen: unseen.clone(),
                submissions: submissions.clone(),
                events: events.clone(),
                client: client.clone(),
                barrier: chain.group.and_then(|g| barriers.get(&g).cloned()),
                progress: progress.clone(),
            };
            tokio::spawn(run_chain(chain, ctx))
        })
        .collect();

    let mut faults = Vec::new();
    let mut healed_at = None;
    let schedule = async {
        for (at, fault) in plan.faults {
            tokio::time::sleep_until(t0 + at).await;
            let at_us = micros(t0.elapsed());
            if let Err(e) = deployment.apply(fault).await {
                tracing::warn!(?fault, error = %e, "fault injection failed");
            }
            if fault == Fault::Heal {
                healed_at = Some(micros(t0.elapsed()));
            }
            faults.push(FaultRecord { at_us, fault });
        }
    };
    let clients = futures::future::join_all(tasks);
    let ((), _) = tokio::join!(schedule, clients);

    let events = std::mem::take(&mut *events.lock().unwrap_or_else(|p| p.into_inner()));
    History {
        submissions: Arc::try_unwrap(submissions).unwrap_or_else(|s| (*s).clone()),
        events,
        faults,
        healed_at_us: healed_at,
        tenants: client
            .contract()
            .principals
            .tenants
            .iter()
            .map(crate::contract::template::text_of)
            .collect(),
        users: client
            .contract()
            .principals
            .users
            .iter()
            .map(crate::contract::template::text_of)
            .collect(),
        t0: Some(t0),
    }
}

/// Every client's session on the replica it starts on, opened before the
/// load (a failure here shows again, recorded, on the first request).
async fn prepare_sessions(plan: &Plan, urls: &[String], client: &ApiClient) {
    use futures::StreamExt;
    let mut sessions = std::collections::BTreeSet::new();
    for chain in &plan.chains {
        if let Some(&first) = chain.steps.first() {
            let s = &plan.submissions[first];
            sessions.insert((s.client, s.tenant, s.user, s.replica % urls.len().max(1)));
        }
    }
    futures::stream::iter(sessions)
        .for_each_concurrent(32, |(c, tenant, user, replica)| async move {
            let who = Who {
                client: c,
                tenant,
                user,
            };
            if let Some(base) = urls.get(replica) {
                let _ = client.prepare(base, who).await;
            }
        })
        .await;
}

struct ChainCtx {
    t0: Instant,
    window: Duration,
    urls: Arc<Vec<String>>,
    /// Per replica, the answers its fault proxy kept from the clients.
    unseen: Arc<Vec<Unseen>>,
    submissions: Arc<Vec<Submission>>,
    events: Arc<Mutex<Vec<Event>>>,
    client: Arc<ApiClient>,
    barrier: Option<Arc<Barrier>>,
    progress: ProgressBar,
}

async fn run_chain(chain: Chain, ctx: ChainCtx) {
    tokio::time::sleep_until(ctx.t0 + chain.start).await;
    if let Some(barrier) = &ctx.barrier {
        barrier.wait().await;
    }
    for (n, &i) in chain.steps.iter().enumerate() {
        if n > 0 {
            if ctx.t0.elapsed() >= ctx.window {
                break;
            }
            tokio::time::sleep(chain.gap).await;
        }
        let attempts = send(i, &ctx.submissions[i], Phase::Load, &ctx).await;
        ctx.events.lock().unwrap_or_else(|p| p.into_inner()).extend(attempts);
        ctx.progress.inc(1);
    }
}

/// Sends one submission with its retries; returns its attempts.
async fn send(index: usize, s: &Submission, phase: Phase, ctx: &ChainCtx) -> Vec<Event> {
    let policy: RetryPolicy = s.retry;
    let first = Instant::now();
    let mut events = Vec::new();
    let mut backoff = policy.backoff;
    for attempt in 1..=policy.attempts {
        let hop = if policy.same_replica { 0 } else { attempt as usize - 1 };
        let replica = (s.replica + hop) % ctx.urls.len();
        let proxy = ctx.unseen.get(replica);
        let tag = proxy.map(|_| (attempt, TAGS.fetch_add(1, Ordering::Relaxed)));
        let request = CreateRequest {
            who: Who {
                client: s.client,
                tenant: s.tenant,
                user: s.user,
            },
            key: s.key.as_deref(),
            form: &s.form,
            tag,
            wording: s.wording,
        };
        let invoke_us = micros(ctx.t0.elapsed());
        let outcome = ctx
            .client
            .create(&ctx.urls[replica], &request, policy.timeout * attempt)
            .await;
        let return_us = micros(ctx.t0.elapsed());
        let unseen = match (&outcome, proxy, tag) {
            (Outcome::Timeout | Outcome::Transport { .. }, Some(proxy), Some((_, tag))) => proxy
                .take(tag)
                .map(|a| classify(ctx.client.contract(), a.status, &a.headers, &a.body)),
            _ => None,
        };
        let retry = outcome.is_retryable();
        events.push(Event {
            submission: index,
            attempt,
            phase,
            replica,
            invoke_us,
            return_us,
            outcome,
            unseen,
        });
        if !retry || first.elapsed() + backoff >= policy.give_up_after {
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
    events
}

/// After the run: one more request per keyed scope, with the scope's first
/// payload, to see whether any key is left unusable. Returns the events.
pub async fn probe(
    history: &History,
    deployment: &Deployment,
    client: &Arc<ApiClient>,
    timeout: Duration,
) -> Vec<Event> {
    let mut firsts: BTreeMap<(usize, usize, String), usize> = BTreeMap::new();
    for i in 0..history.submissions.len() {
        // A malformed submission cannot stand for its key's payload.
        if let Some(scope) = history.scope_of(i)
            && history.submissions[i].wording != Wording::Malformed
            && history.events.iter().any(|e| e.submission == i)
        {
            firsts.entry(scope).or_insert(i);
        }
    }
    let t0 = history.t0.unwrap_or_else(Instant::now);
    let ctx = Arc::new(ChainCtx {
        t0,
        window: Duration::MAX,
        // Past any fault proxy: a probe asks the service itself.
        urls: Arc::new(deployment.direct_urls()),
        unseen: Arc::new(Vec::new()),
        submissions: Arc::new(history.submissions.clone()),
        events: Arc::new(Mutex::new(Vec::new())),
        client: client.clone(),
        barrier: None,
        progress: ProgressBar::hidden(),
    });
    let single = RetryPolicy {
        attempts: 1,
        timeout,
        ..RetryPolicy::default()
    };
    let probes = futures::stream::iter(firsts.into_values().map(|i| {
        let ctx = ctx.clone();
        async move {
            let mut s = ctx.submissions[i].clone();
            s.retry = single;
            s.replica = 0;
            s.wording = Wording::Plain;
            send(i, &s, Phase::Probe, &ctx).await
        }
    }));
    use futures::StreamExt;
    probes
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect()
}
