//! Coordination metrics, as lock managers report them: acquisitions, renewals, releases,
//! completions, stale steals, forced evictions, leases that ended unreleased, refused claims and
//! `--wait` retries, and the time from `new` to the first claim and from claim to done.
//!
//! Everything the ops log holds is derived from it (over a window: ops at or after `since`).
//! Refused claims and wait retries leave no op (a refused command changes nothing), so they are
//! running totals kept in `meta`, written by the refused command itself in a small transaction of
//! its own: a successful command pays nothing for them.

use std::collections::{BTreeMap, HashMap};

use ulid::Ulid;

use crate::error::Result;
use crate::model::{Change, Op, OpKind, Status, WallMs};
use crate::store::{Counter, ReadTxn, Storage};
use crate::tracker::Tracker;

/// Counts of lease events, over the whole tracker or for one holder.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Counts {
    /// New leases: claims, stale steals and evictions.
    pub acquisitions: u64,
    /// Leases extended by their holder (`renew`, or a repeated claim).
    pub renewals: u64,
    /// Leases given back (`release`).
    pub releases: u64,
    /// Items finished (`done`, or `update --status done`).
    pub done: u64,
    /// Leases taken over from a holder whose process was gone.
    pub stale_steals: u64,
    /// Live leases taken from another holder by force.
    pub forced_evictions: u64,
    /// Leases that ended without a release: taken over after they expired (or their holder was
    /// gone).
    pub expirations: u64,
}

/// Median and 95th percentile of a set of durations.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Spread {
    /// How many durations were measured.
    pub count: u64,
    /// The median, in milliseconds (nearest rank); null when nothing was measured.
    pub median_ms: Option<i64>,
    /// The 95th percentile, in milliseconds (nearest rank); null when nothing was measured.
    pub p95_ms: Option<i64>,
}

impl Spread {
    fn of(mut v: Vec<i64>) -> Spread {
        v.sort_unstable();
        let at = |q_percent: usize| {
            // The nearest-rank percentile: the smallest value with q% of values at or below it.
            let rank = (v.len() * q_percent).div_ceil(100).max(1);
            v.get(rank - 1).copied()
        };
        Spread {
            count: v.len() as u64,
            median_ms: at(50),
            p95_ms: at(95),
        }
    }
}

/// Without an explicit window, metrics cover at most this many of the latest ops, so `status`
/// costs the same on a tracker of any age (the whole log took 181 ms at 100,000 ops, growing
/// with it). `status --since DUR` counts a time window, however long.
pub const RECENT_OPS: u64 = 10_000;

/// The metrics of a window of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Metrics {
    /// The window's start (wall ms) when one was asked for (`--since`); `None` for the latest
    /// [`RECENT_OPS`] ops.
    pub since_ms: Option<WallMs>,
    /// The first op counted: 1 when the window holds the whole log.
    pub first_seq: u64,
    /// How many ops were counted.
    pub ops_counted: u64,
    /// Counts over every holder.
    pub overall: Counts,
    /// Counts per actor that made the ops, by name.
    pub by_holder: BTreeMap<String, Counts>,
    /// Claims refused because another live holder had the item, over the tracker's life.
    pub refused_claims_total: u64,
    /// Retries made by `claim --wait`, over the tracker's life.
    pub wait_retries_total: u64,
    /// From an item's creation to its first lease.
    pub new_to_first_claim: Spread,
    /// From a lease's acquisition to the `done` that ended it.
    pub claim_to_done: Spread,
}

impl<S: Storage> Tracker<S> {
    /// The metrics of the last `window` of the log, by this tracker's clock (the latest
    /// [`RECENT_OPS`] ops for `None`): `status --since DUR`.
    pub fn metrics_over(&self, window: Option<std::time::Duration>) -> Result<Metrics> {
        let since = window.map(|d| {
            let d = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            self.now().wall_ms.saturating_sub(d)
        });
        self.metrics(since)
    }

    /// The metrics of the ops at or after `since_ms` (the latest [`RECENT_OPS`] ops for `None`).
    pub fn metrics(&self, since_ms: Option<WallMs>) -> Result<Metrics> {
        self.metrics_with(since_ms, RECENT_OPS)
    }

    fn metrics_with(&self, since_ms: Option<WallMs>, recent_ops: u64) -> Result<Metrics> {
        self.store.read(|t| {
            let mut m = Metrics {
                since_ms,
                refused_claims_total: t.counter(Counter::RefusedClaims)?,
                wait_retries_total: t.counter(Counter::WaitRetries)?,
                ..Metrics::default()
            };
            let last = t.counter(Counter::LastSeq)?;
            let first = match since_ms {
                Some(ms) => first_seq_at_or_after(t, ms)?,
                None => last.saturating_sub(recent_ops.saturating_sub(1)).max(1),
            };
            m.first_seq = first;
            m.ops_counted = (last + 1).saturating_sub(first);
            let mut to_first_claim = Vec::new();
            let mut to_done = Vec::new();
            let mut claimed_before: HashMap<Ulid, bool> = HashMap::new();
            t.visit_ops(first, &mut |op| {
                let holder = m.by_holder.entry(op.actor.clone()).or_default();
                for counts in [&mut m.overall, holder] {
                    count(counts, &op);
                }
                if is_acquisition(op.kind) {
                    let earlier = match claimed_before.get(&op.item) {
                        Some(seen) => *seen,
                        None => claimed_earlier(t, &op)?,
                    };
                    if !earlier {
                        if let Some(item) = t.item(op.item)? {
                            to_first_claim.push(op.at.saturating_sub(item.created_at));
                        }
                    }
                    claimed_before.insert(op.item, true);
                }
                if finishes(&op) {
                    for c in &op.changes {
                        if let Change::LeaseCleared { old } = c {
                            to_done.push(op.at.saturating_sub(old.acquired_at));
                        }
                    }
                }
                Ok(true)
            })?;
            m.new_to_first_claim = Spread::of(to_first_claim);
            m.claim_to_done = Spread::of(to_done);
            Ok(m)
        })
    }

