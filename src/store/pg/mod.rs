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
mod schema;
mod tls;

use std::cell::{Cell, RefCell};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::types::ToSql;
use postgres::{IsolationLevel, Row, Transaction};
use serde::de::DeserializeOwned;
use ulid::Ulid;

use super::{
    Counter, IdempotencyRecord, ReadTxn, Setting, Storage, Visit, WriteTxn, FORMAT_VERSION,
};
use crate::error::{Error, Result};
use crate::model::{Item, Lease, Op, Status, WallMs};
use schema::{as_sql, from_sql};

/// How many rows a scan fetches at a time: flat memory for any table size.
const PAGE: i32 = 1000;

/// A tracker in a PostgreSQL database.
///
/// A long-lived handle (the MCP server, a library `Tracker`) outlives its connection when the
/// server restarts or drops it: each transaction connects again when it finds the connection
/// gone, within the lock timeout. A write whose connection is lost before COMMIT was sent is
/// run again on the new connection (the server rolled it back); one lost after COMMIT was sent
/// may or may not have committed, so it is never run again blindly: it fails saying so.
pub struct PgStore {
    connector: connect::Connector,
    /// `None` once the connection is known to be lost; the next transaction connects again.
    client: Mutex<Option<Session>>,
    /// The URL without its password, for messages.
    shown: String,
    lock_timeout: Duration,
    /// Whether lease times come from the server's clock (always, but in tests that drive the
    /// rules with a fake clock).
    server_clock: bool,
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
            client: Mutex::new(Some(Session::new(client))),
            shown: connect::redact(url),
            lock_timeout,
            server_clock: true,
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
        let version = self.with_client(|c| {
            let exists: bool = c
                .query_one("SELECT to_regclass('tracker_meta') IS NOT NULL", &[])?
                .get(0);
            if !exists {
                return Ok(None);
            }
            let row = c.query_opt(
                "SELECT value FROM tracker_meta WHERE key = 'format_version'",
                &[],
            )?;
            Ok(row.map(|r| from_sql(r.get(0))))
        })?;
        match version {
            Some(v) if v == FORMAT_VERSION => Ok(()),
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

    /// Runs `f` on the connection (connecting again first if it was lost), once: only for the
    /// set-up statements of `init` and `open`, run right after connecting.
    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut self
            .session(&mut guard, started + self.lock_timeout)?
            .client);
        out.map_err(|e| {
            if lost(&e) {
                *guard = None;
            }
            self.ctx(started, true).error(&e)
        })
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

    fn ctx(&self, started: Instant, writing: bool) -> Ctx<'_> {
        Ctx {
            shown: &self.shown,
            user: self.connector.user(),
            started,
            writing,
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
                 needs to create the tracker's tables; grant it (GRANT CREATE ON SCHEMA \
                 {schema} TO {user}), or run `tracker init` once as a role that has it (the \
                 schema's owner)"
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

use super::encode_value as encode;

fn id_bytes(id: Ulid) -> Vec<u8> {
    id.0.to_be_bytes().to_vec()
}

impl Storage for PgStore {
    fn has_shared_clock(&self) -> bool {
        self.server_clock
    }

