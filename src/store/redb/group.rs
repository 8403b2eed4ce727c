//! Group commit, for a long-lived process that serves many writers (`tracker serve`): writes
//! that arrive while another runs join its transaction, and one commit (one pair of
//! fdatasyncs) makes all of them durable. Nobody is answered before that commit.
//!
//! Each request's outcome is what it would be alone, in some serial order: the writes of a
//! batch run one after another in one transaction, each seeing those before it, as they would
//! in turn. redb can undo a transaction only whole (its savepoints must be taken before a table
//! is opened), so when a write in a batch fails (or panics), the batch is given up, nothing of
//! it is committed, and every member runs again in a batch of its own (`solo`), through the
//! same queue: its failure or success is then its own. A failed commit is every member's
//! failure: redb may have made it durable, so nothing is run again.
//!
//! Every writer waits at most until its own deadline (its lock timeout), in the queue as at the
//! file's lock, and is then told the file is busy.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redb::WriteTransaction;

use crate::error::{Error, Result};

/// A batch's fate, shared by its members.
struct Batch {
    /// [`OPEN`], [`COMMITTED`] or [`GIVEN_UP`].
    state: AtomicU8,
    /// Takes no other member (a write run again alone).
    solo: bool,
    /// Why its commit failed, for every member.
    failure: Mutex<Option<String>>,
}

const OPEN: u8 = 0;
const COMMITTED: u8 = 1;
const GIVEN_UP: u8 = 2;

/// Where the queue stands. One lives in the group's mutex: its size does not matter, and the
/// transaction moves in and out of it by value.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// No transaction: the next writer begins one.
    Idle,
    /// A writer is waiting for the file's write lock to begin one.
    Beginning,
    /// A batch's transaction, taking members unless it is solo.
    Open(WriteTransaction, Arc<Batch>),
    /// A member is running in the batch's transaction, or it is being committed.
    Busy,
}

/// The writers of one handle, taking turns in shared transactions.
pub(super) struct Group {
    state: Mutex<Phase>,
    changed: Condvar,
    /// Writers that may join, on their way to the lock or waiting in the queue: a leader lets
    /// them join before it commits.
    coming: AtomicUsize,
}

/// One writer counted in [`Group::coming`] while it lives.
struct Coming<'a>(&'a AtomicUsize);

impl<'a> Coming<'a> {
    fn new(count: &'a AtomicUsize) -> Coming<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Coming(count)
    }
}

impl Drop for Coming<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a write went.
pub(super) enum Joined<T> {
    /// Committed with its batch.
    Done(T),
    /// Its batch was given up because of another member: run it again, `solo`.
    Again,
}

/// How long a leader waits at most for writers on their way, before it commits.
const GATHER: Duration = Duration::from_millis(5);

impl Group {
    pub(super) fn new() -> Group {
        Group {
            state: Mutex::new(Phase::Idle),
            changed: Condvar::new(),
            coming: AtomicUsize::new(0),
        }
    }

