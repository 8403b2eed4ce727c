//! The changes each command makes, as data (TaskChampion's operations): pure functions from the
//! item, its lease and what was asked to the [`Change`]s its op records (`dep_changes` is
//! handed the one graph walk it may need). The lease and token rules they carry each have one
//! home here: closing an item ends its lease, a renewal keeps the token and the tie, a new
//! acquisition records who took it where; and an item never waits for itself or round a cycle.
//!
//! The checks that come first (who may act: [`standing`](super::standing),
//! [`decide_claim`](super::decide_claim)) and the reads they need stay with the caller; these
//! functions are handed the verdict.

use std::time::Duration;

use ulid::Ulid;

use crate::clock::Now;
use crate::model::{Change, Item, Lease, Patch, Status};

use super::{patch_changes, set_deadline, ClaimAction};

/// A closed item has no lease: the change that ends `lease`, if there is one, when its item goes
/// to `to`. The one home of "closing an item ends its lease" (`done`, `update --status`, and
/// `import` replacing an item with a closed copy).
pub fn closing_ends_lease(lease: Option<&Lease>, to: Status) -> Option<Change> {
    match (to, lease) {
        (Status::Open, _) | (_, None) => None,
        (_, Some(l)) => Some(Change::LeaseCleared { old: l.clone() }),
    }
}

/// `update`: the patch's changes to `item` ([`patch_changes`]), and the end of its lease when
/// the patch closes it. Empty when nothing would change.
pub fn update_changes(item: &Item, lease: Option<&Lease>, patch: &Patch) -> Vec<Change> {
    let mut changes = patch_changes(item, patch);
    if let Some(to) = patch.status {
        changes.extend(closing_ends_lease(lease, to));
    }
    changes
}

/// `done`: the item done with `reason` as its close reason, and its lease, if any, ended. On an
/// item already done it changes nothing but the lease (a repeated `done` is a no-op, its reason
/// included: `update --reason` is how a reason is changed).
pub fn done_changes(item: &Item, lease: Option<&Lease>, reason: Option<&String>) -> Vec<Change> {
    let mut changes = Vec::new();
    if item.status != Status::Done {
        changes.push(Change::Status {
            old: item.status,
            new: Status::Done,
        });
    }
    let reason = reason.cloned();
    if item.status != Status::Done && item.close_reason != reason {
        changes.push(Change::CloseReason {
            old: item.close_reason.clone(),
            new: reason,
        });
    }
    changes.extend(closing_ends_lease(lease, Status::Done));
    changes
}

/// `release`: the lease ended, the item left open.
pub fn release_changes(lease: &Lease) -> Vec<Change> {
    vec![Change::LeaseCleared { old: lease.clone() }]
}

/// `renew`: the same lease (holder, token, tie) with a fresh heartbeat and deadline, `ttl` from
/// `now`, or the lease's own TTL when none is given.
pub fn renew_changes(lease: &Lease, ttl: Option<Duration>, now: &Now) -> Vec<Change> {
    let mut new = lease.clone();
    new.renewed_at = now.wall_ms;
    let ttl = ttl.unwrap_or(Duration::from_millis(lease.ttl_ms));
    set_deadline(&mut new, ttl, now);
    vec![Change::LeaseSet {
        old: Some(lease.clone()),
        new,
    }]
}

/// Who takes a new lease, and where: what an acquisition records.
#[derive(Clone, Debug)]
pub struct Taker<'a> {
    /// The actor name the lease is held under.
    pub holder: &'a str,
    /// The host it is taken on.
    pub host: &'a str,
    /// The fencing token of a new acquisition (a renewal keeps the lease's own).
    pub token: u64,
}

/// The process a lease is tied to (`run`, `claim --pid`, an MCP server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TieTo {
    /// The process.
    pub pid: u32,
    /// Its start time (clock ticks since boot), so a recycled pid is not taken for it.
    pub pid_start: Option<u64>,
    /// The process group of the work it started, if any.
    pub pgid: Option<u32>,
    /// The pid namespace the numbers are in.
    pub pid_ns: Option<u64>,
}