    fn read<T>(&self, f: impl FnOnce(&dyn ReadTxn) -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let deadline = started + self.lock_timeout;
        let ctx = self.ctx(started, false);
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = Some(f);
        loop {
            let Session { client, prepared } = self.session(&mut guard, deadline)?;
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
            let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
            let Session { client, prepared } = self.session(&mut guard, deadline)?;
            let outcome = match begin_write(client) {
                Ok(tx) => attempt(PgTxn::new(tx, prepared, self, ctx), &mut f),
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
    let txn = PgTxn::new(tx, prepared, store, ctx);
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
}

/// Runs the closure in `txn` and commits.
fn attempt<T>(
    mut txn: PgTxn<'_>,
    f: &mut impl FnMut(&mut dyn WriteTxn) -> Result<T>,
) -> Attempt<T> {
    let out = f(&mut txn);
    let (retry, gone, ctx) = (txn.retry.get(), txn.lost.get(), txn.ctx);
    match out {
        // The closure went on after a lost statement (a best-effort one): COMMIT is not sent,
        // and nothing was committed.
        Ok(_) if gone => Attempt::Lost(Error::Busy(format!(
            "{}: the connection to the database was lost before the change was committed, so \
             nothing was changed; try again",
            ctx.shown
        ))),
        Ok(v) => match txn.commit() {
            Ok(()) => Attempt::Done(v),
            Err(e) if retryable(&e) => Attempt::Again(ctx.error(&e)),
            Err(e) if lost(&e) => Attempt::MaybeCommitted(ctx.maybe_committed(&e)),
            Err(e) => Attempt::Failed(ctx.error(&e)),
        },
        Err(e) if gone => Attempt::Lost(e),
        Err(e) if retry => Attempt::Again(e),
        Err(e) => Attempt::Failed(e),
    }
}

/// Starts a write transaction and takes the write lock: every writer queues on one row, in one
/// order, for at most the session's `lock_timeout` (set when connecting).
fn begin_write(
    client: &mut postgres::Client,
) -> std::result::Result<Transaction<'_>, postgres::Error> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()?;
    tx.execute(
        "SELECT value FROM tracker_meta WHERE key = 'last_seq' FOR UPDATE",
        &[],
    )?;
    Ok(tx)
}

/// One transaction. The client needs `&mut` for every statement while `ReadTxn` hands out `&`,
/// so the transaction sits in a `RefCell`; no borrow is held while a caller's callback runs.
struct PgTxn<'c> {
    tx: RefCell<Option<Transaction<'c>>>,
    /// The connection's prepared statements, shared by its transactions.
    prepared: RefCell<&'c mut Prepared>,
    ctx: Ctx<'c>,
    shown: &'c str,
    server_clock: bool,
    /// Set when the server asked for the transaction to be run again.
    retry: Cell<bool>,
    /// Set when the connection was lost under it.
    lost: Cell<bool>,
}

impl<'c> PgTxn<'c> {
    fn new(
        tx: Transaction<'c>,
        prepared: &'c mut Prepared,
        store: &'c PgStore,
        ctx: Ctx<'c>,
    ) -> Self {
        PgTxn {
            tx: RefCell::new(Some(tx)),
            prepared: RefCell::new(prepared),
            ctx,
            shown: &store.shown,
            server_clock: store.server_clock,
            retry: Cell::new(false),
            lost: Cell::new(false),
        }
    }

    fn err(&self, e: &postgres::Error) -> Error {
        if retryable(e) {
            self.retry.set(true);
        }
        if lost(e) {
            self.lost.set(true);
        }
        self.ctx.error(e)
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'c>) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let mut guard = self.tx.borrow_mut();
        let tx = guard
            .as_mut()
            .ok_or_else(|| Error::Internal("the transaction has ended".into()))?;
        f(tx).map_err(|e| self.err(&e))
    }

    /// `sql` prepared once per connection: a statement costs one round trip, not two (the
    /// parse, then the run), which is most of an import's time on a server across a network.
    fn statement(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.prepared.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.with(|tx| tx.prepare(sql))?;
        self.prepared
            .borrow_mut()
            .insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let s = self.statement(sql)?;
        self.with(|tx| tx.query(&s, params))
    }

    fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let s = self.statement(sql)?;
        self.with(|tx| tx.query_opt(&s, params))
    }

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<()> {
        let s = self.statement(sql)?;
        self.with(|tx| tx.execute(&s, params)).map(|_| ())
    }

    /// Every row of a query, a page at a time, each turned into `T` and handed to `f` with no
    /// borrow held (so `f` may run further queries).
    fn visit<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        row: impl Fn(&Row) -> Result<T>,
        f: Visit<T>,
    ) -> Result<()> {
        let s = self.statement(sql)?;
        let portal = self.with(|tx| tx.bind(&s, params))?;
        loop {
            let rows = self.with(|tx| tx.query_portal(&portal, PAGE))?;
            let done = rows.len() < usize::try_from(PAGE).unwrap_or(usize::MAX);
            for r in &rows {
                if !f(row(r)?)? {
                    return Ok(());
                }
            }
            if done {
                return Ok(());
            }
        }
    }

