//! The OpenAPI document: served, valid OpenAPI 3.1 (openapi-spec-validator),
//! the same as the one the code generates, describing exactly the routes
//! the router serves; and schemathesis, against the live service on the
//! in-memory store, with every check and phase on (stateful through the
//! document's links), finding nothing. The document does not depend on
//! the store, so these run in memory only.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use idemproof_service::http::openapi;
use idemproof_testkit::app::{Backend, TestApp};
use idemproof_testkit::runner::{Backends, Case};
use idemproof_testkit::{cases, tools};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::MemoryOnly =>
        the_document_is_served_valid_and_generated,
        the_document_and_the_router_have_the_same_routes,
        schemathesis_finds_nothing,
    ]
}

/// Examples schemathesis generates per operation and phase: enough for a
/// few thousand requests, well inside CI's budget (about a minute on two
/// cores). `IDEMPROOF_SCHEMATHESIS_EXAMPLES` and `..._SEED` change them
/// for a longer or another run.
const EXAMPLES: u32 = 150;
const SEED: u64 = 14;

/// The longest a schemathesis run may take before the test fails (it
/// takes under half a minute here; CI has 45 minutes for everything).
const SCHEMATHESIS_LIMIT: Duration = Duration::from_secs(300);

async fn served(app: &TestApp) -> Value {
    let response = app
        .client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status(), StatusCode::OK, "served without a token");
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("the document is JSON")
}

/// `(METHOD, path)` of every operation of `document`.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .map(|method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// `path` with every `{parameter}` replaced by `1`.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| if segment.starts_with('{') { "1" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

async fn the_document_is_served_valid_and_generated(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let document = served(&app).await;
    let generated = serde_json::to_value(openapi::document()).expect("the generated document");
    assert_eq!(
        document, generated,
        "the service serves the document the code generates"
    );
    assert_eq!(document["openapi"], "3.1.0");

    let file = std::env::temp_dir().join(format!(
        "idemproof-openapi-{}-{}.json",
        std::process::id(),
        app.base.rsplit(':').next().unwrap_or("0")
    ));
    std::fs::write(&file, serde_json::to_vec_pretty(&document).expect("json")).expect("write the document");
    let mut validate = tools::command("openapi-spec-validator");
    validate.arg(&file);
    let output = tokio::task::spawn_blocking(move || tools::run(validate, Duration::from_secs(120)))
        .await
        .expect("the validator ran");
    let _ = std::fs::remove_file(&file);
    let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "openapi-spec-validator refuses the document:\n{said}"
    );
    assert!(
        said.contains("OK"),
        "the validator says nothing of the document:\n{said}"
    );
}

async fn the_document_and_the_router_have_the_same_routes(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let document = served(&app).await;
    let documented = operations(&document);
    assert!(documented.len() >= 9, "every operation is there: {documented:?}");

    // Document → router: every operation reaches its route (without a
    // token the API's gate answers 401, the probes answer 200); never the
    // fallback's 404 or a 405.
    for (method, path) in &documented {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let reply = app
            .send(
                app.client
                    .request(method.clone(), format!("{}{}", app.base, concrete(path))),
            )
            .await;
        let expected = if path.starts_with("/api/v1/") {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(reply.status, expected, "{method} {path}: {:?}", reply.body);
    }

    // Router → document, path by path: every other method is 405, and the
    // router's own `Allow` lists exactly the documented methods (HEAD with
    // GET, as axum serves it).
    let paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
    for path in paths {
        let mut allowed: BTreeSet<String> = documented
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(method, _)| method.clone())
            .collect();
        if allowed.contains("GET") {
            allowed.insert("HEAD".into());
        }
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            if allowed.contains(method.as_str()) {
                continue;
            }
            let reply = app
                .send(
                    app.client
                        .request(method.clone(), format!("{}{}", app.base, concrete(path))),
                )
                .await;
            assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(reply.code(), "method_not_allowed");
            let allow: BTreeSet<String> = reply
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: a 405 says what is allowed"))
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            assert_eq!(
                allow, allowed,
                "{method} {path}: the router serves what the document says"
            );
        }
    }

    // And paths the document does not have are the router's 404.
    let unknown = [
        "/",
        "/api",
        "/api/v1",
        "/metrics",
        "/openapi.yaml",
        "/api/v1/deployments",
        "/api/v1/agents/1/x",
        "/api/v1/agents/1/deployments/1/x",
    ];
    for path in unknown {
        let reply = app.send(app.client.get(format!("{}{path}", app.base))).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.body["detail"], "no such route", "{path}");
    }
}

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn schemathesis_finds_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    // Schemathesis leaves out the operation at the document's own URL
    // (`GET /openapi.json`); the tests above check that one.
    let operations = operations(&served(&app).await).len() - 1;
    let examples = setting("IDEMPROOF_SCHEMATHESIS_EXAMPLES", EXAMPLES);
    let seed = setting("IDEMPROOF_SCHEMATHESIS_SEED", SEED);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    // Hypothesis keeps its state in a directory; never in the source tree.
    let state = std::env::temp_dir().join(format!("idemproof-hypothesis-{}", std::process::id()));
    let mut schemathesis = tools::command("schemathesis");
    schemathesis
        .current_dir(&dir)
        .env("HYPOTHESIS_STORAGE_DIRECTORY", &state)
        // A real token of user 1 in organisation 1, signed with the
        // service's secret (schemathesis.toml says why organisation 1).
        .env("IDEMPROOF_TOKEN", app.token(1, &[1]))
        .args(["--config-file", "schemathesis.toml", "--no-color", "run"])
        .arg(format!("{}/openapi.json", app.base))
        .args(["--max-examples", &examples.to_string(), "--seed", &seed.to_string()]);
    let output = tokio::task::spawn_blocking(move || tools::run(schemathesis, SCHEMATHESIS_LIMIT))
        .await
        .expect("schemathesis ran");
    let _ = std::fs::remove_dir_all(&state);
    let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found problems (seed {seed}, {examples} examples; replay with \
         IDEMPROOF_SCHEMATHESIS_SEED={seed}):\n{said}"
    );
    // A run that tested nothing would pass too: it tested every operation,
    // in every phase, and followed links.
    assert!(
        said.contains(&format!("{operations} selected / {operations} total")),
        "every operation is tested:\n{said}"
    );
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(
            said.contains(&format!("✅  {phase}")),
            "the {phase} phase ran and passed:\n{said}"
        );
    }
    let links = said.lines().find_map(|line| {
        line.trim()
            .strip_prefix("API Links:")?
            .split_whitespace()
            .next()?
            .parse::<u32>()
            .ok()
    });
    assert!(links.is_some_and(|n| n > 0), "stateful testing followed links:\n{said}");
}
