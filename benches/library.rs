//! Library calls on a real redb file at several sizes: each iteration is a whole transaction,
//! committed durably, so these are the per-command costs without process start-up.
//!
//!     cargo bench --bench library                 # 1k and 100k items
//!     BENCH_FULL=1 cargo bench --bench library    # also 1M (seeding takes about a minute)

// criterion_group! defines a public function it gives no documentation.
#![allow(missing_docs)]

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tracker::{Access, Actor, ClaimOptions, Guard, ItemRef, ListQuery, NewItem, Tracker};

mod common;

/// An export of `n` open items, to seed a file in one transaction.
fn export_text(n: u64) -> String {
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap() * 300);
    common::write_seed(&mut out, n).unwrap();
    String::from_utf8(out).unwrap()
}

fn seeded(dir: &Path, n: u64) -> Tracker {
    let path = dir.join(format!("bench-{n}.redb"));
    drop(Tracker::init(&path, Duration::from_secs(10)).unwrap());
    let t = Tracker::open(&path, Access::ReadWrite, Duration::from_secs(10)).unwrap();
    t.import(
        &mut export_text(n).as_bytes(),
        tracker::import::Prefer::Neither,
    )
    .unwrap();
    t.with_actor(Actor::named("bench"))
}

fn library(c: &mut Criterion) {
    let mut sizes = vec![1_000u64, 100_000];
    if std::env::var_os("BENCH_FULL").is_some() {
        sizes.push(1_000_000);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("library");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for &n in &sizes {
        let t = seeded(dir.path(), n);
        let g0 = Guard::default();
        g.bench_with_input(BenchmarkId::new("new_item", n), &n, |b, _| {
            b.iter(|| {
                t.new_item(
                    NewItem {
                        title: "bench".into(),
                        ..Default::default()
                    },
                    &[],
                    &g0,
                )
                .unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("claim_next+done", n), &n, |b, _| {
            b.iter(|| {
                let v = t.claim_next(None, &ClaimOptions::default()).unwrap();
                let guard = Guard {
                    token: v.claim.map(|c| c.token),
                    ..Default::default()
                };
                t.done(&ItemRef::Num(v.item.num), &guard, false).unwrap()
            })
        });
        let mut k = 0u64;
        g.bench_with_input(BenchmarkId::new("get", n), &n, |b, _| {
            b.iter(|| {
                k = (k + 7919) % n + 1;
                t.get(&ItemRef::Num(k)).unwrap()
            })
        });
        let ready = ListQuery {
            ready: true,
            limit: Some(20),
            ..Default::default()
        };
        g.bench_with_input(BenchmarkId::new("list_ready_20", n), &n, |b, _| {
            b.iter(|| t.list(&ready).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, library);
criterion_main!(benches);
