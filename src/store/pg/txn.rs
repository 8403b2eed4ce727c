//! One transaction on one connection: the statements it runs, what it knows (`Known`) and what
//! it has yet to send (`Pending`). `reads.rs` and `writes.rs` implement the storage traits on it.

use std::cell::{Cell, RefCell};

use postgres::types::{ToSql, Type};
use postgres::{Row, SimpleQueryMessage, Transaction};
use serde::de::DeserializeOwned;
use ulid::Ulid;

use super::known::Known;
use super::pending::Pending;
use super::{lost, retryable, Ctx, PgStore, Prepared};
use crate::error::{Error, Result};

/// How many rows a scan fetches at a time: flat memory for any table size.
pub(super) const PAGE: i32 = 1000;

/// A statement's parameters with their types, for `query_typed`: no prepare round trip.
pub(super) type Typed<'a> = [(&'a (dyn ToSql + Sync), Type)];

/// One transaction. The client needs `&mut` for every statement while `ReadTxn` hands out `&`,
/// so the transaction sits in a `RefCell`; no borrow is held while a caller's callback runs.
pub(super) struct PgTxn<'c> {
    tx: RefCell<Option<Transaction<'c>>>,
    /// The connection's prepared statements, shared by its transactions.
    prepared: RefCell<&'c mut Prepared>,
    pub(super) ctx: Ctx<'c>,
    pub(super) shown: &'c str,
    pub(super) server_clock: bool,
    pub(super) known: RefCell<Known>,
    pub(super) pending: RefCell<Pending>,
    /// The last op appended (sequence, stored value): how to tell whether the write committed
    /// when its connection is lost while it commits.
    pub(super) last_op: Option<(u64, Vec<u8>)>,
    /// Set when the server asked for the transaction to be run again.
    pub(super) retry: Cell<bool>,
    /// Set when the connection was lost under it.
    pub(super) lost: Cell<bool>,
    /// Whether the schema has `tracker_children` (format 2 on; set by an upgrade's write).
    pub(super) children_table: Cell<bool>,
}

