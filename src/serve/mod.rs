//! `tracker serve`: the HTTP transport, beside the command line and the MCP server. It parses
//! HTTP into the command layer's arguments (the same `Args` types the MCP tools take), runs the
//! command's `exec` and answers with the `--json` shape; failures are the one error object, with
//! the HTTP status [`Error::http_status`] gives. No rule of the tracker lives here: only the
//! server's own (the token, which `Host` and `Origin` it answers, `--read-only`, limits).
//!
//! - [`guard`]: the token, `Host` and `Origin` checks, read-only, the actor of a write;
//! - [`api`]: the routes of the JSON API;
//! - [`args`]: request bodies and query strings into the command layer's arguments;
//! - [`events`]: the ops log as Server-Sent Events;
//! - [`openapi`]: the OpenAPI document, from the same types;
//! - [`board`]: the board's page and its embedded assets.
//!
//! The tokio runtime (several threads) is started by this command only. Each command runs on
//! the runtime's blocking threads, as many at a time as its kind allows ([`Work`]).

mod api;
mod args;
mod board;
mod events;
mod guard;
mod openapi;
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use tracker::{Actor, Backend, Clock, Error, Result, SystemClock};

use crate::turns::{Turns, Work};
use crate::HttpOptions;

/// The tracker a request runs on: one shared handle, acting as the request's actor.
pub(crate) type Tracker = tracker::Tracker<Arc<Backend>>;

/// The longest request body taken (a title is at most 4 KiB, a body far less than this).
const MAX_BODY_BYTES: usize = 2 << 20;
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections past `--max-connections` answered 503 at once, each for at most
/// [`REFUSAL_TIME`]; beyond these, a connection is closed without an answer.
const REFUSALS_AT_ONCE: usize = 64;
/// How long a refused connection is given to take its 503.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// What every request handler shares.
pub(crate) struct Server {
    backend: Arc<Backend>,
    clock: Arc<dyn Clock>,
    token: String,
    read_only: bool,
    /// Served over TLS: its own pages' origin is `https://`, its default port 443.
    tls: bool,
    /// Names the `Host` header may carry (lower case, without a port).
    hosts: Vec<String>,
    /// The port listened on: a `Host` or `Origin` naming another is refused.
    port: u16,
    turns: Arc<Turns>,
    events: events::Hub,
}

/// Sets a request's "stop waiting" flag when the request's future is dropped (its client went
/// away, or the server is stopping).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Server {
    /// A tracker over the shared handle, acting as `actor` (reads act as nobody in particular).
    pub(crate) fn tracker(&self, actor: Option<Actor>) -> Tracker {
        // Advice in a message names the body's fields (`` `force` ``), not command-line flags.
        let t = Tracker::with_store(self.backend.clone())
            .with_clock(self.clock.clone())
            .with_spelling(tracker::command::Spelling::Json);
        match actor {
            Some(a) => t.with_actor(a),
            None => t.with_actor(Actor::named("http")),
        }
    }

    /// Runs `f` on a blocking thread when its kind of work has a turn. `f` is given a question
    /// to ask while it waits: whether the request has been given up.
    pub(crate) async fn run<R, F>(&self, work: Work, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Fn() -> bool) -> Result<R> + Send + 'static,
    {
        let turn = self.turns.take(work).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(stop.clone());
        let task = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            f(&|| stop.load(Ordering::SeqCst))
        });
        task.await
            .unwrap_or_else(|_| Err(Error::Internal("a request's command panicked".into())))
    }
}

/// A failure as the HTTP answer: the error object, with its status.
pub(crate) struct Failure(pub Error);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = axum::http::StatusCode::from_u16(self.0.http_status())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::Value::from(tracker::json::error_json(&self.0));
        (status, axum::Json(body)).into_response()
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure(e)
    }
}

