//! What a write transaction changed and has not yet sent: the net change to each table, row by
//! row (a row written twice is sent once, a row deleted after it was written is only deleted),
//! sent as one batch of multi-row statements when the transaction commits, before a read that
//! the cache cannot answer, or when the batch grows large (an import of many items). So the
//! write lock is held for a fixed number of round trips, whatever the number of rows.
//!
//! The batch is plain SQL text sent with the simple query protocol, the one way to send many
//! statements, and COMMIT after them, in one round trip. Every value in it is written in hex
//! (`decode('..', 'hex')`), text included (`convert_from(..., 'UTF8')`): the text holds nothing
//! but hex digits, numbers and our own words, so no value can ever be read as SQL, whatever the
//! server's `standard_conforming_strings`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use postgres::types::{ToSql, Type};
use ulid::Ulid;

use super::schema::as_sql;

/// Rows per statement: large enough to need few statements, small enough that the server's
/// parse of one stays quick.
const ROWS_PER_STATEMENT: usize = 1000;

/// A row's new state: `Some(value)` to insert or replace it, `None` to delete it.
type Net<K, V> = BTreeMap<K, Option<V>>;

/// The net change to every table.
#[derive(Default)]
pub(super) struct Pending {
    pub meta: BTreeMap<String, u64>,
    pub items: Net<Ulid, Vec<u8>>,
    pub nums: Net<u64, Ulid>,
    pub claims: Net<Ulid, Vec<u8>>,
    pub ops: BTreeMap<u64, Vec<u8>>,
    pub item_ops: BTreeSet<(Ulid, u64)>,
    pub ready: Net<(i16, u64), Ulid>,
    pub by_status: Net<(i16, u64), Ulid>,
    pub by_label: Net<(String, u64), Ulid>,
    pub blocks: Net<(Ulid, Ulid), ()>,
    /// (parent, child) rows of `tracker_children` (format 2).
    pub children: Net<(Ulid, Ulid), ()>,
    pub idempotency: Net<String, Vec<u8>>,
    /// Rows recorded since the last send (a row written twice counts twice: a bound, not a
    /// count), and the bytes of their values.
    pub rows: usize,
    pub bytes: usize,
    /// The last op appended since the last send, for the notification that wakes followers.
    pub last_seq: Option<u64>,
}

impl Pending {
    /// Whether nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Whether the batch has grown large enough to be sent before the transaction ends, so
    /// that a write of any size runs in bounded memory.
    pub fn is_large(&self) -> bool {
        self.rows >= 20_000 || self.bytes >= 8 << 20
    }

    /// Whether the batch is better sent as bulk statements (`take_bulk`) than as text.
    pub fn is_bulk(&self) -> bool {
        self.rows >= 1000 || self.bytes >= 1 << 20
    }

    /// Counts one row written, of `bytes` bytes.
    pub fn row(&mut self, bytes: usize) {
        self.rows += 1;
        self.bytes += bytes;
    }

    /// The statements that make every change, in one text (empty when there is none); taking
    /// it leaves the batch empty. `NOTIFY` is transactional: followers hear of the new ops only
    /// when, and if, they commit.
    pub fn take_sql(&mut self) -> String {
        let p = std::mem::take(self);
        let mut sql = String::new();
        let meta: Net<String, u64> = p.meta.into_iter().map(|(k, v)| (k, Some(v))).collect();
        net(&mut sql, "tracker_meta", ["key", "value"], &meta);
        net(&mut sql, "tracker_items", ["id", "value"], &p.items);
        net(&mut sql, "tracker_nums", ["num", "id"], &p.nums);
        net(&mut sql, "tracker_claims", ["id", "value"], &p.claims);
        let ops: Net<u64, Vec<u8>> = p.ops.into_iter().map(|(k, v)| (k, Some(v))).collect();
        net(&mut sql, "tracker_ops", ["seq", "value"], &ops);
        let item_ops: Vec<String> = p
            .item_ops
            .iter()
            .map(|(id, seq)| format!("({}, {})", id.sql(), seq.sql()))
            .collect();
        insert_new(&mut sql, "tracker_item_ops (id, seq)", &item_ops);
        pairs(&mut sql, "tracker_ready", ["priority", "num"], &p.ready);
        pairs(&mut sql, "tracker_by_status", ["code", "num"], &p.by_status);
        pairs(&mut sql, "tracker_by_label", ["label", "num"], &p.by_label);
        id_pairs(
            &mut sql,
            "tracker_blocks",
            ["blocker", "blocked"],
            &p.blocks,
        );
        id_pairs(
            &mut sql,
            "tracker_children",
            ["parent", "child"],
            &p.children,
        );
        net(
            &mut sql,
            "tracker_idempotency",
            ["key", "value"],
            &p.idempotency,
        );
        if let Some(seq) = p.last_seq {
            // The payload names the schema: one database may hold several trackers.
            let _ = writeln!(
                sql,
                "SELECT pg_notify('{}', current_schema() || ' {seq}');",
                super::NOTIFY_CHANNEL
            );
        }
        sql
    }
}