    /// The lock, poisoned or not: the phase is consistent wherever it is released.
    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a change until `deadline`; false once it has passed.
    fn wait<'a>(
        &self,
        s: MutexGuard<'a, Phase>,
        deadline: Instant,
    ) -> (MutexGuard<'a, Phase>, bool) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (s, false);
        }
        let (s, _) = self
            .changed
            .wait_timeout(s, left)
            .unwrap_or_else(PoisonError::into_inner);
        (s, true)
    }

    /// Runs `run` in a batch's transaction: the open one, or one this writer begins with
    /// `begin` (then it leads: it gathers the writers on their way and commits with `commit`).
    /// `solo` runs it in a batch of its own. `busy` is the error for a deadline passed while
    /// queued.
    pub(super) fn write<T>(
        &self,
        solo: bool,
        deadline: Instant,
        busy: impl Fn() -> Error,
        begin: impl FnOnce() -> Result<WriteTransaction>,
        run: impl FnOnce(WriteTransaction) -> (WriteTransaction, Result<T>),
        commit: impl FnOnce(WriteTransaction) -> Result<()>,
    ) -> Result<Joined<T>> {
        // Only a writer that may join is waited for; the count comes down even on a panic.
        let coming = (!solo).then(|| Coming::new(&self.coming));
        let queued = self.queue(solo, deadline, begin);
        drop(coming);
        let Some((mut s, txn, batch, leader)) = queued? else {
            return Err(busy());
        };
        let ran = catch_unwind(AssertUnwindSafe(|| run(txn)));
        let (txn, out) = match ran {
            Ok(ran) => ran,
            Err(panic) => {
                // The transaction went with the panic: the batch is given up for all.
                self.give_up(&mut s, &batch);
                drop(s);
                resume_unwind(panic)
            }
        };
        let out = match out {
            Ok(v) => v,
            Err(e) => {
                // Its writes are in the transaction with the others': all are given up, and
                // each runs again alone (dropping the transaction aborts it). Alone, this
                // failure is its own.
                drop(txn);
                self.give_up(&mut s, &batch);
                return if solo { Err(e) } else { Ok(Joined::Again) };
            }
        };
        *s = Phase::Open(txn, batch.clone());
        self.changed.notify_all();
        if !leader {
            while batch.state.load(Ordering::SeqCst) == OPEN {
                // The leader commits within its own deadline; a member waits for the outcome.
                s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            return self.outcome(&batch, out);
        }
        // The leader lets the writers on their way join (for a short while), then commits.
        let gather_until = Instant::now() + GATHER;
        while !solo
            && self.coming.load(Ordering::SeqCst) > 0
            && batch.state.load(Ordering::SeqCst) == OPEN
        {
            let (next, waited) = self.wait(s, gather_until);
            s = next;
            if !waited {
                break;
            }
        }
        if batch.state.load(Ordering::SeqCst) != OPEN {
            return Ok(Joined::Again);
        }
        let Phase::Open(txn, _) = std::mem::replace(&mut *s, Phase::Busy) else {
            self.give_up(&mut s, &batch);
            return Err(Error::Internal("the group's transaction vanished".into()));
        };
        drop(s);
        // A panic in the commit (redb on a damaged file) must still release the members.
        let committed = catch_unwind(AssertUnwindSafe(|| commit(txn)));
        let mut s = self.lock();
        let state = match &committed {
            Ok(Ok(())) => COMMITTED,
            Ok(Err(e)) => {
                *batch.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                GIVEN_UP
            }
            Err(_) => {
                let why = "redb panicked while committing".to_string();
                *batch.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
                GIVEN_UP
            }
        };
        batch.state.store(state, Ordering::SeqCst);
        *s = Phase::Idle;
        self.changed.notify_all();
        drop(s);
        match committed {
            Ok(Ok(())) => Ok(Joined::Done(out)),
            Ok(Err(e)) => Err(e),
            Err(panic) => resume_unwind(panic),
        }
    }

    /// Waits for this writer's place: joining the open batch, or beginning one as its leader.
    /// `None` when `deadline` passed first. Returns the lock held, with the phase `Busy`.
    #[allow(clippy::type_complexity)]
    fn queue(
        &self,
        solo: bool,
        deadline: Instant,
        begin: impl FnOnce() -> Result<WriteTransaction>,
    ) -> Result<Option<(MutexGuard<'_, Phase>, WriteTransaction, Arc<Batch>, bool)>> {
        let mut s = self.lock();
        loop {
            match std::mem::replace(&mut *s, Phase::Busy) {
                Phase::Open(txn, batch) if !solo && !batch.solo => {
                    return Ok(Some((s, txn, batch, false)));
                }
                Phase::Idle => {
                    // The file's lock is waited for outside the queue's, so that those behind
                    // can give up at their own deadlines.
                    *s = Phase::Beginning;
                    drop(s);
                    let begun = catch_unwind(AssertUnwindSafe(begin));
                    s = self.lock();
                    match begun {
                        Ok(Ok(txn)) => {
                            let batch = Arc::new(Batch {
                                state: AtomicU8::new(OPEN),
                                solo,
                                failure: Mutex::new(None),
                            });
                            return Ok(Some((s, txn, batch, true)));
                        }
                        Ok(Err(e)) => {
                            *s = Phase::Idle;
                            self.changed.notify_all();
                            return Err(e);
                        }
                        Err(panic) => {
                            *s = Phase::Idle;
                            self.changed.notify_all();
                            drop(s);
                            resume_unwind(panic)
                        }
                    }
                }
                other => {
                    *s = other;
                    let (next, waited) = self.wait(s, deadline);
                    s = next;
                    if !waited {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn give_up(&self, s: &mut MutexGuard<'_, Phase>, batch: &Batch) {
        batch.state.store(GIVEN_UP, Ordering::SeqCst);
        **s = Phase::Idle;
        self.changed.notify_all();
    }

    /// A member's outcome once its batch is over.
    fn outcome<T>(&self, batch: &Batch, out: T) -> Result<Joined<T>> {
        if batch.state.load(Ordering::SeqCst) == COMMITTED {
            return Ok(Joined::Done(out));
        }
        let failure = batch
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match failure {
            // The commit failed: it may be durable all the same, so it is not run again.
            Some(why) => Err(Error::Internal(format!(
                "the commit this write shared failed, and may or may not have been made: {why}"
            ))),
            None => Ok(Joined::Again),
        }
    }
}
