//! `WriteTxn` on a PostgreSQL transaction: every change is recorded in `Pending` (sent with
//! COMMIT, in one round trip) and in `Known` (so the transaction reads its own writes).

use ulid::Ulid;

use super::schema;
use super::txn::PgTxn;
use crate::error::Result;
use crate::model::{Item, Lease, Op};
use crate::store::{encode_value as encode, Counter, IdempotencyRecord, Setting, WriteTxn};

impl WriteTxn for PgTxn<'_> {
    fn set_format_version(&mut self, version: u64) -> Result<()> {
        self.send_pending()?;
        self.with(|tx| tx.batch_execute(schema::TABLES))?;
        self.children_table.set(version >= 2);
        self.put_meta("format_version", version)
    }

    fn set_counter(&mut self, counter: Counter, value: u64) -> Result<()> {
        self.put_meta(counter.key(), value)
    }

    fn set_setting(&mut self, setting: Setting, value: u64) -> Result<()> {
        self.put_meta(setting.key(), value)
    }

    fn write_item(&mut self, old: Option<&Item>, new: &Item, ready: bool) -> Result<()> {
        let (id, num) = (new.id, new.num);
        let value = encode(new)?;
        self.known.get_mut().count_item(value.len());
        {
            let p = self.pending.get_mut();
            p.row(value.len());
            p.items.insert(id, Some(value));
            // An item written unchanged (its readiness settled again) moves no index but the
            // ready queue.
            let unchanged = old == Some(new);
            if let Some(o) = old.filter(|_| !unchanged) {
                p.nums.insert(o.num, None);
                p.by_status
                    .insert((i16::from(o.status.code()), o.num), None);
                p.ready.insert((i16::from(o.priority), o.num), None);
                for l in &o.labels {
                    p.by_label.insert((l.clone(), o.num), None);
                }
                for b in &o.blocked_by {
                    p.blocks.insert((*b, id), None);
                }
                if let Some(parent) = o.parent {
                    p.children.insert((parent, id), None);
                }
            }
            if unchanged {
                let slot = (i16::from(new.priority), num);
                p.ready.insert(slot, ready.then_some(id));
                p.row(0);
            } else {
                p.nums.insert(num, Some(id));
                p.by_status
                    .insert((i16::from(new.status.code()), num), Some(id));
                if ready {
                    p.ready.insert((i16::from(new.priority), num), Some(id));
                }
                for l in &new.labels {
                    p.by_label.insert((l.clone(), num), Some(id));
                }
                for b in &new.blocked_by {
                    p.blocks.insert((*b, id), Some(()));
                }
                if let Some(parent) = new.parent {
                    p.children.insert((parent, id), Some(()));
                }
                p.rows += 4 + new.labels.len() + new.blocked_by.len();
            }
        }
        let known = self.known.get_mut();
        if let Some(o) = old {
            if o.num != num {
                known.nums.insert(o.num, None);
            }
            for b in &o.blocked_by {
                known.set_blocks(*b, id, false);
            }
            if let Some(parent) = o.parent {
                known.set_child(parent, id, false);
            }
        }
        for b in &new.blocked_by {
            known.set_blocks(*b, id, true);
        }
        if let Some(parent) = new.parent {
            known.set_child(parent, id, true);
        }
        known.nums.insert(num, Some(id));
        known.items.insert(id, Some(new.clone()));
        if old.is_none() {
            // Leases are only ever made for items that exist.
            known.leases.entry(id).or_insert(None);
        }
        self.send_if_large()
    }

    fn put_lease(&mut self, id: Ulid, lease: &Lease) -> Result<()> {
        let value = encode(lease)?;
        let p = self.pending.get_mut();
        p.row(value.len());
        p.claims.insert(id, Some(value));
        self.known.get_mut().leases.insert(id, Some(lease.clone()));
        self.send_if_large()
    }

    fn remove_lease(&mut self, id: Ulid) -> Result<()> {
        let p = self.pending.get_mut();
        p.row(0);
        p.claims.insert(id, None);
        self.known.get_mut().leases.insert(id, None);
        self.send_if_large()
    }

    fn append_op(&mut self, op: &Op) -> Result<()> {
        let value = encode(op)?;
        let p = self.pending.get_mut();
        p.row(value.len());
        p.ops.insert(op.seq, value.clone());
        p.last_seq = Some(op.seq);
        self.last_op = Some((op.seq, value));
        self.known.get_mut().ops.insert(op.seq, Some(op.clone()));
        self.index_op(op.item, op.seq)
    }

    fn index_op(&mut self, item: Ulid, seq: u64) -> Result<()> {
        let p = self.pending.get_mut();
        p.row(0);
        p.item_ops.insert((item, seq));
        self.send_if_large()
    }

    fn put_idempotency(&mut self, key: &str, record: &IdempotencyRecord) -> Result<()> {
        let value = encode(record)?;
        let p = self.pending.get_mut();
        p.row(value.len());
        p.idempotency.insert(key.to_string(), Some(value));
        self.known
            .get_mut()
            .idempotency
            .insert(key.to_string(), Some(record.clone()));
        self.send_if_large()
    }

    fn remove_idempotency(&mut self, key: &str) -> Result<()> {
        let p = self.pending.get_mut();
        p.row(0);
        p.idempotency.insert(key.to_string(), None);
        self.known
            .get_mut()
            .idempotency
            .insert(key.to_string(), None);
        self.send_if_large()
    }

    fn clear_tables(&mut self) -> Result<()> {
        self.send_pending()?;
        self.with(|tx| {
            tx.batch_execute(&format!(
                "DELETE FROM {}",
                schema::DERIVED.replace(", ", "; DELETE FROM ")
            ))
        })?;
        self.known.get_mut().forget_derived();
        Ok(())
    }
}

impl PgTxn<'_> {
    fn put_meta(&mut self, key: &str, value: u64) -> Result<()> {
        let p = self.pending.get_mut();
        p.row(8);
        p.meta.insert(key.to_string(), value);
        self.known.get_mut().meta.insert(key.to_string(), value);
        self.send_if_large()
    }
}