    fn decode<V: DeserializeOwned>(
        &self,
        table: &str,
        key: impl std::fmt::Display,
        bytes: &[u8],
    ) -> Result<V> {
        super::decode_value(table, key, bytes).map_err(|what| {
            Error::Data(format!(
                "{}: the tracker data is damaged ({what}); restore it from a backup or an export",
                self.shown
            ))
        })
    }

    fn ulid(&self, r: &Row, col: usize) -> Result<Ulid> {
        let b: &[u8] = r.get(col);
        let arr: [u8; 16] = b.try_into().map_err(|_| {
            Error::Data(format!(
                "{}: the tracker data is damaged (an identity of {} bytes)",
                self.shown,
                b.len()
            ))
        })?;
        Ok(Ulid(u128::from_be_bytes(arr)))
    }

    fn commit(mut self) -> std::result::Result<(), postgres::Error> {
        match self.tx.get_mut().take() {
            Some(tx) => tx.commit(),
            None => Ok(()),
        }
    }

    /// Ends a read: nothing to commit, but the server's answer to COMMIT is still awaited.
    fn finish(self) -> std::result::Result<(), postgres::Error> {
        self.commit()
    }
}

impl ReadTxn for PgTxn<'_> {
    fn format_version(&self) -> Result<Option<u64>> {
        let row = self.query_opt(
            "SELECT value FROM tracker_meta WHERE key = 'format_version'",
            &[],
        )?;
        Ok(row.map(|r| from_sql(r.get(0))))
    }

    fn counter(&self, counter: Counter) -> Result<u64> {
        let row = self.query_opt(
            "SELECT value FROM tracker_meta WHERE key = $1",
            &[&counter.key()],
        )?;
        Ok(row.map_or(0, |r| from_sql(r.get(0))))
    }

    fn setting(&self, setting: Setting) -> Result<Option<u64>> {
        let row = self.query_opt(
            "SELECT value FROM tracker_meta WHERE key = $1",
            &[&setting.key()],
        )?;
        Ok(row.map(|r| from_sql(r.get(0))))
    }

    fn item(&self, id: Ulid) -> Result<Option<Item>> {
        let row = self.query_opt(
            "SELECT value FROM tracker_items WHERE id = $1",
            &[&id_bytes(id)],
        )?;
        row.map(|r| self.decode("items", id, r.get(0))).transpose()
    }

    fn id_by_num(&self, num: u64) -> Result<Option<Ulid>> {
        let row = self.query_opt(
            "SELECT id FROM tracker_nums WHERE num = $1",
            &[&as_sql(num)],
        )?;
        row.map(|r| self.ulid(&r, 0)).transpose()
    }

    fn ids_between(&self, lo: Ulid, hi: Ulid, limit: usize) -> Result<Vec<Ulid>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.query(
            "SELECT id FROM tracker_items WHERE id >= $1 AND id <= $2 ORDER BY id LIMIT $3",
            &[&id_bytes(lo), &id_bytes(hi), &limit],
        )?;
        rows.iter().map(|r| self.ulid(r, 0)).collect()
    }

    fn lease(&self, id: Ulid) -> Result<Option<Lease>> {
        let row = self.query_opt(
            "SELECT value FROM tracker_claims WHERE id = $1",
            &[&id_bytes(id)],
        )?;
        row.map(|r| self.decode("claims", id, r.get(0))).transpose()
    }

    fn leases(&self) -> Result<Vec<(Ulid, Lease)>> {
        let rows = self.query("SELECT id, value FROM tracker_claims ORDER BY id", &[])?;
        rows.iter()
            .map(|r| {
                let id = self.ulid(r, 0)?;
                Ok((id, self.decode("claims", id, r.get(1))?))
            })
            .collect()
    }

    fn visit_ready(&self, f: Visit<Ulid>) -> Result<()> {
        self.visit(
            "SELECT id FROM tracker_ready ORDER BY priority, num",
            &[],
            |r| self.ulid(r, 0),
            f,
        )
    }

    fn visit_status(&self, status: Status, f: Visit<Ulid>) -> Result<()> {
        let code = i16::from(status.code());
        self.visit(
            "SELECT id FROM tracker_by_status WHERE code = $1 ORDER BY num",
            &[&code],
            |r| self.ulid(r, 0),
            f,
        )
    }

    fn visit_label(&self, label: &str, f: Visit<Ulid>) -> Result<()> {
        self.visit(
            "SELECT id FROM tracker_by_label WHERE label = $1 ORDER BY num",
            &[&label],
            |r| self.ulid(r, 0),
            f,
        )
    }

    fn visit_items(&self, f: Visit<Item>) -> Result<()> {
        self.visit(
            "SELECT n.num, i.value FROM tracker_nums n LEFT JOIN tracker_items i ON i.id = n.id ORDER BY n.num",
            &[],
            |r| {
                let bytes: Option<&[u8]> = r.get(1);
                let num: i64 = r.get(0);
                let bytes = bytes.ok_or_else(|| {
                    Error::Data(format!(
                        "{}: the tracker data is damaged (number {} points at a missing item)",
                        self.shown,
                        from_sql(num)
                    ))
                })?;
                self.decode("items", from_sql(num), bytes)
            },
            f,
        )
    }

    fn visit_items_by_id(&self, f: Visit<Item>) -> Result<()> {
        self.visit(
            "SELECT id, value FROM tracker_items ORDER BY id",
            &[],
            |r| {
                let id = self.ulid(r, 0)?;
                self.decode("items", id, r.get(1))
            },
            f,
        )
    }

    fn visit_nums(&self, f: Visit<(u64, Ulid)>) -> Result<()> {
        self.visit(
            "SELECT num, id FROM tracker_nums ORDER BY num",
            &[],
            |r| Ok((from_sql(r.get(0)), self.ulid(r, 1)?)),
            f,
        )
    }

    fn visit_status_index(&self, f: Visit<(Status, u64, Ulid)>) -> Result<()> {
        self.visit(
            "SELECT code, num, id FROM tracker_by_status ORDER BY code, num",
            &[],
            |r| {
                let code: i16 = r.get(0);
                let status = u8::try_from(code)
                    .ok()
                    .and_then(Status::from_code)
                    .ok_or_else(|| {
                        Error::Data(format!(
                            "{}: the tracker data is damaged (status code {code})",
                            self.shown
                        ))
                    })?;
                Ok((status, from_sql(r.get(1)), self.ulid(r, 2)?))
            },
            f,
        )
    }

    fn visit_label_index(&self, f: Visit<(String, u64, Ulid)>) -> Result<()> {
        // Labels compare by their bytes, as in the redb file.
        self.visit(
            "SELECT label, num, id FROM tracker_by_label ORDER BY label COLLATE \"C\", num",
            &[],
            |r| Ok((r.get(0), from_sql(r.get(1)), self.ulid(r, 2)?)),
            f,
        )
    }

    fn visit_ready_index(&self, f: Visit<(u8, u64, Ulid)>) -> Result<()> {
        self.visit(
            "SELECT priority, num, id FROM tracker_ready ORDER BY priority, num",
            &[],
            |r| {
                let p: i16 = r.get(0);
                Ok((
                    u8::try_from(p).unwrap_or(u8::MAX),
                    from_sql(r.get(1)),
                    self.ulid(r, 2)?,
                ))
            },
            f,
        )
    }

    fn visit_blocks(&self, f: Visit<(Ulid, Ulid)>) -> Result<()> {
        self.visit(
            "SELECT blocker, blocked FROM tracker_blocks ORDER BY blocker, blocked",
            &[],
            |r| Ok((self.ulid(r, 0)?, self.ulid(r, 1)?)),
            f,
        )
    }

    fn visit_item_ops(&self, f: Visit<(Ulid, u64)>) -> Result<()> {
        self.visit(
            "SELECT id, seq FROM tracker_item_ops ORDER BY id, seq",
            &[],
            |r| Ok((self.ulid(r, 0)?, from_sql(r.get(1)))),
            f,
        )
    }

    fn visit_idempotency(&self, f: Visit<(String, IdempotencyRecord)>) -> Result<()> {
        self.visit(
            "SELECT key, value FROM tracker_idempotency ORDER BY key COLLATE \"C\"",
            &[],
            |r| {
                let key: String = r.get(0);
                let record: IdempotencyRecord = self.decode("idempotency", &key, r.get(1))?;
                Ok((key, record))
            },
            f,
        )
    }

    fn dependents(&self, id: Ulid) -> Result<Vec<Ulid>> {
        let rows = self.query(
            "SELECT blocked FROM tracker_blocks WHERE blocker = $1 ORDER BY blocked",
            &[&id_bytes(id)],
        )?;
        rows.iter().map(|r| self.ulid(r, 0)).collect()
    }

    fn visit_ops(&self, from: u64, f: Visit<Op>) -> Result<()> {
        self.visit(
            "SELECT seq, value FROM tracker_ops WHERE seq >= $1 ORDER BY seq",
            &[&as_sql(from)],
            |r| self.decode("ops", from_sql(r.get(0)), r.get(1)),
            f,
        )
    }

    fn op_seqs_of(&self, id: Ulid) -> Result<Vec<u64>> {
        let rows = self.query(
            "SELECT seq FROM tracker_item_ops WHERE id = $1 ORDER BY seq",
            &[&id_bytes(id)],
        )?;
        Ok(rows.iter().map(|r| from_sql(r.get(0))).collect())
    }

    fn op(&self, seq: u64) -> Result<Option<Op>> {
        let row = self.query_opt(
            "SELECT value FROM tracker_ops WHERE seq = $1",
            &[&as_sql(seq)],
        )?;
        row.map(|r| self.decode("ops", seq, r.get(0))).transpose()
    }

    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        let row = self.query_opt(
            "SELECT value FROM tracker_idempotency WHERE key = $1",
            &[&key],
        )?;
        row.map(|r| self.decode("idempotency", key, r.get(0)))
            .transpose()
    }

    fn item_count(&self) -> Result<u64> {
        let row = self.query("SELECT count(*) FROM tracker_items", &[])?;
        let n: i64 = row.first().map_or(0, |r| r.get(0));
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn server_time_ms(&self) -> Result<Option<WallMs>> {
        if !self.server_clock {
            return Ok(None);
        }
        let row = self.query(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            &[],
        )?;
        Ok(row.first().map(|r| r.get(0)))
    }
}