/// `claim`: the lease `action` (from [`decide_claim`](super::decide_claim)) makes of `current`.
/// A renewal keeps the lease (holder, token, acquisition, tie) with a fresh heartbeat; any other
/// action is a new acquisition by `taker`, untied. `tie`, when given, ties the result to a
/// process (whether it may is [`may_retie`](super::may_retie)'s to say). The deadline is `ttl`
/// from `now`.
pub fn claim_changes(
    current: Option<&Lease>,
    action: ClaimAction,
    taker: &Taker,
    tie: Option<TieTo>,
    ttl: Duration,
    now: &Now,
) -> Vec<Change> {
    let mut lease = match (current, action) {
        (Some(l), ClaimAction::Renew) => Lease {
            renewed_at: now.wall_ms,
            ..l.clone()
        },
        _ => Lease {
            holder: taker.holder.to_string(),
            token: taker.token,
            acquired_at: now.wall_ms,
            renewed_at: now.wall_ms,
            expires_at: 0,
            ttl_ms: 0,
            host: taker.host.to_string(),
            pid: None,
            pid_start: None,
            boot_id: None,
            deadline_mono_ms: None,
            pgid: None,
            pid_ns: None,
        },
    };
    if let Some(tie) = tie {
        lease.pid = Some(tie.pid);
        lease.pid_start = tie.pid_start;
        lease.pgid = tie.pgid;
        lease.pid_ns = tie.pid_ns;
    }
    set_deadline(&mut lease, ttl, now);
    vec![Change::LeaseSet {
        old: current.cloned(),
        new: lease,
    }]
}

/// Why a change of dependencies is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepRefusal {
    /// An item cannot wait for itself.
    SelfBlock,
    /// The blocker already waits, directly or not, for the item.
    Cycle,
    /// `dep rm` of a blocker the item does not wait for.
    NotBlocked,
}

