//! `tracker mcp`: a Model Context Protocol server on stdin/stdout, beside the command line. It
//! keeps the tracker open across calls (a call costs one transaction, not a process start), calls
//! the same `Tracker` API, and adds no rules of its own: results have the shapes of `--json`, and
//! failures are tool errors carrying the same `{"error": {kind, code, ...}}` object.
//!
//! Identity: `--as`/`TRACKER_AS`, else the client's name from the MCP handshake, the same after a
//! restart, so idempotency keys survive one. Leases taken here are tied to this process (as
//! `claim --pid` does): when the agent's server dies, its items are free at once.

mod http;
mod wire;

pub(crate) use http::service as http_service;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, JsonObject, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{schemars, tool, tool_handler, tool_router, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use tracker::command::{
    self, claim, comment, dep, done, list, log, new_item, plan, release, renew, show, status,
    update,
};
use tracker::json::{ItemJson, ItemsJson, OpsJson, PlanJson, ShowJson, StatusJson};
use tracker::{Actor, Backend, Error, ItemView, Result};

use crate::turns::{Turns, Work};

/// The library's tracker over the backend `tracker mcp` was started on (shared by the sessions
/// of `tracker serve`'s `/mcp`).
type Tracker = tracker::Tracker<Arc<Backend>>;

/// Serves MCP on stdio over `backend` until the client closes the connection, acting as `named`
/// (`--as`/`TRACKER_AS`) if given, else as the client's name. The command line opens the
/// backend and hands it over through main.rs, so this transport and that one import nothing of
/// each other.
///
/// Calls run side by side: each tool call's work runs on a thread of its own while the runtime
/// goes on reading, so a claim that waits delays no other call (nor `ping`). A waiting claim
/// stops retrying when its request is cancelled or the input closes; the server then waits only
/// for calls already running, and claims nothing once its client has gone.
pub fn serve(backend: Backend, named: Option<Actor>) -> Result<i32> {
    // A client that stops reading makes writes fail (and the writer stop) instead of killing
    // the process halfway through a call.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let closing = Arc::new(AtomicBool::new(false));
    let turns = Arc::new(Turns::for_backend(&backend));
    let server = Server {
        backend: Arc::new(Mutex::new(Some(Arc::new(backend)))),
        tracker: Arc::new(OnceLock::new()),
        named,
        over_http: None,
        closing: closing.clone(),
        running: Arc::new(AtomicUsize::new(0)),
        turns,
        tool_router: Server::tool_router(),
    };
    let running = server.running.clone();
    // The last references to the store are dropped after the runtime: a PostgreSQL client
    // closes its connection on a runtime of its own, which cannot start inside this one (every
    // session on PostgreSQL ended with an internal error).
    let store = (server.backend.clone(), server.tracker.clone());
    let (transport, writer) =
        wire::stdio(closing.clone()).map_err(|e| Error::io("cannot start the MCP server", e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the MCP server", e))?;
    let served = runtime.block_on(async move {
        let service = server
            .serve(transport)
            .await
            .map_err(|e| Error::Internal(format!("MCP handshake failed: {e}")))?;
        service
            .waiting()
            .await
            .map_err(|e| Error::Internal(format!("MCP server stopped: {e}")))?;
        Ok(0)
    });
    // Input closed (or the handshake failed): no new call starts, waiting claims give up, and
    // the calls still running end on their own.
    closing.store(true, Ordering::SeqCst);
    while running.load(Ordering::SeqCst) > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(runtime);
    drop(store);
    writer.finish();
    served
}

#[derive(Clone)]
pub(crate) struct Server {
    /// Taken by the first call, which builds the tracker with the actor the handshake names.
    backend: Arc<Mutex<Option<Arc<tracker::Backend>>>>,
    tracker: Arc<OnceLock<Arc<Tracker>>>,
    /// `--as`/`TRACKER_AS`, if given.
    named: Option<Actor>,
    /// Served over HTTP (`tracker serve`'s `/mcp`) rather than stdio: see [`http`].
    over_http: Option<http::Session>,
    /// Set once standard input has ended: waiting claims stop.
    closing: Arc<AtomicBool>,
    /// Tool calls whose thread is still running.
    running: Arc<AtomicUsize>,
    /// How many calls of each kind may run at once (see [`Work`]); over HTTP, shared with the
    /// HTTP server's own requests.
    turns: Arc<Turns>,
    tool_router: ToolRouter<Server>,
}

/// Counts one running call while alive.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(n: &Arc<AtomicUsize>) -> Running {
        n.fetch_add(1, Ordering::SeqCst);
        Running(n.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether a call should give up waiting: its request was cancelled, or the client has gone.
type Stopped<'a> = &'a dyn Fn() -> bool;

impl Server {
    /// The tracker a call runs on. Over stdio: one for the session, acting as `--as`, else as
    /// the client's name. Over HTTP: one per call (over the session's one handle), acting as
    /// the call's `X-Tracker-As`, else as the client's name: a header names the actor of its
    /// own request only, and a bad one is refused on every call, not only the first.
    fn tracker(&self, ctx: &RequestContext<RoleServer>) -> Result<Arc<Tracker>> {
        let handle = || {
            self.backend
                .lock()
                .map_err(|_| Error::Internal("the tracker handle was poisoned".into()))
        };
        if self.over_http.is_some() {
            let actor = match http::header_actor(ctx)? {
                Some(actor) => actor,
                None => client_actor(ctx),
            };
            let backend = handle()?
                .clone()
                .ok_or_else(|| Error::Internal("the tracker handle is gone".into()))?;
            let actor = Actor {
                distinct: false,
                ..actor
            };
            return Ok(Arc::new(json_tracker(backend, actor)));
        }
        if let Some(t) = self.tracker.get() {
            return Ok(t.clone());
        }
        if let Some(backend) = handle()?.take() {
            let actor = self.named.clone().unwrap_or_else(|| client_actor(ctx));
            let _ = self.tracker.set(Arc::new(json_tracker(backend, actor)));
        }
        self.tracker
            .get()
            .cloned()
            .ok_or_else(|| Error::Internal("the tracker could not be opened".into()))
    }

    /// Runs one call: the result as structured content (and as text), or a tool error that
    /// carries the same error object `--json` prints. The work runs on a thread of its own, so
    /// the runtime goes on serving other calls meanwhile (and because the PostgreSQL client
    /// blocks on a runtime of its own, which tokio forbids inside another's). `f` is given a
    /// question to ask while it waits: whether this request was cancelled or the client has gone.
    ///
    /// The arguments are parsed here rather than by the SDK: arguments that do not fit the
    /// tool's input schema are then a tool error carrying `{"error": {"kind": "invalid", ...}}`,
    /// like every other failure, instead of a protocol error an agent cannot branch on.
    async fn call<A, F>(
        &self,
        ctx: RequestContext<RoleServer>,
        work: Work,
        raw: JsonObject,
        f: F,
    ) -> CallToolResult
    where
        A: serde::de::DeserializeOwned + schemars::JsonSchema + Send + 'static,
        F: FnOnce(&Tracker, A, Stopped) -> Result<Value> + Send + 'static,
    {
        let admitted = http::admit(self.over_http.as_ref(), work);
        let outcome = match admitted
            .and_then(|()| args(raw))
            .and_then(|a| Ok((self.tracker(&ctx)?, a)))
        {
            Ok((t, a)) => self.off_runtime(ctx, work, t, a, f).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(v) => CallToolResult::structured(v),
            Err(e) => CallToolResult::structured_error(tracker::json::error_json(&e).into()),
        }
    }

    async fn off_runtime<A, F>(
        &self,
        ctx: RequestContext<RoleServer>,
        work: Work,
        t: Arc<Tracker>,
        a: A,
        f: F,
    ) -> Result<Value>
    where
        A: Send + 'static,
        F: FnOnce(&Tracker, A, Stopped) -> Result<Value> + Send + 'static,
    {
        // A call received before the input closed still runs (a client may write its requests
        // and close its end, then read the answers); only waiting stops.
        let turn = self.turns.take(work).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (cancelled, closing) = (ctx.ct.clone(), self.closing.clone());
        let running = Running::start(&self.running);
        std::thread::Builder::new()
            .name("mcp-call".into())
            .spawn(move || {
                let (_running, _turn) = (running, turn);
                let stopped = || cancelled.is_cancelled() || closing.load(Ordering::SeqCst);
                let _ = tx.send(f(&t, a, &stopped));
            })
            .map_err(|e| Error::io("cannot start a thread for the call", e))?;
        rx.await
            .unwrap_or_else(|_| Err(Error::Internal("a tool call panicked".into())))
    }
}

/// A tracker over `backend` acting as `actor`, whose messages advise tool arguments
/// (`` `force` ``), not command-line flags.
fn json_tracker(backend: Arc<Backend>, actor: Actor) -> Tracker {
    Tracker::with_store(backend)
        .with_actor(actor)
        .with_spelling(command::Spelling::Json)
}

/// The client's name from the handshake as an actor: stable across restarts, so a keyed call
/// repeated after the server was restarted is recognised (two live servers of one name are
/// still two workers: their leases are tied to their processes). The client chose it, not the
/// user, so a name no actor may have is made one rather than refused: control characters
/// dropped, cut to [`MAX_ACTOR_BYTES`](tracker::rules::MAX_ACTOR_BYTES); none at all is `mcp`.
fn client_actor(ctx: &RequestContext<RoleServer>) -> Actor {
    let given = ctx
        .peer
        .peer_info()
        .map(|i| i.client_info.name.clone())
        .unwrap_or_default();
    let mut name: String = given.chars().filter(|c| !c.is_control()).collect();
    name = name.trim().to_string();
    while name.len() > tracker::rules::MAX_ACTOR_BYTES {
        name.pop();
    }
    let name = name.trim_end();
    Actor::named(if name.is_empty() { "mcp" } else { name })
}

fn item(v: &ItemView) -> Result<Value> {
    to_json(&ItemJson::from(v))
}

/// A claim through this server: over stdio its lease is tied to this process, so it ends as
/// soon as the server (the agent's session) is gone; over HTTP it lives by its TTL (the server
/// outlives the agents that use it).
fn tied(over_http: bool, r: claim::Request) -> claim::Request {
    claim::Request {
        pid: (!over_http).then(std::process::id),
        ..r
    }
}

/// A tool's arguments, from the JSON object the client sent. Unknown and missing fields are
/// found from the input schema first, so they are worded as the command line words them.
fn args<T: serde::de::DeserializeOwned + schemars::JsonSchema + 'static>(
    raw: JsonObject,
) -> Result<T> {
    command::from_object(
        raw,
        &input::<T>(),
        "the tool's arguments do not fit its input schema",
    )
}

/// The JSON Schema of a tool's arguments.
fn input<T: schemars::JsonSchema + 'static>() -> Arc<JsonObject> {
    rmcp::handler::server::common::schema_for_input::<T>()
        .unwrap_or_else(|e| panic!("the input schema of {}: {e}", std::any::type_name::<T>()))
}

/// The JSON Schema of a tool's structured result.
fn schema<T: schemars::JsonSchema + 'static>() -> Arc<JsonObject> {
    rmcp::handler::server::tool::schema_for_type::<T>()
}

fn to_json(v: &impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(e.to_string()))
}

