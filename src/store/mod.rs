//! The storage seam. Everything above it (the `Tracker` API and the rules) talks to a backend
//! only through `Storage`, `ReadTxn` and `WriteTxn`; the redb file is one backend, an in-memory
//! map another, and a PostgreSQL backend would be a third. `conformance` holds the tests every
//! backend must pass, method by method.
//!
//! # The concurrency contract
//!
//! Every backend gives **serializable** transactions: the outcome of any set of concurrent
//! `write` calls, from any number of processes or hosts, is the outcome of running them one after
//! another in some order, and a `read` sees one committed state, never part of a write.
//!
//! - `write(f)` commits everything `f` did if and only if `f` returns `Ok`; an `Err` (or a panic)
//!   leaves the store exactly as it was.
//! - A backend may run `f` **more than once** (a database that aborts a transaction on a
//!   serialization failure retries it), so `f` must have no effect outside the transaction and
//!   must read everything it decides on, including the clock, inside it.
//! - Counters (`Counter`) are read and set inside the write that uses them, so two writers can
//!   never hand out the same number, sequence or token.

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::error::Result;
use crate::model::{Item, Lease, Op, Status};

pub mod backend;
pub mod mem;
pub mod pg;
pub mod redb;

#[cfg(test)]
mod conformance;
#[cfg(test)]
pub(crate) mod conformance_methods;

/// The format version this library writes (data-format.md), kept in every store. A store of a
/// newer version is refused, untouched; one of an older version (`OLDEST_FORMAT_VERSION` on) is
/// read as it is and written only once `tracker upgrade` has migrated it.
pub const FORMAT_VERSION: u64 = 2;

/// The oldest format version this library reads (and can upgrade).
pub const OLDEST_FORMAT_VERSION: u64 = 1;

/// Refuses a write to a store of an older format: every backend's `write` runs this first,
/// inside the transaction, except while it upgrades. `shown` names the tracker in the message.
pub(crate) fn check_writable(t: &dyn ReadTxn, shown: &dyn std::fmt::Display) -> Result<()> {
    match t.format_version()? {
        Some(v) if v < FORMAT_VERSION => Err(crate::Error::Data(format!(
            "{shown}: the tracker has format version {v}, which this tracker (format \
             {FORMAT_VERSION}) reads but does not write; nothing was changed. Run `tracker \
             upgrade` to migrate it (once; everyone who shares it then needs a tracker of \
             format {FORMAT_VERSION})"
        ))),
        _ => Ok(()),
    }
}

/// Migrates a store of format `from` to `FORMAT_VERSION`, inside the upgrade's one write
/// transaction. Format 1 values decode as format 2 (its fields were only appended, with
/// defaults), so the migration records the new version; the backend creates what tables the
/// new format adds when it records it.
pub(crate) fn migrate(t: &mut dyn WriteTxn, from: u64) -> Result<()> {
    debug_assert!((OLDEST_FORMAT_VERSION..FORMAT_VERSION).contains(&from));
    t.set_format_version(FORMAT_VERSION)?;
    // Format 2 keeps the counts by status: counted once here, kept by every write after.
    for s in Status::ALL {
        let mut n = 0;
        t.visit_status(s, &mut |_| {
            n += 1;
            Ok(true)
        })?;
        t.set_counter(Counter::Items(s), n)?;
    }
    Ok(())
}

/// The upgrade every backend runs, with its write gate open: `None` when the store was already
/// of this format, else the version it had.
pub(crate) fn upgrade_in(t: &mut dyn WriteTxn) -> Result<Option<u64>> {
    match t.format_version()? {
        Some(v) if v < FORMAT_VERSION => {
            migrate(t, v)?;
            Ok(Some(v))
        }
        _ => Ok(None),
    }
}

/// Counters kept beside the tables, each the last value handed out (0 before the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// The last item number handed out.
    LastNum,
    /// The last op sequence number: the log's length, since sequences have no gaps.
    LastSeq,
    /// The last fencing token handed out; the next one is above it and above `TokenFloor`.
    LastToken,
    /// The lowest value `LastToken` may have: raised by `import` to the exported tracker's last
    /// token, so tokens keep growing across export and import although no op explains the jump.
    TokenFloor,
    /// Claims refused because another live holder had the item (a running total; refused
    /// commands leave no op).
    RefusedClaims,
    /// Retries made by `claim --wait` (a running total).
    WaitRetries,
    /// How many items have each status (format 2): kept by every `put_item`, so `status`
    /// reads three numbers instead of counting its indexes.
    Items(Status),
}

