//! The PostgreSQL backend, for teams whose agents run on many machines: the database is the
//! server, and every `tracker` process connects to it directly.
//!
//! Concurrency (the contract on `Storage`): a write transaction runs at READ COMMITTED and first
//! takes one row lock, on `tracker_meta['last_seq']`, so writers queue like redb's writers do on
//! the file lock, and every statement after it sees everything committed before. That serial
//! order is what keeps the ops log gapless and hands out numbers and tokens without gaps or
//! repeats; the keys of the tables (one lease row per item, one row per number, per sequence)
//! are the database's own guard beneath it. Waiting for that lock is bounded by `lock_timeout`
//! (exit 5). A serialization failure or deadlock, should the server report one, reruns the
//! whole closure. Reads run in a read-only REPEATABLE READ transaction: one snapshot.
//!
//! Faults (connect.rs has the bounds): the connect as a whole, and every wait for a lock (the
//! session's `lock_timeout`, reads included), are bounded by the lock timeout; a statement that
//! is working is never cut off. A connection found lost is made again by the next transaction;
//! a write lost before COMMIT was sent is rerun, one lost after is reported as maybe committed.
//!
//! Time: lease deadlines and op stamps come from the server's clock (`clock_timestamp()` read
//! after the lock is taken), never from a client's.

pub(crate) mod connect;
mod known;
mod listen;
mod pending;
mod reads;
mod schema;
mod tls;
mod txn;
mod writes;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::{IsolationLevel, Transaction};
use ulid::Ulid;

use super::{Counter, ReadTxn, Storage, WriteTxn, FORMAT_VERSION};
use crate::error::{Error, Result};
use known::Known;
use schema::{as_sql, from_sql};
use txn::PgTxn;

/// The channel every committed write notifies, with its last op's sequence number as the
/// payload: what `log --follow` and `claim --wait` listen on.
pub const NOTIFY_CHANNEL: &str = "tracker_ops";

/// A tracker in a PostgreSQL database.
///
/// A long-lived handle (the MCP server, a library `Tracker`) outlives its connection when the
/// server restarts or drops it: each transaction connects again when it finds the connection
/// gone, within the lock timeout. A write whose connection is lost before COMMIT was sent is
/// run again on the new connection (the server rolled it back); one lost after COMMIT was sent
/// may or may not have committed, so it is never run again blindly: it fails saying so.
pub struct PgStore {
    connector: connect::Connector,
    /// Idle connections. A transaction takes one (or connects, when none is idle) and puts it
    /// back after, unless it was found lost: a process running one command at a time keeps one
    /// connection; a long-lived handle serving calls at once (the MCP server) keeps a few.
    pool: Mutex<Vec<Session>>,
    /// The connection that listens for committed ops, made on the first wait for one.
    wakeups: listen::Wakeups,
    /// The URL without its password, for messages.
    shown: String,
    lock_timeout: Duration,
    /// Whether lease times come from the server's clock (always, but in tests that drive the
    /// rules with a fake clock).
    server_clock: bool,
    /// Set while `upgrade` runs: its write may change a schema of an older format.
    upgrading: std::sync::atomic::AtomicBool,
    /// The schema's format version as last seen (opening it, or a write's meta rows): a schema
    /// of format 1 has no `tracker_children`, so reads do not ask for it there.
    format: std::sync::atomic::AtomicU64,
}

impl PgStore {
    /// Connects and creates the schema if it is not there (idempotent, and safe when several
    /// processes run it at once).
    pub fn init(url: &str, lock_timeout: Duration) -> Result<(PgStore, bool)> {
        let store = PgStore::connect(url, lock_timeout)?;
        let created = store.with_client(|c| {
            let mut tx = c.transaction()?;
            // One initialiser at a time: CREATE TABLE IF NOT EXISTS can race with itself.
            tx.execute("SELECT pg_advisory_xact_lock(7291684031)", &[])?;
            let exists: bool = tx
                .query_one("SELECT to_regclass('tracker_meta') IS NOT NULL", &[])?
                .get(0);
            if !exists {
                tx.batch_execute(schema::TABLES)?;
                for (key, value) in [
                    ("format_version", FORMAT_VERSION),
                    (Counter::LastNum.key(), 0),
                    (Counter::LastSeq.key(), 0),
                    (Counter::LastToken.key(), 0),
                ] {
                    tx.execute(
                        "INSERT INTO tracker_meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        &[&key, &as_sql(value)],
                    )?;
                }
            }
            tx.commit()?;
            Ok(!exists)
        })?;
        store.check_format()?;
        Ok((store, created))
    }