/// One statement of a bulk send, with its parameters (arrays, sent in binary).
pub(super) type BulkStatement = (&'static str, Vec<Box<dyn ToSql + Sync>>, Vec<Type>);

impl Pending {
    /// The same changes as `take_sql`, as statements over arrays bound in binary: for a large
    /// batch (an import), where the server's parsing of a text batch would cost more than the
    /// round trip per statement saves. Taking them leaves the batch empty.
    pub fn take_bulk(&mut self) -> Vec<BulkStatement> {
        let mut p = std::mem::take(self);
        let mut bulk = Bulk::default();
        let (keys, values): (Vec<String>, Vec<i64>) =
            p.meta.iter().map(|(k, v)| (k.clone(), as_sql(*v))).unzip();
        bulk.add(
            "INSERT INTO tracker_meta (key, value) SELECT * FROM unnest($1::text[], $2::int8[]) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            vec![
                (Box::new(keys), Type::TEXT_ARRAY),
                (Box::new(values), Type::INT8_ARRAY),
            ],
            p.meta.len(),
        );
        // The two tables keyed by an item's identity that hold a value.
        for (rows, gone_sql, put_sql) in [
            (
                &p.items,
                "DELETE FROM tracker_items WHERE id = ANY($1::bytea[])",
                "INSERT INTO tracker_items (id, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value",
            ),
            (
                &p.claims,
                "DELETE FROM tracker_claims WHERE id = ANY($1::bytea[])",
                "INSERT INTO tracker_claims (id, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value",
            ),
        ] {
            let (gone, put) = split(rows, |id| id_bytes(*id), Clone::clone);
            let n = gone.len();
            bulk.add(gone_sql, vec![(Box::new(gone), Type::BYTEA_ARRAY)], n);
            let n = put.0.len();
            bulk.add(
                put_sql,
                vec![(Box::new(put.0), Type::BYTEA_ARRAY), (Box::new(put.1), Type::BYTEA_ARRAY)],
                n,
            );
        }
        let (gone, put) = split(&p.nums, |n| as_sql(*n), |id| id_bytes(*id));
        bulk.add(
            "DELETE FROM tracker_nums WHERE num = ANY($1::int8[])",
            vec![(Box::new(gone.clone()), Type::INT8_ARRAY)],
            gone.len(),
        );
        let n = put.0.len();
        bulk.add(
            "INSERT INTO tracker_nums (num, id) SELECT * FROM unnest($1::int8[], $2::bytea[]) \
             ON CONFLICT (num) DO UPDATE SET id = EXCLUDED.id",
            vec![
                (Box::new(put.0), Type::INT8_ARRAY),
                (Box::new(put.1), Type::BYTEA_ARRAY),
            ],
            n,
        );
        let (seqs, values): (Vec<i64>, Vec<Vec<u8>>) = std::mem::take(&mut p.ops)
            .into_iter()
            .map(|(s, v)| (as_sql(s), v))
            .unzip();
        let n = seqs.len();
        bulk.add(
            "INSERT INTO tracker_ops (seq, value) SELECT * FROM unnest($1::int8[], $2::bytea[]) \
             ON CONFLICT (seq) DO UPDATE SET value = EXCLUDED.value",
            vec![
                (Box::new(seqs), Type::INT8_ARRAY),
                (Box::new(values), Type::BYTEA_ARRAY),
            ],
            n,
        );
        let (ids, seqs): (Vec<Vec<u8>>, Vec<i64>) = p
            .item_ops
            .iter()
            .map(|(id, s)| (id_bytes(*id), as_sql(*s)))
            .unzip();
        let n = ids.len();
        bulk.add(
            "INSERT INTO tracker_item_ops (id, seq) SELECT * FROM unnest($1::bytea[], $2::int8[]) \
             ON CONFLICT DO NOTHING",
            vec![
                (Box::new(ids), Type::BYTEA_ARRAY),
                (Box::new(seqs), Type::INT8_ARRAY),
            ],
            n,
        );
        indexes(&p, &mut bulk);
        idempotency_and_notify(&p, &mut bulk);
        bulk.0
    }
}

