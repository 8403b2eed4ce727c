//! Hostile bytes never panic the decoders: stored values (MessagePack) and import files (JSON).
//! The cargo-fuzz targets in fuzz/ explore the same entry points for longer, outside CI.

use proptest::prelude::*;
use tracker::store::mem::MemStore;
use tracker::{Item, Lease, Op, Tracker};

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn stored_values_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = rmp_serde::from_slice::<Item>(&bytes);
        let _ = rmp_serde::from_slice::<Lease>(&bytes);
        let _ = rmp_serde::from_slice::<Op>(&bytes);
    }

    #[test]
    fn import_of_arbitrary_text_fails_cleanly_and_writes_nothing(text in ".{0,300}") {
        let t = Tracker::with_store(MemStore::new());
        if t.import(&mut text.as_bytes(), tracker::import::Prefer::Neither).is_err() {
            prop_assert_eq!(t.last_seq().unwrap(), 0);
        }
    }

    #[test]
    fn import_of_mangled_exports_fails_cleanly(cut in 0usize..2000, flip in 0usize..2000, byte in any::<u8>()) {
        let src = Tracker::with_store(MemStore::new());
        for i in 0..3 {
            let new = tracker::NewItem { title: format!("item {i}"), ..Default::default() };
            src.new_item(new, &[], &tracker::Guard::default()).unwrap();
        }
        let mut out = Vec::new();
        src.export(&mut out, false, &mut |_, _| {}).unwrap();
        let mut bytes = out[..cut.min(out.len())].to_vec();
        if !bytes.is_empty() {
            let i = flip % bytes.len();
            bytes[i] = byte;
        }
        let text = String::from_utf8_lossy(&bytes);
        let dst = Tracker::with_store(MemStore::new());
        match dst.import(&mut text.as_bytes(), tracker::import::Prefer::Neither) {
            Ok(r) => prop_assert!(r.created <= 3),
            Err(_) => prop_assert_eq!(dst.last_seq().unwrap(), 0),
        }
    }
}

/// Values written by this version (positional MessagePack, as the store writes them) decode back
/// to themselves, for every kind of change an op can carry.
#[test]
fn values_round_trip_through_messagepack() {
    use tracker::{ClaimOptions, Guard, ItemRef, Patch};
    let t = Tracker::with_store(MemStore::new()).with_actor(tracker::Actor::named("ana"));
    let new = |title: &str| tracker::NewItem {
        title: title.into(),
        labels: vec!["a".into()],
        ..Default::default()
    };
    let a = t.new_item(new("a"), &[], &Guard::default()).unwrap();
    t.new_item(new("b"), &[ItemRef::Num(1)], &Guard::default())
        .unwrap();
    let patch = Patch {
        title: Some("A".into()),
        body: Some("x".into()),
        priority: Some(0),
        add_labels: vec!["z".into()],
        remove_labels: vec!["a".into()],
        ..Default::default()
    };
    t.update(&ItemRef::Num(1), patch, &Guard::default())
        .unwrap();
    t.claim(&ItemRef::Num(1), &ClaimOptions::default()).unwrap();
    t.renew(&ItemRef::Num(1), None, &Guard::default()).unwrap();
    t.dep_remove(&ItemRef::Num(2), &ItemRef::Num(1), &Guard::default())
        .unwrap();
    t.done(&ItemRef::Num(1), &Guard::default(), false).unwrap();
    let bytes = rmp_serde::to_vec(&a.item).unwrap();
    assert_eq!(rmp_serde::from_slice::<Item>(&bytes).unwrap(), a.item);
    let ops = t.log(None, 1, None).unwrap();
    assert_eq!(ops.len(), 7);
    for (op, _) in ops {
        let bytes = rmp_serde::to_vec(&op).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<Op>(&bytes).unwrap(),
            op,
            "{:?}",
            op.kind
        );
    }
}

/// The rule that lets the format grow: a value written before a field was appended (a shorter
/// array) still decodes, the new field taking its default.
#[test]
fn a_value_missing_trailing_fields_still_decodes() {
    #[derive(serde::Serialize)]
    struct OldLease<'a>(&'a str, u64, i64, i64, i64, u64, &'a str);
    let bytes = rmp_serde::to_vec(&OldLease("ana", 7, 1, 2, 3, 60_000, "box")).unwrap();
    let lease: Lease = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(
        (lease.holder.as_str(), lease.token, lease.pid, lease.boot_id),
        ("ana", 7, None, None)
    );
}
