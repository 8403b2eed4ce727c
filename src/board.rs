//! The status board: counts by state, live claims with their heartbeat, and stale claims.

use std::collections::BTreeSet;

use crate::error::Result;
use crate::model::{Item, Lease, Status};
use crate::rules::LeaseState;
use crate::store::{Counter, Storage};
use crate::tracker::Tracker;

/// The status board ([`Tracker::board`]), from one snapshot.
#[derive(Clone, Debug, Default)]
pub struct Board {
    /// Items open (ready, blocked or claimed).
    pub open: u64,
    /// Items done.
    pub done: u64,
    /// Items cancelled.
    pub cancelled: u64,
    /// Open, unblocked and not claimed.
    pub ready: u64,
    /// Open but waiting on an open item.
    pub blocked: u64,
    /// Live leases with their items, by item number; `renewed_at` is each holder's heartbeat.
    pub live: Vec<(Item, Lease)>,
    /// Expired leases, and leases whose process is gone, by item number: what any claim takes
    /// over.
    pub stale: Vec<(Item, Lease, LeaseState)>,
}

impl<S: Storage> Tracker<S> {
    /// Counts by state, live claims with their heartbeat, and stale claims.
    pub fn board(&self) -> Result<Board> {
        self.store.read(|t| {
            let now = self.now_in(t)?;
            let mut b = Board::default();
            let counted = t.format_version()?.is_some_and(|v| v >= 2);
            for (status, slot) in [
                (Status::Open, &mut b.open),
                (Status::Done, &mut b.done),
                (Status::Cancelled, &mut b.cancelled),
            ] {
                if counted {
                    // Format 2 keeps the counts beside the indexes, in every write.
                    *slot = t.counter(Counter::Items(status))?;
                    continue;
                }
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
            if counted {
                unblocked = t.ready_count()?;
                // The claimed items among the ready queue: few, checked one by one.
                for (item, _) in &b.live {
                    if crate::txn::is_ready(t, item)? {
                        claimed_ready += 1;
                    }
                }
            } else {
                t.visit_ready(&mut |id| {
                    unblocked += 1;
                    if live_ids.contains(&id) {
                        claimed_ready += 1;
                    }
                    Ok(true)
                })?;
            }
            b.ready = unblocked.saturating_sub(claimed_ready);
            b.blocked = b.open.saturating_sub(unblocked);
            b.live.sort_by_key(|(i, _)| i.num);
            b.stale.sort_by_key(|(i, _, _)| i.num);
            Ok(b)
        })
    }
}