    /// Connects to a database that holds a tracker of this format.
    pub fn open(url: &str, lock_timeout: Duration) -> Result<PgStore> {
        let store = PgStore::connect(url, lock_timeout)?;
        store.check_format()?;
        Ok(store)
    }

    fn connect(url: &str, lock_timeout: Duration) -> Result<PgStore> {
        let connector = connect::prepare(url, lock_timeout)?;
        let client = connector.connect(Instant::now() + lock_timeout)?;
        Ok(PgStore {
            connector,
            pool: Mutex::new(vec![Session::new(client)]),
            wakeups: listen::Wakeups::default(),
            shown: connect::redact(url),
            lock_timeout,
            server_clock: true,
            upgrading: std::sync::atomic::AtomicBool::new(false),
            format: std::sync::atomic::AtomicU64::new(FORMAT_VERSION),
        })
    }

    /// Lets the `Tracker`'s clock decide instead of the server's: only for tests that move time
    /// with a fake clock.
    #[cfg(test)]
    pub(crate) fn with_client_clock(mut self) -> Self {
        self.server_clock = false;
        self
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn check_format(&self) -> Result<()> {
        // One round trip, no prepare: a missing table is the answer "no tracker here".
        let version = self.with_client(|c| {
            match c.query_typed_opt(
                "SELECT value FROM tracker_meta WHERE key = 'format_version'",
                &[],
            ) {
                Ok(row) => Ok(row.map(|r| from_sql(r.get(0)))),
                Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        if let Some(v) = version {
            self.saw_format(v);
        }
        match version {
            Some(v) if (super::OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&v) => Ok(()),
            Some(v) if v > FORMAT_VERSION => Err(Error::Data(format!(
                "{}: the tracker schema has format version {v}, newer than this tracker's \
                 {FORMAT_VERSION}; upgrade tracker to use it",
                self.shown
            ))),
            Some(v) => Err(Error::Data(format!(
                "{}: the tracker schema has format version {v}, older than this tracker's \
                 {FORMAT_VERSION} and no migration exists for it",
                self.shown
            ))),
            None => Err(no_schema(&self.shown)),
        }
    }

    /// Records the format version a read of the schema found (it only ever grows).
    pub(super) fn saw_format(&self, version: u64) {
        self.format
            .store(version, std::sync::atomic::Ordering::SeqCst);
    }

    /// The schema's format version as last seen.
    pub(super) fn format(&self) -> u64 {
        self.format.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `f` on the connection (connecting again first if it was lost), once: only for the
    /// set-up statements of `init` and `open`, run right after connecting.
    fn with_client<T>(
        &self,
        mut f: impl FnMut(&mut postgres::Client) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let started = Instant::now();
        let deadline = started + self.lock_timeout;
        let mut guard = self.checkout();
        loop {
            let out = f(&mut self.session(&mut guard.slot, deadline)?.client);
            match out {
                Ok(v) => return Ok(v),
                // These statements are safe to run again (reads, and init's set-up, which does
                // nothing the second time): a connection lost under them (a restart, a
                // terminated session) is made again and they are run again, within the timeout.
                Err(e) if lost(&e) && Instant::now() < deadline => *guard = None,
                Err(e) => {
                    if lost(&e) {
                        *guard = None;
                    }
                    return Err(self.ctx(started, true).error(&e));
                }
            }
        }
    }

    /// An idle connection from the pool, or none (then `session` connects); it goes back to
    /// the pool when the checkout is dropped, if it is still open.
    fn checkout(&self) -> Checkout<'_> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        Checkout {
            store: self,
            slot: pool.pop(),
        }
    }

    /// The connection, made again if there is none or it has closed.
    fn session<'g>(
        &self,
        guard: &'g mut Option<Session>,
        deadline: Instant,
    ) -> Result<&'g mut Session> {
        if guard.as_ref().is_none_or(|s| s.client.is_closed()) {
            *guard = None;
            *guard = Some(Session::new(self.connector.connect(deadline)?));
        }
        guard
            .as_mut()
            .ok_or_else(|| Error::Internal("no connection after connecting".into()))
    }

    /// `committed`, tried again while the check itself loses its connection, until `deadline`;
    /// `None` if it could not be made.
    fn committed_within(&self, seq: u64, value: &[u8], deadline: Instant) -> Option<bool> {
        loop {
            match self.committed(seq, value, deadline) {
                Ok(found) => return Some(found),
                Err(Error::Busy(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => return None,
            }
        }
    }

    /// Whether a write whose connection was lost while it committed did commit: on a new
    /// connection, take the write lock (so the lost session has ended, one way or the other,
    /// within the lock timeout) and look for the write's last op, byte for byte.
    fn committed(&self, seq: u64, value: &[u8], deadline: Instant) -> Result<bool> {
        let mut client = self.connector.connect(deadline)?;
        let ctx = self.ctx(Instant::now(), true);
        let found = (|| {
            let mut tx = client.transaction()?;
            tx.execute(
                "SELECT value FROM tracker_meta WHERE key = 'last_seq' FOR UPDATE",
                &[],
            )?;
            let row = tx.query_typed_opt(
                "SELECT value FROM tracker_ops WHERE seq = $1",
                &[(&as_sql(seq), postgres::types::Type::INT8)],
            )?;
            tx.rollback()?;
            Ok(row.is_some_and(|r| r.get::<_, &[u8]>(0) == value))
        })();
        let found = found.map_err(|e: postgres::Error| ctx.error(&e))?;
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_IDLE {
            pool.push(Session::new(client));
        }
        Ok(found)
    }

    fn ctx(&self, started: Instant, writing: bool) -> Ctx<'_> {
        Ctx {
            shown: &self.shown,
            user: self.connector.user(),
            started,
            writing,
        }
    }
}

/// Idle connections kept at most: enough for a server's concurrent calls to find one.
const POOL_IDLE: usize = 4;

/// A connection taken from the pool for one transaction (`None` until one is made).
struct Checkout<'a> {
    store: &'a PgStore,
    slot: Option<Session>,
}

impl std::ops::Deref for Checkout<'_> {
    type Target = Option<Session>;
    fn deref(&self) -> &Option<Session> {
        &self.slot
    }
}

