//! Every table of the tracker file, its keys and its value encodings; data-format.md mirrors this
//! file line by line. Reads work the same from read and write transactions (`OpenTables`).

use std::path::Path;

use redb::{
    Key, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, Value,
    WriteTransaction,
};
use serde::de::DeserializeOwned;
use ulid::Ulid;

use super::{damaged, storage_error};
use crate::error::{Error, Result};
use crate::model::{Item, Lease, Op, Status};
use crate::store::{Counter, IdempotencyRecord, ReadTxn, Setting, Visit, WriteTxn};

/// Format version, the counters of `Counter`, and the settings of `Setting`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// ULID -> Item (MessagePack array).
const ITEMS: TableDefinition<u128, &[u8]> = TableDefinition::new("items");
/// Number -> ULID.
const NUMS: TableDefinition<u64, u128> = TableDefinition::new("nums");
/// ULID -> Lease (MessagePack array). At most one per item; it may have expired.
const CLAIMS: TableDefinition<u128, &[u8]> = TableDefinition::new("claims");
/// Sequence -> Op (MessagePack array). Gapless from 1.
const OPS: TableDefinition<u64, &[u8]> = TableDefinition::new("ops");
/// (ULID, sequence) -> (): the ops of each item.
const ITEM_OPS: TableDefinition<(u128, u64), ()> = TableDefinition::new("item_ops");
/// (priority, number) -> ULID: open items not blocked by an open item.
const READY: TableDefinition<(u8, u64), u128> = TableDefinition::new("ready");
/// (status code, number) -> ULID.
const BY_STATUS: TableDefinition<(u8, u64), u128> = TableDefinition::new("by_status");
/// (label, number) -> ULID.
const BY_LABEL: TableDefinition<(&str, u64), u128> = TableDefinition::new("by_label");
/// (blocker ULID, blocked ULID) -> (): the reverse of `blocked_by`.
const BLOCKS: TableDefinition<(u128, u128), ()> = TableDefinition::new("blocks");
/// (parent ULID, child ULID) -> (): the reverse of `parent` (format 2 on).
const CHILDREN: TableDefinition<(u128, u128), ()> = TableDefinition::new("children");
/// Idempotency key -> IdempotencyRecord (MessagePack array).
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");

const FORMAT_KEY: &str = "format_version";

/// A table keyed by a pair of identities (`blocks`, `children`), opened in a `T`.
type PairTable<'a, T> = <T as OpenTables>::Table<'a, (u128, u128), ()>;

/// Opens tables the same way from read and write transactions.
pub(super) trait OpenTables {
    type Table<'a, K: Key + 'static, V: Value + 'static>: ReadableTable<K, V>
    where
        Self: 'a;
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> std::result::Result<Self::Table<'_, K, V>, redb::TableError>;
}

impl OpenTables for ReadTransaction {
    type Table<'a, K: Key + 'static, V: Value + 'static> = redb::ReadOnlyTable<K, V>;
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> std::result::Result<redb::ReadOnlyTable<K, V>, redb::TableError> {
        self.open_table(def)
    }
}

impl OpenTables for WriteTransaction {
    type Table<'a, K: Key + 'static, V: Value + 'static> = redb::Table<'a, K, V>;
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> std::result::Result<redb::Table<'_, K, V>, redb::TableError> {
        self.open_table(def)
    }
}

pub(super) struct Txn<'p, T> {
    pub(super) txn: T,
    pub(super) path: &'p Path,
}

use crate::store::encode_value as encode;

