//! The storage seam, method by method, in the style of TaskChampion's storage tests: every
//! `ReadTxn`/`WriteTxn` method called directly, rollback after an error, and `clear_derived`
//! followed by a rebuild. Expanded for every backend by `conformance!` in `conformance.rs`.

use ulid::Ulid;

use crate::error::Error;
use crate::model::{Change, Item, Lease, Op, OpKind, Status};
use crate::store::{Counter, IdempotencyRecord, Setting, Storage};

pub(crate) fn item(
    n: u64,
    status: Status,
    priority: u8,
    labels: &[&str],
    blocked_by: &[Ulid],
) -> Item {
    Item {
        id: Ulid::from_parts(1_700_000_000_000 + n, u128::from(n)),
        num: n,
        title: format!("item {n}"),
        body: String::new(),
        status,
        priority,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        blocked_by: blocked_by.to_vec(),
        version: 1,
        created_at: 1,
        updated_at: 1,
        item_type: crate::model::ItemType::Task,
        parent: None,
        close_reason: None,
    }
}

fn lease(token: u64) -> Lease {
    Lease {
        holder: "ana".into(),
        token,
        acquired_at: 1,
        renewed_at: 1,
        expires_at: 2,
        ttl_ms: 1,
        host: "h".into(),
        pid: None,
        pid_start: None,
        boot_id: None,
        deadline_mono_ms: None,
        pgid: None,
        pid_ns: None,
    }
}

pub(crate) fn op(seq: u64, item: &Item) -> Op {
    Op {
        seq,
        at: 1,
        actor: "ana".into(),
        kind: OpKind::New,
        item: item.id,
        version_before: 0,
        version_after: 1,
        changes: vec![Change::Created { item: item.clone() }],
    }
}

fn record(item: Ulid) -> IdempotencyRecord {
    IdempotencyRecord {
        fingerprint: String::new(),
        item,
        at: 0,
        actor: String::new(),
        item_after: None,
        lease_after: None,
        created: Vec::new(),
    }
}

fn collect<T>(
    visit: impl FnOnce(&mut dyn FnMut(T) -> crate::Result<bool>) -> crate::Result<()>,
) -> Vec<T> {
    let mut out = Vec::new();
    visit(&mut |x| {
        out.push(x);
        Ok(true)
    })
    .unwrap();
    out
}

pub(super) fn format_counters_and_settings_round_trip<S: Storage>(s: S) {
    s.read(|t| {
        assert_eq!(t.format_version()?, Some(crate::store::FORMAT_VERSION));
        for c in [
            Counter::LastNum,
            Counter::LastSeq,
            Counter::LastToken,
            Counter::TokenFloor,
        ] {
            assert_eq!(t.counter(c)?, 0, "{c:?} starts at 0");
        }
        assert_eq!(t.setting(Setting::DefaultTtlMs)?, None);
        Ok(())
    })
    .unwrap();
    s.write(|t| {
        t.set_counter(Counter::LastNum, 7)?;
        t.set_counter(Counter::TokenFloor, u64::MAX)?;
        t.set_setting(Setting::DefaultTtlMs, 60_000)
    })
    .unwrap();
    s.read(|t| {
        assert_eq!(t.counter(Counter::LastNum)?, 7);
        assert_eq!(t.counter(Counter::TokenFloor)?, u64::MAX);
        assert_eq!(t.counter(Counter::LastSeq)?, 0, "counters are independent");
        assert_eq!(t.setting(Setting::DefaultTtlMs)?, Some(60_000));
        Ok(())
    })
    .unwrap();
}