impl WriteTxn for PgTxn<'_> {
    fn set_format_version(&mut self, version: u64) -> Result<()> {
        self.with(|tx| tx.batch_execute(schema::TABLES))?;
        self.put_meta("format_version", version)
    }

    fn set_counter(&mut self, counter: Counter, value: u64) -> Result<()> {
        self.put_meta(counter.key(), value)
    }

    fn set_setting(&mut self, setting: Setting, value: u64) -> Result<()> {
        self.put_meta(setting.key(), value)
    }

    fn put_item(&mut self, old: Option<&Item>, new: &Item, ready: bool) -> Result<()> {
        let id = id_bytes(new.id);
        let num = as_sql(new.num);
        self.execute(
            "INSERT INTO tracker_items (id, value) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value",
            &[&id, &encode(new)?],
        )?;
        if let Some(o) = old {
            let onum = as_sql(o.num);
            self.execute("DELETE FROM tracker_nums WHERE num = $1", &[&onum])?;
            self.execute(
                "DELETE FROM tracker_by_status WHERE code = $1 AND num = $2",
                &[&i16::from(o.status.code()), &onum],
            )?;
            self.execute(
                "DELETE FROM tracker_ready WHERE priority = $1 AND num = $2",
                &[&i16::from(o.priority), &onum],
            )?;
            for l in &o.labels {
                self.execute(
                    "DELETE FROM tracker_by_label WHERE label = $1 AND num = $2",
                    &[l, &onum],
                )?;
            }
            for b in &o.blocked_by {
                self.execute(
                    "DELETE FROM tracker_blocks WHERE blocker = $1 AND blocked = $2",
                    &[&id_bytes(*b), &id],
                )?;
            }
        }
        self.execute(
            "INSERT INTO tracker_nums (num, id) VALUES ($1, $2) ON CONFLICT (num) DO UPDATE SET id = EXCLUDED.id",
            &[&num, &id],
        )?;
        self.execute(
            "INSERT INTO tracker_by_status (code, num, id) VALUES ($1, $2, $3) ON CONFLICT (code, num) DO UPDATE SET id = EXCLUDED.id",
            &[&i16::from(new.status.code()), &num, &id],
        )?;
        if ready {
            self.execute(
                "INSERT INTO tracker_ready (priority, num, id) VALUES ($1, $2, $3) ON CONFLICT (priority, num) DO UPDATE SET id = EXCLUDED.id",
                &[&i16::from(new.priority), &num, &id],
            )?;
        }
        for l in &new.labels {
            self.execute(
                "INSERT INTO tracker_by_label (label, num, id) VALUES ($1, $2, $3) ON CONFLICT (label, num) DO UPDATE SET id = EXCLUDED.id",
                &[l, &num, &id],
            )?;
        }
        for b in &new.blocked_by {
            self.execute(
                "INSERT INTO tracker_blocks (blocker, blocked) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&id_bytes(*b), &id],
            )?;
        }
        Ok(())
    }

    fn put_lease(&mut self, id: Ulid, lease: &Lease) -> Result<()> {
        self.execute(
            "INSERT INTO tracker_claims (id, value) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value",
            &[&id_bytes(id), &encode(lease)?],
        )
    }

    fn remove_lease(&mut self, id: Ulid) -> Result<()> {
        self.execute("DELETE FROM tracker_claims WHERE id = $1", &[&id_bytes(id)])
    }

    fn append_op(&mut self, op: &Op) -> Result<()> {
        self.execute(
            "INSERT INTO tracker_ops (seq, value) VALUES ($1, $2) ON CONFLICT (seq) DO UPDATE SET value = EXCLUDED.value",
            &[&as_sql(op.seq), &encode(op)?],
        )?;
        self.index_op(op.item, op.seq)
    }

    fn index_op(&mut self, item: Ulid, seq: u64) -> Result<()> {
        self.execute(
            "INSERT INTO tracker_item_ops (id, seq) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&id_bytes(item), &as_sql(seq)],
        )
    }

    fn put_idempotency(&mut self, key: &str, record: &IdempotencyRecord) -> Result<()> {
        self.execute(
            "INSERT INTO tracker_idempotency (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key, &encode(record)?],
        )
    }

    fn remove_idempotency(&mut self, key: &str) -> Result<()> {
        self.execute("DELETE FROM tracker_idempotency WHERE key = $1", &[&key])
    }

    fn clear_derived(&mut self) -> Result<()> {
        self.with(|tx| {
            tx.batch_execute(&format!(
                "DELETE FROM {}",
                schema::DERIVED.replace(", ", "; DELETE FROM ")
            ))
        })
    }
}

impl PgTxn<'_> {
    fn put_meta(&self, key: &str, value: u64) -> Result<()> {
        self.execute(
            "INSERT INTO tracker_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key, &as_sql(value)],
        )
    }
}

/// A fresh, empty tracker in a schema of its own in the test server named by `TRACKER_TEST_PG`
/// (a URL). Without it the PostgreSQL tests are skipped with a loud message, except in CI
/// (`CI` set), where they must run.
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
