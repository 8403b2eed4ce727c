//! The ops log as the source of truth: reading it, replaying it to verify the tables, and
//! rebuilding the tables from it. `verify` checks every table and counter that data-format.md
//! lists against a replay; `rebuild` rewrites every derived one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ulid::Ulid;

use crate::error::{Error, Result};
use crate::model::{Item, Lease, Op, Status};
use crate::rules::{self, State};
use crate::store::{Counter, ReadTxn, Storage};
use crate::tracker::{resolve, ItemRef, Tracker};

/// What [`Tracker::verify`] found, or what [`Tracker::rebuild`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Ops replayed: the last sequence number of the log (0 when the log could not be replayed).
    pub ops: u64,
    /// Items in the table (`verify`), or written from the replay (`rebuild`).
    pub items: u64,
    /// Leases on file, live or not (`verify`), or written from the replay (`rebuild`).
    pub leases: u64,
    /// The last fencing token the log hands out.
    pub last_token: u64,
    /// Every mismatch found, first one first; empty when all is well.
    pub problems: Vec<String>,
}

impl<S: Storage> Tracker<S> {
    /// Ops oldest first, from sequence number `since` on, of one item or all, at most `limit`;
    /// each with its item's number (`None` if the item is gone from the table).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] or [`Error::Invalid`] when `item` names no item or several.
    pub fn log(
        &self,
        item: Option<&ItemRef>,
        since: u64,
        limit: Option<usize>,
    ) -> Result<Vec<(Op, Option<u64>)>> {
        let mut out = Vec::new();
        self.log_each(item, since, limit, &mut |op, num| {
            out.push((op, num));
            Ok(())
        })?;
        Ok(out)
    }

    /// `log`, handing each op (with its item's number) to `f` as it is read, in flat memory.
    pub fn log_each(
        &self,
        item: Option<&ItemRef>,
        since: u64,
        limit: Option<usize>,
        f: &mut dyn FnMut(Op, Option<u64>) -> Result<()>,
    ) -> Result<()> {
        let limit = limit.unwrap_or(usize::MAX);
        self.store.read(|t| {
            // Numbers of recently seen items; cleared now and then so memory stays flat.
            let mut nums: HashMap<Ulid, Option<u64>> = HashMap::new();
            let mut sent = 0usize;
            let mut emit = |op: Op| -> Result<bool> {
                if sent >= limit {
                    return Ok(false);
                }
                if nums.len() > 10_000 {
                    nums.clear();
                }
                let num = match nums.get(&op.item) {
                    Some(n) => *n,
                    None => {
                        let n = t.item(op.item)?.map(|i| i.num);
                        nums.insert(op.item, n);
                        n
                    }
                };
                sent += 1;
                f(op, num)?;
                Ok(sent < limit)
            };
            match item {
                Some(r) => {
                    let id = resolve(t, r)?;
                    for seq in t.op_seqs_of(id)?.into_iter().filter(|s| *s >= since) {
                        if let Some(op) = t.op(seq)? {
                            if !emit(op)? {
                                break;
                            }
                        }
                    }
                }
                None => t.visit_ops(since.max(1), &mut emit)?,
            }
            Ok(())
        })
    }

    /// The last op's sequence number (0 for an empty log).
    pub fn last_seq(&self) -> Result<u64> {
        self.store.read(|t| t.counter(Counter::LastSeq))
    }

