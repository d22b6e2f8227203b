//! Input the stores could not keep as sent is refused alike on both,
//! before any store call: NUL characters, numbers a double or 64-bit
//! integer cannot hold, oversized fields; list pages are bounded in bytes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use idemproof_service::domain::agent::{MAX_CONFIG_BYTES, MAX_SYSTEM_PROMPT_CHARS, MAX_WIDGET_CONFIG_BYTES};
use idemproof_service::domain::deployment::MAX_SETTINGS_BYTES;
use idemproof_service::store::PageBound;
use idemproof_testkit::app::{Backend, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Both =>
        nul_in_any_text_or_config_is_422_and_writes_nothing,
        numbers_come_back_as_sent_or_are_refused,
        field_sizes_are_bounded,
        list_pages_are_bounded_in_bytes,
        deployment_settings_refuse_nul_sizes_and_inexact_numbers,
        deployment_list_pages_are_bounded_in_bytes,
        the_store_stops_reading_at_the_byte_bound,
    ]
}

/// POSTs raw JSON text (so numbers keep the exact spelling given).
async fn post_text(app: &TestApp, key: Option<&str>, body: &str) -> idemproof_testkit::app::Reply {
    let mut request = app
        .client
        .post(format!("{}/api/v1/agents?organization_id=1", app.base))
        .bearer_auth(app.token(1, &[1]))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    app.send(request).await
}