/// The idempotency keys' share of `take_bulk`, and the notification of new ops.
fn idempotency_and_notify(p: &Pending, bulk: &mut Bulk) {
    let (gone, put) = split(&p.idempotency, Clone::clone, Clone::clone);
    let n = gone.len();
    bulk.add(
        "DELETE FROM tracker_idempotency WHERE key = ANY($1::text[])",
        vec![(Box::new(gone), Type::TEXT_ARRAY)],
        n,
    );
    let n = put.0.len();
    bulk.add(
        "INSERT INTO tracker_idempotency (key, value) \
             SELECT * FROM unnest($1::text[], $2::bytea[]) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        vec![
            (Box::new(put.0), Type::TEXT_ARRAY),
            (Box::new(put.1), Type::BYTEA_ARRAY),
        ],
        n,
    );
    if let Some(seq) = p.last_seq {
        bulk.add(
            "SELECT pg_notify($1, current_schema() || ' ' || $2)",
            vec![
                (Box::new(super::NOTIFY_CHANNEL), Type::TEXT),
                (Box::new(seq.to_string()), Type::TEXT),
            ],
            1,
        );
    }
}

/// The index tables' share of `take_bulk`.
fn indexes(p: &Pending, bulk: &mut Bulk) {
    for (rows, gone_sql, put_sql) in [
        (
            &p.ready,
            "DELETE FROM tracker_ready WHERE (priority, num) IN \
                 (SELECT * FROM unnest($1::int2[], $2::int8[]))",
            "INSERT INTO tracker_ready (priority, num, id) \
                 SELECT * FROM unnest($1::int2[], $2::int8[], $3::bytea[]) \
                 ON CONFLICT (priority, num) DO UPDATE SET id = EXCLUDED.id",
        ),
        (
            &p.by_status,
            "DELETE FROM tracker_by_status WHERE (code, num) IN \
                 (SELECT * FROM unnest($1::int2[], $2::int8[]))",
            "INSERT INTO tracker_by_status (code, num, id) \
                 SELECT * FROM unnest($1::int2[], $2::int8[], $3::bytea[]) \
                 ON CONFLICT (code, num) DO UPDATE SET id = EXCLUDED.id",
        ),
    ] {
        let (gone, put) = split(rows, |k| *k, |id| id_bytes(*id));
        let (a, b): (Vec<i16>, Vec<i64>) = gone.iter().map(|(a, n)| (*a, as_sql(*n))).unzip();
        let n = a.len();
        bulk.add(
            gone_sql,
            vec![
                (Box::new(a), Type::INT2_ARRAY),
                (Box::new(b), Type::INT8_ARRAY),
            ],
            n,
        );
        let (a, b): (Vec<i16>, Vec<i64>) = put.0.iter().map(|(a, n)| (*a, as_sql(*n))).unzip();
        let n = a.len();
        bulk.add(
            put_sql,
            vec![
                (Box::new(a), Type::INT2_ARRAY),
                (Box::new(b), Type::INT8_ARRAY),
                (Box::new(put.1), Type::BYTEA_ARRAY),
            ],
            n,
        );
    }
    let (gone, put) = split(&p.by_label, Clone::clone, |id| id_bytes(*id));
    let (l, b): (Vec<String>, Vec<i64>) = gone.into_iter().map(|(l, n)| (l, as_sql(n))).unzip();
    let n = l.len();
    bulk.add(
        "DELETE FROM tracker_by_label WHERE (label, num) IN \
             (SELECT * FROM unnest($1::text[], $2::int8[]))",
        vec![
            (Box::new(l), Type::TEXT_ARRAY),
            (Box::new(b), Type::INT8_ARRAY),
        ],
        n,
    );
    let (l, b): (Vec<String>, Vec<i64>) = put.0.into_iter().map(|(l, n)| (l, as_sql(n))).unzip();
    let n = l.len();
    bulk.add(
        "INSERT INTO tracker_by_label (label, num, id) \
             SELECT * FROM unnest($1::text[], $2::int8[], $3::bytea[]) \
             ON CONFLICT (label, num) DO UPDATE SET id = EXCLUDED.id",
        vec![
            (Box::new(l), Type::TEXT_ARRAY),
            (Box::new(b), Type::INT8_ARRAY),
            (Box::new(put.1), Type::BYTEA_ARRAY),
        ],
        n,
    );
    id_pair_rows(
        bulk,
        &p.blocks,
        "DELETE FROM tracker_blocks WHERE (blocker, blocked) IN \
             (SELECT * FROM unnest($1::bytea[], $2::bytea[]))",
        "INSERT INTO tracker_blocks (blocker, blocked) \
             SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT DO NOTHING",
    );
    id_pair_rows(
        bulk,
        &p.children,
        "DELETE FROM tracker_children WHERE (parent, child) IN \
             (SELECT * FROM unnest($1::bytea[], $2::bytea[]))",
        "INSERT INTO tracker_children (parent, child) \
             SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT DO NOTHING",
    );
}

