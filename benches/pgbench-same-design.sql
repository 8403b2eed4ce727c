-- The tracker's write design in raw SQL, for pgbench: every transaction is one `claim --next`
-- or one `done --token` (each client alternates, starting with a claim). Each first locks the one
-- counter row, as every tracker write first locks tracker_meta['last_seq'] (the serial section
-- that keeps the log gapless), then takes the next number from it, updates the item and appends
-- one row to the log. Needs `-D phase=0` and the tables of benches/pgbench-init.sql with more
-- open items than claims the run makes (benches/peer-pgbench.sh sees to both).
\set phase 1 - :phase
\if :phase = 1
BEGIN;
SELECT value FROM pgb_meta WHERE key = 'last_seq' FOR UPDATE;
UPDATE pgb_meta SET value = value + 1 WHERE key = 'last_seq' RETURNING value AS seq \gset
UPDATE pgb_items SET holder = :client_id, token = :seq, version = version + 1
    WHERE num = (SELECT num FROM pgb_items WHERE status = 0 AND holder IS NULL
                 ORDER BY priority, num LIMIT 1)
    RETURNING num, token \gset
INSERT INTO pgb_log VALUES (:seq, :num, 'claim', :client_id);
END;
\else
BEGIN;
SELECT value FROM pgb_meta WHERE key = 'last_seq' FOR UPDATE;
UPDATE pgb_items SET status = 1, holder = NULL, version = version + 1
    WHERE num = :num AND token = :token AND holder = :client_id;
UPDATE pgb_meta SET value = value + 1 WHERE key = 'last_seq' RETURNING value AS seq \gset
INSERT INTO pgb_log VALUES (:seq, :num, 'done', :client_id);
END;
\endif