impl std::ops::DerefMut for Checkout<'_> {
    fn deref_mut(&mut self) -> &mut Option<Session> {
        &mut self.slot
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        let Some(session) = self.slot.take().filter(|s| !s.client.is_closed()) else {
            return;
        };
        let mut pool = self.store.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_IDLE {
            pool.push(session);
        }
    }
}

/// Statements prepared on one connection, by their text.
type Prepared = std::collections::HashMap<String, postgres::Statement>;

/// One connection and what was prepared on it (gone with it).
struct Session {
    client: postgres::Client,
    prepared: Prepared,
}

impl Session {
    fn new(client: postgres::Client) -> Self {
        Session {
            client,
            prepared: Prepared::new(),
        }
    }
}

/// What a message about a failed statement needs to say what happened.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    shown: &'a str,
    /// The role connected as, for "lacks the right" messages.
    user: &'a str,
    /// When the transaction began, for how long a wait really was.
    started: Instant,
    writing: bool,
}

/// Whether the server asks for the transaction to be run again.
fn retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// Whether the connection is gone: closed, an I/O error on its socket, or the server ending
/// the session (a restart, `pg_terminate_backend`, an idle timeout). Whatever was not
/// committed on it was rolled back by the server.
fn lost(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    if e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) {
        return true;
    }
    e.code().is_some_and(|c| {
        c.code().starts_with("08")
            || *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CRASH_SHUTDOWN
            || *c == SqlState::IDLE_SESSION_TIMEOUT
            || *c == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
    })
}

