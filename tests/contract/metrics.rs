//! `/metrics` for operators: what a scrape holds after known traffic
//! (latency per route and status, requests in flight, a duplicate's wait,
//! the reaper's progress, the pool on Postgres, creations refused at the
//! gate by why), and that the scrape
//! passes `promtool check metrics` (Prometheus' own lint).

use std::time::Duration;

use idemproof_service::clock::Clock;
use idemproof_testkit::app::{Backend, TestApp};
use idemproof_testkit::runner::{Backends, Case};
use idemproof_testkit::{cases, tools};
use reqwest::StatusCode;
use serde_json::json;

use crate::lifecycle::claim_like_an_original;

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Stores =>
        metrics_answer_operators_and_pass_promtool,
        a_creation_refused_at_the_gate_counts_by_why,
        the_reaper_reports_its_progress,
    ]
}

async fn scrape(app: &TestApp) -> String {
    let base = app.metrics_base.as_deref().expect("a metrics listener");
    let reply = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape /metrics");
    assert_eq!(reply.status(), StatusCode::OK);
    reply.text().await.expect("metrics text")
}

/// `promtool check metrics` on `text`: its complaints, if any.
async fn promtool(text: String) -> Result<(), String> {
    let mut check = tools::command("promtool");
    check.args(["check", "metrics"]);
    let output =
        tokio::task::spawn_blocking(move || tools::run_with_input(check, text.into_bytes(), Duration::from_secs(60)))
            .await
            .expect("promtool ran");
    let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    if output.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {said}", output.status))
    }
}

/// The value of sample `sample` (`name{labels}`, as rendered) in `text`.
fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

