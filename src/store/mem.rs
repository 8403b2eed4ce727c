//! An in-memory backend: the reference the conformance suite holds the redb file to, and a fast
//! store for tests of the rules above the seam. It keeps the same tables and indexes as the redb
//! file, maintained the same way, so the two behave alike method by method. A write works on a
//! copy that replaces the state only when the closure succeeds, so a failed command changes
//! nothing, as in redb.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use ulid::Ulid;

use super::{Counter, IdempotencyRecord, ReadTxn, Setting, Storage, Visit, WriteTxn};
use crate::error::Result;
use crate::model::{Item, Lease, Op, Status};

#[derive(Clone, Debug, Default)]
struct Tables {
    format: Option<u64>,
    counters: BTreeMap<&'static str, u64>,
    settings: BTreeMap<&'static str, u64>,
    items: BTreeMap<Ulid, Item>,
    nums: BTreeMap<u64, Ulid>,
    leases: BTreeMap<Ulid, Lease>,
    ops: BTreeMap<u64, Op>,
    item_ops: BTreeSet<(Ulid, u64)>,
    ready: BTreeMap<(u8, u64), Ulid>,
    by_status: BTreeMap<(u8, u64), Ulid>,
    by_label: BTreeMap<(String, u64), Ulid>,
    blocks: BTreeSet<(Ulid, Ulid)>,
    children: BTreeSet<(Ulid, Ulid)>,
    idempotency: BTreeMap<String, IdempotencyRecord>,
}

/// A tracker held in memory, gone with the value: for tests, and for programs that want the
/// tracker's rules without a file. Serializable like every backend (one writer at a time).
/// `MemStore::default()` is uninitialised (no format version); [`MemStore::new`] is ready for use.
#[derive(Debug, Default)]
pub struct MemStore {
    tables: Mutex<Tables>,
}

impl MemStore {
    /// An initialised, empty tracker.
    pub fn new() -> MemStore {
        let store = MemStore::default();
        store
            .write(|t| t.set_format_version(super::FORMAT_VERSION))
            .expect("an in-memory write cannot fail");
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic in another thread's closure never left the tables half-written (writes work
        // on a copy), so a poisoned lock still guards consistent data.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Storage for MemStore {
    fn read<T>(&self, f: impl FnOnce(&dyn ReadTxn) -> Result<T>) -> Result<T> {
        let snapshot = self.lock().clone();
        f(&snapshot)
    }

    fn write<T>(&self, mut f: impl FnMut(&mut dyn WriteTxn) -> Result<T>) -> Result<T> {
        let mut guard = self.lock();
        let mut copy = guard.clone();
        let out = f(&mut copy)?;
        *guard = copy;
        Ok(out)
    }
}

fn visit<T>(iter: impl Iterator<Item = T>, f: Visit<T>) -> Result<()> {
    for x in iter {
        if !f(x)? {
            break;
        }
    }
    Ok(())
}

impl ReadTxn for Tables {
    fn format_version(&self) -> Result<Option<u64>> {
        Ok(self.format)
    }
    fn counter(&self, counter: Counter) -> Result<u64> {
        Ok(self.counters.get(counter.key()).copied().unwrap_or(0))
    }
    fn setting(&self, setting: Setting) -> Result<Option<u64>> {
        Ok(self.settings.get(setting.key()).copied())
    }
    fn item(&self, id: Ulid) -> Result<Option<Item>> {
        Ok(self.items.get(&id).cloned())
    }
    fn id_by_num(&self, num: u64) -> Result<Option<Ulid>> {
        Ok(self.nums.get(&num).copied())
    }
    fn ids_between(&self, lo: Ulid, hi: Ulid, limit: usize) -> Result<Vec<Ulid>> {
        Ok(self
            .items
            .range(lo..=hi)
            .map(|(k, _)| *k)
            .take(limit)
            .collect())
    }
    fn lease(&self, id: Ulid) -> Result<Option<Lease>> {
        Ok(self.leases.get(&id).cloned())
    }
    fn leases(&self) -> Result<Vec<(Ulid, Lease)>> {
        Ok(self.leases.iter().map(|(k, v)| (*k, v.clone())).collect())
    }
    fn visit_ready(&self, f: Visit<Ulid>) -> Result<()> {
        visit(self.ready.values().copied(), f)
    }
    fn visit_status(&self, status: Status, f: Visit<Ulid>) -> Result<()> {
        let c = status.code();
        visit(
            self.by_status
                .range((c, 0)..=(c, u64::MAX))
                .map(|(_, id)| *id),
            f,
        )
    }
    fn visit_label(&self, label: &str, f: Visit<Ulid>) -> Result<()> {
        let lo = (label.to_string(), 0);
        let hi = (label.to_string(), u64::MAX);
        visit(self.by_label.range(lo..=hi).map(|(_, id)| *id), f)
    }
    fn visit_items(&self, f: Visit<Item>) -> Result<()> {
        let items = self
            .nums
            .values()
            .filter_map(|id| self.items.get(id).cloned());
        visit(items, f)
    }
    fn visit_items_by_id(&self, f: Visit<Item>) -> Result<()> {
        visit(self.items.values().cloned(), f)
    }
    fn visit_nums(&self, f: Visit<(u64, Ulid)>) -> Result<()> {
        visit(self.nums.iter().map(|(n, id)| (*n, *id)), f)
    }
    fn visit_status_index(&self, f: Visit<(Status, u64, Ulid)>) -> Result<()> {
        let entries = self
            .by_status
            .iter()
            .filter_map(|((c, n), id)| Status::from_code(*c).map(|s| (s, *n, *id)));
        visit(entries, f)
    }
    fn visit_label_index(&self, f: Visit<(String, u64, Ulid)>) -> Result<()> {
        visit(
            self.by_label
                .iter()
                .map(|((l, n), id)| (l.clone(), *n, *id)),
            f,
        )
    }
    fn visit_ready_index(&self, f: Visit<(u8, u64, Ulid)>) -> Result<()> {
        visit(self.ready.iter().map(|((p, n), id)| (*p, *n, *id)), f)
    }
    fn visit_blocks(&self, f: Visit<(Ulid, Ulid)>) -> Result<()> {
        visit(self.blocks.iter().copied(), f)
    }
    fn visit_children(&self, f: Visit<(Ulid, Ulid)>) -> Result<()> {
        visit(self.children.iter().copied(), f)
    }
    fn children(&self, id: Ulid) -> Result<Vec<Ulid>> {
        Ok(self
            .children
            .range((id, Ulid(0))..=(id, Ulid(u128::MAX)))
            .map(|(_, c)| *c)
            .collect())
    }
    fn visit_item_ops(&self, f: Visit<(Ulid, u64)>) -> Result<()> {
        visit(self.item_ops.iter().copied(), f)
    }
    fn visit_idempotency(&self, f: Visit<(String, IdempotencyRecord)>) -> Result<()> {
        visit(
            self.idempotency.iter().map(|(k, r)| (k.clone(), r.clone())),
            f,
        )
    }
    fn dependents(&self, id: Ulid) -> Result<Vec<Ulid>> {
        Ok(self
            .blocks
            .range((id, Ulid(0))..=(id, Ulid(u128::MAX)))
            .map(|(_, d)| *d)
            .collect())
    }
    fn visit_ops(&self, from: u64, f: Visit<Op>) -> Result<()> {
        visit(self.ops.range(from..).map(|(_, op)| op.clone()), f)
    }
    fn op_seqs_of(&self, id: Ulid) -> Result<Vec<u64>> {
        Ok(self
            .item_ops
            .range((id, 0)..=(id, u64::MAX))
            .map(|(_, seq)| *seq)
            .collect())
    }
    fn op(&self, seq: u64) -> Result<Option<Op>> {
        Ok(self.ops.get(&seq).cloned())
    }
    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        Ok(self.idempotency.get(key).cloned())
    }
    fn ready_count(&self) -> Result<u64> {
        Ok(self.ready.len() as u64)
    }
    fn item_count(&self) -> Result<u64> {
        Ok(self.items.len() as u64)
    }
}