impl<T: OpenTables> Txn<'_, T> {
    fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<T::Table<'_, K, V>> {
        self.txn.table(def).map_err(|e| self.table_error(e))
    }

    fn table_error(&self, e: redb::TableError) -> Error {
        match e {
            redb::TableError::TableDoesNotExist(name) => Error::Data(format!(
                "{}: a redb file, but not a tracker (no table {name:?})",
                self.path.display()
            )),
            redb::TableError::Storage(s) => storage_error(self.path, s),
            other => Error::Data(format!(
                "{}: not a tracker file of this format ({other})",
                self.path.display()
            )),
        }
    }

    fn se(&self, e: redb::StorageError) -> Error {
        storage_error(self.path, e)
    }

    fn decode<V: DeserializeOwned>(
        &self,
        table: &str,
        key: impl std::fmt::Display,
        bytes: &[u8],
    ) -> Result<V> {
        crate::store::decode_value(table, key, bytes).map_err(|what| damaged(self.path, what))
    }

    /// Every entry of a table, in key order, turned into `T` by `entry` and handed to `f`.
    fn visit_all<K: Key + 'static, V: Value + 'static, E>(
        &self,
        def: TableDefinition<K, V>,
        f: Visit<E>,
        entry: impl for<'a> Fn(K::SelfType<'a>, V::SelfType<'a>) -> Result<E>,
    ) -> Result<()> {
        let table = self.open(def)?;
        for e in table.iter().map_err(|e| self.se(e))? {
            let (k, v) = e.map_err(|e| self.se(e))?;
            if !f(entry(k.value(), v.value())?)? {
                break;
            }
        }
        Ok(())
    }

    fn visit_pairs(
        &self,
        def: TableDefinition<(u8, u64), u128>,
        lo: (u8, u64),
        hi: (u8, u64),
        f: Visit<Ulid>,
    ) -> Result<()> {
        let table = self.open(def)?;
        for entry in table.range(lo..=hi).map_err(|e| self.se(e))? {
            let (_, v) = entry.map_err(|e| self.se(e))?;
            if !f(Ulid(v.value()))? {
                break;
            }
        }
        Ok(())
    }
}

impl<T: OpenTables> Txn<'_, T> {
    /// The parent index, or `None` in a file of format 1, which has none (read as it is, and
    /// written only once upgraded, when the table is made).
    fn children_table(&self) -> Result<Option<PairTable<'_, T>>> {
        match self.txn.table(CHILDREN) {
            Ok(t) => Ok(Some(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.table_error(e)),
        }
    }

    /// Opens every table a tracker of format `version` has; a file without one of them is not
    /// a tracker.
    pub(super) fn check_tables_exist(&self, version: u64) -> Result<()> {
        if version >= 2 {
            self.open(CHILDREN)?;
        }
        self.open(META)?;
        self.open(ITEMS)?;
        self.open(NUMS)?;
        self.open(CLAIMS)?;
        self.open(OPS)?;
        self.open(ITEM_OPS)?;
        self.open(READY)?;
        self.open(BY_STATUS)?;
        self.open(BY_LABEL)?;
        self.open(BLOCKS)?;
        self.open(IDEMPOTENCY)?;
        Ok(())
    }
}

