//! The target file's fixtures (`[[setup]]`): sent before a scenario,
//! straight to the service, their captures kept for every later template.

use regex::Regex;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;

use super::answer::read_source;
use super::{ApiClient, READER, Who, Wording, encode_body};
use crate::contract::template::{self, Vars, percent_encode, text_of};
use crate::contract::{Setup, SetupPer};

impl ApiClient {
    /// Makes the target file's fixtures on the service at `base`, in the
    /// order the file lists them, replacing those of any earlier
    /// deployment: each entry once per tenant (as its first user) or once
    /// per tenant and user. An answer other than 2xx, or one without a
    /// value to capture, is an error naming the entry.
    pub async fn set_up(&self, base: &str) -> anyhow::Result<()> {
        self.captured.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let principals = &self.contract.principals;
        for (i, setup) in self.contract.setup.iter().enumerate() {
            let users: Vec<Option<usize>> = match setup.per {
                SetupPer::Tenant => vec![None],
                SetupPer::Principal => (0..principals.users.len()).map(Some).collect(),
            };
            for tenant in 0..principals.tenants.len() {
                for &user in &users {
                    let who = Who {
                        client: READER,
                        tenant,
                        user: user.unwrap_or(0),
                    };
                    let got = self.make_fixture(base, setup, who).await.map_err(|e| {
                        anyhow::anyhow!("setup[{i}] for tenant {}: {e:#}", text_of(&principals.tenants[tenant]))
                    })?;
                    let mut captured = self.captured.lock().unwrap_or_else(|p| p.into_inner());
                    let values = captured.entry((tenant, user)).or_default();
                    *values = std::mem::take(values).extend(&got);
                }
            }
        }
        Ok(())
    }