impl WriteTxn for Tables {
    fn set_format_version(&mut self, version: u64) -> Result<()> {
        self.format = Some(version);
        Ok(())
    }
    fn set_counter(&mut self, counter: Counter, value: u64) -> Result<()> {
        self.counters.insert(counter.key(), value);
        Ok(())
    }
    fn set_setting(&mut self, setting: Setting, value: u64) -> Result<()> {
        self.settings.insert(setting.key(), value);
        Ok(())
    }
    fn write_item(&mut self, old: Option<&Item>, new: &Item, ready: bool) -> Result<()> {
        if let Some(o) = old {
            self.nums.remove(&o.num);
            self.ready.remove(&(o.priority, o.num));
            self.by_status.remove(&(o.status.code(), o.num));
            for l in &o.labels {
                self.by_label.remove(&(l.clone(), o.num));
            }
            for b in &o.blocked_by {
                self.blocks.remove(&(*b, o.id));
            }
            if let Some(p) = o.parent {
                self.children.remove(&(p, o.id));
            }
        }
        self.nums.insert(new.num, new.id);
        if ready {
            self.ready.insert((new.priority, new.num), new.id);
        }
        self.by_status.insert((new.status.code(), new.num), new.id);
        for l in &new.labels {
            self.by_label.insert((l.clone(), new.num), new.id);
        }
        for b in &new.blocked_by {
            self.blocks.insert((*b, new.id));
        }
        if let Some(p) = new.parent {
            self.children.insert((p, new.id));
        }
        self.items.insert(new.id, new.clone());
        Ok(())
    }
    fn put_lease(&mut self, id: Ulid, lease: &Lease) -> Result<()> {
        self.leases.insert(id, lease.clone());
        Ok(())
    }
    fn remove_lease(&mut self, id: Ulid) -> Result<()> {
        self.leases.remove(&id);
        Ok(())
    }
    fn append_op(&mut self, op: &Op) -> Result<()> {
        self.ops.insert(op.seq, op.clone());
        self.index_op(op.item, op.seq)
    }
    fn index_op(&mut self, item: Ulid, seq: u64) -> Result<()> {
        self.item_ops.insert((item, seq));
        Ok(())
    }
    fn put_idempotency(&mut self, key: &str, record: &IdempotencyRecord) -> Result<()> {
        self.idempotency.insert(key.to_string(), record.clone());
        Ok(())
    }
    fn remove_idempotency(&mut self, key: &str) -> Result<()> {
        self.idempotency.remove(key);
        Ok(())
    }
    fn clear_tables(&mut self) -> Result<()> {
        self.items.clear();
        self.nums.clear();
        self.leases.clear();
        self.item_ops.clear();
        self.ready.clear();
        self.by_status.clear();
        self.by_label.clear();
        self.blocks.clear();
        self.children.clear();
        Ok(())
    }
}