pub(super) fn put_item_keeps_every_index_in_step<S: Storage>(s: S) {
    let a = item(1, Status::Open, 2, &["db", "ui"], &[]);
    let b = item(2, Status::Open, 0, &["db"], &[a.id]);
    s.write(|t| {
        t.put_item(None, &a, true)?;
        t.put_item(None, &b, false)
    })
    .unwrap();
    s.read(|t| {
        assert_eq!(t.item(a.id)?, Some(a.clone()));
        assert_eq!(t.item(Ulid::nil())?, None);
        assert_eq!(t.id_by_num(2)?, Some(b.id));
        assert_eq!(t.id_by_num(3)?, None);
        assert_eq!(t.item_count()?, 2);
        assert_eq!(t.ids_between(Ulid::nil(), Ulid(u128::MAX), 1)?, vec![a.id]);
        assert_eq!(collect(|f| t.visit_nums(f)), vec![(1, a.id), (2, b.id)]);
        assert_eq!(
            collect(|f| t.visit_status_index(f)),
            vec![(Status::Open, 1, a.id), (Status::Open, 2, b.id)]
        );
        assert_eq!(
            collect(|f| t.visit_label_index(f)),
            vec![
                ("db".into(), 1, a.id),
                ("db".into(), 2, b.id),
                ("ui".into(), 1, a.id)
            ]
        );
        assert_eq!(collect(|f| t.visit_label("ui", f)), vec![a.id]);
        assert_eq!(collect(|f| t.visit_ready_index(f)), vec![(2, 1, a.id)]);
        assert_eq!(collect(|f| t.visit_blocks(f)), vec![(a.id, b.id)]);
        assert_eq!(t.dependents(a.id)?, vec![b.id]);
        assert_eq!(t.counter(Counter::Items(Status::Open))?, 2);
        assert_eq!(t.ready_count()?, 1);
        assert_eq!(collect(|f| t.visit_items(f)), vec![a.clone(), b.clone()]);
        assert_eq!(collect(|f| t.visit_items_by_id(f)).len(), 2);
        Ok(())
    })
    .unwrap();
    // Every indexed field changes at once: the old entries go, the new ones come.
    let mut b2 = b.clone();
    b2.num = 9;
    b2.status = Status::Done;
    b2.priority = 4;
    b2.labels = vec!["ops".into()];
    b2.blocked_by = vec![];
    s.write(|t| t.put_item(Some(&b), &b2, true)).unwrap();
    s.read(|t| {
        assert_eq!(t.id_by_num(2)?, None);
        assert_eq!(t.id_by_num(9)?, Some(b.id));
        assert_eq!(collect(|f| t.visit_status(Status::Done, f)), vec![b.id]);
        assert_eq!(collect(|f| t.visit_status(Status::Open, f)), vec![a.id]);
        assert_eq!(collect(|f| t.visit_label("db", f)), vec![a.id]);
        assert_eq!(collect(|f| t.visit_label("ops", f)), vec![b.id]);
        assert_eq!(
            collect(|f| t.visit_ready(f)),
            vec![a.id, b.id],
            "priority, then number"
        );
        assert!(t.dependents(a.id)?.is_empty());
        assert_eq!(t.counter(Counter::Items(Status::Open))?, 1);
        assert_eq!(t.counter(Counter::Items(Status::Done))?, 1);
        assert_eq!(t.ready_count()?, 2);
        Ok(())
    })
    .unwrap();
    s.write(|t| t.clear_derived()).unwrap();
    s.read(|t| {
        for st in Status::ALL {
            assert_eq!(t.counter(Counter::Items(st))?, 0, "{st:?}");
        }
        assert_eq!(t.ready_count()?, 0);
        Ok(())
    })
    .unwrap();
}

pub(super) fn put_item_keeps_the_parent_index_in_step<S: Storage>(s: S) {
    let p = item(1, Status::Open, 2, &[], &[]);
    let q = item(2, Status::Open, 2, &[], &[]);
    let mut c = item(3, Status::Open, 2, &[], &[]);
    c.parent = Some(p.id);
    let mut d = item(4, Status::Open, 2, &[], &[]);
    d.parent = Some(p.id);
    s.write(|t| {
        for i in [&p, &q, &c, &d] {
            t.put_item(None, i, true)?;
        }
        // Read back inside the write: what a transaction wrote, it reads.
        assert_eq!(t.children(p.id)?, vec![c.id, d.id]);
        Ok(())
    })
    .unwrap();
    s.read(|t| {
        assert_eq!(t.children(p.id)?, vec![c.id, d.id]);
        assert!(t.children(q.id)?.is_empty());
        assert_eq!(
            collect(|f| t.visit_children(f)),
            vec![(p.id, c.id), (p.id, d.id)]
        );
        Ok(())
    })
    .unwrap();
    // Moved to another parent, then to none: the old entries go.
    let mut c2 = c.clone();
    c2.parent = Some(q.id);
    let mut d2 = d.clone();
    d2.parent = None;
    s.write(|t| {
        assert_eq!(t.children(p.id)?, vec![c.id, d.id]);
        t.put_item(Some(&c), &c2, true)?;
        t.put_item(Some(&d), &d2, true)?;
        assert_eq!(t.children(q.id)?, vec![c.id]);
        assert!(t.children(p.id)?.is_empty());
        Ok(())
    })
    .unwrap();
    s.read(|t| {
        assert!(t.children(p.id)?.is_empty());
        assert_eq!(t.children(q.id)?, vec![c.id]);
        assert_eq!(collect(|f| t.visit_children(f)), vec![(q.id, c.id)]);
        Ok(())
    })
    .unwrap();
    s.write(|t| t.clear_derived()).unwrap();
    s.read(|t| {
        assert!(collect(|f| t.visit_children(f)).is_empty());
        Ok(())
    })
    .unwrap();
}

