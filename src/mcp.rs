//! `tracker mcp`: a Model Context Protocol server on stdin/stdout, beside the command line. It
//! keeps the tracker open across calls (a call costs one transaction, not a process start), calls
//! the same `Tracker` API, and adds no rules of its own: results have the shapes of `--json`, and
//! failures are tool errors carrying the same `{"error": {kind, code, ...}}` object.
//!
//! Identity: `--as`/`TRACKER_AS`, else the client's name from the MCP handshake, the same after a
//! restart, so idempotency keys survive one. Leases taken here are tied to this process (as
//! `claim --pid` does): when the agent's server dies, its items are free at once.

mod wire;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, JsonObject, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{
    schemars, tool, tool_handler, tool_router, Peer, RoleServer, ServerHandler, ServiceExt,
};
use serde::Deserialize;
use serde_json::Value;
use tracker::durations::{self, Use};
use tracker::json::{ItemJson, OpJson, ShowJson, StatusJson};
use tracker::{
    Access, Actor, ClaimOptions, Error, Guard, ItemView, ListQuery, NewItem, Patch, Result, Status,
};

use crate::cli::{guard, item_ref, Ctx, Tracker};

/// Serves MCP on stdio until the client closes the connection.
///
/// Calls run side by side: each tool call's work runs on a thread of its own while the runtime
/// goes on reading, so a claim that waits delays no other call (nor `ping`). A waiting claim
/// stops retrying when its request is cancelled or the input closes; the server then waits only
/// for calls already running, and claims nothing once its client has gone.
pub fn serve(ctx: &Ctx) -> Result<i32> {
    // Opened now, so a missing or refused tracker is reported before the handshake.
    let backend = tracker::Backend::open(&ctx.target()?, Access::ReadWrite, ctx.lock_timeout)?;
    // A client that stops reading makes writes fail (and the writer stop) instead of killing
    // the process halfway through a call.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let closing = Arc::new(AtomicBool::new(false));
    let server = Server {
        backend: Arc::new(Mutex::new(Some(backend))),
        tracker: Arc::new(OnceLock::new()),
        named: ctx.actor.clone(),
        closing: closing.clone(),
        running: Arc::new(AtomicUsize::new(0)),
        turns: Arc::new(Turns::default()),
        tool_router: Server::tool_router(),
    };
    let running = server.running.clone();
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
    writer.finish();
    served
}

#[derive(Clone)]
struct Server {
    /// Taken by the first call, which builds the tracker with the actor the handshake names.
    backend: Arc<Mutex<Option<tracker::Backend>>>,
    tracker: Arc<OnceLock<Arc<Tracker>>>,
    /// `--as`/`TRACKER_AS`, if given.
    named: Option<Actor>,
    /// Set once standard input has ended: waiting claims stop.
    closing: Arc<AtomicBool>,
    /// Tool calls whose thread is still running.
    running: Arc<AtomicUsize>,
    /// How many calls of each kind may run at once (see [`Work`]).
    turns: Arc<Turns>,
    tool_router: ToolRouter<Server>,
}

/// What a call does, for running calls side by side. Writes take turns, one at a time: writers
/// in one process that contend for the file poll its lock (with pauses of up to 8ms), so a
/// burst of writes run side by side is several times slower than the same writes one after
/// another. Reads run side by side, and so do waiting claims, which would otherwise hold the
/// writers' turn for the whole wait. Each kind has a bound, so a client that sends thousands of
/// calls at once gets them queued, not a thread each.
#[derive(Clone, Copy)]
enum Work {
    Reads,
    Writes,
    Waits,
}

/// The turns of each kind of [`Work`], first come first served.
struct Turns {
    reads: Arc<tokio::sync::Semaphore>,
    writes: Arc<tokio::sync::Semaphore>,
    waits: Arc<tokio::sync::Semaphore>,
}

impl Default for Turns {
    fn default() -> Turns {
        let n = tokio::sync::Semaphore::new;
        Turns {
            reads: Arc::new(n(16)),
            writes: Arc::new(n(1)),
            waits: Arc::new(n(64)),
        }
    }
}

