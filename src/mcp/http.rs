//! `/mcp` of `tracker serve`: the same server and tools as `tracker mcp`, over Streamable HTTP
//! (rmcp's service), one [`Server`] per session over the one tracker handle the HTTP server
//! keeps. What differs from stdio, as for every HTTP request: leases live by their TTL (tied to
//! no process: the server outlives its agents); the actor (`X-Tracker-As`, else the client's
//! name) is a name that proves nothing, so every lease-guarded call needs the lease's token;
//! a `--read-only` server refuses every call that writes. The HTTP server checks the token,
//! `Host` and `Origin` before a request gets here.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};

use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::RoleServer;
use tracker::{Actor, Backend, Error, Result};

use super::Server;
use crate::turns::{Turns, Work};

/// How a session served over HTTP differs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Session {
    read_only: bool,
}

/// The `/mcp` service over `backend`; `read_only` refuses every call that writes.
/// Every session takes `turns`, the HTTP server's own: one process's writers take turns together.
pub(crate) fn service(
    backend: Arc<Backend>,
    turns: Arc<Turns>,
    read_only: bool,
) -> StreamableHttpService<Server, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        // The HTTP server has checked Host (with its --allow-host names) already.
        .disable_allowed_hosts();
    StreamableHttpService::new(
        move || {
            Ok(Server {
                backend: Arc::new(Mutex::new(Some(backend.clone()))),
                tracker: Arc::new(OnceLock::new()),
                named: None,
                over_http: Some(Session { read_only }),
                closing: Arc::new(AtomicBool::new(false)),
                running: Arc::new(AtomicUsize::new(0)),
                turns: turns.clone(),
                tool_router: Server::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// The actor a request over HTTP names in `X-Tracker-As`, refused as the JSON API refuses it;
/// `None` without one.
pub(super) fn header_actor(ctx: &RequestContext<RoleServer>) -> Result<Option<Actor>> {
    ctx.extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.headers.get("x-tracker-as"))
        .map(|value| tracker::command::header_actor(value.as_bytes()))
        .transpose()
}

/// Whether a call of kind `work` may run: a read-only server runs reads only.
pub(super) fn admit(session: Option<&Session>, work: Work) -> Result<()> {
    match (session, work) {
        (Some(s), Work::Writes | Work::Waits(_)) if s.read_only => Err(Error::Forbidden(
            "this server is read-only (--read-only): it takes no writes".into(),
        )),
        _ => Ok(()),
    }
}
