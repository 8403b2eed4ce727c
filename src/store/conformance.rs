//! One suite that every storage backend must pass, expanded for each by `conformance!`.
//! The tests drive the public `Tracker` API, so they check the backend through what users see.

use std::sync::Arc;
use std::time::Duration;

#[allow(clippy::wildcard_imports)]
use super::conformance_methods::*;
use crate::clock::FakeClock;
use crate::error::Error;
use crate::host::Actor;
use crate::model::{NewItem, Patch, Status};
use crate::store::Storage;
use crate::tracker::{ClaimOptions, Guard, ItemRef, ListQuery, Tracker};

pub(super) fn tracker<S: Storage>(store: S, clock: &FakeClock, who: &str) -> Tracker<S> {
    Tracker::with_store(store)
        .with_clock(Arc::new(clock.clone()))
        .with_actor(Actor::named(who))
}

fn new(t: &Tracker<impl Storage>, title: &str, priority: u8) -> u64 {
    t.new_item(
        NewItem {
            title: title.into(),
            priority: Some(priority),
            ..Default::default()
        },
        &[],
        &Guard::default(),
    )
    .unwrap()
    .item
    .num
}

pub(super) fn numbers_are_sequential_and_versions_start_at_one<S: Storage>(s: S) {
    let clock = FakeClock::new(1_700_000_000_000, "b");
    let t = tracker(s, &clock, "ana");
    for i in 1..=5 {
        assert_eq!(new(&t, &format!("item {i}"), 2), i);
    }
    let all = t.list(&ListQuery::default()).unwrap();
    assert_eq!(
        all.iter().map(|v| v.item.num).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(all.iter().all(|v| v.item.version == 1));
    assert_eq!(t.verify().unwrap().problems, Vec::<String>::new());
}

pub(super) fn ready_queue_orders_by_priority_then_age_and_skips_claimed_and_blocked<S: Storage>(
    s: S,
) {
    let clock = FakeClock::new(1_700_000_000_000, "b");
    let t = tracker(s, &clock, "ana");
    let low = new(&t, "low", 3);
    let high = new(&t, "high", 0);
    let mid = new(&t, "mid", 2);
    let blocked = new(&t, "blocked", 0);
    t.dep_add(
        &ItemRef::Num(blocked),
        &ItemRef::Num(low),
        &Guard::default(),
    )
    .unwrap();
    t.claim(&ItemRef::Num(high), &ClaimOptions::default())
        .unwrap();
    let ready: Vec<u64> = t
        .list(&ListQuery {
            ready: true,
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|v| v.item.num)
        .collect();
    assert_eq!(ready, vec![mid, low]);
    // Finishing the blocker releases the blocked item into the queue.
    t.done(&ItemRef::Num(low), &Guard::default(), false)
        .unwrap();
    let next = t.claim_next(None, &ClaimOptions::default()).unwrap();
    assert_eq!(next.item.num, blocked);
    assert_eq!(t.verify().unwrap().problems, Vec::<String>::new());
}

pub(super) fn compare_and_swap_refuses_stale_versions<S: Storage>(s: S) {
    let clock = FakeClock::new(1_700_000_000_000, "b");
    let t = tracker(s, &clock, "ana");
    let n = ItemRef::Num(new(&t, "x", 2));
    let patch = |title: &str| Patch {
        title: Some(title.into()),
        ..Default::default()
    };
    let at = |v| Guard {
        if_version: Some(v),
        ..Default::default()
    };
    assert_eq!(t.update(&n, patch("y"), &at(1)).unwrap().item.version, 2);
    let err = t.update(&n, patch("z"), &at(1)).unwrap_err();
    match err {
        Error::Conflict { current, .. } => assert_eq!(current.unwrap().item.title, "y"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(t.get(&n).unwrap().item.version, 2);
}

pub(super) fn leases_exclude_other_holders_until_they_expire<S: Storage>(s: S) {
    let clock = FakeClock::new(1_700_000_000_000, "b");
    let ana = tracker(s, &clock, "ana");
    let n = ItemRef::Num(new(&ana, "x", 2));
    let opts = ClaimOptions {
        ttl: Duration::from_secs(60),
        ..Default::default()
    };
    let first = ana.claim(&n, &opts).unwrap().claim.unwrap();
    let bob = ana.with_actor(Actor::named("bob"));
    assert!(matches!(bob.claim(&n, &opts), Err(Error::Conflict { .. })));
    clock.advance(61_000);
    let second = bob.claim(&n, &opts).unwrap().claim.unwrap();
    assert_eq!(second.holder, "bob");
    assert!(second.token > first.token);
    let stale = Guard {
        token: Some(first.token),
        ..Default::default()
    };
    assert!(matches!(
        bob.done(&n, &stale, false),
        Err(Error::Conflict { .. })
    ));
    let fresh = Guard {
        token: Some(second.token),
        ..Default::default()
    };
    assert_eq!(
        bob.done(&n, &fresh, false).unwrap().item.status,
        Status::Done
    );
    assert_eq!(bob.verify().unwrap().problems, Vec::<String>::new());
}

pub(super) fn idempotency_keys_return_the_first_result<S: Storage>(s: S) {
    let clock = FakeClock::new(1_700_000_000_000, "b");
    let t = tracker(s, &clock, "ana");
    let g = Guard {
        idempotency_key: Some("k1".into()),
        ..Default::default()
    };
    let item = || NewItem {
        title: "once".into(),
        ..Default::default()
    };
    let a = t.new_item(item(), &[], &g).unwrap();
    let b = t.new_item(item(), &[], &g).unwrap();
    assert_eq!(a.item.id, b.item.id);
    assert_eq!(t.last_seq().unwrap(), 1);
    let other = NewItem {
        title: "different".into(),
        ..Default::default()
    };
    assert!(matches!(
        t.new_item(other, &[], &g),
        Err(Error::Conflict { .. })
    ));
}

pub(super) fn rebuild_restores_what_verify_checks<S: Storage>(s: S) {
    let clock = FakeClock::new(1_700_000_000_000, "b");
    let t = tracker(s, &clock, "ana");
    let a = new(&t, "a", 1);
    let b = new(&t, "b", 1);
    t.dep_add(&ItemRef::Num(b), &ItemRef::Num(a), &Guard::default())
        .unwrap();
    t.claim(&ItemRef::Num(a), &ClaimOptions::default()).unwrap();
    let before = t.list(&ListQuery::default()).unwrap();
    let history = t.log(Some(&ItemRef::Num(a)), 0, None).unwrap();
    assert_eq!(history.len(), 2);
    let report = t.rebuild().unwrap();
    assert_eq!(report.items, 2);
    assert_eq!(t.list(&ListQuery::default()).unwrap(), before);
    assert_eq!(t.log(Some(&ItemRef::Num(a)), 0, None).unwrap(), history);
    assert_eq!(t.verify().unwrap().problems, Vec::<String>::new());
}

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            conformance!(@tests $make;
                format_counters_and_settings_round_trip,
                put_item_keeps_every_index_in_step,
                put_item_keeps_the_parent_index_in_step,
                visits_stop_when_told,
                leases_put_replace_and_remove,
                ops_append_in_order_and_index_by_item,
                idempotency_records_put_get_visit_remove,
                a_failed_write_changes_nothing,
                a_read_sees_one_committed_state,
                clear_derived_empties_the_tables_and_index_op_rebuilds,
                numbers_are_sequential_and_versions_start_at_one,
                ready_queue_orders_by_priority_then_age_and_skips_claimed_and_blocked,
                compare_and_swap_refuses_stale_versions,
                leases_exclude_other_holders_until_they_expire,
                idempotency_keys_return_the_first_result,
                rebuild_restores_what_verify_checks);
        }
    };
    (@tests $make:expr; $($name:ident),*) => {$(
        #[test]
        fn $name() {
            let dir = tempfile::tempdir().unwrap();
            let _ = &dir;
            #[allow(clippy::redundant_closure_call)]
            if let Some(store) = ($make)(dir.path()) {
                super::$name(store);
            }
        }
    )*};
}

conformance!(mem, |_p: &std::path::Path| Some(
    crate::store::mem::MemStore::new()
));
conformance!(redb, |p: &std::path::Path| Some(
    crate::store::redb::temp_store(p)
));
conformance!(pg, |_p: &std::path::Path| crate::store::pg::test_store());
