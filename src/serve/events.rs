//! `GET /api/v1/events`: Server-Sent Events, one per op as any process commits it, in order,
//! none skipped. One thread follows the log by sequence (a file is polled; PostgreSQL wakes it
//! with `NOTIFY`) and hands each op to a channel of bounded size that every stream reads from.
//! A stream that is behind (resumed from `Last-Event-ID` or `?since=`, or a client that read
//! slowly, or not at all, while more ops than that channel holds were committed) reads what it
//! lacks from the log itself, a few ops at a time as its client takes them: the server never
//! holds more for one client than that, and the client misses nothing. A large op is sent
//! without its changes ([`MAX_EVENT_BYTES`]), so what is held is bounded in bytes too.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;
use tracker::json::OpJson;
use tracker::model::Op;
use tracker::{Error, Result};

use super::{Failure, Never, Server};
use crate::turns::Work;

/// Ops kept for streams that have not sent them yet.
const BUFFERED_OPS: usize = 256;
/// Ops a stream that is behind reads from the log at a time: all it holds for its client.
const CATCH_UP_OPS: usize = 16;
/// The largest op sent whole; a larger one (a 1 MiB body, say) is sent without its changes,
/// marked `"changes_omitted": true` (read it whole from `GET /api/v1/log`). So the server keeps
/// at most [`BUFFERED_OPS`] times this for its streams, however many there are.
const MAX_EVENT_BYTES: usize = 64 << 10;
/// How often a file is looked at for new ops.
const FILE_POLL: Duration = Duration::from_millis(100);

/// One committed op: its sequence number and its JSON (the shape of `log --json`).
#[derive(Clone, Debug)]
pub(crate) struct Committed {
    seq: u64,
    json: Arc<str>,
}

/// Where the follower thread publishes ops.
pub(crate) struct Hub {
    tx: broadcast::Sender<Committed>,
    /// The sequence number of the next op the follower will publish.
    next: AtomicU64,
}

impl Hub {
    pub(crate) fn new() -> Hub {
        Hub {
            tx: broadcast::channel(BUFFERED_OPS).0,
            next: AtomicU64::new(1),
        }
    }
}

/// Starts the thread that follows the log from its end.
pub(crate) fn follow(server: Arc<Server>) -> Result<()> {
    let t = server.tracker(None);
    let mut since = t.last_seq()? + 1;
    server.events.next.store(since, Ordering::SeqCst);
    std::thread::Builder::new()
        .name("serve-events".into())
        .spawn(move || {
            let listening = t.listen();
            loop {
                match publish(&t, &server.events, since) {
                    Ok(next) if next > since => since = next,
                    Ok(_) if listening => {
                        t.wait_for_change(Duration::from_secs(10));
                    }
                    Ok(_) => std::thread::sleep(FILE_POLL),
                    // The file busy, the database away: try again shortly.
                    Err(_) => std::thread::sleep(Duration::from_secs(1)),
                }
            }
        })
        .map_err(|e| Error::io("cannot start the event thread", e))?;
    Ok(())
}

/// Publishes the ops from `since` on (at most a batch); returns the sequence to go on from.
fn publish(t: &super::Tracker, hub: &Hub, since: u64) -> Result<u64> {
    let mut next = since;
    t.log_each(None, since, Some(BUFFERED_OPS), &mut |op, num| {
        next = op.seq + 1;
        // No stream open: nobody to tell.
        let _ = hub.tx.send(committed(&op, num)?);
        // After each op, not each batch: a stream starting now starts after this one.
        hub.next.store(next, Ordering::SeqCst);
        Ok(())
    })?;
    Ok(next)
}

/// Up to `limit` ops from `since` on, read from the log.
fn read_log(t: &super::Tracker, since: u64, limit: usize) -> Result<Vec<Committed>> {
    let mut ops = Vec::new();
    t.log_each(None, since, Some(limit), &mut |op, num| {
        ops.push(committed(&op, num)?);
        Ok(())
    })?;
    Ok(ops)
}

fn committed(op: &Op, num: Option<u64>) -> Result<Committed> {
    Ok(Committed {
        seq: op.seq,
        json: Arc::from(event_json(&OpJson::new(op, num))?),
    })
}

