//! Property tests over random sequences of library calls from several holders, with a fake clock
//! and simulated process deaths, on the redb file and on the in-memory store.
//!
//! After every step: at most one live lease per item, fencing tokens strictly increasing, a stale
//! token always refused, versions growing by exactly one, the ops log gapless with one op per
//! change, and a replay of the log equal to the tables (`verify`). At the end `rebuild` changes
//! nothing and is idempotent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tracker::import::Prefer;
use tracker::store::mem::MemStore;
use tracker::store::Storage;
use tracker::{
    Actor, ClaimOptions, Error, FakeClock, Guard, ItemRef, ItemView, ListQuery, NewItem, Patch,
    RedbStore, Status, Tracker,
};

const HOLDERS: [&str; 3] = ["ana", "bob", "cy"];
/// Every holder name is used by two processes: worker `w` is `HOLDERS[w % 3]` in process
/// `w / 3`. Two processes are two workers, whatever their names.
const WORKERS: usize = 2 * HOLDERS.len();

fn name_of(w: usize) -> &'static str {
    HOLDERS[w % HOLDERS.len()]
}

#[derive(Clone, Debug)]
enum TokenChoice {
    None,
    Current,
    Stale,
}

#[derive(Clone, Debug)]
enum Step {
    New {
        priority: u8,
    },
    Claim {
        item: usize,
        who: usize,
        ttl_s: u64,
        with_pid: bool,
    },
    ClaimNext {
        who: usize,
    },
    Force {
        item: usize,
        who: usize,
    },
    Steal {
        item: usize,
        who: usize,
    },
    Renew {
        item: usize,
        who: usize,
        token: TokenChoice,
    },
    Release {
        item: usize,
        who: usize,
        token: TokenChoice,
    },
    Done {
        item: usize,
        who: usize,
        token: TokenChoice,
    },
    Update {
        item: usize,
        who: usize,
        stale_version: bool,
    },
    DepAdd {
        item: usize,
        blocker: usize,
    },
    DepRm {
        item: usize,
        blocker: usize,
    },
    /// `update --status`, which ends a lease when it closes the item.
    SetStatus {
        item: usize,
        who: usize,
        status: Status,
        token: TokenChoice,
    },
    /// The same keyed claim twice: the repeat returns the first result and writes nothing.
    KeyedClaimTwice {
        item: usize,
        who: usize,
    },
    Rebuild,
    /// Export, then import into the same tracker (changes nothing) and into a fresh one
    /// (the same items, and `verify` passes there).
    ExportImport,
    Advance {
        ms: u64,
    },
    JumpWallClock {
        ms: i64,
    },
    KillPidHolders,
    /// A new item that is part of another (format 2).
    NewChild {
        parent: usize,
    },
    /// `update --parent` or `--no-parent`: refused when it would make a cycle.
    SetParent {
        item: usize,
        parent: Option<usize>,
    },
    /// A comment: an op that keeps the version.
    Comment {
        item: usize,
    },
}

