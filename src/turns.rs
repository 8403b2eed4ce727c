//! How a long-lived process runs commands side by side: `tracker mcp`, and `tracker serve`
//! (its JSON API and its `/mcp` sessions, which share one set of turns, as one process's
//! writers must). Not a transport: both transports use it, and it knows neither.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracker::durations::Use;
use tracker::{Backend, Error, Result};

/// Waiting claims run at once; more wait for a turn (within their own wait).
const WAITING_TURNS: usize = 64;

/// What a command does, for running commands side by side. Writes to a file take turns, one at
/// a time: writers in one process that contend for the file's lock poll it (with pauses of up
/// to 8ms), so a burst of writes run side by side is several times slower than the same writes
/// one after another; a database takes several at once on its pool of connections. Reads run
/// side by side, and so do waiting claims, which would otherwise hold the writers' turn for the
/// whole wait. Each kind has a bound, so a client that sends thousands of requests at once gets
/// them queued, not a thread each.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Work {
    Reads,
    Writes,
    /// A claim that waits this long at most (for its turn too; `None` if its wait is not one
    /// the command will take, which then refuses it).
    Waits(Option<Duration>),
}

impl Work {
    /// A claim's work: it waits if asked to (`wait` given and not null).
    pub(crate) fn claim(wait: Option<&serde_json::Value>) -> Work {
        match wait {
            Some(w) if !w.is_null() => Work::Waits(
                w.as_str()
                    .and_then(|w| tracker::durations::parse_field("wait", w, Use::Wait).ok()),
            ),
            _ => Work::Writes,
        }
    }
}

/// The turns of each kind of [`Work`], first come first served.
pub(crate) struct Turns {
    reads: Arc<Semaphore>,
    writes: Arc<Semaphore>,
    waits: Arc<Semaphore>,
}

impl Turns {
    /// The turns for a process serving `backend`.
    pub(crate) fn for_backend(backend: &Backend) -> Turns {
        let writers = match backend {
            // A database takes writes side by side, each on a connection of the pool; a file
            // whose writers share commits takes as many, and commits them together.
            Backend::Postgres(_) => 8,
            Backend::Redb(store) if store.shares_commits() => 8,
            Backend::Redb(_) => 1,
        };
        Turns {
            reads: Arc::new(Semaphore::new(16)),
            writes: Arc::new(Semaphore::new(writers)),
            waits: Arc::new(Semaphore::new(WAITING_TURNS)),
        }
    }

    /// Waits for a turn of `work`'s kind; the turn ends when the permit is dropped. A waiting
    /// claim waits no longer for its turn than it would for the item: a client is answered
    /// within the wait it asked for, however many claims wait before it.
    pub(crate) async fn take(&self, work: Work) -> Result<OwnedSemaphorePermit> {
        let turns = match work {
            Work::Reads => &self.reads,
            Work::Writes => &self.writes,
            Work::Waits(_) => &self.waits,
        };
        let turn = turns.clone().acquire_owned();
        let taken = match work {
            Work::Waits(Some(wait)) => match tokio::time::timeout(wait, turn).await {
                Ok(taken) => taken,
                Err(_) => {
                    return Err(Error::Busy(format!(
                        "waited {} and the claim still could not be made: {WAITING_TURNS} \
                         claims were waiting already, and this one never got its turn; try \
                         again",
                        humantime::format_duration(wait)
                    )))
                }
            },
            _ => turn.await,
        };
        taken.map_err(|_| Error::Internal("the queue of requests was closed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by a hostile test: 120 claims waiting 15 s on one item, 64 at a time, and the last
    /// answered 30.8 s after it was sent. A claim's wait bounds its wait for a turn too.
    #[test]
    fn a_waiting_claim_waits_no_longer_for_its_turn_than_its_wait() {
        let none_free = Turns {
            reads: Arc::new(Semaphore::new(1)),
            writes: Arc::new(Semaphore::new(1)),
            waits: Arc::new(Semaphore::new(0)),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let wait = Some(Duration::from_millis(50));
        let e = runtime
            .block_on(none_free.take(Work::Waits(wait)))
            .expect_err("no turn is free");
        assert_eq!(e.exit_code(), 5, "{e}");
        assert!(e.to_string().contains("never got its turn"), "{e}");
        assert!(runtime.block_on(none_free.take(Work::Writes)).is_ok());
    }

    #[test]
    fn a_claim_waits_when_given_a_wait() {
        assert!(matches!(Work::claim(None), Work::Writes));
        let null = serde_json::Value::Null;
        assert!(matches!(Work::claim(Some(&null)), Work::Writes));
        let five = serde_json::json!("5s");
        let w = Work::claim(Some(&five));
        assert!(matches!(w, Work::Waits(Some(d)) if d == Duration::from_secs(5)));
        let bad = serde_json::json!("soon");
        assert!(matches!(Work::claim(Some(&bad)), Work::Waits(None)));
    }
}