impl Work {
    /// A claim's work: it waits if given a `wait`.
    fn claim(raw: &JsonObject) -> Work {
        match raw.get("wait") {
            Some(w) if !w.is_null() => Work::Waits,
            _ => Work::Writes,
        }
    }
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
    /// The tracker, acting as `--as`, else as the client's name.
    fn tracker(&self, peer: &Peer<RoleServer>) -> Result<Arc<Tracker>> {
        if let Some(t) = self.tracker.get() {
            return Ok(t.clone());
        }
        let backend = self
            .backend
            .lock()
            .map_err(|_| Error::Internal("the tracker handle was poisoned".into()))?
            .take();
        if let Some(backend) = backend {
            let actor = self.named.clone().unwrap_or_else(|| {
                // The client's name alone, stable across restarts, so a keyed call repeated
                // after the server was restarted is recognised. Two live servers of one name are
                // still two workers: their leases are tied to their processes.
                let client = peer
                    .peer_info()
                    .map(|i| i.client_info.name.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "mcp".into());
                Actor::named(client)
            });
            let _ = self
                .tracker
                .set(Arc::new(Tracker::with_store(backend).with_actor(actor)));
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
        let outcome = match args(raw).and_then(|a| Ok((self.tracker(&ctx.peer)?, a))) {
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
        let turns = match work {
            Work::Reads => &self.turns.reads,
            Work::Writes => &self.turns.writes,
            Work::Waits => &self.turns.waits,
        };
        let turn = turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("the queue of calls was closed".into()))?;
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

fn item(v: &ItemView) -> Result<Value> {
    to_json(&ItemJson::from(v))
}

/// A duration argument, parsed as the command line parses the flag of the same name (same ranges,
/// same messages, naming the argument as MCP spells it).
fn duration(field: &str, s: Option<&str>, what: Use) -> Result<Option<Duration>> {
    s.map(|s| durations::parse_field(field, s, what))
        .transpose()
}

/// A priority argument, checked here as the command line checks `--priority` (same range,
/// same message, naming the argument as MCP spells it).
fn priority(p: Option<u8>) -> Result<Option<u8>> {
    p.map(|p| tracker::rules::validate_priority(p).map_err(|r| Error::bad_field("priority", r)))
        .transpose()
}

/// The lease options of a claim through this server: tied to this process.
fn claim_options(t: &Tracker, ttl: Option<&str>, g: Guard) -> Result<ClaimOptions> {
    let given = duration("ttl", ttl, Use::Ttl)?;
    // As on the command line: ttl, else $TRACKER_TTL, else the tracker's default-ttl.
    let ttl = crate::cli::ttl_for(t, given)?;
    Ok(ClaimOptions {
        ttl,
        pid: Some(std::process::id()),
        guard: g,
        ..ClaimOptions::default()
    })
}

/// A tool's arguments, from the JSON object the client sent. Unknown and missing fields are
/// found from the input schema first, so they are worded as the command line words them.
fn args<T: serde::de::DeserializeOwned + schemars::JsonSchema + 'static>(
    raw: JsonObject,
) -> Result<T> {
    let schema = input::<T>();
    if let Some(known) = schema.get("properties").and_then(Value::as_object) {
        if let Some(k) = raw.keys().find(|k| !known.contains_key(*k)) {
            return Err(Error::unknown_field(k));
        }
    }
    let required = schema.get("required").and_then(Value::as_array);
    for field in required.into_iter().flatten().filter_map(Value::as_str) {
        if !raw.contains_key(field) {
            return Err(Error::missing_field(field));
        }
    }
    serde_json::from_value(Value::Object(raw)).map_err(|e| {
        Error::Invalid(format!(
            "the tool's arguments do not fit its input schema: {e}"
        ))
    })
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

/// `list`'s result: structured content is an object, so the list is wrapped.
#[derive(serde::Serialize, schemars::JsonSchema)]
struct ItemsJson {
    items: Vec<ItemJson>,
}

/// `log`'s result, wrapped for the same reason.
#[derive(serde::Serialize, schemars::JsonSchema)]
struct OpsJson<'a> {
    ops: Vec<OpJson<'a>>,
}

fn tracker_type(s: &str) -> Result<tracker::ItemType> {
    tracker::ItemType::named(s, "type")
}

fn to_json(v: &impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(e.to_string()))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewArgs {
    /// One line saying what is to be done.
    title: String,
    /// Details, any length up to 1 MiB.
    body: Option<String>,
    /// 0 (highest) to 4; 2 if not given.
    priority: Option<u8>,
    /// Labels to put on the item.
    labels: Option<Vec<String>>,
    /// Items this one waits for ("42", "#42" or a ULID prefix).
    blocked_by: Option<Vec<String>>,
    /// A repeat with the same key returns the first item and creates nothing.
    idempotency_key: Option<String>,
    /// task (the default), bug, feature, chore or epic.
    #[serde(rename = "type")]
    item_type: Option<String>,
    /// The item this one is part of ("42", "#42" or a ULID prefix).
    parent: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CommentArgs {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
    /// The comment (at most 64 KiB).
    text: String,
    /// A repeat with the same key returns the first result and adds nothing.
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ItemArgs {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    /// open (the default), done, cancelled or all.
    status: Option<String>,
    /// Only items ready to be claimed: open, not blocked, no live claim; best first.
    ready: Option<bool>,
    /// Only items with a live claim.
    claimed: Option<bool>,
    /// Only items with this label.
    label: Option<String>,
    /// Only items claimed by this holder.
    holder: Option<String>,
    /// At most this many items.
    limit: Option<usize>,
    /// Only items of this type: task, bug, feature, chore or epic.
    #[serde(rename = "type")]
    item_type: Option<String>,
    /// Only items whose title or body contains this text (ignoring case).
    search: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateArgs {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
    title: Option<String>,
    body: Option<String>,
    /// 0 (highest) to 4.
    priority: Option<u8>,
    /// open, done or cancelled; closing also ends the lease.
    status: Option<String>,
    add_labels: Option<Vec<String>>,
    remove_labels: Option<Vec<String>>,
    /// Refuse (conflict, code 3) unless the item is at this version.
    if_version: Option<u64>,
    /// The fencing token of your lease, if you hold one.
    token: Option<u64>,
    idempotency_key: Option<String>,
    /// task, bug, feature, chore or epic.
    #[serde(rename = "type")]
    item_type: Option<String>,
    /// Make it part of this item (a parent chain never loops: code 3).
    parent: Option<String>,
    /// Make it part of no item.
    no_parent: Option<bool>,
    /// With a closing status: why it closed.
    reason: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ClaimArgs {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
    /// Lease length like "15m" or "2h" (default: the tracker's default TTL).
    ttl: Option<String>,
    /// Take the item from a holder whose process is provably gone.
    steal_stale: Option<bool>,
    /// Take the item from a live holder (recorded as an eviction).
    force: Option<bool>,
    /// Keep retrying for this long (like "30s") while another holder has it.
    wait: Option<String>,
    if_version: Option<u64>,
    token: Option<u64>,
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ClaimNextArgs {
    /// Only items with this label.
    label: Option<String>,
    /// Lease length like "15m" (default: the tracker's default TTL).
    ttl: Option<String>,
    /// Keep retrying for this long (like "30s") while nothing is ready.
    wait: Option<String>,
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct LeaseArgs {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
    /// The fencing token your claim returned.
    token: Option<u64>,
    if_version: Option<u64>,
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RenewArgs {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
    /// New lease length from now, like "15m" (default: the lease's own TTL).
    ttl: Option<String>,
    /// The fencing token your claim returned.
    token: Option<u64>,
    if_version: Option<u64>,
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DoneArgs {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
    /// The fencing token your claim returned.
    token: Option<u64>,
    if_version: Option<u64>,
    /// Finish it even though another holder has a live lease.
    force: Option<bool>,
    idempotency_key: Option<String>,
    /// Why it is done (its close_reason).
    reason: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DepArgs {
    /// The item that waits.
    item: String,
    /// The item it waits for.
    blocker: String,
    token: Option<u64>,
    if_version: Option<u64>,
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct LogArgs {
    /// Only this item's ops.
    item: Option<String>,
    /// Only ops with this sequence number or later.
    since: Option<u64>,
    /// At most this many ops.
    limit: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct StatusArgs {
    /// Count lease events of this last stretch only, like "24h" (default: the whole log).
    since: Option<String>,
}

#[tool_router]
impl Server {
    #[tool(input_schema = input::<NewArgs>(), name = "new", description = "Create a work item. Returns the item (id, num, title, status, version, ...). \
        Use idempotency_key when you may retry, so a repeat creates nothing.", output_schema = schema::<ItemJson>())]
    async fn new_item(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: NewArgs, _| {
            let blockers = a
                .blocked_by
                .unwrap_or_default()
                .iter()
                .map(|b| item_ref(b))
                .collect::<Result<Vec<_>>>()?;
            let new = NewItem {
                title: a.title,
                body: a.body.unwrap_or_default(),
                priority: priority(a.priority)?,
                labels: a.labels.unwrap_or_default(),
                item_type: match &a.item_type {
                    Some(ty) => tracker_type(ty)?,
                    None => tracker::ItemType::Task,
                },
                parent: a.parent.as_deref().map(item_ref).transpose()?,
            };
            item(&t.new_item(new, &blockers, &guard(None, None, a.idempotency_key))?)
        })
        .await
    }

    #[tool(input_schema = input::<ItemArgs>(), description = "Show one item with its live claim (holder, token, expiry), its blockers \
        (blocked_by) and the items it blocks (blocks).", output_schema = schema::<ShowJson>())]
    async fn show(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Reads, raw, |t, a: ItemArgs, _| {
            to_json(&ShowJson::from(&t.show(&item_ref(&a.item)?)?))
        })
        .await
    }

    #[tool(input_schema = input::<ListArgs>(), description = "List items as {\"items\": [...]}: open ones by default; ready=true gives \
        the claimable queue, best priority first, then oldest.", output_schema = schema::<ItemsJson>())]
    async fn list(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Reads, raw, |t, a: ListArgs, _| {
            let ready = a.ready.unwrap_or(false);
            let status = Status::filter(a.status.as_deref().unwrap_or("open"), "status")?;
            let q = ListQuery {
                status,
                ready,
                claimed: a.claimed.unwrap_or(false),
                label: a.label,
                holder: a.holder,
                limit: a.limit,
                item_type: a.item_type.as_deref().map(tracker_type).transpose()?,
                search: a.search,
            };
            let items = t.list(&q)?.iter().map(ItemJson::from).collect();
            to_json(&ItemsJson { items })
        })
        .await
    }

    #[tool(input_schema = input::<UpdateArgs>(), description = "Change an item's fields (title, body, priority, labels, status). Give \
        if_version to refuse if anyone changed it since you read it; closing an item you hold \
        needs your token.", output_schema = schema::<ItemJson>())]
    async fn update(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: UpdateArgs, _| {
            let status = a
                .status
                .as_deref()
                .map(|s| Status::named(s, "status"))
                .transpose()?;
            let patch = Patch {
                title: a.title,
                body: a.body,
                priority: priority(a.priority)?,
                status,
                add_labels: a.add_labels.unwrap_or_default(),
                remove_labels: a.remove_labels.unwrap_or_default(),
                item_type: a.item_type.as_deref().map(tracker_type).transpose()?,
                parent: match (&a.parent, a.no_parent.unwrap_or(false)) {
                    (Some(_), true) => {
                        return Err(Error::Invalid("give parent or no_parent, not both".into()))
                    }
                    (Some(p), false) => Some(Some(item_ref(p)?)),
                    (None, true) => Some(None),
                    (None, false) => None,
                },
                close_reason: a.reason,
            };
            if patch == Patch::default() {
                return Err(Error::nothing_to_update(&[
                    "title",
                    "body",
                    "priority",
                    "status",
                    "add_labels",
                    "remove_labels",
                    "type",
                    "parent",
                    "no_parent",
                ]));
            }
            let g = guard(a.if_version, a.token, a.idempotency_key);
            item(&t.update(&item_ref(&a.item)?, patch, &g)?)
        })
        .await
    }

    #[tool(input_schema = input::<ClaimArgs>(), description = "Take a lease on one item. Returns the item with claim.token: pass it to \
        renew, release and done. Fails with code 3 (conflict) while another live holder has it.", output_schema = schema::<ItemJson>())]
    async fn claim(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::claim(&raw), raw, |t, a: ClaimArgs, stopped| {
            let g = guard(a.if_version, a.token, a.idempotency_key);
            let mut opts = claim_options(t, a.ttl.as_deref(), g)?;
            opts.steal_stale = a.steal_stale.unwrap_or(false);
            opts.force = a.force.unwrap_or(false);
            let r = item_ref(&a.item)?;
            let v = match duration("wait", a.wait.as_deref(), Use::Wait)? {
                Some(w) => t.claim_waiting_unless(Some(&r), None, &opts, w, stopped)?,
                None => t.claim(&r, &opts)?,
            };
            item(&v)
        })
        .await
    }

    #[tool(input_schema = input::<ClaimNextArgs>(), description = "Atomically claim the best ready item (open, unblocked, unclaimed; best \
        priority, then oldest). Returns it with claim.token. Code 4 (not_found) when nothing is ready.", output_schema = schema::<ItemJson>())]
    async fn claim_next(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(
            ctx,
            Work::claim(&raw),
            raw,
            |t, a: ClaimNextArgs, stopped| {
                let opts =
                    claim_options(t, a.ttl.as_deref(), guard(None, None, a.idempotency_key))?;
                let v = match duration("wait", a.wait.as_deref(), Use::Wait)? {
                    Some(w) => {
                        t.claim_waiting_unless(None, a.label.as_deref(), &opts, w, stopped)?
                    }
                    None => t.claim_next(a.label.as_deref(), &opts)?,
                };
                item(&v)
            },
        )
        .await
    }

    #[tool(input_schema = input::<RenewArgs>(), description = "Extend your lease (a heartbeat): renew well within the TTL while you work.", output_schema = schema::<ItemJson>())]
    async fn renew(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: RenewArgs, _| {
            let ttl = duration("ttl", a.ttl.as_deref(), Use::Ttl)?;
            let g = guard(a.if_version, a.token, a.idempotency_key);
            item(&t.renew(&item_ref(&a.item)?, ttl, &g)?)
        })
        .await
    }

    #[tool(input_schema = input::<LeaseArgs>(), description = "Give your lease back without finishing the item, so others can take it.", output_schema = schema::<ItemJson>())]
    async fn release(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: LeaseArgs, _| {
            let g = guard(a.if_version, a.token, a.idempotency_key);
            item(&t.release(&item_ref(&a.item)?, &g)?)
        })
        .await
    }

    #[tool(input_schema = input::<DoneArgs>(), description = "Mark an item done and drop its lease. Pass your token; refused (code 3) \
        if another holder has a live lease, unless force.", output_schema = schema::<ItemJson>())]
    async fn done(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: DoneArgs, _| {
            let g = guard(a.if_version, a.token, a.idempotency_key);
            let force = a.force.unwrap_or(false);
            item(&t.done_with_reason(&item_ref(&a.item)?, &g, force, a.reason.as_deref())?)
        })
        .await
    }

    #[tool(input_schema = input::<CommentArgs>(), description = "Append a comment to an item: a note for the next agent or a person \
        (author = you). It changes no field, so the item's version stays and nobody's if_version breaks.", output_schema = schema::<ItemJson>())]
    async fn comment(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: CommentArgs, _| {
            let g = guard(None, None, a.idempotency_key);
            item(&t.comment(&item_ref(&a.item)?, &a.text, &g)?)
        })
        .await
    }

    #[tool(input_schema = input::<DepArgs>(), description = "Make an item wait for another (blocker). A cycle is refused (code 3).", output_schema = schema::<ItemJson>())]
    async fn dep_add(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: DepArgs, _| {
            let g = guard(a.if_version, a.token, a.idempotency_key);
            item(&t.dep_add(&item_ref(&a.item)?, &item_ref(&a.blocker)?, &g)?)
        })
        .await
    }

    #[tool(input_schema = input::<DepArgs>(), description = "Stop an item waiting for another.", output_schema = schema::<ItemJson>())]
    async fn dep_rm(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Writes, raw, |t, a: DepArgs, _| {
            let g = guard(a.if_version, a.token, a.idempotency_key);
            item(&t.dep_remove(&item_ref(&a.item)?, &item_ref(&a.blocker)?, &g)?)
        })
        .await
    }

    #[tool(input_schema = input::<LogArgs>(), description = "The ops log as {\"ops\": [...]}, oldest first: who changed what, when. \
        Use since (a sequence number) to read only what is new.", output_schema = schema::<OpsJson<'static>>())]
    async fn log(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Reads, raw, |t, a: LogArgs, _| {
            let r = a.item.as_deref().map(item_ref).transpose()?;
            let ops = t.log(r.as_ref(), a.since.unwrap_or(0), a.limit)?;
            let ops = ops.iter().map(|(op, num)| OpJson::new(op, *num)).collect();
            to_json(&OpsJson { ops })
        })
        .await
    }

    #[tool(input_schema = input::<StatusArgs>(), description = "The board: counts by state (open, ready, claimed, blocked, done, \
        cancelled), live claims with heartbeat ages, stale claims, and metrics: lease events \
        overall and per holder (over the last `since`, e.g. \"24h\"), refused claims, and time \
        from new to first claim and from claim to done.", output_schema = schema::<StatusJson>())]
    async fn status(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(raw): Parameters<JsonObject>,
    ) -> CallToolResult {
        self.call(ctx, Work::Reads, raw, |t, a: StatusArgs, _| {
            let window = duration("since", a.since.as_deref(), Use::Window)?;
            let (b, m) = (t.board()?, t.metrics_over(window)?);
            to_json(&StatusJson::new(&b, m, &t.now()))
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