fn token_choice() -> impl Strategy<Value = TokenChoice> {
    prop_oneof![
        Just(TokenChoice::None),
        Just(TokenChoice::Current),
        Just(TokenChoice::Stale)
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let i = 0..6usize;
    let w = 0..WORKERS;
    prop_oneof![
        3 => (0..5u8).prop_map(|priority| Step::New { priority }),
        3 => (i.clone(), w.clone(), 1..120u64, any::<bool>())
            .prop_map(|(item, who, ttl_s, with_pid)| Step::Claim { item, who, ttl_s, with_pid }),
        2 => w.clone().prop_map(|who| Step::ClaimNext { who }),
        1 => (i.clone(), w.clone()).prop_map(|(item, who)| Step::Force { item, who }),
        1 => (i.clone(), w.clone()).prop_map(|(item, who)| Step::Steal { item, who }),
        2 => (i.clone(), w.clone(), token_choice()).prop_map(|(item, who, token)| Step::Renew { item, who, token }),
        1 => (i.clone(), w.clone(), token_choice()).prop_map(|(item, who, token)| Step::Release { item, who, token }),
        2 => (i.clone(), w.clone(), token_choice()).prop_map(|(item, who, token)| Step::Done { item, who, token }),
        2 => (i.clone(), w.clone(), any::<bool>()).prop_map(|(item, who, stale_version)| Step::Update { item, who, stale_version }),
        1 => (i.clone(), i.clone()).prop_map(|(item, blocker)| Step::DepAdd { item, blocker }),
        1 => (i.clone(), i.clone()).prop_map(|(item, blocker)| Step::DepRm { item, blocker }),
        1 => (i.clone(), w.clone(), prop_oneof![Just(Status::Open), Just(Status::Done), Just(Status::Cancelled)], token_choice())
            .prop_map(|(item, who, status, token)| Step::SetStatus { item, who, status, token }),
        1 => (i, w.clone()).prop_map(|(item, who)| Step::KeyedClaimTwice { item, who }),
        1 => Just(Step::Rebuild),
        1 => Just(Step::ExportImport),
        2 => (0..90_000u64).prop_map(|ms| Step::Advance { ms }),
        1 => (-7_200_000..7_200_000i64).prop_map(|ms| Step::JumpWallClock { ms }),
        1 => Just(Step::KillPidHolders),
        2 => (0..6usize).prop_map(|parent| Step::NewChild { parent }),
        1 => (0..6usize, proptest::option::of(0..6usize)).prop_map(|(item, parent)| Step::SetParent { item, parent }),
        1 => (0..6usize).prop_map(|item| Step::Comment { item }),
    ]
}

/// What the test remembers, to check the tracker against.
#[derive(Default)]
struct Seen {
    items: Vec<u64>,
    /// Every token ever handed out for each item, in order.
    tokens: BTreeMap<u64, Vec<u64>>,
    last_token: u64,
    versions: BTreeMap<u64, u64>,
    changes: u64,
    /// Ops that changed no field (comments).
    comments: u64,
}

struct World<S: Storage> {
    trackers: Vec<Tracker<S>>,
    /// The pid each process ties its leases to: this test's own, and a child's.
    pids: [u32; 2],
}

impl<S: Storage> World<S> {
    fn pid_of(&self, w: usize) -> u32 {
        self.pids[w / HOLDERS.len()]
    }

    /// Which process a lease is tied to, if any.
    fn process_of_pid(&self, pid: Option<u32>) -> Option<usize> {
        pid.and_then(|p| self.pids.iter().position(|q| *q == p))
    }
}

fn check_change(seen: &mut Seen, before: u64, after: &ItemView) {
    let n = after.item.num;
    let old = seen.versions.get(&n).copied().unwrap_or(0);
    assert_eq!(old, before, "the test's version of #{n} drifted");
    if after.item.version != old {
        assert_eq!(
            after.item.version,
            old + 1,
            "#{n}: version must grow by exactly one"
        );
        seen.changes += 1;
    }
    seen.versions.insert(n, after.item.version);
    if let Some(c) = &after.claim {
        let toks = seen.tokens.entry(n).or_default();
        if toks.last() != Some(&c.token) {
            assert!(
                c.token > seen.last_token,
                "token {} not above {}",
                c.token,
                seen.last_token
            );
            seen.last_token = c.token;
            toks.push(c.token);
        }
    }
}

fn run_steps<S: Storage>(world: World<S>, clock: &FakeClock, dead: &AtomicBool, steps: &[Step]) {
    let t0 = &world.trackers[0];
    let mut seen = Seen::default();
    for s in steps {
        let pick = |i: usize| seen.items.get(i % seen.items.len().max(1)).copied();
        let current_token =
            |n: u64, t: &Tracker<S>| t.get(&ItemRef::Num(n)).unwrap().claim.map(|c| c.token);
        let resolve_token = |choice: &TokenChoice, n: u64, seen: &Seen, t: &Tracker<S>| match choice
        {
            TokenChoice::None => None,
            TokenChoice::Current => current_token(n, t),
            TokenChoice::Stale => {
                let cur = current_token(n, t);
                seen.tokens
                    .get(&n)
                    .and_then(|v| v.iter().rev().find(|&&x| Some(x) != cur).copied())
            }
        };
        let version_of = |n: u64| seen.versions.get(&n).copied().unwrap_or(0);
        match s {
            Step::New { priority } => {
                let v = t0
                    .new_item(
                        NewItem {
                            title: format!("item {}", seen.items.len() + 1),
                            priority: Some(*priority),
                            ..Default::default()
                        },
                        &[],
                        &Guard::default(),
                    )
                    .unwrap();
                seen.items.push(v.item.num);
                check_change(&mut seen, 0, &v);
            }
            Step::Claim {
                item,
                who,
                ttl_s,
                with_pid,
            } => {
                let Some(n) = pick(*item) else { continue };
                let before = version_of(n);
                let opts = ClaimOptions {
                    ttl: Duration::from_secs(*ttl_s),
                    // Once the pid's process is "dead", it can no longer claim.
                    pid: (*with_pid && !dead.load(Ordering::SeqCst)).then(|| world.pid_of(*who)),
                    ..Default::default()
                };
                let held_before = t0.get(&ItemRef::Num(n)).unwrap().claim;
                match world.trackers[*who].claim(&ItemRef::Num(n), &opts) {
                    Ok(v) => {
                        let c = v.claim.as_ref().unwrap();
                        assert_eq!(c.holder, name_of(*who));
                        one_worker(&world, *who, held_before.as_ref(), c);
                        check_change(&mut seen, before, &v);
                    }
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => panic!("claim: {e}"),
                }
            }
            Step::ClaimNext { who } => {
                let ready_before = t0
                    .list(&ListQuery {
                        ready: true,
                        ..Default::default()
                    })
                    .unwrap();
                match world.trackers[*who].claim_next(None, &ClaimOptions::default()) {
                    Ok(v) => {
                        assert_eq!(
                            Some(v.item.num),
                            ready_before.first().map(|r| r.item.num),
                            "claim --next takes the best ready item"
                        );
                        let before = version_of(v.item.num);
                        check_change(&mut seen, before, &v);
                    }
                    Err(Error::NotFound(_)) => assert!(
                        ready_before.is_empty(),
                        "nothing ready, yet list --ready shows {ready_before:?}"
                    ),
                    Err(e) => panic!("claim --next: {e}"),
                }
            }
            Step::Force { item, who } | Step::Steal { item, who } => {
                let Some(n) = pick(*item) else { continue };
                let before = version_of(n);
                let opts = ClaimOptions {
                    force: matches!(s, Step::Force { .. }),
                    steal_stale: matches!(s, Step::Steal { .. }),
                    ..Default::default()
                };
                match world.trackers[*who].claim(&ItemRef::Num(n), &opts) {
                    Ok(v) => check_change(&mut seen, before, &v),
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => panic!("force/steal: {e}"),
                }
            }
            Step::Renew { item, who, token }
            | Step::Release { item, who, token }
            | Step::Done { item, who, token } => {
                let Some(n) = pick(*item) else { continue };
                let t = &world.trackers[*who];
                let tok = resolve_token(token, n, &seen, t);
                if matches!(token, TokenChoice::Stale) && tok.is_none() {
                    continue;
                }
                let before = version_of(n);
                let g = Guard {
                    token: tok,
                    ..Default::default()
                };
                let r = ItemRef::Num(n);
                let held_before = t0.get(&r).unwrap().claim;
                let result = match s {
                    Step::Renew { .. } => t.renew(&r, None, &g),
                    Step::Release { .. } => t.release(&r, &g),
                    _ => t.done(&r, &g, false),
                };
                if let (Some(l), None, Ok(_)) = (&held_before, tok, &result) {
                    let tied_to = world.process_of_pid(l.pid);
                    assert!(
                        tied_to.is_none_or(|p| p == *who / HOLDERS.len()),
                        "{s:?}: another process acted on a lease tied to process {tied_to:?} by name alone"
                    );
                }
                if matches!(token, TokenChoice::Stale) {
                    assert!(
                        matches!(result, Err(Error::Conflict { .. })),
                        "a stale token was accepted: {s:?} -> {result:?}"
                    );
                }
                match result {
                    Ok(v) => check_change(&mut seen, before, &v),
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => panic!("{s:?}: {e}"),
                }
            }
            Step::Update {
                item,
                who,
                stale_version,
            } => {
                let Some(n) = pick(*item) else { continue };
                let before = version_of(n);
                let expected = if *stale_version {
                    before.saturating_sub(1)
                } else {
                    before
                };
                let g = Guard {
                    if_version: Some(expected),
                    ..Default::default()
                };
                let patch = Patch {
                    title: Some(format!("t{}", seen.changes)),
                    ..Default::default()
                };
                match world.trackers[*who].update(&ItemRef::Num(n), patch, &g) {
                    Ok(v) => {
                        assert!(
                            !*stale_version || expected == before,
                            "stale version accepted"
                        );
                        check_change(&mut seen, before, &v);
                    }
                    Err(Error::Conflict { current, .. }) => {
                        assert!(*stale_version, "update at the right version refused");
                        assert_eq!(current.unwrap().item.version, before);
                    }
                    Err(e) => panic!("update: {e}"),
                }
            }
            Step::DepAdd { item, blocker } => {
                let (Some(a), Some(b)) = (pick(*item), pick(*blocker)) else {
                    continue;
                };
                let before = version_of(a);
                match t0.dep_add(&ItemRef::Num(a), &ItemRef::Num(b), &Guard::default()) {
                    Ok(v) => check_change(&mut seen, before, &v),
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => panic!("dep add: {e}"),
                }
            }
            Step::DepRm { item, blocker } => {
                let (Some(a), Some(b)) = (pick(*item), pick(*blocker)) else {
                    continue;
                };
                let before = version_of(a);
                match t0.dep_remove(&ItemRef::Num(a), &ItemRef::Num(b), &Guard::default()) {
                    Ok(v) => check_change(&mut seen, before, &v),
                    // Not blocked by it; or the item's lease is tied to another process.
                    Err(Error::NotFound(_) | Error::Conflict { .. }) => {}
                    Err(e) => panic!("dep rm: {e}"),
                }
            }
            Step::SetStatus {
                item,
                who,
                status,
                token,
            } => {
                let Some(n) = pick(*item) else { continue };
                let t = &world.trackers[*who];
                let tok = resolve_token(token, n, &seen, t);
                let before = version_of(n);
                let patch = Patch {
                    status: Some(*status),
                    ..Default::default()
                };
                let g = Guard {
                    token: tok,
                    ..Default::default()
                };
                match t.update(&ItemRef::Num(n), patch, &g) {
                    Ok(v) => {
                        assert_eq!(v.item.status, *status);
                        if *status != Status::Open {
                            assert!(v.claim.is_none(), "closing kept a lease");
                        }
                        check_change(&mut seen, before, &v);
                    }
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => panic!("set status: {e}"),
                }
            }
            Step::KeyedClaimTwice { item, who } => {
                let Some(n) = pick(*item) else { continue };
                let t = &world.trackers[*who];
                let before = version_of(n);
                let opts = ClaimOptions {
                    guard: Guard {
                        idempotency_key: Some(format!("key-{}", seen.changes)),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let first = t.claim(&ItemRef::Num(n), &opts);
                let ops_between = t0.last_seq().unwrap();
                let second = t.claim(&ItemRef::Num(n), &opts);
                assert_eq!(t0.last_seq().unwrap(), ops_between, "a repeat wrote an op");
                match (first, second) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a, b, "a repeat must return what the first call made");
                        check_change(&mut seen, before, &a);
                        // Someone else with the same key learns nothing and writes nothing.
                        let other_name =
                            (*who / HOLDERS.len()) * HOLDERS.len() + (*who + 1) % HOLDERS.len();
                        let other = &world.trackers[other_name];
                        let e = other.claim(&ItemRef::Num(n), &opts).unwrap_err();
                        assert!(matches!(e, Error::Conflict { current: None, .. }), "{e:?}");
                        assert_eq!(t0.last_seq().unwrap(), ops_between);
                    }
                    (Err(Error::Conflict { .. }), Err(Error::Conflict { .. })) => {}
                    (a, b) => panic!("keyed claim then repeat: {a:?} then {b:?}"),
                }
            }
            Step::Rebuild => {
                let before = t0.list(&ListQuery::default()).unwrap();
                t0.rebuild().unwrap();
                assert_eq!(t0.list(&ListQuery::default()).unwrap(), before);
            }
            Step::ExportImport => {
                let mut out = Vec::new();
                t0.export(&mut out, false, &mut |_, _| {}).unwrap();
                let ops = t0.last_seq().unwrap();
                let r = t0.import(&mut out.as_slice(), Prefer::Neither).unwrap();
                assert_eq!(
                    (r.created, r.replaced),
                    (0, 0),
                    "re-import changed something"
                );
                assert_eq!(t0.last_seq().unwrap(), ops);
                let fresh = Tracker::with_store(MemStore::new())
                    .with_clock(Arc::new(clock.clone()))
                    .with_actor(Actor::named("importer"));
                fresh.import(&mut out.as_slice(), Prefer::Neither).unwrap();
                assert!(fresh.verify().unwrap().problems.is_empty());
                let shape = |t: &[ItemView]| -> Vec<(String, Status, u8, Vec<String>, u64, usize)> {
                    let mut v: Vec<_> = t
                        .iter()
                        .map(|v| {
                            let i = &v.item;
                            (
                                i.title.clone(),
                                i.status,
                                i.priority,
                                i.labels.clone(),
                                i.version,
                                i.blocked_by.len(),
                            )
                        })
                        .collect();
                    v.sort();
                    v
                };
                let all = ListQuery::default();
                assert_eq!(
                    shape(&fresh.list(&all).unwrap()),
                    shape(&t0.list(&all).unwrap())
                );
                let floor = seen.last_token;
                if let Some(first) = fresh
                    .list(&ListQuery {
                        ready: true,
                        ..Default::default()
                    })
                    .unwrap()
                    .first()
                {
                    let v = fresh
                        .claim(&ItemRef::Num(first.item.num), &ClaimOptions::default())
                        .unwrap();
                    assert!(
                        v.claim.unwrap().token > floor,
                        "tokens went back after an import"
                    );
                }
            }
            Step::NewChild { parent } => {
                let Some(p) = pick(*parent) else { continue };
                let made = t0.new_item(
                    NewItem {
                        title: format!("part of #{p}"),
                        parent: Some(ItemRef::Num(p)),
                        ..Default::default()
                    },
                    &[],
                    &Guard::default(),
                );
                match made {
                    Ok(v) => {
                        assert_eq!(v.parent_num, Some(p));
                        seen.items.push(v.item.num);
                        check_change(&mut seen, 0, &v);
                    }
                    // A closed parent takes no open part.
                    Err(Error::Conflict { .. }) => {
                        let parent = t0.get(&ItemRef::Num(p)).unwrap();
                        assert_ne!(
                            parent.item.status,
                            Status::Open,
                            "an open parent refused a part"
                        );
                    }
                    Err(e) => panic!("new part: {e}"),
                }
            }
            Step::SetParent { item, parent } => {
                let Some(n) = pick(*item) else { continue };
                let to = match parent {
                    Some(p) => match pick(*p) {
                        Some(p) => Some(ItemRef::Num(p)),
                        None => continue,
                    },
                    None => None,
                };
                let before = version_of(n);
                let patch = Patch {
                    parent: Some(to),
                    ..Default::default()
                };
                match t0.update(&ItemRef::Num(n), patch, &Guard::default()) {
                    Ok(v) => check_change(&mut seen, before, &v),
                    // A cycle, or a lease tied to another process.
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => panic!("set parent: {e}"),
                }
            }
            Step::Comment { item } => {
                let Some(n) = pick(*item) else { continue };
                let before = version_of(n);
                let v = t0
                    .comment(&ItemRef::Num(n), "a note", &Guard::default())
                    .unwrap();
                assert_eq!(v.item.version, before, "a comment moved the version");
                seen.comments += 1;
            }
            Step::Advance { ms } => clock.advance(*ms),
            Step::JumpWallClock { ms } => clock.step_wall(*ms),
            Step::KillPidHolders => dead.store(true, Ordering::SeqCst),
        }
        // Only the newest token of an item can be live, and every older one is refused.
        let views = t0.list(&ListQuery::default()).unwrap();
        for v in &views {
            let n = v.item.num;
            let history = seen.tokens.get(&n).cloned().unwrap_or_default();
            if let Some(c) = &v.claim {
                assert_eq!(
                    history.last(),
                    Some(&c.token),
                    "#{n}: an old lease came back"
                );
            }
            for old in history.iter().rev().skip(1).take(3) {
                let g = Guard {
                    token: Some(*old),
                    ..Default::default()
                };
                let r = t0.renew(&ItemRef::Num(n), None, &g);
                assert!(
                    matches!(r, Err(Error::Conflict { .. })),
                    "#{n}: old token {old} accepted: {r:?}"
                );
            }
            // log ITEM is the global log filtered to the item.
            let own: Vec<u64> = t0
                .log(Some(&ItemRef::Num(n)), 0, None)
                .unwrap()
                .iter()
                .map(|(op, _)| op.seq)
                .collect();
            let all: Vec<u64> = t0
                .log(None, 1, None)
                .unwrap()
                .iter()
                .filter(|(op, _)| op.item == v.item.id)
                .map(|(op, _)| op.seq)
                .collect();
            assert_eq!(own, all, "#{n}: log ITEM disagrees with the log");
        }
        // A parent waits for its open children: none of them is ready.
        let ready = t0
            .list(&ListQuery {
                ready: true,
                ..Default::default()
            })
            .unwrap();
        for r in &ready {
            let waiting = views
                .iter()
                .any(|v| v.item.parent == Some(r.item.id) && v.item.status == Status::Open);
            assert!(!waiting, "#{} is ready with an open child", r.item.num);
        }
        let log = t0.log(None, 1, None).unwrap();
        assert_eq!(
            log.len() as u64,
            seen.changes + seen.comments,
            "one op per change"
        );
        for (i, (op, _)) in log.iter().enumerate() {
            assert_eq!(op.seq, i as u64 + 1, "gapless, strictly increasing seq");
            let step = u64::from(op.kind != tracker::OpKind::Comment);
            assert_eq!(op.version_after, op.version_before + step);
        }
        let report = t0.verify().unwrap();
        assert!(
            report.problems.is_empty(),
            "verify after {s:?}: {:?}",
            report.problems
        );
    }
    let before = t0.list(&ListQuery::default()).unwrap();
    t0.rebuild().unwrap();
    t0.rebuild().unwrap();
    assert_eq!(
        t0.list(&ListQuery::default()).unwrap(),
        before,
        "rebuild changed what users see"
    );
    assert!(t0.verify().unwrap().problems.is_empty());
}

