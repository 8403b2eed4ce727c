//! How a long-lived process runs commands side by side: `tracker mcp`, and `tracker serve`
//! (its JSON API and its `/mcp` sessions, which share one set of turns, as one process's
//! writers must). Not a transport: both transports use it, and it knows neither.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracker::{Backend, Error, Result};

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
    Waits,
}

impl Work {
    /// A claim's work: it waits if asked to (`wait` given and not null).
    pub(crate) fn claim(wait: Option<&serde_json::Value>) -> Work {
        match wait {
            Some(w) if !w.is_null() => Work::Waits,
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
            // A database takes writes side by side, each on a connection of the pool.
            Backend::Postgres(_) => 8,
            Backend::Redb(_) => 1,
        };
        Turns {
            reads: Arc::new(Semaphore::new(16)),
            writes: Arc::new(Semaphore::new(writers)),
            waits: Arc::new(Semaphore::new(64)),
        }
    }

    /// Waits for a turn of `work`'s kind; the turn ends when the permit is dropped.
    pub(crate) async fn take(&self, work: Work) -> Result<OwnedSemaphorePermit> {
        let turns = match work {
            Work::Reads => &self.reads,
            Work::Writes => &self.writes,
            Work::Waits => &self.waits,
        };
        turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("the queue of requests was closed".into()))
    }
}
