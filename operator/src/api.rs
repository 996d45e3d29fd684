//! The page and the small JSON API it calls. Each API call sends exactly one command to Redis
//! (a txu command, or `INFO txu` for the counts) and keeps nothing.
//!
//! Success is `200` with the result; a request the API cannot take is `400`, and an error from
//! Redis (`NOPERM ...`, `ERR no such task ...`, a refused connection) is `502`, both with
//! `{"error": "<text>"}` for the page to show as it is.

use crate::txu::{Redis, State, Verb};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State as Shared};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Tasks per `TXU.TASKS` call unless the page asks for another count.
const DEFAULT_COUNT: u32 = 50;
/// `TXU.TASKS` takes at most this many.
const MAX_COUNT: u32 = 1000;

pub struct App {
    pub redis: Redis,
    /// The page, with the Redis it talks to filled in.
    pub page: String,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/tasks", get(tasks))
        .route("/api/counts", get(counts))
        .route("/api/retry", post(retry))
        .route("/api/drop", post(drop_one))
        .route("/api/retry-all", post(retry_all))
        .route("/api/drop-all", post(drop_all))
        .with_state(app)
}

/// The page, with the (password-free) Redis URL in its header.
pub fn render_page(redis_url: &str) -> String {
    include_str!("../static/index.html").replace("{{REDIS}}", &html_escape(redis_url))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn page(Shared(app): Shared<Arc<App>>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(app.page.clone()),
    )
        .into_response()
}

fn ok(value: serde_json::Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(value)).into_response()
}

fn fail(status: StatusCode, error: impl Into<String>) -> Response {
    let body = json!({ "error": error.into() });
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn bad_request(error: impl Into<String>) -> Response {
    fail(StatusCode::BAD_REQUEST, error)
}

fn from_redis(error: String) -> Response {
    fail(StatusCode::BAD_GATEWAY, error)
}

#[derive(Deserialize)]
struct ListQuery {
    state: State,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    count: Option<u32>,
    /// Text the last error must contain (not a glob: the API escapes it).
    #[serde(default)]
    filter: String,
}

/// `GET /api/tasks?state=pending|dead&cursor=<c>&count=<n>&filter=<text>`:
/// `{"cursor": "<next>", "tasks": [...]}`.
async fn tasks(
    Shared(app): Shared<Arc<App>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_request(e.body_text()),
    };
    let cursor = q.cursor.unwrap_or_else(|| "0".to_string());
    if cursor.is_empty() || !cursor.bytes().all(|b| b.is_ascii_digit()) {
        return bad_request(format!("cursor must be a number, not {cursor:?}"));
    }
    let count = q.count.unwrap_or(DEFAULT_COUNT);
    if !(1..=MAX_COUNT).contains(&count) {
        return bad_request(format!("count must be 1 to {MAX_COUNT}, not {count}"));
    }
    match app.redis.tasks(q.state, &cursor, count, &q.filter).await {
        Ok(page) => ok(json!(page)),
        Err(e) => from_redis(e),
    }
}

/// `GET /api/counts`: `{"pending": n, "dead": n}`; both `null`, with `error`, when `INFO txu`
/// fails (a user without permission for `INFO` still gets the page, without counts).
async fn counts(Shared(app): Shared<Arc<App>>) -> Response {
    match app.redis.counts().await {
        Ok(c) => ok(json!(c)),
        Err(e) => ok(json!({ "pending": null, "dead": null, "error": e })),
    }
}

#[derive(Deserialize)]
struct One {
    id: String,
}

#[derive(Deserialize)]
struct All {
    state: State,
    #[serde(default)]
    filter: String,
}

async fn one(app: &App, verb: Verb, body: Result<Json<One>, JsonRejection>) -> Response {
    let id = match body {
        Ok(Json(One { id })) => id,
        Err(e) => return bad_request(e.body_text()),
    };
    if id.is_empty() {
        return bad_request("no task id");
    }
    match app.redis.one(verb, &id).await {
        Ok(reply) => ok(json!({ "id": id, "reply": reply })),
        Err(e) => from_redis(e),
    }
}

async fn all(app: &App, verb: Verb, body: Result<Json<All>, JsonRejection>) -> Response {
    let All { state, filter } = match body {
        Ok(Json(a)) => a,
        Err(e) => return bad_request(e.body_text()),
    };
    match app.redis.all(verb, state, &filter).await {
        Ok(count) => ok(json!({ "count": count })),
        Err(e) => from_redis(e),
    }
}

/// `POST /api/retry {"id": "<id>"}`: `TXU.RETRY <id>`.
async fn retry(Shared(app): Shared<Arc<App>>, body: Result<Json<One>, JsonRejection>) -> Response {
    one(&app, Verb::Retry, body).await
}

/// `POST /api/drop {"id": "<id>"}`: `TXU.DROP <id>`.
async fn drop_one(
    Shared(app): Shared<Arc<App>>,
    body: Result<Json<One>, JsonRejection>,
) -> Response {
    one(&app, Verb::Drop, body).await
}

/// `POST /api/retry-all {"state": "pending|dead", "filter": "<text>"}`:
/// `TXU.RETRY PENDING|DEAD [MATCH *<text>*]`, `{"count": n}`.
async fn retry_all(
    Shared(app): Shared<Arc<App>>,
    body: Result<Json<All>, JsonRejection>,
) -> Response {
    all(&app, Verb::Retry, body).await
}

/// `POST /api/drop-all {"state": "pending|dead", "filter": "<text>"}`:
/// `TXU.DROP PENDING|DEAD [MATCH *<text>*]`, `{"count": n}`.
async fn drop_all(
    Shared(app): Shared<Arc<App>>,
    body: Result<Json<All>, JsonRejection>,
) -> Response {
    all(&app, Verb::Drop, body).await
}
