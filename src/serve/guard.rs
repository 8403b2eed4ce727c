//! The server's own refusals, before any command runs: the token (401), the `Host` and `Origin`
//! a request may carry (403: DNS rebinding and cross-site requests), `--read-only` (403), and
//! the actor a write names in `X-Tracker-As` (400 without one). No CORS header is ever sent.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tracker::{Actor, Error, Result};

use super::{Failure, Server};

/// `TRACKER_SERVE_TOKEN` when set, else 128 random bits in hex.
pub(crate) fn token_from_env_or_random() -> Result<String> {
    if let Ok(t) = std::env::var("TRACKER_SERVE_TOKEN") {
        let t = t.trim().to_string();
        if !t.is_empty() {
            if t.chars().any(|c| !c.is_ascii_graphic()) {
                return Err(Error::bad_field(
                    "TRACKER_SERVE_TOKEN",
                    "use printable ASCII characters only (it travels in a header)",
                ));
            }
            return Ok(t);
        }
    }
    let mut bytes = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("cannot read /dev/urandom for the server's token", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The names a `Host` header may carry: the listen address, `localhost`, `127.0.0.1`, and the
/// `--allow-host` names.
pub(crate) fn allowed_hosts(local: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut hosts = vec![
        local.ip().to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    hosts.extend(extra.iter().map(|h| h.trim().to_ascii_lowercase()));
    hosts
}

/// The middleware in front of every route.
pub(crate) async fn check(State(s): State<Arc<Server>>, req: Request, next: Next) -> Response {
    match admit(&s, req.method(), req.uri().path(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => Failure(e).into_response(),
    }
}

fn admit(s: &Server, method: &Method, path: &str, headers: &HeaderMap) -> Result<()> {
    host(s, headers)?;
    origin(s, headers)?;
    let guarded = path.starts_with("/api/") || path == "/mcp" || path.starts_with("/mcp/");
    if guarded {
        bearer(s, headers)?;
    }
    if s.read_only && path.starts_with("/api/") && !is_read(method) {
        return Err(Error::Forbidden(
            "this server is read-only (--read-only): it takes no writes".into(),
        ));
    }
    Ok(())
}

/// GET and HEAD change nothing; every other method is a write.
pub(crate) fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// A `Host` value split into its name (lower case, IPv6 without brackets) and port.
fn split_host(value: &str) -> (String, Option<&str>) {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('[') {
        let (name, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':');
        return (name.to_ascii_lowercase(), port);
    }
    match value.rsplit_once(':') {
        Some((name, port)) => (name.to_ascii_lowercase(), Some(port)),
        None => (value.to_ascii_lowercase(), None),
    }
}

fn host_is_ours(s: &Server, value: &str, default_port: u16) -> bool {
    let (name, port) = split_host(value);
    let port_ok = match port {
        None => s.port == default_port,
        Some(p) => p.parse::<u16>().ok() == Some(s.port),
    };
    port_ok && s.hosts.contains(&name)
}

/// The port a `Host` or `Origin` without one means.
fn default_port(s: &Server) -> u16 {
    if s.tls {
        443
    } else {
        80
    }
}

fn host(s: &Server, headers: &HeaderMap) -> Result<()> {
    let value = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if host_is_ours(s, value, default_port(s)) {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "Host {value:?} is not a name this server answers to (the listen address, localhost, \
         127.0.0.1, or one given with --allow-host)"
    )))
}

/// A request from a page of another origin (or from an opaque one, `null`) is refused: the
/// board is the only page that may call this server from a browser.
fn origin(s: &Server, headers: &HeaderMap) -> Result<()> {
    let Some(value) = headers.get(axum::http::header::ORIGIN) else {
        return Ok(());
    };
    // A browser sends one Origin; a request with two is no browser's, and is refused rather
    // than judged by either.
    if headers.get_all(axum::http::header::ORIGIN).iter().count() > 1 {
        return Err(Error::Forbidden(
            "two Origin headers: a request carries one at most".into(),
        ));
    }
    let value = value.to_str().unwrap_or("null");
    let scheme = if s.tls { "https://" } else { "http://" };
    let same = value
        .strip_prefix(scheme)
        .is_some_and(|rest| !rest.contains('/') && host_is_ours(s, rest, default_port(s)));
    if same {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "Origin {value:?} is another site's: this server answers only its own pages"
    )))
}

fn bearer(s: &Server, headers: &HeaderMap) -> Result<()> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(given) = given else {
        return Err(Error::Unauthorized(
            "no token: send Authorization: Bearer TOKEN, with the token in the URL `tracker \
             serve` printed"
                .into(),
        ));
    };
    if bool::from(given.as_bytes().ct_eq(s.token.as_bytes())) {
        Ok(())
    } else {
        Err(Error::Unauthorized(
            "wrong token: use the one in the URL `tracker serve` printed".into(),
        ))
    }
}

/// The actor a write names in `X-Tracker-As`. The header names but proves nothing, so the
/// actor is not distinct: a lease it takes is recognised by its fencing token only.
pub(crate) fn actor(headers: &HeaderMap) -> Result<Actor> {
    let Some(value) = headers.get("x-tracker-as") else {
        return Err(Error::missing_field("X-Tracker-As"));
    };
    tracker::command::header_actor(value.as_bytes())
}
