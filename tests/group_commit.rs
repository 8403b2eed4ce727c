//! Group commit (`RedbStore::share_commits`, which `tracker serve` turns on): writes from many
//! threads that share transactions and commits have the outcomes a serial run would give. Each
//! item is claimed by exactly one of eight racing threads (the others' conflicts fail their
//! batches, whose members then run again alone), every write that returned Ok is on file after
//! the handle is gone, and `verify` passes: one op per change, versions +1, the log gapless.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{json_lines, Env};
use tracker::{Access, Actor, ClaimOptions, Error, Guard, ItemRef, NewItem, RedbStore, Tracker};

#[test]
fn writers_that_share_commits_have_the_outcomes_of_a_serial_run() {
    let env = Env::new();
    let store = RedbStore::open(&env.db, Access::ReadWrite, Duration::from_secs(30)).unwrap();
    store.share_commits();
    let store = Arc::new(store);
    let per_thread = 25u64;
    let makers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                let t = Tracker::with_store(store).with_actor(Actor::named(format!("w{w}")));
                for i in 0..per_thread {
                    let new = NewItem {
                        title: format!("w{w} item {i}"),
                        ..NewItem::default()
                    };
                    t.new_item(new, &[], &Guard::default()).unwrap();
                }
            })
        })
        .collect();
    for m in makers {
        m.join().unwrap();
    }
    let total = 8 * per_thread;
    // Every thread tries every item, each from another starting point: one claim wins each.
    let racers: Vec<_> = (0..8u64)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                let t = Tracker::with_store(store).with_actor(Actor::named(format!("r{w}")));
                let mut won = Vec::new();
                for k in 0..total {
                    let num = (k + w * 31) % total + 1;
                    match t.claim(&ItemRef::Num(num), &ClaimOptions::default()) {
                        Ok(v) => won.push(v.item.num),
                        Err(Error::Conflict { .. }) => {}
                        Err(e) => panic!("claim #{num}: {e}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut won: Vec<u64> = racers.into_iter().flat_map(|r| r.join().unwrap()).collect();
    won.sort_unstable();
    assert_eq!(won, (1..=total).collect::<Vec<_>>(), "one winner per item");
    let report = Tracker::with_store(store.clone()).verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    drop(store);
    // Through the binary, after the handle is gone: every acknowledged write is on file.
    let log = json_lines(&env.run(&["--json", "log", "--limit", "100000"]).stdout);
    assert_eq!(
        log.len() as u64,
        2 * total,
        "one op per new and per winning claim"
    );
    let seqs: Vec<u64> = log.iter().map(|op| op["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=2 * total).collect::<Vec<_>>(), "gapless");
    assert_eq!(env.code(&["verify"]).0, 0);
}