pub(super) fn visits_stop_when_told<S: Storage>(s: S) {
    s.write(|t| {
        for n in 1..=3 {
            let i = item(n, Status::Open, 2, &["x"], &[]);
            t.put_item(None, &i, true)?;
            t.append_op(&op(n, &i))?;
        }
        Ok(())
    })
    .unwrap();
    s.read(|t| {
        let mut n = 0;
        let mut once = |()| {
            n += 1;
            Ok(false)
        };
        t.visit_ready(&mut |_| once(()))?;
        t.visit_label("x", &mut |_| once(()))?;
        t.visit_status(Status::Open, &mut |_| once(()))?;
        t.visit_nums(&mut |_| once(()))?;
        t.visit_ops(1, &mut |_| once(()))?;
        t.visit_item_ops(&mut |_| once(()))?;
        t.visit_items(&mut |_| once(()))?;
        assert_eq!(n, 7, "each visit stopped after one");
        Ok(())
    })
    .unwrap();
}

pub(super) fn leases_put_replace_and_remove<S: Storage>(s: S) {
    let a = item(1, Status::Open, 2, &[], &[]);
    s.write(|t| {
        t.put_lease(a.id, &lease(1))?;
        t.put_lease(a.id, &lease(2))
    })
    .unwrap();
    s.read(|t| {
        assert_eq!(t.lease(a.id)?, Some(lease(2)), "at most one lease per item");
        assert_eq!(t.leases()?, vec![(a.id, lease(2))]);
        Ok(())
    })
    .unwrap();
    s.write(|t| t.remove_lease(a.id)).unwrap();
    s.read(|t| {
        assert_eq!(t.lease(a.id)?, None);
        assert!(t.leases()?.is_empty());
        Ok(())
    })
    .unwrap();
}

pub(super) fn ops_append_in_order_and_index_by_item<S: Storage>(s: S) {
    let a = item(1, Status::Open, 2, &[], &[]);
    let b = item(2, Status::Open, 2, &[], &[]);
    s.write(|t| {
        t.append_op(&op(1, &a))?;
        t.append_op(&op(2, &b))?;
        t.append_op(&op(3, &a))
    })
    .unwrap();
    s.read(|t| {
        assert_eq!(t.op(2)?, Some(op(2, &b)));
        assert_eq!(t.op(4)?, None);
        let seqs: Vec<u64> = collect(|f| t.visit_ops(2, &mut |o: Op| f(o.seq)));
        assert_eq!(seqs, vec![2, 3]);
        assert_eq!(t.op_seqs_of(a.id)?, vec![1, 3]);
        assert_eq!(t.op_seqs_of(b.id)?, vec![2]);
        assert_eq!(
            collect(|f| t.visit_item_ops(f)).len(),
            3,
            "append_op indexes every op"
        );
        Ok(())
    })
    .unwrap();
}

pub(super) fn idempotency_records_put_get_visit_remove<S: Storage>(s: S) {
    let rec = IdempotencyRecord {
        fingerprint: "{\"command\":\"new\"}".into(),
        item: Ulid::from_parts(1, 1),
        at: 5,
        actor: "ana".into(),
        item_after: Some(item(1, Status::Open, 2, &[], &[])),
        lease_after: Some(lease(3)),
        created: vec![crate::store::PlannedItem {
            key: "k1".into(),
            num: 1,
            id: Ulid::from_parts(1, 1),
        }],
    };
    s.write(|t| t.put_idempotency("k", &rec)).unwrap();
    s.read(|t| {
        assert_eq!(t.idempotency("k")?, Some(rec.clone()));
        assert_eq!(t.idempotency("other")?, None);
        assert_eq!(
            collect(|f| t.visit_idempotency(f)),
            vec![("k".into(), rec.clone())]
        );
        Ok(())
    })
    .unwrap();
    s.write(|t| t.remove_idempotency("k")).unwrap();
    s.read(|t| {
        assert_eq!(t.idempotency("k")?, None);
        Ok(())
    })
    .unwrap();
}