/// The server's words for a failure, or the client's when the server said nothing.
fn reason(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

impl Ctx<'_> {
    fn error(&self, e: &postgres::Error) -> Error {
        use postgres::error::SqlState;
        let shown = self.shown;
        let waited = self.started.elapsed().as_secs_f64();
        if lost(e) {
            return Error::Busy(format!(
                "{shown}: the connection to the database was lost ({}) before anything was \
                 committed, so nothing was changed; try again",
                reason(e)
            ));
        }
        match e.code() {
            Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE && self.writing => Error::Busy(format!(
                "{shown}: the tracker stayed locked by other writers for {waited:.1}s; try \
                     again, or raise --lock-timeout"
            )),
            Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => Error::Busy(format!(
                "{shown}: a read waited {waited:.1}s for a lock on the tracker's tables that \
                 another session holds (a schema change, VACUUM FULL, LOCK TABLE or the like); \
                 try again, or raise --lock-timeout"
            )),
            Some(c) if *c == SqlState::QUERY_CANCELED => Error::Busy(format!(
                "{shown}: the database server cancelled the statement after {waited:.1}s ({}): \
                 its statement_timeout (set for the server, database or role) or an \
                 administrator's cancel; nothing was changed; try again, or raise \
                 statement_timeout for this role",
                reason(e)
            )),
            Some(c) if *c == SqlState::UNDEFINED_TABLE => no_schema(shown),
            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => self.denied(&reason(e)),
            _ => Error::Internal(format!("{shown}: {}", reason(e))),
        }
    }

    /// The role may not do what the command needs: which right is missing, and how to grant it.
    fn denied(&self, reason: &str) -> Error {
        let user = self.user;
        let what = if let Some((_, schema)) = reason.split_once("for schema ") {
            let schema = schema.split_whitespace().next().unwrap_or("...");
            format!(
                "role {user:?} lacks the CREATE right on schema {schema}, which `tracker init` \
                 and `tracker upgrade` need to create the tracker's tables; grant it (GRANT \
                 CREATE ON SCHEMA {schema} TO {user}), or run the command once as a role that \
                 has it (the schema's owner)"
            )
        } else if reason.contains("for table") || reason.contains("for relation") {
            format!(
                "role {user:?} lacks a right on the tracker's tables, which every command needs \
                 to read and write; grant it (GRANT SELECT, INSERT, UPDATE, DELETE ON ALL \
                 TABLES IN SCHEMA ... TO {user}), or use a role that has them"
            )
        } else {
            format!("role {user:?} lacks a right this command needs; grant it, or use a role that has it")
        };
        Error::io(
            format!("{}: {reason}", self.shown),
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, what),
        )
    }

    /// A connection lost after COMMIT was sent: nobody can tell whether the server committed.
    fn maybe_committed(&self, e: &postgres::Error) -> Error {
        Error::io(
            format!(
                "{}: the connection to the database was lost after COMMIT was sent, so the \
                 change may have been committed or not; look (`tracker show`, `tracker log`) \
                 before repeating it, or repeat it with the same --idempotency-key, which makes \
                 a repeat safe",
                self.shown
            ),
            std::io::Error::new(std::io::ErrorKind::ConnectionAborted, reason(e)),
        )
    }
}

fn no_schema(shown: &str) -> Error {
    Error::NotFound(format!(
        "{shown} holds no tracker; run `tracker --db URL init` to create one there"
    ))
}

fn id_bytes(id: Ulid) -> Vec<u8> {
    id.0.to_be_bytes().to_vec()
}

impl Storage for PgStore {
    fn upgrade(&self) -> Result<Option<u64>> {
        use std::sync::atomic::Ordering::SeqCst;
        self.upgrading.store(true, SeqCst);
        let out = self.write(super::upgrade_in);
        self.upgrading.store(false, SeqCst);
        if out.is_ok() {
            self.saw_format(FORMAT_VERSION);
        }
        out
    }

    fn has_shared_clock(&self) -> bool {
        self.server_clock
    }

    fn setting(&self, setting: super::Setting) -> Result<Option<u64>> {
        let key = setting.key();
        self.with_client(|c| {
            let row = c.query_typed_opt(
                "SELECT value FROM tracker_meta WHERE key = $1",
                &[(&key, postgres::types::Type::TEXT)],
            )?;
            Ok(row.map(|r| from_sql(r.get(0))))
        })
    }

