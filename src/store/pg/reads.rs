//! `ReadTxn` on a PostgreSQL transaction. Point reads are answered from what the transaction
//! knows when it can (`Known`), and otherwise fetch what the command will read next along with
//! the row (an item with its lease and its dependents), each in one round trip with no prepare;
//! scans send the pending changes first, then page through a portal.

use std::collections::BTreeSet;

use postgres::types::Type;
use postgres::Row;
use ulid::Ulid;

use super::id_bytes;
use super::schema::{as_sql, from_sql};
use super::txn::PgTxn;
use crate::error::{Error, Result};
use crate::model::{Item, Lease, Op, Status, WallMs};
use crate::store::{Counter, IdempotencyRecord, ReadTxn, Setting, Visit};

/// The children of the item `$id` as a column: in a schema of format 1, which has no
/// `tracker_children` and no parents, always empty.
macro_rules! children_column {
    (1, $id:literal) => {
        "ARRAY[]::bytea[]"
    };
    (2, $id:literal) => {
        concat!(
            "array(SELECT ch.child FROM tracker_children ch WHERE ch.parent = ",
            $id,
            " ORDER BY ch.child)"
        )
    };
}

/// What a command reads next about an item, as columns after its value: its lease, the items
/// it blocks, its children.
macro_rules! with_columns {
    ($f:tt, $id:literal) => {
        concat!(
            "c.value, array(SELECT b.blocked FROM tracker_blocks b WHERE b.blocker = ",
            $id,
            " ORDER BY b.blocked), ",
            children_column!($f, $id)
        )
    };
}

macro_rules! item_with {
    ($f:tt) => {
        concat!(
            "SELECT i.value, ",
            with_columns!($f, "i.id"),
            " FROM tracker_items i LEFT JOIN tracker_claims c ON c.id = i.id WHERE i.id = $1"
        )
    };
}

macro_rules! num_with {
    ($f:tt) => {
        concat!(
            "SELECT n.id, i.value, ",
            with_columns!($f, "n.id"),
            " FROM tracker_nums n LEFT JOIN tracker_items i ON i.id = n.id \
             LEFT JOIN tracker_claims c ON c.id = n.id WHERE n.num = $1"
        )
    };
}

macro_rules! many_with {
    ($f:tt) => {
        concat!(
            "SELECT k.id, i.value, ",
            with_columns!($f, "k.id"),
            " FROM unnest($1::bytea[]) AS k(id) LEFT JOIN tracker_items i ON i.id = k.id \
             LEFT JOIN tracker_claims c ON c.id = k.id"
        )
    };
}

macro_rules! ready_page {
    ($f:tt) => {
        concat!(
            "SELECT r.priority, r.num, r.id, i.value, ",
            with_columns!($f, "r.id"),
            " FROM tracker_ready r LEFT JOIN tracker_items i ON i.id = r.id \
             LEFT JOIN tracker_claims c ON c.id = r.id \
             WHERE (r.priority, r.num) > ($1, $2) ORDER BY r.priority, r.num LIMIT $3"
        )
    };
}