pub(super) fn a_failed_write_changes_nothing<S: Storage>(s: S) {
    let a = item(1, Status::Open, 2, &["l"], &[]);
    let result: crate::Result<()> = s.write(|t| {
        t.put_item(None, &a, true)?;
        t.put_lease(a.id, &lease(1))?;
        t.append_op(&op(1, &a))?;
        t.set_counter(Counter::LastSeq, 1)?;
        t.put_idempotency("k", &record(a.id))?;
        Err(Error::Invalid("refused".into()))
    });
    assert!(matches!(result, Err(Error::Invalid(_))));
    s.read(|t| {
        assert_eq!(t.item_count()?, 0);
        assert_eq!(t.lease(a.id)?, None);
        assert_eq!(t.op(1)?, None);
        assert_eq!(t.counter(Counter::LastSeq)?, 0);
        assert_eq!(t.idempotency("k")?, None);
        assert!(collect(|f| t.visit_label_index(f)).is_empty());
        assert!(collect(|f| t.visit_item_ops(f)).is_empty());
        Ok(())
    })
    .unwrap();
}

pub(super) fn a_read_sees_one_committed_state<S: Storage>(s: S) {
    let a = item(1, Status::Open, 2, &[], &[]);
    s.write(|t| t.put_item(None, &a, true)).unwrap();
    // Inside a write, the write's own changes are visible to its reads.
    s.write(|t| {
        let mut b = a.clone();
        b.title = "changed".into();
        t.put_item(Some(&a), &b, true)?;
        assert_eq!(t.item(a.id)?.unwrap().title, "changed");
        Ok(())
    })
    .unwrap();
    s.read(|t| {
        assert_eq!(t.item(a.id)?.unwrap().title, "changed");
        Ok(())
    })
    .unwrap();
}

pub(super) fn clear_derived_empties_the_tables_and_index_op_rebuilds<S: Storage>(s: S) {
    let a = item(1, Status::Open, 2, &["l"], &[]);
    let b = item(2, Status::Open, 2, &[], &[a.id]);
    let rec = record(a.id);
    s.write(|t| {
        t.put_item(None, &a, true)?;
        t.put_item(None, &b, false)?;
        t.put_lease(a.id, &lease(1))?;
        t.append_op(&op(1, &a))?;
        t.append_op(&op(2, &b))?;
        t.set_counter(Counter::LastSeq, 2)?;
        t.put_idempotency("k", &rec)?;
        t.clear_derived()
    })
    .unwrap();
    s.read(|t| {
        assert_eq!(t.item_count()?, 0);
        assert!(t.leases()?.is_empty());
        assert!(collect(|f| t.visit_nums(f)).is_empty());
        assert!(collect(|f| t.visit_status_index(f)).is_empty());
        assert!(collect(|f| t.visit_label_index(f)).is_empty());
        assert!(collect(|f| t.visit_ready_index(f)).is_empty());
        assert!(collect(|f| t.visit_blocks(f)).is_empty());
        assert!(collect(|f| t.visit_item_ops(f)).is_empty());
        // The log, the counters and the keys are data, not derived: they stay.
        assert_eq!(t.op(2)?.map(|o| o.seq), Some(2));
        assert_eq!(t.counter(Counter::LastSeq)?, 2);
        assert_eq!(t.idempotency("k")?, Some(rec.clone()));
        Ok(())
    })
    .unwrap();
    s.write(|t| {
        t.index_op(a.id, 1)?;
        t.index_op(b.id, 2)
    })
    .unwrap();
    s.read(|t| {
        assert_eq!(t.op_seqs_of(a.id)?, vec![1]);
        assert_eq!(t.op_seqs_of(b.id)?, vec![2]);
        Ok(())
    })
    .unwrap();
}
