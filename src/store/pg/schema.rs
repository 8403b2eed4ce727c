//! The PostgreSQL schema: one table for each table of the redb file (data-format.md), with the
//! same keys, so the two backends behave alike method by method and the same MessagePack values
//! move between them unchanged.
//!
//! Unsigned 64-bit keys and counters are stored in `bigint` by reinterpreting their bits
//! (`as_sql`/`from_sql`): numbers, sequences and tokens stay far below 2^63 in practice, where
//! order is the same; a value above it round-trips exactly but would sort below zero.

/// The schema this binary reads and writes; `meta['format_version']` holds it.
pub const TABLES: &str = "
CREATE TABLE IF NOT EXISTS tracker_meta (key text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE IF NOT EXISTS tracker_items (id bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE IF NOT EXISTS tracker_nums (num bigint PRIMARY KEY, id bytea NOT NULL);
-- At most one lease per item, enforced by the key.
CREATE TABLE IF NOT EXISTS tracker_claims (id bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE IF NOT EXISTS tracker_ops (seq bigint PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE IF NOT EXISTS tracker_item_ops (id bytea NOT NULL, seq bigint NOT NULL, PRIMARY KEY (id, seq));
CREATE TABLE IF NOT EXISTS tracker_ready (priority smallint NOT NULL, num bigint NOT NULL, id bytea NOT NULL, PRIMARY KEY (priority, num));
CREATE TABLE IF NOT EXISTS tracker_by_status (code smallint NOT NULL, num bigint NOT NULL, id bytea NOT NULL, PRIMARY KEY (code, num));
CREATE TABLE IF NOT EXISTS tracker_by_label (label text NOT NULL, num bigint NOT NULL, id bytea NOT NULL, PRIMARY KEY (label, num));
CREATE TABLE IF NOT EXISTS tracker_blocks (blocker bytea NOT NULL, blocked bytea NOT NULL, PRIMARY KEY (blocker, blocked));
-- Format 2: the reverse of each item's parent.
CREATE TABLE IF NOT EXISTS tracker_children (parent bytea NOT NULL, child bytea NOT NULL, PRIMARY KEY (parent, child));
CREATE TABLE IF NOT EXISTS tracker_idempotency (key text PRIMARY KEY, value bytea NOT NULL);
";

/// The derived tables `clear_derived` empties (not the log, meta or idempotency keys).
pub const DERIVED: &str = "tracker_items, tracker_nums, tracker_claims, tracker_item_ops, \
    tracker_ready, tracker_by_status, tracker_by_label, tracker_blocks, tracker_children";

/// A u64 as the bits of a bigint.
#[allow(clippy::cast_possible_wrap)]
pub fn as_sql(v: u64) -> i64 {
    v as i64
}

/// The bits of a bigint as a u64.
#[allow(clippy::cast_sign_loss)]
pub fn from_sql(v: i64) -> u64 {
    v as u64
}
