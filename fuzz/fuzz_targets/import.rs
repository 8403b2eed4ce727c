//! `import` of arbitrary text: merge or refuse, never panic, and a refusal writes nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tracker::store::mem::MemStore;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let t = tracker::Tracker::with_store(MemStore::new());
    if t.import(&mut text.as_bytes(), tracker::import::Prefer::Neither).is_err() {
        assert_eq!(t.last_seq().unwrap(), 0, "a refused import wrote ops");
    }
});
