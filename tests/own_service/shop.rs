//! A small order service, deliberately unlike the reference service, to
//! show the harness judging an API it knows only from a target file
//! (`orders.toml`): a different path with the tenant in it
//! (`/v2/shops/{shop}/orders`), a cookie session from `POST /session`, a
//! form-encoded body carrying the key (`request_token`), the id only in
//! `Location`, a replay that answers 201 again, and its own vocabulary
//! (409 while in progress, 400 `token_reused` / `token_missing`).
//!
//! [`Variant`] switches in bugs that real idempotency middlewares shipped,
//! so the test can show each is caught through the same file.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// Which implementation of the key handling runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Claim under a lock, work outside it, complete under it again.
    Correct,
    /// Look the token up among the orders, then insert: no claim.
    CheckThenInsert,
    /// The token alone is the scope: no shop, no user.
    Unscoped,
    /// The payload is never compared.
    NoFingerprint,
    /// Completion stores an empty fingerprint: every identical retry of a
    /// completed token is refused as another payload.
    EmptyFingerprintOnComplete,
}

/// How the service behaves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Which key handling.
    pub variant: Variant,
    /// Time each new order takes (the work between claim and completion).
    pub work: Duration,
}

#[derive(Debug, Clone)]
struct Order {
    id: String,
    shop: String,
    owner: String,
    item: String,
    note: String,
    quantity: i64,
    token: String,
}

impl Order {
    fn json(&self) -> Value {
        json!({
            "id": self.id, "shop": self.shop, "owner": self.owner, "item": self.item,
            "note": self.note, "quantity": self.quantity, "token": self.token,
        })
    }
}

#[derive(Debug, Clone)]
enum Record {
    InProgress { fingerprint: String },
    Done { fingerprint: String, id: String },
}

#[derive(Default)]
struct Data {
    orders: Vec<Order>,
    records: HashMap<(String, String, String), Record>,
    sessions: HashMap<String, String>,
}

#[derive(Clone)]
struct Shop {
    options: Options,
    data: Arc<Mutex<Data>>,
    next: Arc<AtomicU64>,
}