/// The bulk statements of a table whose rows are pairs of identities (`tracker_blocks`,
/// `tracker_children`): the rows gone, then the rows made.
fn id_pair_rows(
    bulk: &mut Bulk,
    rows: &Net<(Ulid, Ulid), ()>,
    gone_sql: &'static str,
    put_sql: &'static str,
) {
    let (gone, put) = split(rows, |k| *k, |_| ());
    for (pairs, sql) in [(gone, gone_sql), (put.0, put_sql)] {
        let (a, b): (Vec<Vec<u8>>, Vec<Vec<u8>>) = pairs
            .iter()
            .map(|(a, b)| (id_bytes(*a), id_bytes(*b)))
            .unzip();
        let n = a.len();
        bulk.add(
            sql,
            vec![
                (Box::new(a), Type::BYTEA_ARRAY),
                (Box::new(b), Type::BYTEA_ARRAY),
            ],
            n,
        );
    }
}

/// Statements of a bulk send, each added only when it has rows.
#[derive(Default)]
struct Bulk(Vec<BulkStatement>);

impl Bulk {
    fn add(&mut self, sql: &'static str, params: Vec<(Box<dyn ToSql + Sync>, Type)>, n: usize) {
        if n > 0 {
            let (values, types) = params.into_iter().unzip();
            self.0.push((sql, values, types));
        }
    }
}

/// A table's net change split into the keys to delete and the (keys, values) to write.
fn split<K, V, KS, VS>(
    rows: &Net<K, V>,
    key: impl Fn(&K) -> KS,
    value: impl Fn(&V) -> VS,
) -> (Vec<KS>, (Vec<KS>, Vec<VS>)) {
    let mut gone = Vec::new();
    let mut put = (Vec::new(), Vec::new());
    for (k, v) in rows {
        match v {
            None => gone.push(key(k)),
            Some(v) => {
                put.0.push(key(k));
                put.1.push(value(v));
            }
        }
    }
    (gone, put)
}

fn id_bytes(id: Ulid) -> Vec<u8> {
    id.0.to_be_bytes().to_vec()
}

/// How a key or value is written in SQL.
pub(super) trait Sql {
    fn sql(&self) -> String;
}

impl Sql for Ulid {
    fn sql(&self) -> String {
        hex(&self.0.to_be_bytes())
    }
}

impl Sql for u64 {
    fn sql(&self) -> String {
        as_sql(*self).to_string()
    }
}

impl Sql for i16 {
    fn sql(&self) -> String {
        self.to_string()
    }
}

/// Text, written in hex so that no character of it reaches the SQL.
impl Sql for String {
    fn sql(&self) -> String {
        format!("convert_from({}, 'UTF8')", hex(self.as_bytes()))
    }
}

impl Sql for Vec<u8> {
    fn sql(&self) -> String {
        hex(self)
    }
}

