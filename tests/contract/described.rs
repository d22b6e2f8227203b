//! Real answers against the published document, field by field: every
//! field an answer has is a property of its schema, with the schema's
//! type (and value, where the schema lists the values), and every
//! property the schema requires is there. schemathesis checks answers
//! against the schemas too, but an emptied schema (`{}`) accepts
//! anything; here a schema that says nothing of a field is a failure.
//! And the other way round: what the document's patterns allow in a
//! request is what the service accepts. The document does not depend on
//! the store, so this runs in memory.

use idemproof_testkit::app::{Backend, READER, Reply, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};
use serde_json::{Value, json};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::MemoryOnly =>
        every_answer_is_described_field_by_field,
        the_published_key_pattern_is_the_one_the_service_applies,
        the_published_key_header_pattern_is_the_one_the_service_applies,
        the_published_name_pattern_is_the_one_the_service_applies,
    ]
}

async fn every_answer_is_described_field_by_field(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let document = document(&app).await;
    let get = |path: String| {
        app.client
            .get(format!("{}{path}", app.base))
            .bearer_auth(app.token(READER, &[1]))
    };

    let created = app.create(1, 1, Some("k"), &json!({"name": "Bot"})).await;
    let agent = created.agent_id();
    let replayed = app.create(1, 1, Some("k"), &json!({"name": "Bot"})).await;
    let deployed = app
        .deploy(
            1,
            1,
            agent,
            Some("d"),
            &json!({"channel": "slack", "settings": {"workspace": "acme"}}),
        )
        .await;
    let deployment = deployed.deployment_id();
    let answers: Vec<(&str, &str, Reply)> = vec![
        ("post", "/api/v1/agents", created),
        ("post", "/api/v1/agents", replayed),
        (
            "post",
            "/api/v1/agents",
            app.create(1, 1, Some("bad"), &json!({"name": ""})).await,
        ),
        (
            "post",
            "/api/v1/agents",
            app.create(1, 1, Some("k"), &json!({"name": "Other"})).await,
        ),
        ("post", "/api/v1/agents/{agent_id}/deployments", deployed),
        (
            "get",
            "/api/v1/agents/{id}",
            app.send(get(format!("/api/v1/agents/{agent}?organization_id=1"))).await,
        ),
        (
            "get",
            "/api/v1/agents/{id}",
            app.send(get(format!("/api/v1/agents/{}?organization_id=1", agent + 1000)))
                .await,
        ),
        (
            "get",
            "/api/v1/agents",
            app.send(get("/api/v1/agents?organization_id=1&limit=1".into())).await,
        ),
        (
            "get",
            "/api/v1/agents",
            app.send(get("/api/v1/agents?organization_id=1&limit=0".into())).await,
        ),
        (
            "get",
            "/api/v1/agents/{agent_id}/deployments/{id}",
            app.send(get(format!(
                "/api/v1/agents/{agent}/deployments/{deployment}?organization_id=1"
            )))
            .await,
        ),
        (
            "get",
            "/api/v1/agents/{agent_id}/deployments",
            app.send(get(format!("/api/v1/agents/{agent}/deployments?organization_id=1")))
                .await,
        ),
        (
            "get",
            "/healthz",
            app.send(app.client.get(format!("{}/healthz", app.base))).await,
        ),
        ("get", "/readyz", app.readyz().await),
        (
            "get",
            "/api/v1/agents",
            app.send(app.client.get(format!("{}/api/v1/agents?organization_id=1", app.base)))
                .await,
        ),
    ];
    let mut statuses = std::collections::BTreeSet::new();
    for (method, path, reply) in &answers {
        statuses.insert(reply.status.as_u16());
        let schema = response_schema(&document, method, path, reply.status.as_u16())
            .unwrap_or_else(|| panic!("{method} {path}: no schema for {}", reply.status));
        if let Err(why) = described(&document, schema, &reply.body, "") {
            panic!("{method} {path} {}: {why}\nanswer: {}", reply.status, reply.body);
        }
        for (name, value) in required_headers(&document, method, path, reply.status.as_u16()) {
            let sent = reply
                .header(&name)
                .unwrap_or_else(|| panic!("{method} {path} {}: no {name} header", reply.status));
            if let Some(pattern) = value["pattern"].as_str() {
                let pattern = regex::Regex::new(pattern).expect("the pattern is a regex");
                assert!(
                    pattern.is_match(sent),
                    "{method} {path}: {name} {sent:?} is not {pattern}"
                );
            }
        }
    }
    // The headers a creation is published with, which the loop above
    // checked against real answers.
    let created_headers: Vec<String> = required_headers(&document, "post", "/api/v1/agents", 201)
        .into_iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    assert!(
        created_headers.iter().any(|name| name == "location"),
        "{created_headers:?}"
    );
    let replayed_headers: Vec<String> = required_headers(&document, "post", "/api/v1/agents", 200)
        .into_iter()
        .map(|(name, value)| format!("{} {}", name.to_ascii_lowercase(), value["enum"]))
        .collect();
    assert!(
        replayed_headers.contains(&r#"idempotent-replayed ["true"]"#.to_owned()),
        "{replayed_headers:?}"
    );
    // Successes, replays, problems with and without field errors, a 401
    // and a 404: not just the happy path.
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        [200, 201, 400, 401, 404, 422],
        "the answers cover the kinds of response"
    );
}