    /// Counts a claim refused because another holder had the item (best effort: a refused
    /// command still fails with its own error if this cannot be written).
    pub(crate) fn note(&self, counter: Counter, by: u64) {
        let _ = self.store.write(|t| {
            let n = t.counter(counter)?.saturating_add(by);
            t.set_counter(counter, n)
        });
    }
}

fn is_acquisition(kind: OpKind) -> bool {
    matches!(kind, OpKind::Claim | OpKind::Steal | OpKind::Evict)
}

fn count(c: &mut Counts, op: &Op) {
    match op.kind {
        OpKind::Claim | OpKind::Steal | OpKind::Evict => {
            c.acquisitions += 1;
            let took_over = op
                .changes
                .iter()
                .any(|ch| matches!(ch, Change::LeaseSet { old: Some(_), .. }));
            match op.kind {
                OpKind::Steal => c.stale_steals += 1,
                OpKind::Evict => c.forced_evictions += 1,
                _ if took_over => c.expirations += 1,
                _ => {}
            }
        }
        OpKind::Renew => c.renewals += 1,
        OpKind::Release => c.releases += 1,
        _ if ends_anothers_live_lease(op) => c.forced_evictions += 1,
        _ => {}
    }
    if finishes(op) {
        c.done += 1;
    }
}

/// Whether `op` closed its item over a lease another holder still had (`done --force`): the
/// log keeps the lease that ended, so its holder and deadline tell. (A lease tied to a process
/// under the closer's own name cannot be told apart from the closer's own, so it is not counted.)
fn ends_anothers_live_lease(op: &Op) -> bool {
    op.changes.iter().any(|c| {
        matches!(c, Change::LeaseCleared { old }
            if old.holder != op.actor && old.expires_at > op.at)
    }) && matches!(op.kind, OpKind::Done | OpKind::Update)
}

/// Whether `op` finished its item: `done`, or `update --status done`.
fn finishes(op: &Op) -> bool {
    op.changes.iter().any(|c| {
        matches!(
            c,
            Change::Status {
                new: Status::Done,
                ..
            }
        )
    })
}

/// Whether the item of `op` had a lease acquired before `op`.
fn claimed_earlier(t: &dyn ReadTxn, op: &Op) -> Result<bool> {
    for seq in t.op_seqs_of(op.item)? {
        if seq >= op.seq {
            break;
        }
        if t.op(seq)?.is_some_and(|o| is_acquisition(o.kind)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The first sequence number whose op is at or after `ms` (ops' times never go back along the
/// log), found by bisection.
fn first_seq_at_or_after(t: &dyn ReadTxn, ms: WallMs) -> Result<u64> {
    let (mut lo, mut hi) = (1u64, t.counter(Counter::LastSeq)?.saturating_add(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match t.op(mid)? {
            Some(op) if op.at < ms => lo = mid + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mem::MemStore;
    use crate::{ClaimOptions, Guard, ItemRef, NewItem};

    /// Without a window, status reads a bounded tail of the log, whatever its length; a window
    /// reaches as far back as asked.
    #[test]
    fn without_a_window_only_the_latest_ops_are_counted() {
        let t = Tracker::with_store(MemStore::new()).with_actor(crate::Actor::named("ana"));
        let first = t
            .new_item(
                NewItem {
                    title: "first".into(),
                    ..Default::default()
                },
                &[],
                &Guard::default(),
            )
            .unwrap();
        t.claim(&ItemRef::Num(first.item.num), &ClaimOptions::default())
            .unwrap();
        let recent_ops = 20;
        for i in 0..recent_ops {
            let item = NewItem {
                title: format!("item {i}"),
                ..Default::default()
            };
            t.new_item(item, &[], &Guard::default()).unwrap();
        }
        let last = recent_ops + 2;
        let recent = t.metrics_with(None, recent_ops).unwrap();
        assert_eq!(recent.ops_counted, recent_ops);
        assert_eq!(recent.first_seq, last - recent_ops + 1);
        assert_eq!(
            recent.overall.acquisitions, 0,
            "the claim is older than the tail"
        );
        let whole = t.metrics_with(Some(0), recent_ops).unwrap();
        assert_eq!((whole.first_seq, whole.ops_counted), (1, last));
        assert_eq!(whole.overall.acquisitions, 1);
    }
}