impl<T: OpenTables> ReadTxn for Txn<'_, T> {
    fn format_version(&self) -> Result<Option<u64>> {
        let meta = match self.txn.table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.table_error(e)),
        };
        let v = meta
            .get(FORMAT_KEY)
            .map_err(|e| self.se(e))?
            .map(|g| g.value());
        // Closed first: a write transaction cannot open a table twice at once.
        drop(meta);
        // A version alone does not make a tracker: every table of this format must be there.
        if v.is_some_and(|v| {
            (crate::store::OLDEST_FORMAT_VERSION..=crate::store::FORMAT_VERSION).contains(&v)
        }) {
            self.check_tables_exist(v.unwrap_or(0))?;
        }
        Ok(v)
    }

    fn counter(&self, counter: Counter) -> Result<u64> {
        let meta = self.open(META)?;
        let v = meta.get(counter.key()).map_err(|e| self.se(e))?;
        Ok(v.map(|g| g.value()).unwrap_or(0))
    }

    fn setting(&self, setting: Setting) -> Result<Option<u64>> {
        let meta = self.open(META)?;
        let v = meta.get(setting.key()).map_err(|e| self.se(e))?;
        Ok(v.map(|g| g.value()))
    }

    fn item(&self, id: Ulid) -> Result<Option<Item>> {
        let items = self.open(ITEMS)?;
        let v = items.get(id.0).map_err(|e| self.se(e))?;
        v.map(|g| self.decode("items", id, g.value())).transpose()
    }

    fn id_by_num(&self, num: u64) -> Result<Option<Ulid>> {
        let nums = self.open(NUMS)?;
        let v = nums.get(num).map_err(|e| self.se(e))?;
        Ok(v.map(|g| Ulid(g.value())))
    }

    fn ids_between(&self, lo: Ulid, hi: Ulid, limit: usize) -> Result<Vec<Ulid>> {
        let items = self.open(ITEMS)?;
        let mut out = Vec::new();
        for entry in items.range(lo.0..=hi.0).map_err(|e| self.se(e))? {
            if out.len() >= limit {
                break;
            }
            let (k, _) = entry.map_err(|e| self.se(e))?;
            out.push(Ulid(k.value()));
        }
        Ok(out)
    }

    fn lease(&self, id: Ulid) -> Result<Option<Lease>> {
        let claims = self.open(CLAIMS)?;
        let v = claims.get(id.0).map_err(|e| self.se(e))?;
        v.map(|g| self.decode("claims", id, g.value())).transpose()
    }

    fn leases(&self) -> Result<Vec<(Ulid, Lease)>> {
        let claims = self.open(CLAIMS)?;
        let mut out = Vec::new();
        for entry in claims.iter().map_err(|e| self.se(e))? {
            let (k, v) = entry.map_err(|e| self.se(e))?;
            let id = Ulid(k.value());
            out.push((id, self.decode("claims", id, v.value())?));
        }
        Ok(out)
    }

    fn visit_ready(&self, f: Visit<Ulid>) -> Result<()> {
        self.visit_pairs(READY, (0, 0), (u8::MAX, u64::MAX), f)
    }

    fn visit_status(&self, status: Status, f: Visit<Ulid>) -> Result<()> {
        let c = status.code();
        self.visit_pairs(BY_STATUS, (c, 0), (c, u64::MAX), f)
    }

    fn visit_label(&self, label: &str, f: Visit<Ulid>) -> Result<()> {
        let table = self.open(BY_LABEL)?;
        for entry in table
            .range((label, 0u64)..=(label, u64::MAX))
            .map_err(|e| self.se(e))?
        {
            let (_, v) = entry.map_err(|e| self.se(e))?;
            if !f(Ulid(v.value()))? {
                break;
            }
        }
        Ok(())
    }

    fn visit_items(&self, f: Visit<Item>) -> Result<()> {
        let nums = self.open(NUMS)?;
        let items = self.open(ITEMS)?;
        for entry in nums.iter().map_err(|e| self.se(e))? {
            let (num, id) = entry.map_err(|e| self.se(e))?;
            let id = Ulid(id.value());
            let Some(bytes) = items.get(id.0).map_err(|e| self.se(e))? else {
                return Err(damaged(
                    self.path,
                    format!("number {} points at a missing item {id}", num.value()),
                ));
            };
            if !f(self.decode("items", id, bytes.value())?)? {
                break;
            }
        }
        Ok(())
    }

    fn visit_items_by_id(&self, f: Visit<Item>) -> Result<()> {
        let items = self.open(ITEMS)?;
        for entry in items.iter().map_err(|e| self.se(e))? {
            let (id, bytes) = entry.map_err(|e| self.se(e))?;
            if !f(self.decode("items", Ulid(id.value()), bytes.value())?)? {
                break;
            }
        }
        Ok(())
    }

    fn visit_nums(&self, f: Visit<(u64, Ulid)>) -> Result<()> {
        self.visit_all(NUMS, f, |num, id| Ok((num, Ulid(id))))
    }

    fn visit_status_index(&self, f: Visit<(Status, u64, Ulid)>) -> Result<()> {
        self.visit_all(BY_STATUS, f, |(code, num), id| {
            let status = Status::from_code(code).ok_or_else(|| {
                damaged(self.path, format!("status code {code} in table by_status"))
            })?;
            Ok((status, num, Ulid(id)))
        })
    }

    fn visit_label_index(&self, f: Visit<(String, u64, Ulid)>) -> Result<()> {
        self.visit_all(BY_LABEL, f, |(label, num), id| {
            Ok((label.to_string(), num, Ulid(id)))
        })
    }

    fn visit_ready_index(&self, f: Visit<(u8, u64, Ulid)>) -> Result<()> {
        self.visit_all(READY, f, |(priority, num), id| {
            Ok((priority, num, Ulid(id)))
        })
    }

    fn visit_blocks(&self, f: Visit<(Ulid, Ulid)>) -> Result<()> {
        self.visit_all(BLOCKS, f, |(blocker, blocked), ()| {
            Ok((Ulid(blocker), Ulid(blocked)))
        })
    }

    fn visit_children(&self, f: Visit<(Ulid, Ulid)>) -> Result<()> {
        let Some(children) = self.children_table()? else {
            return Ok(());
        };
        for e in children.iter().map_err(|e| self.se(e))? {
            let (k, _) = e.map_err(|e| self.se(e))?;
            let (parent, child) = k.value();
            if !f((Ulid(parent), Ulid(child)))? {
                break;
            }
        }
        Ok(())
    }

    fn children(&self, id: Ulid) -> Result<Vec<Ulid>> {
        let Some(children) = self.children_table()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in children
            .range((id.0, 0u128)..=(id.0, u128::MAX))
            .map_err(|e| self.se(e))?
        {
            let (k, _) = entry.map_err(|e| self.se(e))?;
            out.push(Ulid(k.value().1));
        }
        Ok(out)
    }

    fn visit_item_ops(&self, f: Visit<(Ulid, u64)>) -> Result<()> {
        self.visit_all(ITEM_OPS, f, |(id, seq), ()| Ok((Ulid(id), seq)))
    }

    fn visit_idempotency(&self, f: Visit<(String, IdempotencyRecord)>) -> Result<()> {
        self.visit_all(IDEMPOTENCY, f, |key, bytes| {
            let record: IdempotencyRecord = self.decode("idempotency", key, bytes)?;
            Ok((key.to_string(), record))
        })
    }

    fn dependents(&self, id: Ulid) -> Result<Vec<Ulid>> {
        let blocks = self.open(BLOCKS)?;
        let mut out = Vec::new();
        for entry in blocks
            .range((id.0, 0u128)..=(id.0, u128::MAX))
            .map_err(|e| self.se(e))?
        {
            let (k, _) = entry.map_err(|e| self.se(e))?;
            out.push(Ulid(k.value().1));
        }
        Ok(out)
    }

    fn visit_ops(&self, from: u64, f: Visit<Op>) -> Result<()> {
        let ops = self.open(OPS)?;
        for entry in ops.range(from..).map_err(|e| self.se(e))? {
            let (k, v) = entry.map_err(|e| self.se(e))?;
            let op = self.decode("ops", k.value(), v.value())?;
            if !f(op)? {
                break;
            }
        }
        Ok(())
    }

    fn op_seqs_of(&self, id: Ulid) -> Result<Vec<u64>> {
        let t = self.open(ITEM_OPS)?;
        let mut out = Vec::new();
        for entry in t
            .range((id.0, 0u64)..=(id.0, u64::MAX))
            .map_err(|e| self.se(e))?
        {
            let (k, _) = entry.map_err(|e| self.se(e))?;
            out.push(k.value().1);
        }
        Ok(out)
    }

    fn op(&self, seq: u64) -> Result<Option<Op>> {
        let ops = self.open(OPS)?;
        let v = ops.get(seq).map_err(|e| self.se(e))?;
        v.map(|g| self.decode("ops", seq, g.value())).transpose()
    }

    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        let t = self.open(IDEMPOTENCY)?;
        let v = t.get(key).map_err(|e| self.se(e))?;
        v.map(|g| self.decode("idempotency", key, g.value()))
            .transpose()
    }

    fn item_count(&self) -> Result<u64> {
        self.open(ITEMS)?.len().map_err(|e| self.se(e))
    }

    fn ready_count(&self) -> Result<u64> {
        // A table's length is kept in its header: no scan.
        self.open(READY)?.len().map_err(|e| self.se(e))
    }
}

