//! The routes of the JSON API (CLI.md, "`tracker serve`"): each parses its request into the
//! command layer's arguments ([`super::args`]), runs the command's `exec` and answers with the
//! `--json` shape, or the error object with its status.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use std::time::Instant;
use tracker::command::{
    claim, comment, dep, done, list, log, new_item, plan, release, renew, show, status, update,
};
use tracker::json::{ItemJson, ItemsJson, OpsJson, PlanJson, ShowJson, StatusJson};
use tracker::{Error, ItemView, Result};

use super::{args, guard, Failure, Server};
use crate::turns::Work;

type S = State<Arc<Server>>;
/// A request body, or why it was refused (too large).
type Body = std::result::Result<Bytes, axum::extract::rejection::BytesRejection>;
type Pairs = Query<Vec<(String, String)>>;

/// Every route, behind the server's own checks ([`guard::check`]).
pub(crate) fn router(server: Arc<Server>) -> Router {
    let api = Router::new()
        .route("/items", get(list_items).post(new))
        .route("/items/{item}", get(show_item).patch(update_item))
        .route("/items/{item}/claim", post(claim_item))
        .route("/items/{item}/renew", post(renew_item))
        .route("/items/{item}/release", post(release_item))
        .route("/items/{item}/done", post(done_item))
        .route("/items/{item}/comment", post(comment_item))
        .route("/items/{item}/deps", post(dep_add))
        .route(
            "/items/{item}/deps/{blocker}",
            axum::routing::delete(dep_rm),
        )
        .route("/claim-next", post(claim_next))
        .route("/plan", post(new_plan))
        .route("/log", get(log_ops))
        .route("/status", get(status_board))
        .route("/events", get(super::events::stream))
        .route("/openapi.json", get(openapi_document))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method);
    Router::new()
        .nest("/api/v1", api)
        .route_service(
            "/mcp",
            crate::mcp::http_service(
                server.backend.clone(),
                server.turns.clone(),
                server.read_only,
            ),
        )
        .merge(super::board::routes())
        .fallback(no_route)
        .layer(axum::extract::DefaultBodyLimit::max(super::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            guard::check,
        ))
        .with_state(server)
}

async fn no_route() -> Failure {
    Failure(Error::NotFound(
        "no such route: see GET /api/v1/openapi.json for the API".into(),
    ))
}

async fn no_method() -> Response {
    let e = Error::Invalid("this route does not take that method".into());
    let mut r = Failure(e).into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

fn to_json(v: &impl Serialize) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(e.to_string()))
}

fn item(v: &ItemView) -> Result<Value> {
    to_json(&ItemJson::from(v))
}

/// The answer: `ok` with the JSON, or the failure.
fn answer(ok: StatusCode, r: Result<Value>) -> Response {
    match r {
        Ok(v) => (ok, Json(v)).into_response(),
        Err(e) => Failure(e).into_response(),
    }
}

/// A request body as it arrived, or the reason it did not (too large: 413).
fn body_bytes(b: Body) -> std::result::Result<Bytes, Box<Response>> {
    b.map_err(|r| {
        let status = r.status();
        let e = Error::Invalid(format!(
            "the request body was refused: {} (at most {} bytes)",
            r.body_text(),
            super::MAX_BODY_BYTES
        ));
        let mut resp = Failure(e).into_response();
        *resp.status_mut() = status;
        Box::new(resp)
    })
}