    /// Replays the whole log and compares it with the tables and every index. Damage is reported
    /// in the [`VerifyReport`], not as an error: the tracker is sound when `problems` is empty.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.store.read(|t| {
            let mut report = VerifyReport::default();
            let replayed = match replay(t) {
                Ok(r) => r,
                Err(problem) => {
                    report.problems.push(problem);
                    return Ok(report);
                }
            };
            let state = &replayed.state;
            report.ops = state.last_seq;
            report.last_token = state.last_token;
            let mut problems = Vec::new();
            check_tables(t, &replayed, &mut problems)?;
            report.items = t.item_count()?;
            report.leases = t.leases()?.len() as u64;
            report.problems = problems;
            Ok(report)
        })
    }

    /// Recomputes the items, leases and every index from the log, in one transaction; the ops
    /// log, settings and idempotency keys are kept.
    ///
    /// # Errors
    ///
    /// [`Error::Data`] when the log itself does not replay (nothing is changed).
    pub fn rebuild(&self) -> Result<VerifyReport> {
        self.rebuild_tables()
    }

    /// Migrates a tracker of an older format (file or database) to this one, in one write
    /// transaction, nothing lost (`tracker upgrade`): the version it had, or `None` when it was
    /// already of this format. Older binaries refuse it afterwards.
    ///
    /// # Errors
    ///
    /// As any write; on PostgreSQL, a role without the right to create tables in the schema.
    pub fn upgrade(&self) -> Result<Option<u64>> {
        self.store.upgrade()
    }

    fn rebuild_tables(&self) -> Result<VerifyReport> {
        self.store.write(|t| {
            let Replay { state, op_index } = replay(t).map_err(|p| {
                Error::Data(format!(
                    "the ops log itself is inconsistent, so it cannot rebuild: {p}"
                ))
            })?;
            t.clear_derived()?;
            for item in state.items.values() {
                t.put_item(None, item, false)?;
            }
            // Readiness depends on other items, so it is set once they are all in place.
            let waiting = parents_of_open(&state);
            for item in state.items.values() {
                let ready = ready_in(&state, &waiting, item);
                t.put_item(Some(item), item, ready)?;
            }
            for (id, lease) in &state.leases {
                t.put_lease(*id, lease)?;
            }
            for &(item, seq) in &op_index {
                t.index_op(item, seq)?;
            }
            t.set_counter(Counter::LastSeq, state.last_seq)?;
            t.set_counter(Counter::LastNum, state.last_num)?;
            t.set_counter(Counter::LastToken, state.last_token)?;
            Ok(VerifyReport {
                ops: state.last_seq,
                items: state.items.len() as u64,
                leases: state.leases.len() as u64,
                last_token: state.last_token,
                problems: Vec::new(),
            })
        })
    }
}

/// What one pass over the log gives: the state it determines, and the per-item op index
/// (item, sequence) that `verify` checks and `rebuild` writes, so neither reads the log twice.
#[derive(Clone, Debug, Default)]
struct Replay {
    state: State,
    op_index: Vec<(Ulid, u64)>,
}

/// Replays every op from seq 1; the error names the first op that does not fit.
fn replay(t: &dyn ReadTxn) -> std::result::Result<Replay, String> {
    let mut r = Replay::default();
    let mut failure = None;
    let visited = t.visit_ops(1, &mut |op| match rules::apply(&mut r.state, &op) {
        Ok(()) => {
            r.op_index.push((op.item, op.seq));
            Ok(true)
        }
        Err(e) => {
            failure = Some(e.to_string());
            Ok(false)
        }
    });
    if let Err(e) = visited {
        return Err(format!("the ops log cannot be read: {e}"));
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(r),
    }
}

/// Compares every table, index and counter with the replayed state, adding one line per
/// mismatch that says which table, which entry, and what differs.
fn check_tables(t: &dyn ReadTxn, replayed: &Replay, problems: &mut Vec<String>) -> Result<()> {
    let state = &replayed.state;
    check_items(t, state, problems)?;
    let table_leases: BTreeMap<Ulid, Lease> = t.leases()?.into_iter().collect();
    for (id, lease) in &table_leases {
        match state.leases.get(id) {
            None => problems.push(format!("claims table has a lease on {id} the log does not")),
            Some(l) if l != lease => problems.push(format!(
                "the lease on {id} differs from its replay (table: token {} of {}, log: token {} of {})",
                lease.token, lease.holder, l.token, l.holder
            )),
            _ => {}
        }
    }
    for id in state
        .leases
        .keys()
        .filter(|id| !table_leases.contains_key(id))
    {
        problems.push(format!(
            "the log leaves a lease on {id} that the claims table lacks"
        ));
    }
    for (counter, expected) in [
        (Counter::LastSeq, state.last_seq),
        (Counter::LastNum, state.last_num),
        (Counter::LastToken, state.last_token),
    ] {
        let actual = t.counter(counter)?;
        if actual != expected {
            problems.push(format!(
                "counter {} is {actual}, the log gives {expected}",
                counter.key()
            ));
        }
    }
    if t.format_version()?.is_some_and(|v| v >= 2) {
        // Format 2 keeps the counts by status beside the indexes.
        for s in Status::ALL {
            let expected = state.items.values().filter(|i| i.status == s).count() as u64;
            let actual = t.counter(Counter::Items(s))?;
            if actual != expected {
                problems.push(format!(
                    "counter {} is {actual}, the log gives {expected}",
                    Counter::Items(s).key()
                ));
            }
        }
    }
    check_indexes(t, replayed, problems)?;
    check_dependencies(state, problems);
    let mut orphans = 0u64;
    t.visit_idempotency(&mut |(key, rec)| {
        if !state.items.contains_key(&rec.item) {
            orphans += 1;
            if orphans == 1 {
                problems.push(format!(
                    "idempotency key {key:?} names item {}, which does not exist",
                    rec.item
                ));
            }
        }
        Ok(true)
    })?;
    Ok(())
}