/// `dep add` (`add`) or `dep rm` of `blocker` on `item`: the change, none when the item already
/// waits for it, or why it is refused. `blocker_waits_for_item` walks the graph (the caller's
/// store) and is asked only about a new dependency on another item; its error is passed on.
///
/// # Errors
///
/// The outer error is `blocker_waits_for_item`'s; the inner one the refusal.
pub fn dep_changes<E>(
    item: &Item,
    blocker: Ulid,
    add: bool,
    blocker_waits_for_item: impl FnOnce() -> Result<bool, E>,
) -> Result<Result<Vec<Change>, DepRefusal>, E> {
    let present = item.blocked_by.contains(&blocker);
    Ok(match (add, present) {
        (true, true) => Ok(Vec::new()),
        (false, false) => Err(DepRefusal::NotBlocked),
        (false, true) => Ok(vec![Change::BlockerRemoved { blocker }]),
        (true, false) if blocker == item.id => Err(DepRefusal::SelfBlock),
        (true, false) if blocker_waits_for_item()? => Err(DepRefusal::Cycle),
        (true, false) => Ok(vec![Change::BlockerAdded { blocker }]),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn lease(token: u64, pid: Option<u32>) -> Lease {
        Lease {
            holder: "a".into(),
            token,
            acquired_at: 5,
            renewed_at: 5,
            expires_at: 60_005,
            ttl_ms: 60_000,
            host: "h".into(),
            pid,
            pid_start: pid.map(|_| 77),
            boot_id: Some("b".into()),
            deadline_mono_ms: Some(60_005),
            pgid: None,
            pid_ns: pid.map(|_| 9),
        }
    }

    fn item(status: Status) -> Item {
        Item {
            id: ulid::Ulid::nil(),
            num: 1,
            title: "t".into(),
            body: String::new(),
            status,
            priority: 2,
            labels: Vec::new(),
            blocked_by: Vec::new(),
            version: 3,
            created_at: 0,
            updated_at: 0,
            item_type: crate::model::ItemType::Task,
            parent: None,
            close_reason: None,
        }
    }

    fn now(wall: i64) -> Now {
        Now {
            wall_ms: wall,
            mono_ms: Some(1_000),
            boot_id: Some(Arc::from("b")),
        }
    }

    fn the_lease_set(changes: &[Change]) -> &Lease {
        match changes {
            [Change::LeaseSet { new, .. }] => new,
            other => panic!("not one LeaseSet: {other:?}"),
        }
    }

    #[test]
    fn closing_an_item_ends_its_lease_and_nothing_else_does() {
        let l = lease(4, None);
        let ended = Change::LeaseCleared { old: l.clone() };
        let closed = [
            done_changes(&item(Status::Open), Some(&l), None),
            update_changes(
                &item(Status::Open),
                Some(&l),
                &Patch {
                    status: Some(Status::Cancelled),
                    ..Patch::default()
                },
            ),
        ];
        for changes in closed {
            assert!(matches!(changes[0], Change::Status { .. }), "{changes:?}");
            assert_eq!(changes.last(), Some(&ended));
        }
        // Done twice: the status is already done, the lease still ends.
        assert_eq!(done_changes(&item(Status::Done), Some(&l), None), [ended]);
        assert!(done_changes(&item(Status::Done), None, None).is_empty());
        let retitled = Patch {
            title: Some("u".into()),
            status: Some(Status::Open),
            ..Patch::default()
        };
        let changes = update_changes(&item(Status::Open), Some(&l), &retitled);
        assert!(
            !changes
                .iter()
                .any(|c| matches!(c, Change::LeaseCleared { .. })),
            "{changes:?}"
        );
    }

    #[test]
    fn a_renewal_keeps_holder_token_and_tie_and_moves_the_deadline() {
        let l = lease(4, Some(100));
        for (ttl, ms) in [(None, 60_000), (Some(Duration::from_secs(5)), 5_000)] {
            let changes = renew_changes(&l, ttl, &now(1_000));
            let new = the_lease_set(&changes);
            assert_eq!((new.token, new.pid, new.acquired_at), (4, Some(100), 5));
            assert_eq!(
                (new.renewed_at, new.ttl_ms, new.expires_at),
                (1_000, ms, 1_000 + i64::try_from(ms).unwrap())
            );
        }
        assert_eq!(release_changes(&l), [Change::LeaseCleared { old: l }]);
    }

    #[test]
    fn a_claim_renews_in_place_or_records_a_new_untied_acquisition() {
        let taker = Taker {
            holder: "b",
            host: "h2",
            token: 9,
        };
        let tied = lease(4, Some(100));
        let changes = claim_changes(
            Some(&tied),
            ClaimAction::Renew,
            &taker,
            None,
            Duration::from_secs(10),
            &now(2_000),
        );
        let renewed = the_lease_set(&changes);
        assert_eq!(
            (renewed.holder.as_str(), renewed.token, renewed.pid),
            ("a", 4, Some(100))
        );
        assert_eq!((renewed.acquired_at, renewed.renewed_at), (5, 2_000));
        for action in [ClaimAction::Acquire, ClaimAction::Steal, ClaimAction::Evict] {
            let changes = claim_changes(
                Some(&tied),
                action,
                &taker,
                None,
                Duration::from_secs(10),
                &now(2_000),
            );
            let fresh = the_lease_set(&changes);
            assert_eq!(
                (fresh.holder.as_str(), fresh.host.as_str(), fresh.token),
                ("b", "h2", 9)
            );
            assert_eq!(
                (fresh.pid, fresh.pid_start, fresh.pid_ns),
                (None, None, None),
                "{action:?}"
            );
            assert_eq!((fresh.acquired_at, fresh.expires_at), (2_000, 12_000));
        }
        let tie = TieTo {
            pid: 7,
            pid_start: Some(1),
            pgid: Some(8),
            pid_ns: Some(2),
        };
        let changes = claim_changes(
            None,
            ClaimAction::Acquire,
            &taker,
            Some(tie),
            Duration::from_secs(1),
            &now(0),
        );
        let l = the_lease_set(&changes);
        assert_eq!(
            (l.pid, l.pid_start, l.pgid, l.pid_ns),
            (Some(7), Some(1), Some(8), Some(2))
        );
    }

    #[test]
    fn a_dependency_is_added_once_never_on_itself_nor_round_a_cycle() {
        let mut i = item(Status::Open);
        i.id = ulid::Ulid::from_parts(1, 1);
        let b = ulid::Ulid::from_parts(2, 2);
        let never =
            || -> Result<bool, ()> { panic!("the graph is walked only for a new dependency") };
        let no_cycle = || Ok::<bool, ()>(false);
        assert_eq!(
            dep_changes(&i, b, true, no_cycle),
            Ok(Ok(vec![Change::BlockerAdded { blocker: b }]))
        );
        assert_eq!(
            dep_changes(&i, i.id, true, never),
            Ok(Err(DepRefusal::SelfBlock))
        );
        assert_eq!(
            dep_changes(&i, b, true, || Ok::<bool, ()>(true)),
            Ok(Err(DepRefusal::Cycle))
        );
        assert_eq!(dep_changes(&i, b, true, || Err::<bool, ()>(())), Err(()));
        assert_eq!(
            dep_changes(&i, b, false, never),
            Ok(Err(DepRefusal::NotBlocked))
        );
        i.blocked_by.push(b);
        assert_eq!(dep_changes(&i, b, true, never), Ok(Ok(Vec::new())));
        assert_eq!(
            dep_changes(&i, b, false, never),
            Ok(Ok(vec![Change::BlockerRemoved { blocker: b }]))
        );
    }
}