    async fn make_fixture(&self, base: &str, setup: &Setup, who: Who) -> anyhow::Result<Vars> {
        let vars = self.vars(who).set("nonce", self.nonce.clone());
        let path = template::render_str(&setup.path, &vars, percent_encode).map_err(anyhow::Error::msg)?;
        let mut headers = HeaderMap::new();
        let body = match &setup.body {
            Some(body) => {
                let rendered = template::render_value(body, &vars).map_err(anyhow::Error::msg)?;
                let (content_type, bytes) =
                    encode_body(setup.encoding, &rendered, (Wording::Plain, None)).map_err(anyhow::Error::msg)?;
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                bytes
            }
            None => Vec::new(),
        };
        let method = reqwest::Method::from_bytes(setup.method.as_bytes())?;
        let (status, headers, body) = self.exchange(base, method.clone(), &path, headers, body, who).await?;
        let text = String::from_utf8_lossy(&body);
        anyhow::ensure!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {}",
            text.chars().take(300).collect::<String>()
        );
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        let mut got = Vars::new();
        for (name, source) in &setup.capture {
            let regex = source.regex.as_deref().map(Regex::new).transpose()?;
            let value = read_source(source, regex.as_ref(), &headers, json.as_ref())
                .filter(|v| !v.is_null() && !text_of(v).is_empty())
                .ok_or_else(|| anyhow::anyhow!("{method} {path}: no `{name}` in the answer ({status}: {text})"))?;
            got = got.set(name.clone(), value);
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use serde_json::json;

    use super::*;
    use crate::client::CreateRequest;
    use crate::contract::{Contract, Profile};
    use crate::deploy::router::{InProcess, ROUTER_BASE};
    use crate::form::Form;

    /// `POST /shops/{shop}/carts` answers a new cart id in the body and in
    /// `Location`; shop `closed` refuses.
    async fn new_cart(State(next): State<Arc<AtomicU64>>, Path(shop): Path<String>) -> axum::response::Response {
        if shop == "closed" {
            return (StatusCode::FORBIDDEN, "closed").into_response();
        }
        let id = next.fetch_add(1, Ordering::SeqCst);
        (
            StatusCode::CREATED,
            [("location", format!("/shops/{shop}/carts/{id}"))],
            axum::Json(json!({"cart": {"id": id}})),
        )
            .into_response()
    }

    fn contract(tenants: &[&str], setup: Value) -> anyhow::Result<ApiClient> {
        let contract = Contract::builder(Profile::Ietf)
            .tenants(tenants.iter().copied())
            .users(["ann", "bob"])
            .create(
                "POST",
                "/shops/{tenant}/carts/{cart}/items",
                json!({"item": "{name}", "in": "{slot}"}),
            )
            .set("response.id.pointer", "/id")
            .set("setup", setup)
            .build()?;
        let app = axum::Router::new()
            .route("/shops/{shop}/carts", post(new_cart))
            .with_state(Arc::new(AtomicU64::new(1)));
        Ok(ApiClient::with_transport(
            Arc::new(contract),
            "n",
            Arc::new(InProcess::new(app)),
        ))
    }

    fn create_path(client: &ApiClient, tenant: usize, user: usize) -> anyhow::Result<String> {
        let form = Form::new("x".into(), 1);
        let req = CreateRequest {
            who: Who {
                client: 0,
                tenant,
                user,
            },
            key: None,
            form: &form,
            tag: None,
            wording: Wording::Plain,
        };
        let (_, url, _, body) = client.build_create("http://h", &req).map_err(anyhow::Error::msg)?;
        Ok(format!("{} {}", url.path(), String::from_utf8(body)?))
    }

    #[tokio::test]
    async fn fixtures_are_made_per_tenant_or_per_principal_and_fill_later_templates() -> anyhow::Result<()> {
        let cart = json!({"path": "/shops/{tenant}/carts", "capture": {"cart": {"pointer": "/cart/id"}}});
        let slot = json!({
            "path": "/shops/{tenant}/carts", "per": "principal",
            "capture": {"slot": {"header": "Location", "regex": "/carts/(\\d+)$"}},
        });

        let client = contract(&["a", "b"], json!([cart, slot]))?;
        assert!(
            create_path(&client, 0, 0).is_err(),
            "no fixture yet: `{{cart}}` is unset"
        );
        client.set_up(ROUTER_BASE).await?;
        // Entry by entry, tenant by tenant: carts 1 (a) and 2 (b), then the
        // slots 3 to 6 of (a, ann), (a, bob), (b, ann), (b, bob). The
        // header's capture is text.
        assert_eq!(
            create_path(&client, 0, 0)?,
            r#"/shops/a/carts/1/items {"in":"3","item":"x"}"#
        );
        assert_eq!(
            create_path(&client, 0, 1)?,
            r#"/shops/a/carts/1/items {"in":"4","item":"x"}"#
        );
        assert_eq!(
            create_path(&client, 1, 1)?,
            r#"/shops/b/carts/2/items {"in":"6","item":"x"}"#
        );

        // A fresh deployment gets fresh fixtures.
        client.set_up(ROUTER_BASE).await?;
        assert_eq!(
            create_path(&client, 0, 0)?,
            r#"/shops/a/carts/7/items {"in":"9","item":"x"}"#
        );

        let refused = contract(&["a", "closed"], json!([cart, slot]))?;
        let err = refused
            .set_up(ROUTER_BASE)
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:#}"));
        assert!(
            err.as_ref()
                .is_err_and(|e| e.contains("setup[0] for tenant closed") && e.contains("403")),
            "{err:?}"
        );
        let no_cart = json!({"path": "/shops/{tenant}/carts", "capture": {"cart": {"pointer": "/nope"}}});
        let missing = contract(&["a"], json!([no_cart, slot]))?;
        let err = missing
            .set_up(ROUTER_BASE)
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:#}"));
        assert!(
            err.as_ref().is_err_and(|e| e.contains("no `cart` in the answer")),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn captures_are_checked_when_the_file_loads() {
        let cases = [
            (
                json!([{"path": "/c", "capture": {"key": {"pointer": "/id"}}}]),
                "already a placeholder",
            ),
            (
                json!([{"path": "/c", "capture": {"Cart": {"pointer": "/id"}}}]),
                "not a placeholder name",
            ),
            (json!([{"path": "/c", "capture": {}}]), "capture at least one value"),
            (
                json!([{"path": "/c/{slot}", "capture": {"cart": {"pointer": "/id"}}}]),
                "unknown placeholder `{slot}`",
            ),
            (
                json!([{"path": "/c", "capture": {"cart": {"pointer": "id"}}}]),
                "not a JSON pointer",
            ),
            (
                json!([{"path": "/c", "capture": {"cart": {"header": "Location", "regex": "x"}}}]),
                "capture group",
            ),
            (
                json!([{"path": "/c", "capture": {"cart": {"pointer": "/id"}}}]),
                "unknown placeholder `{slot}`",
            ),
        ];
        for (setup, needle) in cases {
            let err = contract(&["a"], setup.clone()).map(|_| ()).map_err(|e| e.to_string());
            assert!(
                err.as_ref().is_err_and(|e| e.contains(needle)),
                "{setup}: {needle}: {err:?}"
            );
        }
        let slot = json!({"path": "/c", "capture": {"slot": {"pointer": "/id"}}});
        let cart = json!({"path": "/c/{slot}", "capture": {"cart": {"pointer": "/id"}}});
        assert!(
            contract(&["a"], json!([slot, cart])).is_ok(),
            "a later entry may use an earlier capture"
        );
    }
}
