//! The ops log as the source of truth: reading it, replaying it to verify the tables, rebuilding
//! the tables from it, and the status board.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ulid::Ulid;

use crate::error::{Error, Result};
use crate::model::{Item, Lease, Op, Status};
use crate::rules::{self, LeaseState, State};
use crate::store::{Counter, ReadTxn, Storage};
use crate::tracker::{resolve, ItemRef, Tracker};

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub ops: u64,
    pub items: u64,
    pub leases: u64,
    pub last_token: u64,
    /// Every mismatch found, first one first; empty when all is well.
    pub problems: Vec<String>,
}

/// The status board.
#[derive(Clone, Debug, Default)]
pub struct Board {
    pub open: u64,
    pub done: u64,
    pub cancelled: u64,
    /// Open, unblocked and not claimed.
    pub ready: u64,
    /// Open but waiting on an open item.
    pub blocked: u64,
    pub live: Vec<(Item, Lease)>,
    /// Expired leases, and leases whose process is gone.
    pub stale: Vec<(Item, Lease, LeaseState)>,
}

impl<S: Storage> Tracker<S> {
    /// Ops oldest first, from `since` on, of one item or all, at most `limit`.
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

    /// Replays the whole log and compares it with the tables and every index.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.store.read(|t| {
            let mut report = VerifyReport::default();
            let state = match replay(t) {
                Ok(s) => s,
                Err(problem) => {
                    report.problems.push(problem);
                    return Ok(report);
                }
            };
            report.ops = state.last_seq;
            report.last_token = state.last_token;
            let mut problems = Vec::new();
            check_tables(t, &state, &mut problems)?;
            report.items = t.item_count()?;
            report.leases = t.leases()?.len() as u64;
            report.problems = problems;
            Ok(report)
        })
    }

    /// Recomputes the items, leases and every index from the log, in one transaction.
    pub fn rebuild(&self) -> Result<VerifyReport> {
        self.store.write(|t| {
            let state = replay(t).map_err(|p| {
                Error::Data(format!(
                    "the ops log itself is inconsistent, so it cannot rebuild: {p}"
                ))
            })?;
            t.clear_derived()?;
            for item in state.items.values() {
                t.put_item(None, item, false)?;
            }
            // Readiness depends on other items, so it is set once they are all in place.
            for item in state.items.values() {
                let ready =
                    rules::is_unblocked_open(item, |b| state.items.get(b).map(|i| i.status));
                t.put_item(Some(item), item, ready)?;
            }
            for (id, lease) in &state.leases {
                t.put_lease(*id, lease)?;
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

    /// Counts by state, live claims with their heartbeat, and stale claims.
    pub fn board(&self) -> Result<Board> {
        let now = self.now();
        self.store.read(|t| {
            let mut b = Board::default();
            for (status, slot) in [
                (Status::Open, &mut b.open),
                (Status::Done, &mut b.done),
                (Status::Cancelled, &mut b.cancelled),
            ] {
                t.visit_status(status, &mut |_| {
                    *slot += 1;
                    Ok(true)
                })?;
            }
            let mut claimed_ready = 0;
            let leases = t.leases()?;
            let mut live_ids = BTreeSet::new();
            for (id, lease) in leases {
                let Some(item) = t.item(id)? else { continue };
                match self.lease_state(&lease, &now) {
                    LeaseState::Live => {
                        live_ids.insert(id);
                        b.live.push((item, lease));
                    }
                    st => b.stale.push((item, lease, st)),
                }
            }
            let mut unblocked = 0;
            t.visit_ready(&mut |id| {
                unblocked += 1;
                if live_ids.contains(&id) {
                    claimed_ready += 1;
                }
                Ok(true)
            })?;
            b.ready = unblocked - claimed_ready;
            b.blocked = b.open - unblocked;
            b.live.sort_by_key(|(i, _)| i.num);
            b.stale.sort_by_key(|(i, _, _)| i.num);
            Ok(b)
        })
    }
}

/// Replays every op from seq 1; the error names the first op that does not fit.
pub fn replay(t: &dyn ReadTxn) -> std::result::Result<State, String> {
    let mut state = State::default();
    let mut failure = None;
    let visited = t.visit_ops(1, &mut |op| match rules::apply(&mut state, &op) {
        Ok(()) => Ok(true),
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
        None => Ok(state),
    }
}

fn check_tables(t: &dyn ReadTxn, state: &State, problems: &mut Vec<String>) -> Result<()> {
    let mut seen = 0u64;
    let mut nums = BTreeSet::new();
    t.visit_items(&mut |item| {
        seen += 1;
        if !nums.insert(item.num) {
            problems.push(format!("number #{} is used twice", item.num));
        }
        match state.items.get(&item.id) {
            None => problems.push(format!(
                "item #{} ({}) is in the table but not in the log",
                item.num, item.id
            )),
            Some(replayed) if *replayed != item => problems.push(format!(
                "item #{} differs from its replay: table has version {}, log gives version {}",
                item.num, item.version, replayed.version
            )),
            _ => {}
        }
        Ok(true)
    })?;
    if seen != state.items.len() as u64 || t.item_count()? != seen {
        problems.push(format!(
            "the log has {} items, the number index {seen}, the items table {}",
            state.items.len(),
            t.item_count()?
        ));
    }
    let table_leases: BTreeMap<Ulid, Lease> = t.leases()?.into_iter().collect();
    if table_leases != state.leases {
        problems.push(format!(
            "claims table has {} leases, the log gives {} (or they differ)",
            table_leases.len(),
            state.leases.len()
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
    let mut ready = Vec::new();
    t.visit_ready(&mut |id| {
        ready.push(id);
        Ok(true)
    })?;
    let mut expected_ready: Vec<(u8, u64, Ulid)> = state
        .items
        .values()
        .filter(|i| rules::is_unblocked_open(i, |b| state.items.get(b).map(|x| x.status)))
        .map(|i| (i.priority, i.num, i.id))
        .collect();
    expected_ready.sort();
    let expected_ids: Vec<Ulid> = expected_ready.iter().map(|x| x.2).collect();
    if ready != expected_ids {
        problems.push(format!(
            "ready index has {} items, the log gives {}",
            ready.len(),
            expected_ids.len()
        ));
    }
    for status in Status::ALL {
        let mut ids = Vec::new();
        t.visit_status(status, &mut |id| {
            ids.push(id);
            Ok(true)
        })?;
        let want = state.items.values().filter(|i| i.status == status).count();
        if ids.len() != want
            || ids
                .iter()
                .any(|id| state.items.get(id).is_none_or(|i| i.status != status))
        {
            problems.push(format!(
                "status index for {} is out of step with the items",
                status.as_str()
            ));
        }
    }
    let mut want_deps: BTreeMap<Ulid, Vec<Ulid>> = BTreeMap::new();
    for i in state.items.values() {
        for b in &i.blocked_by {
            want_deps.entry(*b).or_default().push(i.id);
        }
    }
    for item in state.items.values() {
        let mut deps = t.dependents(item.id)?;
        deps.sort();
        let mut want = want_deps.remove(&item.id).unwrap_or_default();
        want.sort();
        if deps != want {
            problems.push(format!("dependency index for #{} is out of step", item.num));
            break;
        }
    }
    Ok(())
}