#[tool_router]
impl Server {
    #[tool(input_schema = input::<new_item::Args>(), name = "new", description = command::tool_description("new"), output_schema = schema::<ItemJson>())]
    async fn new_item(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: new_item::Args, _| {
            item(&new_item::exec(t, a.lower()?)?)
        })
        .await
    }

    #[tool(input_schema = input::<plan::Args>(), description = command::tool_description("plan"), output_schema = schema::<PlanJson>())]
    async fn plan(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: plan::Args, _| {
            to_json(&PlanJson::from(plan::exec(t, a.lower()?)?.as_slice()))
        })
        .await
    }

    #[tool(input_schema = input::<show::Args>(), description = command::tool_description("show"), output_schema = schema::<ShowJson>())]
    async fn show(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Reads, raw, |t, a: show::Args, _| {
            to_json(&ShowJson::from(&show::exec(t, a.lower()?)?))
        })
        .await
    }

    #[tool(input_schema = input::<list::Args>(), description = command::tool_description("list"), output_schema = schema::<ItemsJson>())]
    async fn list(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Reads, raw, |t, a: list::Args, _| {
            to_json(&ItemsJson::new(&list::exec(t, &a.lower()?)?))
        })
        .await
    }

    #[tool(input_schema = input::<update::Args>(), description = command::tool_description("update"), output_schema = schema::<ItemJson>())]
    async fn update(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: update::Args, _| {
            item(&update::exec(t, a.lower()?)?)
        })
        .await
    }

    #[tool(input_schema = input::<claim::Args>(), description = command::tool_description("claim"), output_schema = schema::<ItemJson>())]
    async fn claim(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        let (over_http, arrived) = (self.over_http.is_some(), Instant::now());
        self.call(
            ctx,
            Work::claim(raw.get("wait")),
            raw,
            move |t, a: claim::Args, stopped| {
                let r = tied(over_http, a.lower()?).waiting_since(arrived);
                item(&claim::exec(t, r, stopped)?)
            },
        )
        .await
    }

    #[tool(input_schema = input::<claim::NextArgs>(), description = command::tool_description("claim_next"), output_schema = schema::<ItemJson>())]
    async fn claim_next(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        let (over_http, arrived) = (self.over_http.is_some(), Instant::now());
        self.call(
            ctx,
            Work::claim(raw.get("wait")),
            raw,
            move |t, a: claim::NextArgs, stopped| {
                let r = tied(over_http, a.lower()?).waiting_since(arrived);
                item(&claim::exec(t, r, stopped)?)
            },
        )
        .await
    }

    #[tool(input_schema = input::<renew::Args>(), description = command::tool_description("renew"), output_schema = schema::<ItemJson>())]
    async fn renew(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: renew::Args, _| {
            item(&renew::exec(t, a.lower()?)?)
        })
        .await
    }

    #[tool(input_schema = input::<release::Args>(), description = command::tool_description("release"), output_schema = schema::<ItemJson>())]
    async fn release(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: release::Args, _| {
            item(&release::exec(t, a.lower()?)?)
        })
        .await
    }

    #[tool(input_schema = input::<done::Args>(), description = command::tool_description("done"), output_schema = schema::<ItemJson>())]
    async fn done(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: done::Args, _| {
            item(&done::exec(t, a.lower()?)?)
        })
        .await
    }

    #[tool(input_schema = input::<comment::Args>(), description = command::tool_description("comment"), output_schema = schema::<ItemJson>())]
    async fn comment(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: comment::Args, _| {
            item(&comment::exec(t, a.lower()?)?)
        })
        .await
    }

    #[tool(input_schema = input::<dep::Args>(), description = command::tool_description("dep_add"), output_schema = schema::<ItemJson>())]
    async fn dep_add(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: dep::Args, _| {
            item(&dep::exec(t, a.lower(dep::Edit::Add)?)?)
        })
        .await
    }

    #[tool(input_schema = input::<dep::Args>(), description = command::tool_description("dep_rm"), output_schema = schema::<ItemJson>())]
    async fn dep_rm(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: dep::Args, _| {
            item(&dep::exec(t, a.lower(dep::Edit::Remove)?)?)
        })
        .await
    }

    #[tool(input_schema = input::<log::Args>(), description = command::tool_description("log"), output_schema = schema::<OpsJson<'static>>())]
    async fn log(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Reads, raw, |t, a: log::Args, _| {
            to_json(&OpsJson::new(&log::exec(t, &a.lower()?)?))
        })
        .await
    }

    #[tool(input_schema = input::<status::Args>(), description = command::tool_description("status"), output_schema = schema::<StatusJson>())]
    async fn status(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Reads, raw, |t, a: status::Args, _| {
            let s = status::exec(t, a.lower()?)?;
            to_json(&StatusJson::new(&s.board, s.metrics, &s.now))
        })
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("tracker", env!("CARGO_PKG_VERSION")))
            .with_instructions(
            "A shared work tracker. Typical loop: claim_next (keep claim.token), do the work, \
             renew within the TTL while working, then done with the token. Failures are tool \
             errors whose structured content is {\"error\": {\"kind\", \"code\", \"message\"}}: \
             conflict (3) means someone else holds the item or it changed; not_found (4); busy (5).",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tools this server lists are the MCP tools of the table of commands, named and
    /// described as it says.
    #[test]
    fn the_tool_list_is_the_table_of_commands() {
        let mut listed: Vec<(String, String)> = Server::tool_router()
            .list_all()
            .into_iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    t.description.unwrap_or_default().to_string(),
                )
            })
            .collect();
        let mut table: Vec<(String, String)> = command::COMMANDS
            .iter()
            .flat_map(|c| c.transports.mcp)
            .map(|t| (t.name.to_string(), t.description.to_string()))
            .collect();
        listed.sort();
        table.sort();
        assert_eq!(listed, table);
    }
}