impl Counter {
    /// Its name in the store's `meta` table (`last_num`, `last_seq`, ...), as data-format.md
    /// lists them; it also names the counter in messages.
    pub fn key(self) -> &'static str {
        match self {
            Counter::LastNum => "last_num",
            Counter::LastSeq => "last_seq",
            Counter::LastToken => "last_token",
            Counter::TokenFloor => "token_floor",
            Counter::RefusedClaims => "refused_claims",
            Counter::WaitRetries => "wait_retries",
            Counter::Items(Status::Open) => "open_items",
            Counter::Items(Status::Done) => "done_items",
            Counter::Items(Status::Cancelled) => "cancelled_items",
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
    /// Its name in the store's `meta` table (`default_ttl_ms`).
    pub fn key(self) -> &'static str {
        match self {
            Setting::DefaultTtlMs => "default_ttl_ms",
        }
    }
}

/// What an idempotency key remembers: who ran which command with which arguments, and what it
/// made. A repeat by the same actor with the same fingerprint gets `item_after`/`lease_after`
/// back; anyone or anything else gets a conflict that reveals none of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The command and its arguments as canonical JSON (object keys sorted); a repeat must
    /// match it exactly.
    pub fingerprint: String,
    /// The item the command made or changed.
    pub item: Ulid,
    /// When the key was first used (wall clock, ms); it is forgotten
    /// [`IDEMPOTENCY_KEY_LIFETIME_MS`](crate::IDEMPOTENCY_KEY_LIFETIME_MS) later.
    pub at: i64,
    /// The actor that used the key.
    #[serde(default)]
    pub actor: String,
    /// The item as the first call left it.
    #[serde(default)]
    pub item_after: Option<Item>,
    /// The item's lease as the first call left it (a claim's fencing token lives here).
    #[serde(default)]
    pub lease_after: Option<Lease>,
    /// Every item a plan (`new --plan`) made, in plan order (empty for other commands; `item`
    /// is the first of them).
    #[serde(default)]
    pub created: Vec<PlannedItem>,
}

/// One item a plan made: the entry's key, and the item's number and identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedItem {
    /// The key the plan gave the entry.
    pub key: String,
    /// The item's number.
    pub num: u64,
    /// The item's identity.
    pub id: Ulid,
}

/// Encodes a stored value, as every backend stores it: MessagePack, positional (an array in
/// field order), half the size of named maps, which keeps a file within twice its JSON export.
/// Fields are only ever appended, each with a serde default, so older, shorter arrays still
/// decode (see data-format.md and the round-trip tests).
pub(crate) fn encode_value<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    rmp_serde::to_vec(v).map_err(|e| crate::Error::Internal(format!("cannot encode a value: {e}")))
}

/// Decodes a stored value; the error says which value of which table did not decode, for the
/// backend to report as damage.
pub(crate) fn decode_value<V: serde::de::DeserializeOwned>(
    table: &str,
    key: impl std::fmt::Display,
    bytes: &[u8],
) -> std::result::Result<V, String> {
    rmp_serde::from_slice(bytes)
        .map_err(|e| format!("the value of {key} in table {table} cannot be decoded: {e}"))
}

/// A callback over a sequence; return `Ok(false)` to stop early.
pub type Visit<'a, T> = &'a mut dyn FnMut(T) -> Result<bool>;