/// Each query in its format-1 and format-2 spelling ([`PgTxn::spelled`]).
type Spellings = [&'static str; 2];

/// An item with what a command reads next.
const ITEM_WITH: Spellings = [item_with!(1), item_with!(2)];

/// The same by number.
const NUM_WITH: Spellings = [num_with!(1), num_with!(2)];

/// The same for many identities at once (`prefetch`).
const MANY_WITH: Spellings = [many_with!(1), many_with!(2)];

/// A page of the ready queue after a position, with each item and what is read next:
/// `claim --next` and `list --ready` find what they need in the first page.
const READY_PAGE: Spellings = [ready_page!(1), ready_page!(2)];

impl PgTxn<'_> {
    /// `q` as this schema's format spells it.
    fn spelled(&self, q: Spellings) -> &'static str {
        q[usize::from(self.children_table.get())]
    }

    fn meta(&self, key: &str) -> Result<Option<u64>> {
        if !self.known.borrow().meta_complete {
            self.load_meta()?;
        }
        Ok(self.known.borrow().meta.get(key).copied())
    }

    /// Reads every meta row and the server's clock in one round trip (a write's lock batch
    /// already did).
    fn load_meta(&self) -> Result<()> {
        let rows = self.query(
            "SELECT key, value, NULL::bigint FROM tracker_meta \
             UNION ALL SELECT NULL, NULL, (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            &[],
        )?;
        let mut known = self.known.borrow_mut();
        for r in &rows {
            match r.get::<_, Option<String>>(0) {
                Some(key) => {
                    let v: i64 = r.get::<_, Option<i64>>(1).unwrap_or(0);
                    known.meta.entry(key).or_insert(from_sql(v));
                }
                None => known.clock_ms = known.clock_ms.or(r.get(2)),
            }
        }
        known.meta_complete = true;
        Ok(())
    }

    /// Records an item read from the database with its lease and dependents (columns from
    /// `at`: item, lease, dependents), keeping whatever the transaction already knew (which
    /// may include its own unsent changes).
    fn learn(&self, id: Ulid, r: &Row, at: usize) -> Result<Option<Item>> {
        let bytes: Option<&[u8]> = r.get(at);
        let item: Option<Item> = bytes.map(|b| self.decode("items", id, b)).transpose()?;
        let lease: Option<Lease> = r
            .get::<_, Option<&[u8]>>(at + 1)
            .map(|b| self.decode("claims", id, b))
            .transpose()?;
        let mut known = self.known.borrow_mut();
        known.count_item(bytes.map_or(0, <[u8]>::len));
        let item = known.items.entry(id).or_insert(item).clone();
        if item.is_some() {
            known.leases.entry(id).or_insert(lease);
        }
        // Known even for an item not yet made: an import may list it as a blocker first.
        if let std::collections::hash_map::Entry::Vacant(slot) = known.dependents.entry(id) {
            let mut set = BTreeSet::new();
            for b in r.get::<_, Vec<&[u8]>>(at + 2) {
                set.insert(self.ulid_of(b)?);
            }
            // Unsent changes to the blocks of `id` are not in the database's copy.
            let pending = self.pending.borrow();
            for ((_, blocked), v) in pending.blocks.range((id, Ulid(0))..=(id, Ulid(u128::MAX))) {
                if v.is_some() {
                    set.insert(*blocked);
                } else {
                    set.remove(blocked);
                }
            }
            slot.insert(set);
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = known.children.entry(id) {
            let mut set = BTreeSet::new();
            for c in r.get::<_, Vec<&[u8]>>(at + 3) {
                set.insert(self.ulid_of(c)?);
            }
            let pending = self.pending.borrow();
            for ((_, child), v) in pending
                .children
                .range((id, Ulid(0))..=(id, Ulid(u128::MAX)))
            {
                if v.is_some() {
                    set.insert(*child);
                } else {
                    set.remove(child);
                }
            }
            slot.insert(set);
        }
        Ok(item)
    }
}

