//! The storage seam. Everything above it (the `Tracker` API and the rules) talks to a backend
//! only through `Storage`, `ReadTxn` and `WriteTxn`; the redb file is one backend, an in-memory
//! map another, and a PostgreSQL backend would be a third. `conformance` holds the tests every
//! backend must pass.

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::error::Result;
use crate::model::{Item, Lease, Op, Status};

pub mod mem;
pub mod redb;

#[cfg(test)]
mod conformance;

/// The file format this binary reads and writes; see data-format.md.
pub const FORMAT_VERSION: u64 = 1;

/// Counters kept beside the tables, each the last value handed out (0 before the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    LastNum,
    LastSeq,
    LastToken,
}

impl Counter {
    pub fn key(self) -> &'static str {
        match self {
            Counter::LastNum => "last_num",
            Counter::LastSeq => "last_seq",
            Counter::LastToken => "last_token",
        }
    }
}

/// Tracker-wide settings kept beside the counters. They are configuration, not items, so
/// changing one appends no op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// Lease length when a claim names none, in milliseconds.
    DefaultTtlMs,
}

impl Setting {
    pub fn key(self) -> &'static str {
        match self {
            Setting::DefaultTtlMs => "default_ttl_ms",
        }
    }
}

/// What an idempotency key remembers: which command with which arguments, and what it made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The command and its arguments, normalised; a repeat must match it exactly.
    pub fingerprint: String,
    pub item: Ulid,
    pub at: i64,
}

/// A callback over a sequence; return `Ok(false)` to stop early.
pub type Visit<'a, T> = &'a mut dyn FnMut(T) -> Result<bool>;

/// Reads, in one consistent snapshot.
pub trait ReadTxn {
    /// The format version of the file, or `None` if it has never been initialised.
    fn format_version(&self) -> Result<Option<u64>>;
    fn counter(&self, counter: Counter) -> Result<u64>;
    /// A tracker-wide setting kept in `meta` (see `Setting`), if set.
    fn setting(&self, setting: Setting) -> Result<Option<u64>>;
    fn item(&self, id: Ulid) -> Result<Option<Item>>;
    fn id_by_num(&self, num: u64) -> Result<Option<Ulid>>;
    /// Identities between `lo` and `hi` inclusive, at most `limit` of them.
    fn ids_between(&self, lo: Ulid, hi: Ulid, limit: usize) -> Result<Vec<Ulid>>;
    fn lease(&self, id: Ulid) -> Result<Option<Lease>>;
    /// Every lease on file, live or not.
    fn leases(&self) -> Result<Vec<(Ulid, Lease)>>;
    /// Open, unblocked items, best priority first, then oldest (by number).
    fn visit_ready(&self, f: Visit<Ulid>) -> Result<()>;
    /// Items with `status`, by number.
    fn visit_status(&self, status: Status, f: Visit<Ulid>) -> Result<()>;
    /// Items carrying `label`, by number.
    fn visit_label(&self, label: &str, f: Visit<Ulid>) -> Result<()>;
    /// Every item, by number.
    fn visit_items(&self, f: Visit<Item>) -> Result<()>;
    /// Every item, by identity (ULID): one pass over the items table, no index lookups.
    fn visit_items_by_id(&self, f: Visit<Item>) -> Result<()>;
    /// Items that list `id` in their `blocked_by`.
    fn dependents(&self, id: Ulid) -> Result<Vec<Ulid>>;
    /// Ops with `seq >= from`, oldest first.
    fn visit_ops(&self, from: u64, f: Visit<Op>) -> Result<()>;
    /// Sequence numbers of the ops on `id`, oldest first.
    fn op_seqs_of(&self, id: Ulid) -> Result<Vec<u64>>;
    fn op(&self, seq: u64) -> Result<Option<Op>>;
    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>>;
    fn item_count(&self) -> Result<u64>;
}

/// Writes, all committed together or not at all.
pub trait WriteTxn: ReadTxn {
    fn set_format_version(&mut self, version: u64) -> Result<()>;
    fn set_counter(&mut self, counter: Counter, value: u64) -> Result<()>;
    fn set_setting(&mut self, setting: Setting, value: u64) -> Result<()>;
    /// Stores `new`, keeping every index in step with the change from `old`. `ready` says whether
    /// the item belongs in the ready queue (open and unblocked), which depends on other items.
    fn put_item(&mut self, old: Option<&Item>, new: &Item, ready: bool) -> Result<()>;
    fn put_lease(&mut self, id: Ulid, lease: &Lease) -> Result<()>;
    fn remove_lease(&mut self, id: Ulid) -> Result<()>;
    /// Appends `op`; the caller has given it the next sequence number.
    fn append_op(&mut self, op: &Op) -> Result<()>;
    fn put_idempotency(&mut self, key: &str, record: &IdempotencyRecord) -> Result<()>;
    /// Empties the items, leases and every index (not the ops log, meta or idempotency keys),
    /// so `rebuild` can write them anew from the log.
    fn clear_derived(&mut self) -> Result<()>;
}

/// A backend: runs closures inside transactions.
pub trait Storage {
    /// Runs `f` in a read snapshot.
    fn read<T>(&self, f: impl FnOnce(&dyn ReadTxn) -> Result<T>) -> Result<T>;
    /// Runs `f` in a write transaction, committed durably if `f` returns `Ok`, rolled back otherwise.
    fn write<T>(&self, f: impl FnOnce(&mut dyn WriteTxn) -> Result<T>) -> Result<T>;
    /// The file the data lives in, if it lives in one (so that `export -o` can refuse to
    /// overwrite it).
    fn file(&self) -> Option<&std::path::Path> {
        None
    }
}

/// The bounds of every identity whose Crockford base32 text starts with `prefix`.
pub fn ulid_prefix_range(prefix: &str) -> Option<(Ulid, Ulid)> {
    if prefix.is_empty() || prefix.len() > 26 {
        return None;
    }
    let upper = prefix.to_ascii_uppercase();
    let lo = format!("{upper:0<26}");
    let hi = format!("{upper:Z<26}");
    let lo = Ulid::from_string(&lo).ok()?;
    // A first character above 7 overflows 128 bits: no ULID has it, so `hi` fails too.
    let hi = Ulid::from_string(&hi).unwrap_or(Ulid(u128::MAX));
    Some((lo, hi))
}
