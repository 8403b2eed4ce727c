//! Group commit, for a long-lived process that serves many writers (`tracker serve`): writes
//! that arrive while another runs join its transaction, and one commit (one pair of
//! fdatasyncs) makes all of them durable. Nobody is answered before that commit.
//!
//! Each request's outcome is what it would be alone, in some serial order: the writes of a
//! batch run one after another in one transaction, each seeing those before it, as they would
//! in turn. redb can undo a transaction only whole (its savepoints must be taken before a table
//! is opened), so when a write in a batch fails, the batch is given up, nothing of it is
//! committed, and every member runs again alone, in a transaction of its own: its failure (or
//! success) is then its own. A failed commit is handled the same way.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use redb::WriteTransaction;

use crate::error::{Error, Result};

/// A batch: its transaction is `Group::open` while it takes members.
struct Batch {
    /// [`OPEN`], [`COMMITTED`] or [`GIVEN_UP`].
    state: AtomicU8,
}

const OPEN: u8 = 0;
const COMMITTED: u8 = 1;
const GIVEN_UP: u8 = 2;

struct State {
    /// The transaction of the batch taking members, and that batch.
    open: Option<(WriteTransaction, Arc<Batch>)>,
    /// A batch is being committed: newcomers wait for the next one.
    committing: bool,
}

/// The writers of one handle, taking turns in shared transactions.
pub(super) struct Group {
    state: Mutex<State>,
    changed: Condvar,
    /// Writers on their way to the lock: the leader lets them join before it commits.
    arriving: AtomicUsize,
}

/// How a write went in a group: done (committed with its batch), or to be run alone.
pub(super) enum Joined<T> {
    Done(T),
    Alone,
}

/// The longest a leader waits for writers that are on their way before it commits.
const GATHER: Duration = Duration::from_millis(2);

impl Group {
    pub(super) fn new() -> Group {
        Group {
            state: Mutex::new(State {
                open: None,
                committing: false,
            }),
            changed: Condvar::new(),
            arriving: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::Internal("a writer panicked holding the group's lock".into()))
    }

    /// Runs `run` in the open batch's transaction (beginning one with `begin` if none is open),
    /// and returns once the batch is committed, or `Alone` if the batch was given up.
    pub(super) fn write<T>(
        &self,
        begin: impl FnOnce() -> Result<WriteTransaction>,
        run: impl FnOnce(WriteTransaction) -> (WriteTransaction, Result<T>),
        commit: impl FnOnce(WriteTransaction) -> Result<()>,
    ) -> Result<Joined<T>> {
        self.arriving.fetch_add(1, Ordering::SeqCst);
        let locked = self.lock();
        self.arriving.fetch_sub(1, Ordering::SeqCst);
        let mut s = locked?;
        while s.committing {
            s = self.wait(s)?;
        }
        let leader = s.open.is_none();
        if leader {
            // A failure to begin (the file busy past the lock timeout) is this writer's alone.
            s.open = Some((
                begin()?,
                Arc::new(Batch {
                    state: AtomicU8::new(OPEN),
                }),
            ));
        }
        let Some((txn, batch)) = s.open.take() else {
            return Err(Error::Internal("the group's transaction vanished".into()));
        };
        let (txn, out) = run(txn);
        let out = match out {
            Ok(v) => v,
            Err(_) => {
                // Its writes are in the transaction with the others': all are given up, and
                // each runs again alone (dropping the transaction aborts it).
                batch.state.store(GIVEN_UP, Ordering::SeqCst);
                drop(txn);
                self.changed.notify_all();
                return Ok(Joined::Alone);
            }
        };
        s.open = Some((txn, batch.clone()));
        self.changed.notify_all();
        if !leader {
            while batch.state.load(Ordering::SeqCst) == OPEN {
                s = self.wait(s)?;
            }
            return Ok(match batch.state.load(Ordering::SeqCst) {
                COMMITTED => Joined::Done(out),
                _ => Joined::Alone,
            });
        }
        // The leader lets the writers already on their way join, then commits for all.
        while self.arriving.load(Ordering::SeqCst) > 0 && batch.state.load(Ordering::SeqCst) == OPEN
        {
            s = self
                .changed
                .wait_timeout(s, GATHER)
                .map_err(|_| Error::Internal("a writer panicked holding the group's lock".into()))?
                .0;
        }
        if batch.state.load(Ordering::SeqCst) != OPEN {
            return Ok(Joined::Alone);
        }
        let Some((txn, _)) = s.open.take() else {
            return Ok(Joined::Alone);
        };
        s.committing = true;
        drop(s);
        // A panic in the commit (redb on a damaged file) must still release the members
        // waiting for it: they are told the batch was given up, and the panic goes on.
        let committed = catch_unwind(AssertUnwindSafe(|| commit(txn)));
        let state = match &committed {
            Ok(Ok(())) => COMMITTED,
            _ => GIVEN_UP,
        };
        // Under the lock, so that a member between its look at the state and its wait cannot
        // miss the news (a poisoned lock is taken all the same: the news must get out).
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        batch.state.store(state, Ordering::SeqCst);
        s.committing = false;
        self.changed.notify_all();
        drop(s);
        match committed {
            Ok(Ok(())) => Ok(Joined::Done(out)),
            Ok(Err(_)) => Ok(Joined::Alone),
            Err(panic) => resume_unwind(panic),
        }
    }

    fn wait<'a>(&self, s: MutexGuard<'a, State>) -> Result<MutexGuard<'a, State>> {
        self.changed
            .wait(s)
            .map_err(|_| Error::Internal("a writer panicked holding the group's lock".into()))
    }
}