async fn nul_in_any_text_or_config_is_422_and_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let bodies = [
        ("name", r#"{"name": "a\u0000b"}"#),
        ("description", r#"{"name": "a", "description": "\u0000"}"#),
        ("system_prompt", r#"{"name": "a", "system_prompt": "be \u0000 nice"}"#),
        ("agent_type", r#"{"name": "a", "agent_type": "x\u0000"}"#),
        ("industry", r#"{"name": "a", "industry": "\u0000"}"#),
        ("config", r#"{"name": "a", "config": {"k\u0000": 1}}"#),
        ("config", r#"{"name": "a", "config": {"k": [{"v": "\u0000"}]}}"#),
        (
            "widget_config",
            r#"{"name": "a", "widget_config": {"color": "\u0000"}}"#,
        ),
    ];
    for (i, (field, body)) in bodies.iter().enumerate() {
        let key = format!("nul-{i}");
        let reply = post_text(&app, Some(&key), body).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply:?}");
        assert_eq!(reply.code(), "validation_failed");
        assert_eq!(reply.body["errors"][0]["field"], *field, "{body}");
    }
    assert!(app.all_agents(1).await.is_empty());
    if let Some(keys) = app.rows("idempotency_keys").await {
        assert_eq!(keys, 0, "a refused request claimed its key");
    }
    // A non-NUL control character is just text, on both stores.
    let ok = post_text(&app, None, r#"{"name": "tab\there", "config": {"k": "\u0001"}}"#).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{ok:?}");
}

/// The raw text of the agent's `config` as the server sent it.
async fn config_text(app: &TestApp, id: i64) -> String {
    let url = format!("{}/api/v1/agents/{id}?organization_id=1", app.base);
    let text = app
        .client
        .get(url)
        .bearer_auth(app.token(1, &[1]))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    let start = text.find("\"config\":").expect("a config field") + "\"config\":".len();
    let end = start + text[start..].find('}').expect("end of config") + 1;
    text[start..end].to_owned()
}

async fn numbers_come_back_as_sent_or_are_refused(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    // Integers within 64 bits come back digit for digit, from the store.
    let exact = r#"{"max":18446744073709551615,"min":-9223372036854775808,"zero":0,"neg":-1}"#;
    let created = post_text(&app, None, &format!(r#"{{"name": "n", "config": {exact}}}"#)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let stored: Value = serde_json::from_str(&config_text(&app, created.agent_id()).await).expect("json");
    let sent: Value = serde_json::from_str(exact).expect("json");
    for (k, v) in sent.as_object().expect("object") {
        assert_eq!(stored[k].to_string(), v.to_string(), "{k}");
    }
    // Doubles come back as the same double.
    let doubles = [
        "1.5",
        "0.1",
        "-2.5e-300",
        "1.7976931348623157e308",
        "0.30000000000000004",
        "123.456e3",
    ];
    for d in doubles {
        let created = post_text(&app, None, &format!(r#"{{"name": "d", "config": {{"x": {d}}}}}"#)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{d}: {created:?}");
        let stored: Value = serde_json::from_str(&config_text(&app, created.agent_id()).await).expect("json");
        let want: f64 = d.parse().expect("f64");
        assert_eq!(stored["x"].as_f64(), Some(want), "{d}");
    }
    let before = app.all_agents(1).await.len();
    // Numbers that would change are refused, naming where they are.
    for (number, pointer) in [
        ("18446744073709551616", "/config/x"),
        ("-9223372036854775809", "/config/x"),
        ("100000000000000000000000", "/config/x"),
        ("0.1000000000000000000001", "/config/x"),
        ("1e-400", "/config/x"),
    ] {
        let body = format!(r#"{{"name": "big", "config": {{"x": {number}}}}}"#);
        let reply = post_text(&app, Some("big-number"), &body).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{number}: {reply:?}");
        assert_eq!(reply.body["errors"][0]["field"], "config");
        let message = reply.body["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains(number) && message.contains(pointer), "{message}");
    }
    let nested = r#"{"name": "w", "widget_config": {"a": [1, {"b": 36893488147419103232}]}}"#;
    let reply = post_text(&app, None, nested).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["errors"][0]["field"], "widget_config");
    assert_eq!(app.all_agents(1).await.len(), before, "a refused number wrote an agent");
    // The key of the refused requests is still free.
    let ok = post_text(&app, Some("big-number"), r#"{"name": "fits", "config": {"x": 1}}"#).await;
    assert_eq!(ok.status, StatusCode::CREATED);
}

async fn field_sizes_are_bounded(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| c.max_body_bytes = 4 << 20).await;
    let fill = |bytes: usize| json!({"k": "v".repeat(bytes - r#"{"k":""}"#.len())});
    let over = [
        (
            "system_prompt",
            json!({"name": "a", "system_prompt": "p".repeat(MAX_SYSTEM_PROMPT_CHARS + 1)}),
        ),
        ("config", json!({"name": "a", "config": fill(MAX_CONFIG_BYTES + 1)})),
        (
            "widget_config",
            json!({"name": "a", "widget_config": fill(MAX_WIDGET_CONFIG_BYTES + 1)}),
        ),
    ];
    for (field, body) in over {
        let reply = app.create(1, 1, None, &body).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(reply.body["errors"][0]["field"], field);
    }
    assert!(app.all_agents(1).await.is_empty());
    let at_limits = json!({
        "name": "a",
        "system_prompt": "é".repeat(MAX_SYSTEM_PROMPT_CHARS),
        "config": fill(MAX_CONFIG_BYTES),
        "widget_config": fill(MAX_WIDGET_CONFIG_BYTES),
    });
    assert_eq!(app.create(1, 1, None, &at_limits).await.status, StatusCode::CREATED);
}

/// Follows `path`'s pages (`field` holds the items) with `token`,
/// checking each page against `budget`; every id, in order, and the
/// number of pages.
async fn read_pages(app: &TestApp, path: &str, field: &str, budget: usize) -> (Vec<i64>, usize) {
    let token = app.token(1, &[1]);
    let (mut seen, mut cursor, mut pages) = (Vec::new(), String::new(), 0);
    // Bounded: at most one page per resource, plus the last.
    for _ in 0..=64 {
        let url = format!("{}{path}&limit=500&cursor={cursor}", app.base);
        let reply = app.send(app.client.get(url).bearer_auth(&token)).await;
        assert_eq!(reply.status, StatusCode::OK);
        let items = reply.body["data"][field].as_array().cloned().unwrap_or_default();
        let bytes: usize = items.iter().map(|a| a.to_string().len() + 1).sum();
        assert!(!items.is_empty());
        assert!(items.len() == 1 || bytes <= budget, "page of {bytes} bytes");
        seen.extend(items.iter().map(|a| a["id"].as_i64().expect("id")));
        pages += 1;
        match reply.body["data"]["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return (seen, pages),
        }
    }
    panic!("{path}: more pages than resources");
}

async fn list_pages_are_bounded_in_bytes(backend: Backend) {
    const BUDGET: usize = 8_192;
    let app = TestApp::spawn(&backend, |c| c.list_page_max_bytes = BUDGET).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let prompt = "p".repeat(1_500 + 100 * i);
        let reply = app
            .create(1, 1, None, &json!({"name": format!("a{i}"), "system_prompt": prompt}))
            .await;
        ids.push(reply.agent_id());
    }
    // A lone agent over the budget still gets a page of its own.
    let huge = app
        .create(
            1,
            1,
            None,
            &json!({"name": "huge", "system_prompt": "h".repeat(3 * BUDGET)}),
        )
        .await;
    ids.push(huge.agent_id());
    let (seen, pages) = read_pages(&app, "/api/v1/agents?organization_id=1", "agents", BUDGET).await;
    assert_eq!(seen, ids, "every agent exactly once, in order");
    assert!(pages > 2, "the budget split the list");
}

async fn deployment_settings_refuse_nul_sizes_and_inexact_numbers(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let agent = app.create(1, 1, None, &json!({"name": "a"})).await.agent_id();
    let keys_before = app.rows("idempotency_keys").await;
    let path = format!("{}/api/v1/agents/{agent}/deployments?organization_id=1", app.base);
    let post = |body: String, key: &str| {
        app.client
            .post(&path)
            .bearer_auth(app.token(1, &[1]))
            .header("content-type", "application/json")
            .header("idempotency-key", format!("\"{key}\""))
            .body(body)
    };
    let fill = |bytes: usize| format!(r#"{{"k": "{}"}}"#, "v".repeat(bytes - r#"{"k":""}"#.len()));
    let refused = [
        r#"{"channel": "web", "settings": {"k": "\u0000"}}"#.to_owned(),
        r#"{"channel": "web", "settings": {"k\u0000": 1}}"#.to_owned(),
        r#"{"channel": "web", "settings": {"a": [{"b": "x\u0000"}]}}"#.to_owned(),
        format!(r#"{{"channel": "web", "settings": {}}}"#, fill(MAX_SETTINGS_BYTES + 1)),
        r#"{"channel": "web", "settings": {"n": 18446744073709551616}}"#.to_owned(),
        r#"{"channel": "web", "settings": {"n": 1e-400}}"#.to_owned(),
    ];
    for body in &refused {
        let reply = app.send(post(body.clone(), "refused")).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply:?}");
        assert_eq!(reply.code(), "validation_failed");
        assert_eq!(reply.body["errors"][0]["field"], "settings", "{body}");
    }
    // A NUL in the channel names no channel.
    let reply = app
        .send(post(r#"{"channel": "web\u0000"}"#.to_owned(), "refused"))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["errors"][0]["field"], "channel");
    assert!(app.all_deployments(1, agent).await.is_empty());
    assert_eq!(
        app.rows("idempotency_keys").await,
        keys_before,
        "a refused request claimed its key"
    );
    // At the bound, and with the largest 64-bit integer, it is stored as sent.
    let at_bound = format!(r#"{{"channel": "web", "settings": {}}}"#, fill(MAX_SETTINGS_BYTES));
    assert_eq!(app.send(post(at_bound, "refused")).await.status, StatusCode::CREATED);
    let exact = app
        .send(post(
            r#"{"channel": "api", "settings": {"n": 18446744073709551615}}"#.to_owned(),
            "exact",
        ))
        .await;
    assert_eq!(exact.status, StatusCode::CREATED, "{exact:?}");
    let listed = app.all_deployments(1, agent).await;
    let stored = listed
        .iter()
        .find(|d| d["channel"] == "api")
        .expect("the exact deployment");
    assert_eq!(stored["settings"]["n"].to_string(), "18446744073709551615");
}

async fn deployment_list_pages_are_bounded_in_bytes(backend: Backend) {
    const BUDGET: usize = 4_096;
    let app = TestApp::spawn(&backend, |c| c.list_page_max_bytes = BUDGET).await;
    let agent = app.create(1, 1, None, &json!({"name": "a"})).await.agent_id();
    let mut ids = Vec::new();
    for i in 0..10 {
        let settings = json!({"blob": "s".repeat(700 + 100 * i)});
        let reply = app
            .deploy(1, 1, agent, None, &json!({"channel": "web", "settings": settings}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        ids.push(reply.deployment_id());
    }
    let path = format!("/api/v1/agents/{agent}/deployments?organization_id=1");
    let (seen, pages) = read_pages(&app, &path, "deployments", BUDGET).await;
    assert_eq!(seen, ids, "every deployment exactly once, in order");
    assert!(pages > 2, "the budget split the list");
}

/// The bound is the store's, not only the handler's: a listing asked for
/// 500 rows within a few kilobytes gets back (from Postgres: over the
/// wire) only the rows that fit, and knows that more follow.
async fn the_store_stops_reading_at_the_byte_bound(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let prompt = "p".repeat(2_000);
    for i in 0..8 {
        app.create(1, 1, None, &json!({"name": format!("a{i}"), "system_prompt": prompt}))
            .await;
    }
    let list = |rows, bytes| app.stores.agents.list(1, None, None, PageBound { rows, bytes });
    let everything = list(500, usize::MAX).await.expect("list");
    assert_eq!((everything.items.len(), everything.more), (8, false));
    let one_size = serde_json::to_string(&everything.items[0]).expect("json").len() + 1;
    let fitting = list(500, 3 * one_size).await.expect("list");
    assert!(
        (2..=3).contains(&fitting.items.len()) && fitting.more,
        "{} rows within three rows' bytes (more: {})",
        fitting.items.len(),
        fitting.more
    );
    assert_eq!(fitting.items[..], everything.items[..fitting.items.len()]);
    let first = list(500, 1).await.expect("list");
    assert_eq!((first.items.len(), first.more), (1, true), "the first row always comes");
    let by_rows = list(8, usize::MAX).await.expect("list");
    assert_eq!(
        (by_rows.items.len(), by_rows.more),
        (8, false),
        "exactly the rows there are"
    );
}