impl Shop {
    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The service.
pub fn app(options: Options) -> Router {
    let shop = Shop {
        options,
        data: Arc::default(),
        next: Arc::new(AtomicU64::new(1)),
    };
    Router::new()
        .route("/session", post(login))
        .route("/v2/shops/{shop}/orders", post(create).get(list))
        .route("/v2/shops/{shop}/orders/{id}", get(show))
        .with_state(shop)
}

fn error(status: StatusCode, code: &str) -> Response {
    (status, axum::Json(json!({ "error": code }))).into_response()
}

fn form(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn user(shop: &Shop, headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let sid = cookies.split(';').find_map(|c| c.trim().strip_prefix("sid="))?;
    shop.data().sessions.get(sid).cloned()
}

async fn login(State(shop): State<Shop>, body: Bytes) -> Response {
    let Some(user) = form(&body).remove("user").filter(|u| !u.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "user_missing");
    };
    let sid = format!("s{}", shop.next.fetch_add(1, Ordering::Relaxed));
    shop.data().sessions.insert(sid.clone(), user);
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(cookie) = HeaderValue::from_str(&format!("sid={sid}; Path=/; HttpOnly")) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn created(shop_id: &str, id: &str) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v2/shops/{shop_id}/orders/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn create(State(shop): State<Shop>, Path(shop_id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(owner) = user(&shop, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "login_required");
    };
    let mut fields = form(&body);
    let Some(token) = fields.remove("request_token").filter(|t| !t.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "token_missing");
    };
    let item = fields.remove("item").unwrap_or_default();
    let note = fields.remove("note").unwrap_or_default();
    let Ok(quantity) = fields.remove("quantity").unwrap_or_default().parse::<i64>() else {
        return error(StatusCode::BAD_REQUEST, "bad_quantity");
    };
    let order = Order {
        id: String::new(),
        shop: shop_id.clone(),
        owner: owner.clone(),
        item,
        note,
        quantity,
        token: token.clone(),
    };
    let variant = shop.options.variant;
    if variant == Variant::CheckThenInsert {
        return check_then_insert(&shop, order).await;
    }
    let fingerprint = match variant {
        Variant::NoFingerprint => String::new(),
        _ => format!("{}\u{0}{}\u{0}{}", order.item, order.note, order.quantity),
    };
    let scope = match variant {
        Variant::Unscoped => (String::new(), String::new(), token),
        _ => (shop_id.clone(), owner, token),
    };
    {
        let mut data = shop.data();
        match data.records.get(&scope) {
            Some(Record::Done { fingerprint: f, id }) if *f == fingerprint => {
                return created(&shop_id_of(&data, id), id);
            }
            Some(Record::Done { .. }) => return error(StatusCode::BAD_REQUEST, "token_reused"),
            Some(Record::InProgress { fingerprint: f }) if *f == fingerprint => {
                return error(StatusCode::CONFLICT, "in_progress");
            }
            Some(Record::InProgress { .. }) => return error(StatusCode::BAD_REQUEST, "token_reused"),
            None => {
                data.records.insert(
                    scope.clone(),
                    Record::InProgress {
                        fingerprint: fingerprint.clone(),
                    },
                );
            }
        }
    }
    // The work runs on its own task: a client that gives up (and so drops
    // this handler) must not leave the claim in progress forever. (The
    // harness caught exactly that in the first version of this file.)
    let work = tokio::spawn(async move {
        tokio::time::sleep(shop.options.work).await;
        let id = format!("ord_{:06}", shop.next.fetch_add(1, Ordering::Relaxed));
        let mut data = shop.data();
        data.orders.push(Order {
            id: id.clone(),
            ..order
        });
        let fingerprint = match variant {
            Variant::EmptyFingerprintOnComplete => String::new(),
            _ => fingerprint,
        };
        data.records.insert(
            scope,
            Record::Done {
                fingerprint,
                id: id.clone(),
            },
        );
        id
    });
    match work.await {
        Ok(id) => created(&shop_id, &id),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

/// The shop an order lives in (an unscoped replay may name another's).
fn shop_id_of(data: &Data, id: &str) -> String {
    data.orders
        .iter()
        .find(|o| o.id == id)
        .map(|o| o.shop.clone())
        .unwrap_or_default()
}

async fn check_then_insert(shop: &Shop, order: Order) -> Response {
    let found = shop
        .data()
        .orders
        .iter()
        .find(|o| o.shop == order.shop && o.owner == order.owner && o.token == order.token)
        .map(|o| o.id.clone());
    if let Some(id) = found {
        return created(&order.shop, &id);
    }
    // The round trip between the look-up and the insert.
    tokio::time::sleep(Duration::from_millis(2) + shop.options.work).await;
    let id = format!("ord_{:06}", shop.next.fetch_add(1, Ordering::Relaxed));
    let shop_id = order.shop.clone();
    shop.data().orders.push(Order {
        id: id.clone(),
        ..order
    });
    created(&shop_id, &id)
}

async fn show(State(shop): State<Shop>, Path((shop_id, id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    if user(&shop, &headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "login_required");
    }
    let data = shop.data();
    match data.orders.iter().find(|o| o.id == id && o.shop == shop_id) {
        Some(order) => axum::Json(order.json()).into_response(),
        None => error(StatusCode::NOT_FOUND, "no_such_order"),
    }
}

/// Ten orders a page, pages numbered from 1; past the last, an empty page.
async fn list(
    State(shop): State<Shop>,
    Path(shop_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if user(&shop, &headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "login_required");
    }
    let page = query
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let data = shop.data();
    let orders: Vec<Value> = data
        .orders
        .iter()
        .filter(|o| o.shop == shop_id)
        .skip((page - 1) * 10)
        .take(10)
        .map(Order::json)
        .collect();
    axum::Json(json!({ "orders": orders, "page": page })).into_response()
}