impl<'c> PgTxn<'c> {
    pub(super) fn new(
        tx: Transaction<'c>,
        prepared: &'c mut Prepared,
        store: &'c PgStore,
        ctx: Ctx<'c>,
        known: Known,
    ) -> Self {
        // A write's lock batch read the meta rows: they say; a read goes by what was last seen.
        let format = match known.meta.get("format_version") {
            Some(v) => {
                store.saw_format(*v);
                *v
            }
            None => store.format(),
        };
        let children_table = format >= 2;
        PgTxn {
            tx: RefCell::new(Some(tx)),
            prepared: RefCell::new(prepared),
            ctx,
            shown: &store.shown,
            server_clock: store.server_clock,
            known: RefCell::new(known),
            pending: RefCell::new(Pending::default()),
            last_op: None,
            retry: Cell::new(false),
            lost: Cell::new(false),
            children_table: Cell::new(children_table),
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

    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'c>) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let mut guard = self.tx.borrow_mut();
        let tx = guard
            .as_mut()
            .ok_or_else(|| Error::Internal("the transaction has ended".into()))?;
        f(tx).map_err(|e| self.err(&e))
    }

    /// `sql` prepared once per connection, for the scans (a portal needs a prepared statement).
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

    /// A query in one round trip: parse, bind and run sent together, the types given.
    pub(super) fn query(&self, sql: &str, params: &Typed<'_>) -> Result<Vec<Row>> {
        self.with(|tx| tx.query_typed(sql, params))
    }

    pub(super) fn query_opt(&self, sql: &str, params: &Typed<'_>) -> Result<Option<Row>> {
        self.with(|tx| tx.query_typed_opt(sql, params))
    }

    /// Sends every pending change (one round trip, none if there is none), so that a read the
    /// cache cannot answer sees them.
    pub(super) fn send_pending(&self) -> Result<()> {
        if self.pending.borrow().is_empty() {
            return Ok(());
        }
        if self.pending.borrow().is_bulk() {
            let statements = self.pending.borrow_mut().take_bulk();
            for (sql, values, types) in &statements {
                let params: Vec<(&(dyn ToSql + Sync), Type)> = values
                    .iter()
                    .map(|v| &**v)
                    .zip(types.iter().cloned())
                    .collect();
                self.with(|tx| tx.execute_typed(sql, &params))?;
            }
        } else {
            let sql = self.pending.borrow_mut().take_sql();
            self.with(|tx| tx.batch_execute(&sql))?;
        }
        self.known.borrow_mut().forget_if_large();
        Ok(())
    }

    /// Sends the pending changes early when they have grown large (an import of many items).
    pub(super) fn send_if_large(&self) -> Result<()> {
        if self.pending.borrow().is_large() {
            self.send_pending()?;
        }
        Ok(())
    }

    /// Every row of a scan, a page at a time, each turned into `T` and handed to `f` with no
    /// borrow held (so `f` may run further queries). Pending changes are sent first.
    pub(super) fn visit<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        row: impl Fn(&Row) -> Result<T>,
        f: crate::store::Visit<T>,
    ) -> Result<()> {
        self.send_pending()?;
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

    pub(super) fn decode<V: DeserializeOwned>(
        &self,
        table: &str,
        key: impl std::fmt::Display,
        bytes: &[u8],
    ) -> Result<V> {
        crate::store::decode_value(table, key, bytes).map_err(|what| {
            Error::Data(format!(
                "{}: the tracker data is damaged ({what}); restore it from a backup or an export",
                self.shown
            ))
        })
    }

    pub(super) fn ulid_of(&self, b: &[u8]) -> Result<Ulid> {
        let arr: [u8; 16] = b.try_into().map_err(|_| {
            Error::Data(format!(
                "{}: the tracker data is damaged (an identity of {} bytes)",
                self.shown,
                b.len()
            ))
        })?;
        Ok(Ulid(u128::from_be_bytes(arr)))
    }

    pub(super) fn ulid(&self, r: &Row, col: usize) -> Result<Ulid> {
        self.ulid_of(r.get(col))
    }

    /// Sends a large batch of pending changes ahead of COMMIT (as bulk statements), so that
    /// `commit` sends what is left and COMMIT in one round trip.
    pub(super) fn send_before_commit(&self) -> Result<()> {
        if self.pending.borrow().is_bulk() {
            self.send_pending()?;
        }
        Ok(())
    }

    /// Sends what is pending and COMMIT in one round trip. The `Transaction` is then ended the
    /// crate's way, with a second COMMIT the server answers with a warning: that round trip
    /// comes after the write lock was released.
    pub(super) fn commit(mut self) -> std::result::Result<(), postgres::Error> {
        let Some(mut tx) = self.tx.get_mut().take() else {
            return Ok(());
        };
        let pending = self.pending.get_mut();
        if !pending.is_empty() {
            let mut sql = pending.take_sql();
            sql.push_str("COMMIT;");
            tx.batch_execute(&sql)?;
        }
        tx.commit()
    }

    /// Ends a read: nothing to commit, but the server's answer to COMMIT is still awaited.
    pub(super) fn finish(self) -> std::result::Result<(), postgres::Error> {
        self.commit()
    }
}

/// The statement a write runs first, in the round trip that takes the write lock: the lock
/// row, then (once it is held) every meta row, the server's clock and the last op (whose time
/// the next op must not go below), so that a command reads none of them again.
const LOCK_AND_READ: &str = "\
SELECT value FROM tracker_meta WHERE key = 'last_seq' FOR UPDATE;
SELECT 'meta', key, value::text FROM tracker_meta
UNION ALL SELECT 'clock', '', ((extract(epoch FROM clock_timestamp()) * 1000)::bigint)::text
UNION ALL SELECT 'op', seq::text, encode(value, 'hex') FROM tracker_ops
    WHERE seq = (SELECT value FROM tracker_meta WHERE key = 'last_seq')";

/// Takes the write lock (every writer queues on one row, in one order, for at most the
/// session's `lock_timeout`) and reads what every write needs, in one round trip.
pub(super) fn lock_and_read(
    tx: &mut Transaction<'_>,
    shown: &str,
) -> std::result::Result<std::result::Result<Known, Error>, postgres::Error> {
    let messages = tx.simple_query(LOCK_AND_READ)?;
    Ok(known_from(&messages, shown))
}

fn known_from(messages: &[SimpleQueryMessage], shown: &str) -> std::result::Result<Known, Error> {
    let damaged = |what: &str| {
        Error::Data(format!(
            "{shown}: the tracker data is damaged ({what}); restore it from a backup or an export"
        ))
    };
    let mut known = Known {
        meta_complete: true,
        ..Known::default()
    };
    for m in messages {
        let SimpleQueryMessage::Row(r) = m else {
            continue;
        };
        // The lock row's own result has one column.
        if r.len() != 3 {
            continue;
        }
        let (kind, key, value) = (r.get(0), r.get(1).unwrap_or(""), r.get(2).unwrap_or(""));
        match kind {
            Some("meta") => {
                let v: i64 = value.parse().map_err(|_| damaged("a meta value"))?;
                known
                    .meta
                    .insert(key.to_string(), super::schema::from_sql(v));
            }
            Some("clock") => known.clock_ms = value.parse().ok(),
            Some("op") => {
                let seq: u64 = key.parse().map_err(|_| damaged("an op sequence"))?;
                let bytes = decode_hex(value).ok_or_else(|| damaged("an op value"))?;
                let op = crate::store::decode_value("ops", seq, &bytes)
                    .map_err(|what| damaged(&what))?;
                known.ops.insert(seq, Some(op));
            }
            _ => {}
        }
    }
    Ok(known)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