async fn metrics_answer_operators_and_pass_promtool(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| c.idempotency_wait = Duration::from_millis(200)).await;
    let body = json!({"name": "Bot"});
    assert_eq!(app.create(1, 1, Some("a"), &body).await.status, StatusCode::CREATED);
    assert_eq!(app.create(1, 1, Some("a"), &body).await.status, StatusCode::OK);
    let _ = app.all_agents(1).await;
    let stray = app.send(app.client.get(format!("{}/no/such/route", app.base))).await;
    assert_eq!(stray.status, StatusCode::NOT_FOUND);
    // A duplicate of an original that never finishes: it waits out its
    // 200 ms, then gets 409.
    let (_lease, _new) = claim_like_an_original(&app, "held", &body).await;
    assert_eq!(app.create(1, 1, Some("held"), &body).await.status, StatusCode::CONFLICT);

    let text = scrape(&app).await;
    if let Err(complaints) = promtool(text.clone()).await {
        panic!("promtool check metrics refuses the scrape: {complaints}\n{text}");
    }
    let count = |labels: &str| {
        sample(
            &text,
            &format!("idemproof_http_request_duration_seconds_count{{{labels}}}"),
        )
        .unwrap_or(0.0)
    };
    // Latency per route template and status: a creation, its replay, the
    // conflict, a list, and a request no route matched.
    let agents = r#"method="POST",route="/api/v1/agents""#;
    assert_eq!(count(&format!(r#"{agents},status="201""#)), 1.0, "{text}");
    assert_eq!(count(&format!(r#"{agents},status="200""#)), 1.0, "{text}");
    assert_eq!(count(&format!(r#"{agents},status="409""#)), 1.0, "{text}");
    assert!(
        count(r#"method="GET",route="/api/v1/agents",status="200""#) >= 1.0,
        "{text}"
    );
    assert_eq!(count(r#"method="GET",route="unmatched",status="404""#), 1.0, "{text}");
    assert!(
        text.contains(r#"idemproof_http_request_duration_seconds_bucket{method="POST",route="/api/v1/agents",status="201",le="+Inf"} 1"#),
        "{text}"
    );
    assert_eq!(sample(&text, "idemproof_http_requests_in_flight"), Some(0.0), "{text}");
    // The duplicate's wait, by how it ended.
    assert_eq!(
        sample(&text, r#"idemproof_duplicate_wait_seconds_count{result="gave_up"}"#),
        Some(1.0),
        "{text}"
    );
    let waited = sample(&text, r#"idemproof_duplicate_wait_seconds_sum{result="gave_up"}"#).expect("a sum");
    assert!(waited > 0.0, "{text}");
    // The pool, on Postgres only (the in-memory store has none).
    match backend {
        Backend::Memory => assert!(!text.contains("idemproof_db_pool"), "{text}"),
        _ => {
            let max = f64::from(app.config.database_max_connections);
            assert_eq!(sample(&text, "idemproof_db_pool_connections_max"), Some(max), "{text}");
            let in_use = sample(&text, "idemproof_db_pool_connections_in_use").expect("in use");
            let idle = sample(&text, "idemproof_db_pool_connections_idle").expect("idle");
            assert!(in_use + idle >= 1.0 && in_use + idle <= max, "{text}");
            assert!(sample(&text, "idemproof_db_pool_waiting").is_some(), "{text}");
        }
    }
    // The lint is not vacuous: it refuses a counter without `_total`.
    let broken = "# HELP requests Requests.\n# TYPE requests counter\nrequests 1\n".to_owned();
    assert!(promtool(broken).await.is_err(), "promtool lints what it reads");
}

/// The creation outcomes of the gate's refusals: over the rate limit,
/// and without a token (a read refused there counts as no creation).
async fn a_creation_refused_at_the_gate_counts_by_why(backend: Backend) {
    // One request a minute after a burst of one: the refill cannot
    // interfere however slow the machine.
    let app = TestApp::spawn(&backend, |c| {
        c.rate_limit_per_org = 1;
        c.rate_limit_burst = 1;
    })
    .await;
    let body = json!({"name": "Bot"});
    assert_eq!(app.create(1, 1, None, &body).await.status, StatusCode::CREATED);
    assert_eq!(
        app.create(1, 1, None, &body).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let anonymous = format!("{}/api/v1/agents?organization_id=2", app.base);
    assert_eq!(
        app.send(app.client.post(&anonymous).json(&body)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.send(app.client.get(&anonymous)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let text = scrape(&app).await;
    let outcome = |o: &str| sample(&text, &format!(r#"idemproof_create_requests_total{{outcome="{o}"}}"#));
    assert_eq!(outcome("created"), Some(1.0), "{text}");
    assert_eq!(outcome("rate_limited"), Some(1.0), "{text}");
    assert_eq!(outcome("invalid"), Some(1.0), "{text}");
}

async fn the_reaper_reports_its_progress(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| {
        c.idempotency_ttl = Duration::from_secs(60);
        c.idempotency_reap_interval = Duration::from_millis(20);
    })
    .await;
    let body = json!({"name": "Bot"});
    for key in ["r1", "r2"] {
        assert_eq!(app.create(1, 1, Some(key), &body).await.status, StatusCode::CREATED);
    }
    app.clock.advance(Duration::from_secs(61));
    // The reaper runs on its own; wait (boundedly) for it to get there.
    let mut text = scrape(&app).await;
    for _ in 0..500 {
        if sample(&text, "idemproof_reaper_deleted_keys_total") == Some(2.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = scrape(&app).await;
    }
    assert_eq!(
        sample(&text, "idemproof_reaper_deleted_keys_total"),
        Some(2.0),
        "{text}"
    );
    assert!(
        sample(&text, r#"idemproof_reaper_runs_total{result="ok"}"#).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"idemproof_reaper_runs_total{result="failed"}"#),
        Some(0.0),
        "{text}"
    );
    let last = sample(&text, "idemproof_reaper_last_success_timestamp_seconds").expect("a timestamp");
    let now = app.clock.now().timestamp() as f64;
    assert!(
        (now - 1.0..=now + 1.0).contains(&last),
        "the last pass ran at the service's now: {last} vs {now}"
    );
}