/// Reads, in one consistent snapshot.
pub trait ReadTxn {
    /// The format version of the file, or `None` if it has never been initialised.
    fn format_version(&self) -> Result<Option<u64>>;
    /// The counter's value: the last value handed out, 0 if none was.
    fn counter(&self, counter: Counter) -> Result<u64>;
    /// A tracker-wide setting kept in `meta` (see `Setting`), if set.
    fn setting(&self, setting: Setting) -> Result<Option<u64>>;
    /// The item with identity `id`, if there is one.
    fn item(&self, id: Ulid) -> Result<Option<Item>>;
    /// The identity of item number `num`, if there is one (the number index).
    fn id_by_num(&self, num: u64) -> Result<Option<Ulid>>;
    /// Identities between `lo` and `hi` inclusive, at most `limit` of them.
    fn ids_between(&self, lo: Ulid, hi: Ulid, limit: usize) -> Result<Vec<Ulid>>;
    /// The lease on file for item `id`, live or not (judging it is the caller's business).
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
    /// The number index as stored: (number, identity), by number.
    fn visit_nums(&self, f: Visit<(u64, Ulid)>) -> Result<()>;
    /// The status index as stored: (status, number, identity), by status code then number.
    fn visit_status_index(&self, f: Visit<(Status, u64, Ulid)>) -> Result<()>;
    /// The label index as stored: (label, number, identity), by label then number.
    fn visit_label_index(&self, f: Visit<(String, u64, Ulid)>) -> Result<()>;
    /// The ready index as stored: (priority, number, identity), in queue order.
    fn visit_ready_index(&self, f: Visit<(u8, u64, Ulid)>) -> Result<()>;
    /// The dependency index as stored: (blocker, blocked).
    fn visit_blocks(&self, f: Visit<(Ulid, Ulid)>) -> Result<()>;
    /// The per-item op index as stored: (item, sequence), by item then sequence.
    fn visit_item_ops(&self, f: Visit<(Ulid, u64)>) -> Result<()>;
    /// Every idempotency record, by key.
    fn visit_idempotency(&self, f: Visit<(String, IdempotencyRecord)>) -> Result<()>;
    /// Items that list `id` in their `blocked_by`.
    fn dependents(&self, id: Ulid) -> Result<Vec<Ulid>>;
    /// The parent index as stored: (parent, child), by parent then child (format 2; a store of
    /// format 1 has no parents and visits nothing).
    fn visit_children(&self, f: Visit<(Ulid, Ulid)>) -> Result<()>;
    /// Items whose `parent` is `id`, by identity (creation order).
    fn children(&self, id: Ulid) -> Result<Vec<Ulid>>;
    /// Ops with `seq >= from`, oldest first.
    fn visit_ops(&self, from: u64, f: Visit<Op>) -> Result<()>;
    /// Sequence numbers of the ops on `id`, oldest first.
    fn op_seqs_of(&self, id: Ulid) -> Result<Vec<u64>>;
    /// The op with sequence number `seq`, if the log has it.
    fn op(&self, seq: u64) -> Result<Option<Op>>;
    /// What idempotency key `key` remembers, however old (expiry is the caller's business).
    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>>;
    /// How many items the items table holds.
    fn item_count(&self) -> Result<u64>;
    /// How many entries the ready queue holds (open items waiting for nothing open; live
    /// leases not filtered).
    fn ready_count(&self) -> Result<u64>;
    /// The backend's own clock, if it has one that every client shares (a database server's):
    /// lease times then come from it, never from a client's clock. `None` for a local file,
    /// where the host's clocks (wall, and monotonic within a boot) decide.
    fn server_time_ms(&self) -> Result<Option<crate::model::WallMs>> {
        Ok(None)
    }
    /// A hint that `id` was just made with a fresh identity, so no item names it as its parent
    /// or among its blockers: a backend that fetches children and dependents over the network
    /// need not ask. (A file answers from its own pages and ignores it.)
    fn childless(&self, id: Ulid) {
        let _ = id;
    }
    /// A hint that the items `ids` are about to be read, one by one: a backend across a network
    /// fetches them (with their leases, dependents and children) in one round trip. Changes
    /// nothing, and reads nothing more than `item` would; a local backend ignores it.
    fn prefetch(&self, ids: &[Ulid]) -> Result<()> {
        let _ = ids;
        Ok(())
    }
}

/// Writes, all committed together or not at all.
pub trait WriteTxn: ReadTxn {
    /// Records the format version (backends do it when they create a store).
    fn set_format_version(&mut self, version: u64) -> Result<()>;
    /// Sets a counter. Callers only ever raise counters, by one, inside the write that uses the
    /// new value.
    fn set_counter(&mut self, counter: Counter, value: u64) -> Result<()>;
    /// Sets a tracker-wide setting.
    fn set_setting(&mut self, setting: Setting, value: u64) -> Result<()>;
    /// Stores `new`, keeping every index and the counts by status in step with the change from
    /// `old`. `ready` says whether the item belongs in the ready queue (open, unblocked, no open
    /// child), which depends on other items. Backends implement [`WriteTxn::write_item`]; the
    /// counts are kept here, once for all of them.
    fn put_item(&mut self, old: Option<&Item>, new: &Item, ready: bool) -> Result<()> {
        let from = old.map(|o| o.status);
        if from != Some(new.status) {
            if let Some(s) = from {
                let n = self.counter(Counter::Items(s))?;
                self.set_counter(Counter::Items(s), n.saturating_sub(1))?;
            }
            let n = self.counter(Counter::Items(new.status))?;
            self.set_counter(Counter::Items(new.status), n + 1)?;
        }
        self.write_item(old, new, ready)
    }
    /// [`WriteTxn::put_item`] without the counts: the item and every index.
    fn write_item(&mut self, old: Option<&Item>, new: &Item, ready: bool) -> Result<()>;
    /// Stores `lease` as item `id`'s lease, replacing any other: an item has at most one.
    fn put_lease(&mut self, id: Ulid, lease: &Lease) -> Result<()>;
    /// Removes item `id`'s lease, if it has one.
    fn remove_lease(&mut self, id: Ulid) -> Result<()>;
    /// Appends `op` and indexes it under its item (`index_op`); the caller has given it the next
    /// sequence number.
    fn append_op(&mut self, op: &Op) -> Result<()>;
    /// Records that op `seq` changed `item` (the per-item op index); `rebuild` calls it for every
    /// op of the log after `clear_derived`.
    fn index_op(&mut self, item: Ulid, seq: u64) -> Result<()>;
    /// Remembers `record` under idempotency key `key`, replacing what it held.
    fn put_idempotency(&mut self, key: &str, record: &IdempotencyRecord) -> Result<()>;
    /// Forgets idempotency key `key`.
    fn remove_idempotency(&mut self, key: &str) -> Result<()>;
    /// Empties the items, leases and every index, the per-item op index included, and sets the
    /// counts by status to 0 (not the ops log, the other meta rows or idempotency keys), so
    /// `rebuild` can write them anew from the log. Backends implement
    /// [`WriteTxn::clear_tables`].
    fn clear_derived(&mut self) -> Result<()> {
        self.clear_tables()?;
        for s in Status::ALL {
            self.set_counter(Counter::Items(s), 0)?;
        }
        Ok(())
    }
    /// [`WriteTxn::clear_derived`] without the counts.
    fn clear_tables(&mut self) -> Result<()>;
}

