//! Seeding for benchmarks: a JSON Lines export of `n` open items that `import` loads in one
//! transaction, far faster than `n` separate commands.

use std::io::Write;

/// Writes the export: distinct, time-ordered ULIDs; priority `i % 5`; label `l{i % 10}`.
pub fn write_seed(w: &mut impl Write, n: u64) -> std::io::Result<()> {
    const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    const AT: &str = "2026-11-23T00:00:00.000Z";
    writeln!(w, "{{\"format\":\"tracker-export\",\"format_version\":1,\"exported_at\":\"{AT}\",\"last_op_seq\":0,\"item_count\":{n}}}")?;
    for i in 1..=n {
        let mut v: u128 = (1_795_000_000_000u128 << 80) | i as u128;
        let mut id = [0u8; 26];
        for c in id.iter_mut().rev() {
            *c = CROCKFORD[(v & 31) as usize];
            v >>= 5;
        }
        let id = std::str::from_utf8(&id).unwrap();
        writeln!(w, "{{\"id\":\"{id}\",\"num\":{i},\"title\":\"item number {i} of the big backlog\",\"body\":\"\",\"status\":\"open\",\"priority\":{},\"labels\":[\"l{}\"],\"blocked_by\":[],\"version\":1,\"created_at\":\"{AT}\",\"updated_at\":\"{AT}\",\"claim\":null}}", i % 5, i % 10)?;
    }
    Ok(())
}