    fn server_time_ms(&self) -> Result<Option<crate::model::WallMs>> {
        if !self.server_clock {
            return Ok(None);
        }
        self.with_client(|c| {
            let row = c.query_typed_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                &[],
            )?;
            Ok(Some(row.get(0)))
        })
    }

    fn listen(&self) -> bool {
        self.wakeups.listen(&self.connector, self.lock_timeout)
    }

    fn wait_for_change(&self, timeout: Duration) -> bool {
        self.wakeups.wait(timeout)
    }

    fn read<T>(&self, f: impl FnOnce(&dyn ReadTxn) -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let deadline = started + self.lock_timeout;
        let ctx = self.ctx(started, false);
        let mut guard = self.checkout();
        let mut f = Some(f);
        loop {
            let Session { client, prepared } = self.session(&mut guard.slot, deadline)?;
            match read_once(client, prepared, self, ctx, &mut f) {
                // Found gone before the read began (a restart, an idle connection dropped):
                // connect again and read.
                ReadStep::NotBegun(e) if lost(&e) && Instant::now() < deadline => {
                    *guard = None;
                }
                ReadStep::NotBegun(e) => return Err(ctx.error(&e)),
                ReadStep::Ran(out, gone) => {
                    if gone {
                        *guard = None;
                    }
                    return out;
                }
            }
        }
    }

    fn write<T>(&self, mut f: impl FnMut(&mut dyn WriteTxn) -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let deadline = started + self.lock_timeout;
        let ctx = self.ctx(started, true);
        let mut pause = Duration::from_millis(5);
        loop {
            let mut guard = self.checkout();
            let Session { client, prepared } = self.session(&mut guard.slot, deadline)?;
            let outcome = match begin_write(client, &self.shown) {
                Ok((tx, Ok(known))) => {
                    let open = self.upgrading.load(std::sync::atomic::Ordering::SeqCst);
                    let shown = self.shown.clone();
                    let mut gated = |t: &mut dyn WriteTxn| {
                        if !open {
                            super::check_writable(t, &shown)?;
                        }
                        f(t)
                    };
                    attempt(PgTxn::new(tx, prepared, self, ctx, known), &mut gated)
                }
                Ok((_, Err(damage))) => Attempt::Failed(damage),
                Err(e) if lost(&e) => Attempt::Lost(ctx.error(&e)),
                Err(e) if retryable(&e) => Attempt::Again(ctx.error(&e)),
                Err(e) => Attempt::Failed(ctx.error(&e)),
            };
            match outcome {
                Attempt::Done(v) => return Ok(v),
                Attempt::Failed(e) => return Err(e),
                Attempt::MaybeCommitted(e) => {
                    *guard = None;
                    return Err(e);
                }
                // The changes went with COMMIT in one batch, so a connection lost during it may
                // have been lost before the server reached COMMIT, or after: look.
                Attempt::CommitLost(v, (seq, value), e) => {
                    *guard = None;
                    match self.committed_within(seq, &value, deadline) {
                        Some(true) => return Ok(v),
                        Some(false) if Instant::now() < deadline => continue,
                        Some(false) | None => return Err(e),
                    }
                }
                // Rolled back by the server with the connection: safe to run again on a new one.
                Attempt::Lost(e) => {
                    *guard = None;
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                    continue;
                }
                Attempt::Again(e) => {
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                }
            }
            drop(guard);
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

/// How one try at a read ended.
enum ReadStep<T> {
    /// The transaction could not begin; the closure was not run.
    NotBegun(postgres::Error),
    /// The closure ran; whether the connection was found lost.
    Ran(Result<T>, bool),
}

/// Begins a read-only snapshot and runs the closure in it (taking it out of `f` only then).
fn read_once<T, F: FnOnce(&dyn ReadTxn) -> Result<T>>(
    client: &mut postgres::Client,
    prepared: &mut Prepared,
    store: &PgStore,
    ctx: Ctx<'_>,
    f: &mut Option<F>,
) -> ReadStep<T> {
    let tx = match client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
    {
        Ok(tx) => tx,
        Err(e) => return ReadStep::NotBegun(e),
    };
    let Some(f) = f.take() else {
        return ReadStep::Ran(Err(Error::Internal("a read ran twice".into())), false);
    };
    let txn = PgTxn::new(tx, prepared, store, ctx, Known::default());
    let out = f(&txn);
    // Lost under the closure, which cannot be run twice: the caller may try again.
    let lost_under = txn.lost.get();
    let finished = txn.finish();
    let gone = lost_under || finished.as_ref().err().is_some_and(lost);
    let out = match (out, finished) {
        (Ok(v), Ok(())) => Ok(v),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(ctx.error(&e)),
    };
    ReadStep::Ran(out, gone)
}

/// How one run of a write closure ended.
enum Attempt<T> {
    Done(T),
    /// Not committed, and running it again will not help.
    Failed(Error),
    /// The server asked for it to be run again (a serialization failure or deadlock).
    Again(Error),
    /// The connection was lost before COMMIT was sent: nothing was committed.
    Lost(Error),
    /// The connection was lost after COMMIT was sent: it may have committed.
    MaybeCommitted(Error),
    /// The same, for a write that appended ops: whether it committed can be found out, by its
    /// last op (sequence, stored value). The closure's result stands if it did.
    CommitLost(T, (u64, Vec<u8>), Error),
}

/// Runs the closure in `txn` and commits.
fn attempt<T>(
    mut txn: PgTxn<'_>,
    f: &mut impl FnMut(&mut dyn WriteTxn) -> Result<T>,
) -> Attempt<T> {
    let out = f(&mut txn).and_then(|v| txn.send_before_commit().map(|()| v));
    let (retry, gone, ctx) = (txn.retry.get(), txn.lost.get(), txn.ctx);
    match out {
        // The closure went on after a lost statement (a best-effort one): COMMIT is not sent,
        // and nothing was committed.
        Ok(_) if gone => Attempt::Lost(Error::Busy(format!(
            "{}: the connection to the database was lost before the change was committed, so \
             nothing was changed; try again",
            ctx.shown
        ))),
        Ok(v) => {
            let last_op = txn.last_op.take();
            match (txn.commit(), last_op) {
                (Ok(()), _) => Attempt::Done(v),
                (Err(e), _) if retryable(&e) => Attempt::Again(ctx.error(&e)),
                (Err(e), Some(op)) if lost(&e) => {
                    Attempt::CommitLost(v, op, ctx.maybe_committed(&e))
                }
                (Err(e), None) if lost(&e) => Attempt::MaybeCommitted(ctx.maybe_committed(&e)),
                (Err(e), _) => Attempt::Failed(ctx.error(&e)),
            }
        }
        Err(e) if gone => Attempt::Lost(e),
        Err(e) if retry => Attempt::Again(e),
        Err(e) => Attempt::Failed(e),
    }
}

/// Starts a write transaction, takes the write lock and reads what every write needs
/// (`txn::lock_and_read`), in two round trips: BEGIN, then the lock.
fn begin_write<'c>(
    client: &'c mut postgres::Client,
    shown: &str,
) -> std::result::Result<(Transaction<'c>, Result<Known>), postgres::Error> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()?;
    let known = txn::lock_and_read(&mut tx, shown)?;
    Ok((tx, known))
}

#[cfg(test)]
pub(crate) fn test_store() -> Option<PgStore> {
    let url = test_schema_url()?;
    Some(
        PgStore::init(&url, Duration::from_secs(10))
            .unwrap()
            .0
            .with_client_clock(),
    )
}

/// The URL of a new, empty schema in the test server, or `None` (skipped) without one.
///
/// Internal to this crate's tests (the integration tests share it): no stability promise.
#[doc(hidden)]
pub fn test_schema_url() -> Option<String> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Some(base) = std::env::var("TRACKER_TEST_PG")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the PostgreSQL tests: set TRACKER_TEST_PG to a server URL"
        );
        eprintln!("SKIPPED: PostgreSQL test (set TRACKER_TEST_PG=postgres://... to run it)");
        return None;
    };
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    // Not a reading of time: only a few varying digits, so two test runs' schemas differ.
    #[allow(clippy::disallowed_methods)]
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let schema = format!("t_{}_{n}_{nanos}", std::process::id());
    let mut client = connect::connect(&base, Duration::from_secs(10)).unwrap();
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}
