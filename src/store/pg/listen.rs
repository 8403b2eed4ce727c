//! Waking on committed ops: every write that appends ops sends `NOTIFY tracker_ops` with its
//! commit (in the same batch; the server delivers it only if the write commits), and a waiter
//! (`claim --wait`, `log --follow`, a waiting MCP claim) listens on a connection of its own.
//!
//! One listening connection per handle, however many callers wait at once: the first caller
//! in reads notifications from it; the others wait on a condition variable for a notification
//! it saw. Nothing else is notified: a lease expiring or a holder dying changes no row, so
//! waiters still wake at the deadlines they know of.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;

use super::connect::Connector;
use super::NOTIFY_CHANNEL;

/// The listening connection and the count of notifications seen through it.
#[derive(Default)]
pub(super) struct Wakeups {
    listener: Mutex<Option<postgres::Client>>,
    seen: Mutex<u64>,
    heard: Condvar,
}

impl Wakeups {
    /// Starts listening, if not already (so that a write committed after this returns wakes the
    /// next wait). False if the listening connection cannot be made: waiters then poll.
    pub fn listen(&self, connector: &Connector, timeout: Duration) -> bool {
        let Ok(mut listener) = self.listener.lock() else {
            return false;
        };
        if listener.as_ref().is_some_and(|c| !c.is_closed()) {
            return true;
        }
        *listener = None;
        let Ok(mut client) = connector.connect(Instant::now() + timeout) else {
            return false;
        };
        if client
            .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
            .is_err()
        {
            return false;
        }
        *listener = Some(client);
        true
    }

    /// Waits at most `timeout` for a write to commit new ops; true if one did (or may have).
    /// Without a listening connection it just sleeps, and says false.
    pub fn wait(&self, timeout: Duration) -> bool {
        let before = *self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match self.listener.try_lock() {
            Ok(mut listener) => {
                let Some(client) = listener.as_mut() else {
                    drop(listener);
                    std::thread::sleep(timeout);
                    return false;
                };
                // Some(true): heard one; Some(false): the timeout passed; None: connection lost.
                let outcome = {
                    let mut notes = client.notifications();
                    let first = notes.timeout_iter(timeout).next();
                    match first {
                        Ok(Some(_)) => {
                            // One wake for every notification already queued.
                            let mut queued = notes.iter();
                            while let Ok(Some(_)) = queued.next() {}
                            Some(true)
                        }
                        Ok(None) => Some(false),
                        Err(_) => None,
                    }
                };
                let heard = outcome == Some(true);
                if outcome.is_none() {
                    *listener = None;
                }
                if heard {
                    *self.seen.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                    self.heard.notify_all();
                }
                heard
            }
            // Another caller is reading the connection: wait for what it hears.
            Err(_) => {
                let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                let (seen, _) = self
                    .heard
                    .wait_timeout_while(seen, timeout, |s| *s == before)
                    .unwrap_or_else(|p| p.into_inner());
                *seen != before
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::model::Status;
    use crate::store::conformance_methods::{item, op};
    use crate::store::pg::{test_schema_url, PgStore};
    use crate::store::{Counter, Storage};

    /// A listener on one handle is woken by an op another handle commits, and by nothing else:
    /// not by a write without ops, not by a write rolled back.
    #[test]
    fn a_committed_op_wakes_a_listener_and_nothing_else_does() {
        let Some(url) = test_schema_url() else { return };
        let timeout = Duration::from_secs(10);
        let (writer, _) = PgStore::init(&url, timeout).unwrap();
        let (watcher, _) = PgStore::init(&url, timeout).unwrap();
        assert!(watcher.listen());
        assert!(
            !watcher.wait_for_change(Duration::from_millis(200)),
            "woken by nothing"
        );
        writer
            .write(|t| t.set_counter(Counter::WaitRetries, 1))
            .unwrap();
        assert!(
            !watcher.wait_for_change(Duration::from_millis(200)),
            "a write without ops"
        );
        let one = item(1, Status::Open, 2, &[], &[]);
        let refused = writer.write(|t| {
            t.append_op(&op(1, &one))?;
            Err::<(), _>(crate::Error::Invalid("rolled back".into()))
        });
        assert!(refused.is_err());
        assert!(
            !watcher.wait_for_change(Duration::from_millis(200)),
            "a rolled-back op"
        );
        writer
            .write(|t| {
                t.put_item(None, &one, true)?;
                t.append_op(&op(1, &one))
            })
            .unwrap();
        // Generous: only a broken notification waits this long.
        assert!(
            watcher.wait_for_change(Duration::from_secs(30)),
            "a committed op"
        );
        assert!(
            !watcher.wait_for_change(Duration::from_millis(200)),
            "woken once per op"
        );
    }
}