/// Serves `backend` over HTTP as `options` say, until SIGINT or SIGTERM. The first line on
/// stdout is the board's URL, with the token in it.
pub fn serve(backend: Backend, options: HttpOptions) -> Result<i32> {
    let tls = options
        .tls
        .as_ref()
        .map(|(cert, key)| tls::acceptor(cert, key))
        .transpose()?;
    let listener = std::net::TcpListener::bind(options.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| Error::io(format!("cannot listen on {}", options.listen), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the address listened on", e))?;
    // Many clients write at once: on a file, writes that arrive together share a commit.
    if let Backend::Redb(store) = &backend {
        store.share_commits();
    }
    // One set of turns for the API and the `/mcp` sessions: one process's writers.
    let turns = Arc::new(Turns::for_backend(&backend));
    let server = Arc::new(Server {
        backend: Arc::new(backend),
        clock: Arc::new(SystemClock::new()),
        token: guard::token_from_env_or_random()?,
        read_only: options.read_only,
        tls: tls.is_some(),
        hosts: guard::allowed_hosts(local, &options.allow_hosts),
        port: local.port(),
        turns,
        events: events::Hub::new(),
    });
    // Before the URL is printed, so that every op committed after it is streamed. Outside the
    // runtime: the PostgreSQL client blocks on a runtime of its own.
    events::follow(server.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(128)
        .thread_name("tracker-serve")
        .build()
        .map_err(|e| Error::io("cannot start the HTTP server", e))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::io(format!("cannot listen on {local}"), e))?;
        announce(&server, local, tls.is_some());
        let app = api::router(server.clone());
        accept(listener, app, tls, options.max_connections).await;
        Ok(0)
    })
}

/// The board's URL (with the token) on the first line of stdout, and a warning on stderr when
/// the traffic can leave this machine.
fn announce(server: &Server, local: SocketAddr, tls: bool) {
    use std::io::Write;
    let host = match local.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let scheme = if tls { "https" } else { "http" };
    println!("{scheme}://{host}:{}/#token={}", local.port(), server.token);
    let _ = std::io::stdout().flush();
    if !local.ip().is_loopback() && !tls {
        eprintln!(
            "tracker: warning: listening on {local}, beyond loopback: the traffic (the token \
             included) is plain HTTP that anyone on the network path can read"
        );
    }
}

/// Accepts connections until SIGINT or SIGTERM: each served by hyper's HTTP/1 connection, whose
/// headers must arrive within [`HEADER_READ_TIMEOUT`]; past `max` at once, a new connection is
/// answered 503 (busy, the error object) and closed.
async fn accept(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    max: usize,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let open = Arc::new(tokio::sync::Semaphore::new(max));
    let refusing = Arc::new(tokio::sync::Semaphore::new(REFUSALS_AT_ONCE));
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        let (socket, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => {
                    // Out of file descriptors, say: wait for some to be closed.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut stop => return,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            // Over TLS a plain answer would be noise: the connection is closed.
            if let (None, Ok(turn)) = (&tls, refusing.clone().try_acquire_owned()) {
                tokio::spawn(refuse_busy(socket, max, turn));
            }
            continue;
        };
        let _ = socket.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let http = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(64 << 10)
                .clone();
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(socket), service).await;
                }
                Some(acceptor) => {
                    // The handshake is bounded like the headers that follow it.
                    let shaken =
                        tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(socket)).await;
                    if let Ok(Ok(stream)) = shaken {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            }
        });
    }
}

/// Answers a connection past the limit with 503 and the error object, then reads what the
/// client sent until it closes (so the answer is not lost to a reset), for at most
/// [`REFUSAL_TIME`].
async fn refuse_busy(
    mut socket: tokio::net::TcpStream,
    max: usize,
    _turn: tokio::sync::OwnedSemaphorePermit,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let e = Error::Busy(format!(
        "the server is serving {max} connections, its most (--max-connections); try again shortly"
    ));
    let body = serde_json::Value::from(tracker::json::error_json(&e)).to_string();
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        socket.write_all(reply.as_bytes()).await?;
        socket.shutdown().await?;
        let mut sink = [0u8; 4096];
        while socket.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Resolves on the first SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Never fails: for streams whose items cannot be errors.
pub(crate) type Never = Infallible;
