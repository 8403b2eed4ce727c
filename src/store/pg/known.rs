//! What a transaction already knows of the tables, so that reading a row again, or a row it
//! wrote itself, costs no round trip. It is valid for the whole transaction: a read runs in one
//! snapshot, and a write holds the write lock that every writer takes first, so no one else
//! changes a row under it.
//!
//! The rule that keeps it right beside `Pending`: every row written is also recorded here, so
//! a row this cache does not know has no unsent change, and the database's copy is current.
//! It is emptied only right after the pending changes were sent (`forget`).

use std::collections::{BTreeSet, HashMap};

use ulid::Ulid;

use crate::model::{Item, Lease, Op};

/// Above this many rows known, the cache is emptied at the next send: bounded memory for a
/// write that touches every item.
const MAX_ROWS: usize = 50_000;

/// The same for the bytes of the items known (large bodies), roughly.
const MAX_BYTES: usize = 16 << 20;

/// Rows known, by table. `None` means known to be absent.
#[derive(Default)]
pub(super) struct Known {
    /// Every meta row, once `meta_complete` (the write lock's batch reads them all).
    pub meta: HashMap<String, u64>,
    pub meta_complete: bool,
    /// The server's clock, read right after the write lock was taken.
    pub clock_ms: Option<i64>,
    pub items: HashMap<Ulid, Option<Item>>,
    pub leases: HashMap<Ulid, Option<Lease>>,
    pub nums: HashMap<u64, Option<Ulid>>,
    pub ops: HashMap<u64, Option<Op>>,
    /// The items that list the key item among their blockers (complete sets only).
    pub dependents: HashMap<Ulid, BTreeSet<Ulid>>,
    /// The items whose parent is the key item (complete sets only).
    pub children: HashMap<Ulid, BTreeSet<Ulid>>,
    pub idempotency: HashMap<String, Option<crate::store::IdempotencyRecord>>,
    /// The stored size of the items recorded since the cache was last emptied.
    pub item_bytes: usize,
}

impl Known {
    fn rows(&self) -> usize {
        self.items.len()
            + self.leases.len()
            + self.nums.len()
            + self.ops.len()
            + self.dependents.len()
            + self.children.len()
            + self.idempotency.len()
    }

    /// Called right after every pending change was sent, when the database holds everything
    /// this cache does: empties it if it has grown large (meta and the clock stay).
    pub fn forget_if_large(&mut self) {
        if self.rows() > MAX_ROWS || self.item_bytes > MAX_BYTES {
            *self = Known {
                meta: std::mem::take(&mut self.meta),
                meta_complete: self.meta_complete,
                clock_ms: self.clock_ms,
                ..Known::default()
            };
        }
    }

    /// Records the stored size of an item just learned or written.
    pub fn count_item(&mut self, bytes: usize) {
        self.item_bytes = self.item_bytes.saturating_add(bytes);
    }

    /// Empties what describes the derived tables (after `clear_derived`).
    pub fn forget_derived(&mut self) {
        self.item_bytes = 0;
        self.items.clear();
        self.leases.clear();
        self.nums.clear();
        self.dependents.clear();
        self.children.clear();
    }

    /// Records that `child`'s parent is now `parent` (or no longer is), where the set is known.
    pub fn set_child(&mut self, parent: Ulid, child: Ulid, is: bool) {
        if let Some(set) = self.children.get_mut(&parent) {
            if is {
                set.insert(child);
            } else {
                set.remove(&child);
            }
        }
    }

    /// Records that `blocked` now lists `blocker` (or no longer does), where the set is known.
    pub fn set_blocks(&mut self, blocker: Ulid, blocked: Ulid, blocks: bool) {
        if let Some(set) = self.dependents.get_mut(&blocker) {
            if blocks {
                set.insert(blocked);
            } else {
                set.remove(&blocked);
            }
        }
    }
}