/// The published document.
async fn document(app: &TestApp) -> Value {
    app.client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("the document is JSON")
}

/// The schema of the `status` answer of `method path`.
fn response_schema<'a>(document: &'a Value, method: &str, path: &str, status: u16) -> Option<&'a Value> {
    let response = resolve(
        document,
        &document["paths"][path][method]["responses"][status.to_string()],
    );
    let content = response["content"].as_object()?;
    content.values().next().map(|media| &media["schema"])
}

/// The headers the `status` answer of `method path` is published with
/// as required, with their (resolved) schemas.
fn required_headers(document: &Value, method: &str, path: &str, status: u16) -> Vec<(String, Value)> {
    let response = resolve(
        document,
        &document["paths"][path][method]["responses"][status.to_string()],
    );
    let Some(headers) = response["headers"].as_object() else {
        return Vec::new();
    };
    headers
        .iter()
        .map(|(name, header)| (name, resolve(document, header)))
        .filter(|(_, header)| header["required"] == json!(true))
        .map(|(name, header)| (name.clone(), resolve(document, &header["schema"]).clone()))
        .collect()
}

/// `schema` itself, or what its `$ref` names.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            resolve(document, document.pointer(pointer).expect("the reference resolves"))
        }
        None => schema,
    }
}

/// Whether `schema` describes `value` (at `at`) field by field.
fn described(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(document, schema);
    if let Some(alternatives) = schema["anyOf"].as_array().or(schema["oneOf"].as_array()) {
        let why: Vec<String> = alternatives
            .iter()
            .filter_map(|alternative| described(document, alternative, value, at).err())
            .collect();
        return if why.len() < alternatives.len() {
            Ok(())
        } else {
            Err(format!("{at}: no alternative fits ({})", why.join("; ")))
        };
    }
    // `allOf` parts describe one value together: their properties merge.
    let parts: Vec<&Value> = match schema["allOf"].as_array() {
        Some(all) => all.iter().map(|part| resolve(document, part)).collect(),
        None => vec![schema],
    };
    let types: Vec<&str> = parts
        .iter()
        .flat_map(|part| match &part["type"] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        })
        .collect();
    if types.is_empty() {
        return Err(format!("{at}: the schema names no type"));
    }
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if !types
        .iter()
        .any(|t| *t == kind || (*t == "number" && kind == "integer"))
    {
        return Err(format!("{at}: a {kind}, the schema says {types:?}"));
    }
    for part in &parts {
        if let Some(values) = part["enum"].as_array()
            && !values.contains(value)
        {
            return Err(format!("{at}: {value} is not one of {values:?}"));
        }
    }
    match value {
        Value::Object(fields) => {
            for name in parts
                .iter()
                .flat_map(|part| part["required"].as_array().into_iter().flatten())
            {
                let name = name.as_str().expect("a required name");
                if !fields.contains_key(name) {
                    return Err(format!("{at}: the required {name} is missing"));
                }
            }
            for (name, field) in fields {
                let at = format!("{at}.{name}");
                match parts.iter().find_map(|part| part["properties"].get(name)) {
                    Some(property) => described(document, property, field, &at)?,
                    // A free-form object (stored settings) names the
                    // schema of its other fields; an object that names
                    // neither describes nothing.
                    None => match parts.iter().find_map(|part| part.get("additionalProperties")) {
                        Some(extra @ Value::Object(_)) => described(document, extra, field, &at)?,
                        _ => return Err(format!("{at}: the schema does not describe it")),
                    },
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            let item = parts
                .iter()
                .find_map(|part| part.get("items"))
                .ok_or_else(|| format!("{at}: the schema does not describe the items"))?;
            items
                .iter()
                .enumerate()
                .try_for_each(|(i, element)| described(document, item, element, &format!("{at}[{i}]")))
        }
        _ => Ok(()),
    }
}

/// The body's `idempotency_key` pattern, read from the served document,
/// accepts exactly the keys the service accepts there.
async fn the_published_key_pattern_is_the_one_the_service_applies(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let document = document(&app).await;
    let body = resolve(&document, &document["components"]["schemas"]["CreateAgentBody"]);
    let pattern = pattern_of(&body["properties"]["idempotency_key"], "the body's key");
    let keys = [
        "k".to_owned(),
        "~!#-key_1".to_owned(),
        "x".repeat(255),
        "x".repeat(256),
        "a b".to_owned(),
        "tab\tbed".to_owned(),
        "é".to_owned(),
        "\u{7f}".to_owned(),
    ];
    for key in &keys {
        let reply = app
            .create(1, 1, None, &json!({"name": "Bot", "idempotency_key": key}))
            .await;
        assert_agrees(&pattern, "key", key, &reply);
    }
}

/// The `Idempotency-Key` header's pattern, read from the served document,
/// accepts exactly the header values the service accepts: sf-strings and
/// bare tokens, each at and past the longest key.
async fn the_published_key_header_pattern_is_the_one_the_service_applies(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let document = document(&app).await;
    let parameters = document["paths"]["/api/v1/agents"]["post"]["parameters"]
        .as_array()
        .expect("the creation has parameters");
    let header = parameters
        .iter()
        .map(|p| resolve(&document, p))
        .find(|p| {
            p["in"] == "header"
                && p["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("idempotency-key"))
        })
        .expect("the Idempotency-Key header is published");
    let pattern = pattern_of(&header["schema"], "the header");
    let longest = idemproof_models::MAX_KEY_LEN;
    let values = [
        "k".to_owned(),
        "\"k\"".to_owned(),
        "\"a\\\"b\"".to_owned(),
        "x".repeat(longest),
        "x".repeat(longest + 1),
        format!("\"{}\"", "x".repeat(longest)),
        format!("\"{}\"", "x".repeat(longest + 1)),
        "\"".to_owned(),
        "\"\"".to_owned(),
        "a b".to_owned(),
    ];
    for value in &values {
        let request = app
            .client
            .post(format!("{}/api/v1/agents?organization_id=1", app.base))
            .bearer_auth(app.token(1, &[1]))
            .header("Idempotency-Key", value)
            .json(&json!({"name": "Bot"}));
        let reply = app.send(request).await;
        assert_agrees(&pattern, "header", value, &reply);
    }
}

/// The body's `name` pattern, read from the served document, accepts
/// exactly the names the service accepts: counted in characters once
/// trimmed, at and past the longest, no NUL.
async fn the_published_name_pattern_is_the_one_the_service_applies(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let document = document(&app).await;
    let body = resolve(&document, &document["components"]["schemas"]["CreateAgentBody"]);
    let pattern = pattern_of(&body["properties"]["name"], "the body's name");
    let longest = idemproof_service::domain::agent::MAX_NAME_CHARS;
    let names = [
        "Bot".to_owned(),
        "x".to_owned(),
        "é".repeat(longest),
        "é".repeat(longest + 1),
        format!("  {}\t", "x".repeat(longest)),
        format!(" {} ", "x".repeat(longest + 1)),
        "  two words ".to_owned(),
        "   ".to_owned(),
        String::new(),
        "a\u{0}b".to_owned(),
    ];
    for name in &names {
        let reply = app.create(1, 1, None, &json!({"name": name})).await;
        assert_agrees(&pattern, "name", name, &reply);
    }
}

/// The `pattern` of `schema` (what it describes: `what`), compiled.
fn pattern_of(schema: &Value, what: &str) -> regex::Regex {
    let pattern = schema["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{what} has a pattern"));
    regex::Regex::new(pattern).expect("the pattern is a regex")
}

/// The service accepted `value` (a `what`) exactly when the document's
/// `pattern` matches it, and refused it with a 4xx otherwise.
fn assert_agrees(pattern: &regex::Regex, what: &str, value: &str, reply: &Reply) {
    let accepted = reply.status.is_success();
    assert!(
        accepted || reply.status.is_client_error(),
        "{what} {value:?}: {reply:?}"
    );
    let matches = pattern.is_match(value);
    assert_eq!(
        matches,
        accepted,
        "{what} {value:?} ({} chars): the document says {}, the service answered {}",
        value.chars().count(),
        if matches { "valid" } else { "invalid" },
        reply.status
    );
}