/// The op as `log --json` prints it, without its changes past [`MAX_EVENT_BYTES`].
fn event_json(op: &OpJson<'_>) -> Result<String> {
    let whole = serde_json::to_string(op).map_err(|e| Error::Internal(e.to_string()))?;
    if whole.len() <= MAX_EVENT_BYTES {
        return Ok(whole);
    }
    let mut v = serde_json::to_value(op).map_err(|e| Error::Internal(e.to_string()))?;
    v["changes"] = serde_json::json!([]);
    v["changes_omitted"] = true.into();
    Ok(v.to_string())
}

/// Where a stream starts (`?since=SEQ`: from that op on; without it, from the next op committed).
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Args {
    /// Start with the op of this sequence number (the ops before it are not sent); without
    /// it, the stream starts with the next op committed. A `Last-Event-ID` header (sent by a
    /// reconnecting `EventSource`) takes precedence: the stream goes on after that op.
    #[schemars(range(min = 1))]
    pub since: Option<u64>,
}

/// The stream of one client: `event: op` with `id` = the op's sequence number and the op as
/// `log --json` prints it, every op in order from where it starts.
pub(crate) async fn stream(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let start = match start(&headers, q) {
        Ok(start) => start,
        Err(e) => return Failure(e).into_response(),
    };
    // The follower's position is read before subscribing, and again after: an op published in
    // between is not on this stream's channel, so the stream starts by reading the log.
    let next = start.unwrap_or_else(|| s.events.next.load(Ordering::SeqCst));
    let rx = s.events.tx.subscribe();
    let moved = s.events.next.load(Ordering::SeqCst) != next;
    let cursor = Cursor {
        rx,
        server: s,
        next,
        backlog: VecDeque::new(),
        from_log: start.is_some() || moved,
    };
    let events = futures_util::stream::unfold(cursor, |mut c| async move {
        let event = c.next_event().await?;
        Some((Ok::<_, Never>(event), c))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The first op to send, if the client named one: after `Last-Event-ID`, else `since`.
fn start(headers: &HeaderMap, q: Vec<(String, String)>) -> Result<Option<u64>> {
    let a: Args = super::args::query(q)?;
    if a.since == Some(0) {
        return Err(Error::bad_field("since", "0: sequence numbers start at 1"));
    }
    let Some(last) = headers.get("last-event-id") else {
        return Ok(a.since);
    };
    let last = last.to_str().unwrap_or_default().trim();
    match last.parse::<u64>().map(|seq| seq.checked_add(1)) {
        Ok(Some(next)) => Ok(Some(next)),
        // The log never reaches u64::MAX: no op can come after that one.
        Ok(None) => Err(Error::bad_field(
            "Last-Event-ID",
            format!("{last}: no op comes after it"),
        )),
        Err(_) => Err(Error::bad_field(
            "Last-Event-ID",
            format!("{last:?}: not an op's sequence number (the id of an event this stream sent)"),
        )),
    }
}

/// Where one client's stream stands.
struct Cursor {
    server: Arc<Server>,
    rx: broadcast::Receiver<Committed>,
    /// The sequence number of the next op to send.
    next: u64,
    /// Ops read from the log, sent before anything else.
    backlog: VecDeque<Committed>,
    /// Whether the next ops are to be read from the log: the stream is behind what the
    /// follower has published (or does not know that it is not).
    from_log: bool,
}

impl Cursor {
    /// The next event: the next op in sequence, however far behind the stream is.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(c) = self.backlog.pop_front() {
                self.next = c.seq + 1;
                return Some(op_event(&c));
            }
            if self.from_log {
                let (server, since) = (self.server.clone(), self.next);
                let read = self
                    .server
                    .run(Work::Reads, move |_| {
                        read_log(&server.tracker(None), since, CATCH_UP_OPS)
                    })
                    .await;
                match read {
                    // Caught up: the follower's channel has whatever comes next.
                    Ok(ops) if ops.is_empty() => self.from_log = false,
                    Ok(ops) => self.backlog.extend(ops),
                    // The file busy, the database away: the stream waits and tries again.
                    Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
                continue;
            }
            match self.rx.recv().await {
                // Sent already, from the log.
                Ok(c) if c.seq < self.next => {}
                Ok(c) if c.seq == self.next => {
                    self.next += 1;
                    return Some(op_event(&c));
                }
                // A gap (ops published before this stream subscribed), or ops this stream
                // fell too far behind to be kept for it: the log has them.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.from_log = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn op_event(c: &Committed) -> Event {
    Event::default()
        .event("op")
        .id(c.seq.to_string())
        .data(&*c.json)
}