impl ReadTxn for PgTxn<'_> {
    fn format_version(&self) -> Result<Option<u64>> {
        self.meta("format_version")
    }

    fn counter(&self, counter: Counter) -> Result<u64> {
        Ok(self.meta(counter.key())?.unwrap_or(0))
    }

    fn setting(&self, setting: Setting) -> Result<Option<u64>> {
        self.meta(setting.key())
    }

    fn item(&self, id: Ulid) -> Result<Option<Item>> {
        if let Some(i) = self.known.borrow().items.get(&id) {
            return Ok(i.clone());
        }
        let key = id_bytes(id);
        match self.query_opt(self.spelled(ITEM_WITH), &[(&key, Type::BYTEA)])? {
            Some(r) => self.learn(id, &r, 0),
            None => {
                self.known.borrow_mut().items.entry(id).or_insert(None);
                Ok(None)
            }
        }
    }

    fn childless(&self, id: Ulid) {
        let mut known = self.known.borrow_mut();
        known.children.entry(id).or_default();
        // Nor does anything wait for it yet: a plan's next item blocked by it asks nothing.
        known.dependents.entry(id).or_default();
    }

    fn prefetch(&self, ids: &[Ulid]) -> Result<()> {
        let keys: Vec<Vec<u8>> = {
            let known = self.known.borrow();
            ids.iter()
                .filter(|id| {
                    !known.items.contains_key(id)
                        || !known.dependents.contains_key(id)
                        || !known.children.contains_key(id)
                })
                .map(|id| id_bytes(*id))
                .collect()
        };
        if keys.is_empty() {
            return Ok(());
        }
        for r in self.query(self.spelled(MANY_WITH), &[(&keys, Type::BYTEA_ARRAY)])? {
            let id = self.ulid(&r, 0)?;
            self.learn(id, &r, 1)?;
        }
        Ok(())
    }

    fn id_by_num(&self, num: u64) -> Result<Option<Ulid>> {
        if let Some(id) = self.known.borrow().nums.get(&num) {
            return Ok(*id);
        }
        let n = as_sql(num);
        let found = match self.query_opt(self.spelled(NUM_WITH), &[(&n, Type::INT8)])? {
            Some(r) => {
                let id = self.ulid(&r, 0)?;
                self.learn(id, &r, 1)?;
                Some(id)
            }
            None => None,
        };
        self.known.borrow_mut().nums.insert(num, found);
        Ok(found)
    }

    fn ids_between(&self, lo: Ulid, hi: Ulid, limit: usize) -> Result<Vec<Ulid>> {
        self.send_pending()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (lo, hi) = (id_bytes(lo), id_bytes(hi));
        let rows = self.query(
            "SELECT id FROM tracker_items WHERE id >= $1 AND id <= $2 ORDER BY id LIMIT $3",
            &[(&lo, Type::BYTEA), (&hi, Type::BYTEA), (&limit, Type::INT8)],
        )?;
        rows.iter().map(|r| self.ulid(r, 0)).collect()
    }

    fn lease(&self, id: Ulid) -> Result<Option<Lease>> {
        if let Some(l) = self.known.borrow().leases.get(&id) {
            return Ok(l.clone());
        }
        let key = id_bytes(id);
        let row = self.query_opt(
            "SELECT value FROM tracker_claims WHERE id = $1",
            &[(&key, Type::BYTEA)],
        )?;
        let lease: Option<Lease> = row
            .map(|r| self.decode("claims", id, r.get(0)))
            .transpose()?;
        self.known.borrow_mut().leases.insert(id, lease.clone());
        Ok(lease)
    }

    fn leases(&self) -> Result<Vec<(Ulid, Lease)>> {
        self.send_pending()?;
        let rows = self.query("SELECT id, value FROM tracker_claims ORDER BY id", &[])?;
        rows.iter()
            .map(|r| {
                let id = self.ulid(r, 0)?;
                Ok((id, self.decode("claims", id, r.get(1))?))
            })
            .collect()
    }

    fn visit_ready(&self, f: Visit<Ulid>) -> Result<()> {
        self.send_pending()?;
        let (mut priority, mut num) = (i16::MIN, i64::MIN);
        let mut page: i64 = 16;
        loop {
            let rows = self.query(
                self.spelled(READY_PAGE),
                &[
                    (&priority, Type::INT2),
                    (&num, Type::INT8),
                    (&page, Type::INT8),
                ],
            )?;
            let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) == page;
            for r in &rows {
                (priority, num) = (r.get(0), r.get(1));
                let id = self.ulid(r, 2)?;
                self.learn(id, r, 3)?;
                if !f(id)? {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
            page = (page * 4).min(i64::from(super::txn::PAGE));
        }
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

    fn visit_children(&self, f: Visit<(Ulid, Ulid)>) -> Result<()> {
        if !self.children_table.get() {
            return Ok(());
        }
        self.visit(
            "SELECT parent, child FROM tracker_children ORDER BY parent, child",
            &[],
            |r| Ok((self.ulid(r, 0)?, self.ulid(r, 1)?)),
            f,
        )
    }

    fn children(&self, id: Ulid) -> Result<Vec<Ulid>> {
        if let Some(set) = self.known.borrow().children.get(&id) {
            return Ok(set.iter().copied().collect());
        }
        if !self.children_table.get() {
            return Ok(Vec::new());
        }
        self.send_pending()?;
        let key = id_bytes(id);
        let rows = self.query(
            "SELECT child FROM tracker_children WHERE parent = $1 ORDER BY child",
            &[(&key, Type::BYTEA)],
        )?;
        rows.iter().map(|r| self.ulid(r, 0)).collect()
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
        if let Some(set) = self.known.borrow().dependents.get(&id) {
            return Ok(set.iter().copied().collect());
        }
        self.send_pending()?;
        let key = id_bytes(id);
        let rows = self.query(
            "SELECT blocked FROM tracker_blocks WHERE blocker = $1 ORDER BY blocked",
            &[(&key, Type::BYTEA)],
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
        self.send_pending()?;
        let key = id_bytes(id);
        let rows = self.query(
            "SELECT seq FROM tracker_item_ops WHERE id = $1 ORDER BY seq",
            &[(&key, Type::BYTEA)],
        )?;
        Ok(rows.iter().map(|r| from_sql(r.get(0))).collect())
    }

    fn op(&self, seq: u64) -> Result<Option<Op>> {
        if let Some(op) = self.known.borrow().ops.get(&seq) {
            return Ok(op.clone());
        }
        let s = as_sql(seq);
        let row = self.query_opt(
            "SELECT value FROM tracker_ops WHERE seq = $1",
            &[(&s, Type::INT8)],
        )?;
        row.map(|r| self.decode("ops", seq, r.get(0))).transpose()
    }

    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        if let Some(r) = self.known.borrow().idempotency.get(key) {
            return Ok(r.clone());
        }
        let row = self.query_opt(
            "SELECT value FROM tracker_idempotency WHERE key = $1",
            &[(&key, Type::TEXT)],
        )?;
        let record: Option<IdempotencyRecord> = row
            .map(|r| self.decode("idempotency", key, r.get(0)))
            .transpose()?;
        self.known
            .borrow_mut()
            .idempotency
            .insert(key.to_string(), record.clone());
        Ok(record)
    }

    fn item_count(&self) -> Result<u64> {
        self.send_pending()?;
        let row = self.query("SELECT count(*) FROM tracker_items", &[])?;
        let n: i64 = row.first().map_or(0, |r| r.get(0));
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn ready_count(&self) -> Result<u64> {
        self.send_pending()?;
        let row = self.query("SELECT count(*) FROM tracker_ready", &[])?;
        let n: i64 = row.first().map_or(0, |r| r.get(0));
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn server_time_ms(&self) -> Result<Option<WallMs>> {
        if !self.server_clock {
            return Ok(None);
        }
        if self.known.borrow().clock_ms.is_none() {
            self.load_meta()?;
        }
        Ok(self.known.borrow().clock_ms)
    }
}