impl WriteTxn for Txn<'_, WriteTransaction> {
    fn set_format_version(&mut self, version: u64) -> Result<()> {
        let mut meta = self.open(META)?;
        meta.insert(FORMAT_KEY, version).map_err(|e| self.se(e))?;
        drop(meta);
        // Opening a table in a write transaction creates it: every table exists from the start,
        // so a reader never meets a missing one in a tracker file.
        self.check_tables_exist(version)
    }

    fn set_counter(&mut self, counter: Counter, value: u64) -> Result<()> {
        let mut meta = self.open(META)?;
        meta.insert(counter.key(), value).map_err(|e| self.se(e))?;
        Ok(())
    }

    fn set_setting(&mut self, setting: Setting, value: u64) -> Result<()> {
        let mut meta = self.open(META)?;
        meta.insert(setting.key(), value).map_err(|e| self.se(e))?;
        Ok(())
    }

    fn write_item(&mut self, old: Option<&Item>, new: &Item, ready: bool) -> Result<()> {
        let bytes = encode(new)?;
        let id = new.id.0;
        {
            let mut items = self.open(ITEMS)?;
            items.insert(id, bytes.as_slice()).map_err(|e| self.se(e))?;
        }
        if old.is_none_or(|o| o.num != new.num) {
            let mut nums = self.open(NUMS)?;
            if let Some(o) = old {
                nums.remove(o.num).map_err(|e| self.se(e))?;
            }
            nums.insert(new.num, id).map_err(|e| self.se(e))?;
        }
        {
            let mut by_status = self.open(BY_STATUS)?;
            if let Some(o) = old {
                by_status
                    .remove((o.status.code(), o.num))
                    .map_err(|e| self.se(e))?;
            }
            by_status
                .insert((new.status.code(), new.num), id)
                .map_err(|e| self.se(e))?;
        }
        {
            let mut ready_t = self.open(READY)?;
            if let Some(o) = old {
                ready_t
                    .remove((o.priority, o.num))
                    .map_err(|e| self.se(e))?;
            }
            if ready {
                ready_t
                    .insert((new.priority, new.num), id)
                    .map_err(|e| self.se(e))?;
            }
        }
        let old_labels: &[String] = old.map(|o| o.labels.as_slice()).unwrap_or(&[]);
        if old_labels != new.labels.as_slice() || old.is_some_and(|o| o.num != new.num) {
            let mut by_label = self.open(BY_LABEL)?;
            if let Some(o) = old {
                for l in &o.labels {
                    by_label
                        .remove((l.as_str(), o.num))
                        .map_err(|e| self.se(e))?;
                }
            }
            for l in &new.labels {
                by_label
                    .insert((l.as_str(), new.num), id)
                    .map_err(|e| self.se(e))?;
            }
        }
        let old_parent = old.and_then(|o| o.parent);
        if old_parent != new.parent {
            let mut children = self.open(CHILDREN)?;
            if let Some(p) = old_parent {
                children.remove((p.0, id)).map_err(|e| self.se(e))?;
            }
            if let Some(p) = new.parent {
                children.insert((p.0, id), ()).map_err(|e| self.se(e))?;
            }
        }
        let old_blockers: &[Ulid] = old.map(|o| o.blocked_by.as_slice()).unwrap_or(&[]);
        if old_blockers != new.blocked_by.as_slice() {
            let mut blocks = self.open(BLOCKS)?;
            for b in old_blockers {
                blocks.remove((b.0, id)).map_err(|e| self.se(e))?;
            }
            for b in &new.blocked_by {
                blocks.insert((b.0, id), ()).map_err(|e| self.se(e))?;
            }
        }
        Ok(())
    }

    fn put_lease(&mut self, id: Ulid, lease: &Lease) -> Result<()> {
        let bytes = encode(lease)?;
        let mut claims = self.open(CLAIMS)?;
        claims
            .insert(id.0, bytes.as_slice())
            .map_err(|e| self.se(e))?;
        Ok(())
    }

    fn remove_lease(&mut self, id: Ulid) -> Result<()> {
        let mut claims = self.open(CLAIMS)?;
        claims.remove(id.0).map_err(|e| self.se(e))?;
        Ok(())
    }

    fn append_op(&mut self, op: &Op) -> Result<()> {
        let bytes = encode(op)?;
        {
            let mut ops = self.open(OPS)?;
            ops.insert(op.seq, bytes.as_slice())
                .map_err(|e| self.se(e))?;
        }
        self.index_op(op.item, op.seq)
    }

    fn index_op(&mut self, item: Ulid, seq: u64) -> Result<()> {
        let mut item_ops = self.open(ITEM_OPS)?;
        item_ops.insert((item.0, seq), ()).map_err(|e| self.se(e))?;
        Ok(())
    }

    fn remove_idempotency(&mut self, key: &str) -> Result<()> {
        let mut t = self.open(IDEMPOTENCY)?;
        t.remove(key).map_err(|e| self.se(e))?;
        Ok(())
    }

    fn put_idempotency(&mut self, key: &str, record: &IdempotencyRecord) -> Result<()> {
        let bytes = encode(record)?;
        let mut t = self.open(IDEMPOTENCY)?;
        t.insert(key, bytes.as_slice()).map_err(|e| self.se(e))?;
        Ok(())
    }

    fn clear_tables(&mut self) -> Result<()> {
        macro_rules! clear {
            ($($def:expr),*) => {$(
                self.txn.delete_table($def).map_err(|e| self.table_error(e))?;
                self.open($def)?;
            )*};
        }
        clear!(ITEMS, NUMS, CLAIMS, ITEM_OPS, READY, BY_STATUS, BY_LABEL, BLOCKS, CHILDREN);
        Ok(())
    }
}
