//! `GET /api/v1/events`: Server-Sent Events, one per op as any process commits it. One thread
//! follows the log by sequence (a file is polled; PostgreSQL wakes it with `NOTIFY`) and hands
//! each op to a channel of bounded size that every stream reads from. A client that reads
//! slowly, or never, makes the server buffer no more than that channel: once it falls behind by
//! more, it is sent a `lagged` event saying how many ops it missed, and goes on from the newest
//! (it can read them with `GET /api/v1/log?since=`). A large op is sent without its changes
//! ([`MAX_EVENT_BYTES`]), so that buffer is bounded in bytes too.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio::sync::broadcast;
use tracker::json::OpJson;
use tracker::{Error, Result};

use super::{Never, Server};

/// Ops kept for streams that have not sent them yet.
const BUFFERED_OPS: usize = 256;
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
}

impl Hub {
    pub(crate) fn new() -> Hub {
        Hub {
            tx: broadcast::channel(BUFFERED_OPS).0,
        }
    }
}

/// Starts the thread that follows the log from its end.
pub(crate) fn follow(server: Arc<Server>) -> Result<()> {
    let t = server.tracker(None);
    let mut since = t.last_seq()? + 1;
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
        let json = event_json(&OpJson::new(&op, num))?;
        next = op.seq + 1;
        // No stream open: nobody to tell.
        let _ = hub.tx.send(Committed {
            seq: op.seq,
            json: Arc::from(json),
        });
        Ok(())
    })?;
    Ok(next)
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

/// The stream of one client: `event: op` with `id` = the op's sequence number and the op as
/// `log --json` prints it; `event: lagged` with `{"missed": N}` when it fell behind.
pub(crate) async fn stream(
    State(s): State<Arc<Server>>,
) -> Sse<impl futures_util::Stream<Item = std::result::Result<Event, Never>>> {
    let rx = s.events.tx.subscribe();
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(c) => Event::default()
                .event("op")
                .id(c.seq.to_string())
                .data(&*c.json),
            Err(broadcast::error::RecvError::Lagged(n)) => Event::default()
                .event("lagged")
                .data(format!("{{\"missed\":{n}}}")),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