fn check_items(t: &dyn ReadTxn, state: &State, problems: &mut Vec<String>) -> Result<()> {
    let mut seen = 0u64;
    t.visit_items_by_id(&mut |item| {
        seen += 1;
        match state.items.get(&item.id) {
            None => problems.push(format!(
                "item #{} ({}) is in the items table but not in the log",
                item.num, item.id
            )),
            Some(replayed) if *replayed != item => problems.push(format!(
                "item #{} ({}) differs from its replay: {}",
                item.num,
                item.id,
                item_diff(&item, replayed).join(", ")
            )),
            _ => {}
        }
        Ok(true)
    })?;
    if seen != state.items.len() as u64 {
        problems.push(format!(
            "the items table has {seen} items, the log gives {}",
            state.items.len()
        ));
    }
    Ok(())
}

/// What differs between an item in the table and its replay, field by field.
fn item_diff(table: &Item, log: &Item) -> Vec<String> {
    let mut out = Vec::new();
    macro_rules! field {
        ($($f:ident),*) => {$(
            if table.$f != log.$f {
                out.push(format!(concat!(stringify!($f), " (table {:?}, log {:?})"), table.$f, log.$f));
            }
        )*};
    }
    field!(num, version, status, priority, created_at, updated_at, labels, blocked_by);
    // Long text is named, not printed.
    if table.title != log.title {
        out.push("title".into());
    }
    if table.body != log.body {
        out.push("body".into());
    }
    out
}

/// Compares one stored index with what the replayed state says it should hold.
fn compare_index<K: Ord + std::fmt::Debug>(
    name: &str,
    stored: Vec<K>,
    mut expected: Vec<K>,
    problems: &mut Vec<String>,
) {
    expected.sort();
    let stored_set: BTreeSet<&K> = stored.iter().collect();
    let expected_set: BTreeSet<&K> = expected.iter().collect();
    let extra = stored_set.difference(&expected_set).next();
    let missing = expected_set.difference(&stored_set).next();
    match (extra, missing) {
        (None, None) if stored.len() == expected.len() => {}
        (extra, missing) => {
            let mut what = format!(
                "{name} index has {} entries, the log gives {}",
                stored.len(),
                expected.len()
            );
            if let Some(e) = extra {
                what.push_str(&format!("; extra entry {e:?}"));
            }
            if let Some(m) = missing {
                what.push_str(&format!("; missing entry {m:?}"));
            }
            problems.push(what);
        }
    }
}