/// A backend: runs closures inside transactions, under the concurrency contract of this module.
/// [`Tracker::with_store`](crate::Tracker::with_store) takes any implementation.
pub trait Storage {
    /// Whether the backend has a clock every client shares (see `ReadTxn::server_time_ms`).
    fn has_shared_clock(&self) -> bool {
        false
    }
    /// Runs `f` in a read snapshot.
    fn read<T>(&self, f: impl FnOnce(&dyn ReadTxn) -> Result<T>) -> Result<T>;
    /// Runs `f` in a write transaction, committed durably if `f` returns `Ok`, rolled back
    /// otherwise. `f` may be run more than once (see the module's concurrency contract). A store
    /// of an older format refuses every write (`check_writable`) until it is upgraded.
    fn write<T>(&self, f: impl FnMut(&mut dyn WriteTxn) -> Result<T>) -> Result<T>;
    /// Migrates a store of an older format to this one in one write transaction (`tracker
    /// upgrade`): the version it had, or `None` when it was already of this format.
    fn upgrade(&self) -> Result<Option<u64>> {
        self.write(upgrade_in)
    }
    /// The file the data lives in, if it lives in one (so that `export -o` can refuse to
    /// overwrite it).
    fn file(&self) -> Option<&std::path::Path> {
        None
    }
    /// A tracker-wide setting, read on its own (see `ReadTxn::setting`): a backend across a
    /// network answers it in one round trip, with no transaction around it.
    fn setting(&self, setting: Setting) -> Result<Option<u64>> {
        self.read(|t| t.setting(setting))
    }
    /// The backend's shared clock read on its own (see `ReadTxn::server_time_ms`).
    fn server_time_ms(&self) -> Result<Option<crate::model::WallMs>> {
        self.read(|t| t.server_time_ms())
    }
    /// Starts listening for committed writes, if the backend can tell of them (PostgreSQL's
    /// `LISTEN`): a write that commits after this returns wakes the next `wait_for_change`.
    /// False when it cannot; waiters then poll.
    fn listen(&self) -> bool {
        false
    }
    /// Waits at most `timeout` for a write to commit new ops; true if one did (or may have).
    /// A backend that cannot tell just sleeps, and says false. Leases expiring and holders
    /// dying are never told of: a waiter still wakes at the deadlines it knows of.
    fn wait_for_change(&self, timeout: std::time::Duration) -> bool {
        std::thread::sleep(timeout);
        false
    }
}

/// One backend shared by many trackers (`tracker serve` builds a tracker per request, each acting
/// as the request's actor, over the one handle it keeps open).
impl<S: Storage> Storage for std::sync::Arc<S> {
    fn has_shared_clock(&self) -> bool {
        (**self).has_shared_clock()
    }
    fn read<T>(&self, f: impl FnOnce(&dyn ReadTxn) -> Result<T>) -> Result<T> {
        (**self).read(f)
    }
    fn write<T>(&self, f: impl FnMut(&mut dyn WriteTxn) -> Result<T>) -> Result<T> {
        (**self).write(f)
    }
    fn upgrade(&self) -> Result<Option<u64>> {
        (**self).upgrade()
    }
    fn file(&self) -> Option<&std::path::Path> {
        (**self).file()
    }
    fn setting(&self, setting: Setting) -> Result<Option<u64>> {
        (**self).setting(setting)
    }
    fn server_time_ms(&self) -> Result<Option<crate::model::WallMs>> {
        (**self).server_time_ms()
    }
    fn listen(&self) -> bool {
        (**self).listen()
    }
    fn wait_for_change(&self, timeout: std::time::Duration) -> bool {
        (**self).wait_for_change(timeout)
    }
}