/// The deletes and upserts of a table keyed by one column.
fn net<K: Sql, V: Sql>(sql: &mut String, table: &str, [key, value]: [&str; 2], rows: &Net<K, V>) {
    let gone: Vec<String> = rows
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.sql())
        .collect();
    delete_in(sql, table, key, &gone);
    let put: Vec<String> = rows
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("({}, {})", k.sql(), v.sql())))
        .collect();
    for chunk in put.chunks(ROWS_PER_STATEMENT) {
        let _ = writeln!(
            sql,
            "INSERT INTO {table} ({key}, {value}) VALUES {} ON CONFLICT ({key}) DO UPDATE SET {value} = EXCLUDED.{value};",
            chunk.join(", ")
        );
    }
}

/// The deletes and upserts of an index keyed by two columns that holds an item's identity.
fn pairs<A: Sql, B: Sql>(
    sql: &mut String,
    table: &str,
    [a, b]: [&str; 2],
    rows: &Net<(A, B), Ulid>,
) {
    let gone: Vec<String> = rows
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|((x, y), _)| format!("({}, {})", x.sql(), y.sql()))
        .collect();
    delete_in(sql, table, &format!("({a}, {b})"), &gone);
    let put: Vec<String> = rows
        .iter()
        .filter_map(|((x, y), v)| v.map(|id| format!("({}, {}, {})", x.sql(), y.sql(), id.sql())))
        .collect();
    for chunk in put.chunks(ROWS_PER_STATEMENT) {
        let _ = writeln!(
            sql,
            "INSERT INTO {table} ({a}, {b}, id) VALUES {} ON CONFLICT ({a}, {b}) DO UPDATE SET id = EXCLUDED.id;",
            chunk.join(", ")
        );
    }
}

/// The text statements of a table whose rows are pairs of identities: the rows gone, then the
/// rows made.
fn id_pairs(sql: &mut String, table: &str, [a, b]: [&str; 2], rows: &Net<(Ulid, Ulid), ()>) {
    let (made, gone): (Vec<_>, Vec<_>) = rows.iter().partition(|(_, v)| v.is_some());
    let text = |rows: Vec<(&(Ulid, Ulid), &Option<()>)>| -> Vec<String> {
        rows.iter()
            .map(|((x, y), _)| format!("({}, {})", x.sql(), y.sql()))
            .collect()
    };
    delete_in(sql, table, &format!("({a}, {b})"), &text(gone));
    insert_new(sql, &format!("{table} ({a}, {b})"), &text(made));
}

fn delete_in(sql: &mut String, table: &str, key: &str, keys: &[String]) {
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let _ = writeln!(
            sql,
            "DELETE FROM {table} WHERE {key} IN ({});",
            chunk.join(", ")
        );
    }
}

fn insert_new(sql: &mut String, table_columns: &str, rows: &[String]) {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let _ = writeln!(
            sql,
            "INSERT INTO {table_columns} VALUES {} ON CONFLICT DO NOTHING;",
            chunk.join(", ")
        );
    }
}

/// Bytes as a bytea expression.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2 + 20);
    s.push_str("decode('");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s.push_str("', 'hex')");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_pending_sends_nothing() {
        assert_eq!(Pending::default().take_sql(), "");
    }

    /// Whatever a value holds, the statement text holds only hex digits for it.
    #[test]
    fn values_reach_the_sql_only_as_hex() {
        let mut p = Pending::default();
        let evil = "x'); DROP TABLE tracker_items; --\\'\u{0}";
        p.by_label.insert((evil.to_string(), 1), Some(Ulid(7)));
        p.idempotency
            .insert(evil.to_string(), Some(evil.as_bytes().to_vec()));
        p.meta.insert("last_num".into(), 3);
        p.row(1);
        let sql = p.take_sql();
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(!sql.contains('\\'), "{sql}");
        assert!(sql.contains(
            &"DROP"
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        assert!(p.is_empty());
    }

    #[test]
    fn a_row_written_then_deleted_is_only_deleted() {
        let mut p = Pending::default();
        p.items.insert(Ulid(1), Some(vec![1]));
        p.items.insert(Ulid(1), None);
        p.row(1);
        p.row(0);
        let sql = p.take_sql();
        assert!(
            sql.starts_with("DELETE FROM tracker_items WHERE id IN ("),
            "{sql}"
        );
        assert!(!sql.contains("INSERT"), "{sql}");
    }
}
