//! Stored values (MessagePack) from arbitrary bytes: decode or fail, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rmp_serde::from_slice::<tracker::Item>(data);
    let _ = rmp_serde::from_slice::<tracker::Lease>(data);
    let _ = rmp_serde::from_slice::<tracker::Op>(data);
});
