-- Tables for benches/pgbench-same-design.sql, in the connection's first search_path schema:
-- a queue of :items open items, one counter row and a log.
-- psql -v items=100000 -f benches/pgbench-init.sql URL (benches/peer-pgbench.sh does this).
SET client_min_messages = warning;
DROP TABLE IF EXISTS pgb_meta, pgb_items, pgb_log;
-- The counter every transaction locks first, as every tracker write locks tracker_meta['last_seq'].
CREATE TABLE pgb_meta (key text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO pgb_meta VALUES ('last_seq', 0);
-- status 0 open, 1 done; holder and token are the lease.
CREATE TABLE pgb_items (num bigint PRIMARY KEY, status smallint NOT NULL DEFAULT 0,
    priority smallint NOT NULL, holder int, token bigint, version bigint NOT NULL DEFAULT 1,
    title text NOT NULL);
-- What `claim --next` walks, as tracker_ready: open, unclaimed, by priority then number.
CREATE INDEX pgb_ready ON pgb_items (priority, num) WHERE status = 0 AND holder IS NULL;
-- The gapless log: one row per change, numbered by the counter.
CREATE TABLE pgb_log (seq bigint PRIMARY KEY, num bigint NOT NULL, kind text NOT NULL,
    holder int NOT NULL);
INSERT INTO pgb_items (num, priority, title)
    SELECT i, i % 5, 'item number ' || i || ' of the big backlog' FROM generate_series(1, :items) i;
VACUUM ANALYZE pgb_meta, pgb_items, pgb_log;
