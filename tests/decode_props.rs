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
        if t.import(&text).is_err() {
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
        match dst.import(&text) {
            Ok(r) => prop_assert!(r.created <= 3),
            Err(_) => prop_assert_eq!(dst.last_seq().unwrap(), 0),
        }
    }
}

/// Values written by this version decode back to themselves, so the format is stable.
#[test]
fn values_round_trip_through_messagepack() {
    let t = Tracker::with_store(MemStore::new());
    let v = t
        .new_item(
            tracker::NewItem {
                title: "round trip".into(),
                labels: vec!["a".into()],
                ..Default::default()
            },
            &[],
            &tracker::Guard::default(),
        )
        .unwrap();
    let bytes = rmp_serde::to_vec_named(&v.item).unwrap();
    assert_eq!(rmp_serde::from_slice::<Item>(&bytes).unwrap(), v.item);
}