/// After a claim by worker `who` that presented no token succeeded: it holds `got`, and if the
/// item was held before by a lease tied to a living process, that process is `who`'s own.
fn one_worker<S: Storage>(
    world: &World<S>,
    who: usize,
    before: Option<&tracker::Lease>,
    got: &tracker::Lease,
) {
    let mine = who / HOLDERS.len();
    if let Some(b) = before {
        if b.token == got.token {
            let tied_to = world.process_of_pid(b.pid);
            assert!(
                tied_to.is_none_or(|p| p == mine),
                "worker {who} (process {mine}) was handed token {} of a lease tied to process {tied_to:?}",
                got.token
            );
        }
    }
    if let Some(p) = world.process_of_pid(got.pid) {
        assert!(
            p == mine || before.is_some_and(|b| b.token == got.token && b.pid == got.pid),
            "worker {who} left a lease tied to process {p}"
        );
    }
}

/// The second process: a child that lives for the whole test.
fn second_process() -> std::process::Child {
    std::process::Command::new("sleep")
        .arg("3600")
        .spawn()
        .unwrap()
}

fn world<S: Storage + Clone>(
    store: S,
    clock: &FakeClock,
    dead: &Arc<AtomicBool>,
    other: &std::process::Child,
) -> World<S> {
    let pids = [std::process::id(), other.id()];
    let trackers = (0..WORKERS)
        .map(|w| {
            let dead = Arc::clone(dead);
            let me = pids[w / HOLDERS.len()];
            Tracker::with_store(store.clone())
                .with_clock(Arc::new(clock.clone()))
                .with_actor(Actor::named(name_of(w)))
                .with_alive_probe(Arc::new(move |_, _| !dead.load(Ordering::SeqCst)))
                .with_tie_probe(Arc::new(move |l| l.pid == Some(me)))
        })
        .collect();
    World { trackers, pids }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_on_the_redb_file(steps in prop::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.redb");
        let clock = FakeClock::new(1_800_000_000_000, "boot-a");
        let dead = Arc::new(AtomicBool::new(false));
        drop(RedbStore::create(&path, Duration::from_secs(5)).unwrap());
        let store = SharedRedb(Arc::new(RedbStore::open(&path, tracker::Access::ReadWrite, Duration::from_secs(5)).unwrap()));
        let mut other = second_process();
        run_steps(world(store, &clock, &dead, &other), &clock, &dead, &steps);
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn invariants_hold_in_memory(steps in prop::collection::vec(step(), 1..60)) {
        let clock = FakeClock::new(1_800_000_000_000, "boot-a");
        let dead = Arc::new(AtomicBool::new(false));
        let store = SharedMem(Arc::new(MemStore::new()));
        let mut other = second_process();
        run_steps(world(store, &clock, &dead, &other), &clock, &dead, &steps);
        other.kill().unwrap();
        other.wait().unwrap();
    }
}

/// Several trackers (holders) over one store, as several processes over one file.
#[derive(Clone)]
struct SharedRedb(Arc<RedbStore>);
#[derive(Clone)]
struct SharedMem(Arc<MemStore>);

macro_rules! delegate {
    ($t:ty) => {
        impl Storage for $t {
            fn read<T>(
                &self,
                f: impl FnOnce(&dyn tracker::store::ReadTxn) -> tracker::Result<T>,
            ) -> tracker::Result<T> {
                self.0.read(f)
            }
            fn write<T>(
                &self,
                f: impl FnMut(&mut dyn tracker::store::WriteTxn) -> tracker::Result<T>,
            ) -> tracker::Result<T> {
                self.0.write(f)
            }
        }
    };
}
delegate!(SharedRedb);
delegate!(SharedMem);