/// Runs a write: its actor from `X-Tracker-As`, its arguments from the body (with the item from
/// the path), then `f` on a tracker acting as that actor.
async fn write<A, F>(
    s: &Arc<Server>,
    headers: &HeaderMap,
    body: Body,
    item: Option<(&str, &str)>,
    work: impl FnOnce(&A) -> Work,
    ok: StatusCode,
    f: F,
) -> Response
where
    A: serde::de::DeserializeOwned + schemars::JsonSchema + Send + 'static,
    F: FnOnce(&super::Tracker, A, &dyn Fn() -> bool) -> Result<Value> + Send + 'static,
{
    let bytes = match body_bytes(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let parsed =
        guard::actor(headers).and_then(|actor| Ok((actor, args::body::<A>(&bytes, item)?)));
    let (actor, a) = match parsed {
        Ok(p) => p,
        Err(e) => return Failure(e).into_response(),
    };
    let kind = work(&a);
    let server = s.clone();
    answer(
        ok,
        s.run(kind, move |stopped| {
            f(&server.tracker(Some(actor)), a, stopped)
        })
        .await,
    )
}

/// Runs a read: `f` on a tracker acting as nobody in particular.
async fn read<F>(s: &Arc<Server>, f: F) -> Response
where
    F: FnOnce(&super::Tracker) -> Result<Value> + Send + 'static,
{
    let server = s.clone();
    answer(
        StatusCode::OK,
        s.run(Work::Reads, move |_| f(&server.tracker(None))).await,
    )
}

fn writes<A>(_: &A) -> Work {
    Work::Writes
}

async fn list_items(State(s): S, Query(q): Pairs) -> Response {
    let a: list::Args = match args::query(q) {
        Ok(a) => a,
        Err(e) => return Failure(e).into_response(),
    };
    read(&s, move |t| {
        to_json(&ItemsJson::new(&list::exec(t, &a.lower()?)?))
    })
    .await
}

async fn show_item(State(s): S, Path(r): Path<String>) -> Response {
    read(&s, move |t| {
        let a: show::Args = args::body(b"", Some(("item", &r)))?;
        to_json(&ShowJson::from(&show::exec(t, a.lower()?)?))
    })
    .await
}

async fn new(State(s): S, h: HeaderMap, b: Body) -> Response {
    write(
        &s,
        &h,
        b,
        None,
        writes,
        StatusCode::CREATED,
        |t, a: new_item::Args, _| item(&new_item::exec(t, a.lower()?)?),
    )
    .await
}

async fn new_plan(State(s): S, h: HeaderMap, b: Body) -> Response {
    write(
        &s,
        &h,
        b,
        None,
        writes,
        StatusCode::CREATED,
        |t, a: plan::Args, _| to_json(&PlanJson::from(plan::exec(t, a.lower()?)?.as_slice())),
    )
    .await
}

async fn update_item(State(s): S, h: HeaderMap, Path(r): Path<String>, b: Body) -> Response {
    write(
        &s,
        &h,
        b,
        Some(("item", &r)),
        writes,
        StatusCode::OK,
        |t, a: update::Args, _| item(&update::exec(t, a.lower()?)?),
    )
    .await
}

/// HTTP leases live by their TTL: tied to no process (the server outlives its clients).
fn untied(r: claim::Request) -> claim::Request {
    claim::Request {
        pid: None,
        pgid: None,
        ..r
    }
}

async fn claim_item(State(s): S, h: HeaderMap, Path(r): Path<String>, b: Body) -> Response {
    let (wait, arrived) = (waits(&b), Instant::now());
    write(
        &s,
        &h,
        b,
        Some(("item", &r)),
        |_: &claim::Args| wait,
        StatusCode::OK,
        move |t, a: claim::Args, stopped| {
            let r = untied(a.lower()?).waiting_since(arrived);
            item(&claim::exec(t, r, stopped)?)
        },
    )
    .await
}

async fn claim_next(State(s): S, h: HeaderMap, b: Body) -> Response {
    let (wait, arrived) = (waits(&b), Instant::now());
    write(
        &s,
        &h,
        b,
        None,
        |_: &claim::NextArgs| wait,
        StatusCode::OK,
        move |t, a: claim::NextArgs, stopped| {
            let r = untied(a.lower()?).waiting_since(arrived);
            item(&claim::exec(t, r, stopped)?)
        },
    )
    .await
}

/// Whether a claim's body asks it to wait.
fn waits(b: &Body) -> Work {
    let v = b
        .as_ref()
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(b).ok());
    Work::claim(v.as_ref().and_then(|v| v.get("wait")))
}

async fn renew_item(State(s): S, h: HeaderMap, Path(r): Path<String>, b: Body) -> Response {
    write(
        &s,
        &h,
        b,
        Some(("item", &r)),
        writes,
        StatusCode::OK,
        |t, a: renew::Args, _| item(&renew::exec(t, a.lower()?)?),
    )
    .await
}

async fn release_item(State(s): S, h: HeaderMap, Path(r): Path<String>, b: Body) -> Response {
    write(
        &s,
        &h,
        b,
        Some(("item", &r)),
        writes,
        StatusCode::OK,
        |t, a: release::Args, _| item(&release::exec(t, a.lower()?)?),
    )
    .await
}

async fn done_item(State(s): S, h: HeaderMap, Path(r): Path<String>, b: Body) -> Response {
    write(
        &s,
        &h,
        b,
        Some(("item", &r)),
        writes,
        StatusCode::OK,
        |t, a: done::Args, _| item(&done::exec(t, a.lower()?)?),
    )
    .await
}

async fn comment_item(State(s): S, h: HeaderMap, Path(r): Path<String>, b: Body) -> Response {
    write(
        &s,
        &h,
        b,
        Some(("item", &r)),
        writes,
        StatusCode::OK,
        |t, a: comment::Args, _| item(&comment::exec(t, a.lower()?)?),
    )
    .await
}

async fn dep_add(State(s): S, h: HeaderMap, Path(r): Path<String>, b: Body) -> Response {
    write(
        &s,
        &h,
        b,
        Some(("item", &r)),
        writes,
        StatusCode::OK,
        |t, a: dep::Args, _| item(&dep::exec(t, a.lower(dep::Edit::Add)?)?),
    )
    .await
}

async fn dep_rm(
    State(s): S,
    h: HeaderMap,
    Path((r, blocker)): Path<(String, String)>,
    Query(q): Pairs,
) -> Response {
    // The blocker is in the path; the guards (`token`, `if_version`, ...) in the query.
    let mut body = serde_json::Map::new();
    body.insert("blocker".into(), Value::String(blocker));
    for (k, v) in q {
        let v = v
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or(Value::String(v));
        body.insert(k, v);
    }
    let bytes = Bytes::from(Value::Object(body).to_string());
    write(
        &s,
        &h,
        Ok(bytes),
        Some(("item", &r)),
        writes,
        StatusCode::OK,
        |t, a: dep::Args, _| item(&dep::exec(t, a.lower(dep::Edit::Remove)?)?),
    )
    .await
}

async fn log_ops(State(s): S, Query(q): Pairs) -> Response {
    let a: log::Args = match args::query(q) {
        Ok(a) => a,
        Err(e) => return Failure(e).into_response(),
    };
    read(&s, move |t| {
        to_json(&OpsJson::new(&log::exec(t, &a.lower()?)?))
    })
    .await
}

async fn status_board(State(s): S, Query(q): Pairs) -> Response {
    let a: status::Args = match args::query(q) {
        Ok(a) => a,
        Err(e) => return Failure(e).into_response(),
    };
    read(&s, move |t| {
        let r = status::exec(t, a.lower()?)?;
        to_json(&StatusJson::new(&r.board, r.metrics, &r.now))
    })
    .await
}

async fn openapi_document() -> Json<Value> {
    Json(super::openapi::document())
}