fn check_indexes(t: &dyn ReadTxn, replayed: &Replay, problems: &mut Vec<String>) -> Result<()> {
    let state = &replayed.state;
    let items = || state.items.values();
    macro_rules! stored {
        ($visit:ident) => {{
            let mut v = Vec::new();
            t.$visit(&mut |e| {
                v.push(e);
                Ok(true)
            })?;
            v
        }};
    }
    compare_index(
        "number",
        stored!(visit_nums),
        items().map(|i| (i.num, i.id)).collect(),
        problems,
    );
    compare_index(
        "status",
        stored!(visit_status_index),
        items().map(|i| (i.status, i.num, i.id)).collect(),
        problems,
    );
    compare_index(
        "label",
        stored!(visit_label_index),
        items()
            .flat_map(|i| i.labels.iter().map(|l| (l.clone(), i.num, i.id)))
            .collect(),
        problems,
    );
    let waiting = parents_of_open(state);
    compare_index(
        "ready",
        stored!(visit_ready_index),
        items()
            .filter(|i| ready_in(state, &waiting, i))
            .map(|i| (i.priority, i.num, i.id))
            .collect(),
        problems,
    );
    compare_index(
        "parent",
        stored!(visit_children),
        items()
            .filter_map(|i| i.parent.map(|p| (p, i.id)))
            .collect(),
        problems,
    );
    compare_index(
        "dependency",
        stored!(visit_blocks),
        items()
            .flat_map(|i| i.blocked_by.iter().map(|b| (*b, i.id)))
            .collect(),
        problems,
    );
    compare_index(
        "per-item op",
        stored!(visit_item_ops),
        replayed.op_index.clone(),
        problems,
    );
    Ok(())
}

/// The items with an open child: they wait for it.
fn parents_of_open(state: &State) -> HashSet<Ulid> {
    state
        .items
        .values()
        .filter(|i| i.status == Status::Open)
        .filter_map(|i| i.parent)
        .collect()
}

/// Whether `item` belongs in the ready queue of `state` (`waiting`: [`parents_of_open`]).
fn ready_in(state: &State, waiting: &HashSet<Ulid>, item: &Item) -> bool {
    rules::is_ready(
        item,
        |b| state.items.get(b).map(|i| i.status),
        waiting.contains(&item.id),
    )
}

/// Blockers and parents exist, no item blocks itself or is its own parent, and what items
/// wait for (their blockers, and a parent its children) has no cycle.
fn check_dependencies(state: &State, problems: &mut Vec<String>) {
    let mut children: HashMap<Ulid, Vec<Ulid>> = HashMap::new();
    for item in state.items.values() {
        let Some(p) = item.parent else { continue };
        if p == item.id {
            problems.push(format!("item #{} is its own parent", item.num));
        } else if !state.items.contains_key(&p) {
            problems.push(format!(
                "item #{} is part of {p}, which does not exist",
                item.num
            ));
        } else {
            children.entry(p).or_default().push(item.id);
        }
    }
    for item in state.items.values() {
        for b in &item.blocked_by {
            if *b == item.id {
                problems.push(format!("item #{} blocks itself", item.num));
            } else if !state.items.contains_key(b) {
                problems.push(format!(
                    "item #{} is blocked by {b}, which does not exist",
                    item.num
                ));
            }
        }
    }
    // Depth-first search with colours: grey on the path, black when done.
    let mut colour: HashMap<Ulid, bool> = HashMap::new();
    for start in state.items.keys() {
        if colour.contains_key(start) {
            continue;
        }
        let mut stack: Vec<(Ulid, usize)> = vec![(*start, 0)];
        colour.insert(*start, false);
        while let Some((id, next)) = stack.last_mut() {
            let blockers = state
                .items
                .get(id)
                .map(|i| i.blocked_by.as_slice())
                .unwrap_or(&[]);
            let kids = children.get(id).map(Vec::as_slice).unwrap_or(&[]);
            let waits_for = blockers
                .get(*next)
                .or_else(|| kids.get(*next - blockers.len()));
            if let Some(b) = waits_for.copied() {
                *next += 1;
                match colour.get(&b) {
                    Some(false) => {
                        let num = state.items.get(&b).map_or(0, |i| i.num);
                        problems.push(format!(
                            "item #{num} waits for itself through a cycle of blockers and children"
                        ));
                        return;
                    }
                    Some(true) => {}
                    None if state.items.contains_key(&b) => {
                        colour.insert(b, false);
                        stack.push((b, 0));
                    }
                    None => {}
                }
            } else {
                colour.insert(*id, true);
                stack.pop();
            }
        }
    }
}
