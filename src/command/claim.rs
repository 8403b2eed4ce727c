//! `claim`: take a lease on one item, or on the best ready one (`--next`, `claim_next`),
//! at once or waiting for it.

use std::time::Duration;

use serde::Deserialize;

use super::{duration, guard, item_ref, lease_ttl, Spelling};
use crate::durations::Use;
use crate::error::Result;
use crate::model::ItemView;
use crate::store::Storage;
use crate::tracker::{ClaimOptions, Guard, ItemRef, Tracker};

/// Which item a claim is for.
#[derive(Clone, Debug)]
pub enum Which {
    /// This one.
    Item(ItemRef),
    /// The best ready one (open, unblocked, unclaimed; best priority, then oldest), with this
    /// label if one is given.
    Next {
        /// Only items with this label.
        label: Option<String>,
    },
}

/// A claim, validated.
#[derive(Clone, Debug)]
pub struct Request {
    /// Which item.
    pub which: Which,
    /// The lease length; `None` is `$TRACKER_TTL`, else the tracker's default-ttl
    /// ([`lease_ttl`]).
    pub ttl: Option<Duration>,
    /// Keep retrying for this long while the item is held (or nothing is ready).
    pub wait: Option<Duration>,
    /// Accepted for older callers; changes nothing.
    pub steal_stale: bool,
    /// Take the item even from a live holder (an eviction).
    pub force: bool,
    /// Tie the lease to this process (`claim --pid`; an MCP server ties its claims to itself).
    pub pid: Option<u32>,
    /// With `pid`: the process group of the work it started (`run`).
    pub pgid: Option<u32>,
    /// Preconditions.
    pub guard: Guard,
}

impl Request {
    /// This claim as one that arrived at `arrived`: its wait counts from then, not from when it
    /// got its turn to run (a long-lived server queues waiting claims past a bound), so a client
    /// is answered within the wait it asked for.
    pub fn waiting_since(self, arrived: std::time::Instant) -> Request {
        Request {
            wait: self.wait.map(|w| w.saturating_sub(arrived.elapsed())),
            ..self
        }
    }

    /// A plain claim of `which`: the default lease length, no wait, tied to no process.
    pub fn of(which: Which) -> Request {
        Request {
            which,
            ttl: None,
            wait: None,
            steal_stale: false,
            force: false,
            pid: None,
            pgid: None,
            guard: Guard::default(),
        }
    }
}

/// The JSON arguments of the `claim` tool: one item.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "ClaimArgs")]
pub struct Args {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
    /// Lease length like "15m" or "2h" (default: $TRACKER_TTL, else the tracker's default-ttl, else 15m).
    ttl: Option<String>,
    /// Take the item from a holder whose process is provably gone.
    steal_stale: Option<bool>,
    /// Take the item from a live holder (recorded as an eviction).
    force: Option<bool>,
    /// Keep retrying for this long (like "30s") while another holder has it.
    wait: Option<String>,
    if_version: Option<u64>,
    token: Option<u64>,
    idempotency_key: Option<String>,
}

impl Args {
    /// The request these arguments make.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for a duration out of range or an item that is
    /// not a reference.
    pub fn lower(self) -> Result<Request> {
        let ttl = duration(Spelling::Json, "ttl", self.ttl.as_deref(), Use::Ttl)?;
        let wait = duration(Spelling::Json, "wait", self.wait.as_deref(), Use::Wait)?;
        Ok(Request {
            ttl,
            wait,
            steal_stale: self.steal_stale.unwrap_or(false),
            force: self.force.unwrap_or(false),
            guard: guard(self.if_version, self.token, self.idempotency_key),
            ..Request::of(Which::Item(item_ref(&self.item)?))
        })
    }
}

/// The JSON arguments of the `claim_next` tool: the best ready item.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "ClaimNextArgs")]
pub struct NextArgs {
    /// Only items with this label.
    label: Option<String>,
    /// Lease length like "15m" (default: $TRACKER_TTL, else the tracker's default-ttl, else 15m).
    ttl: Option<String>,
    /// Keep retrying for this long (like "30s") while nothing is ready.
    wait: Option<String>,
    idempotency_key: Option<String>,
}

impl NextArgs {
    /// The request these arguments make.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for a duration out of range.
    pub fn lower(self) -> Result<Request> {
        let ttl = duration(Spelling::Json, "ttl", self.ttl.as_deref(), Use::Ttl)?;
        let wait = duration(Spelling::Json, "wait", self.wait.as_deref(), Use::Wait)?;
        Ok(Request {
            ttl,
            wait,
            guard: guard(None, None, self.idempotency_key),
            ..Request::of(Which::Next { label: self.label })
        })
    }
}

/// Makes the claim; a waiting one gives up as soon as `stopped()` says so (a cancelled
/// request, a client that has gone).
///
/// # Errors
///
/// As [`Tracker::claim`], [`Tracker::claim_next`] and [`Tracker::claim_waiting_unless`].
pub fn exec<S: Storage>(
    t: &Tracker<S>,
    r: Request,
    stopped: &dyn Fn() -> bool,
) -> Result<ItemView> {
    let opts = ClaimOptions {
        ttl: lease_ttl(t, r.ttl)?,
        steal_stale: r.steal_stale,
        force: r.force,
        pid: r.pid,
        pgid: r.pgid,
        guard: r.guard,
    };
    match (r.wait, &r.which) {
        (Some(w), Which::Item(item)) => t.claim_waiting_unless(Some(item), None, &opts, w, stopped),
        (Some(w), Which::Next { label }) => {
            t.claim_waiting_unless(None, label.as_deref(), &opts, w, stopped)
        }
        (None, Which::Item(item)) => t.claim(item, &opts),
        (None, Which::Next { label }) => t.claim_next(label.as_deref(), &opts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Found by a hostile test: 120 claims waiting 15 s on one item, 64 run at once, and the
    /// last was answered 30.8 s after it was sent. A wait counts from the request's arrival.
    #[test]
    fn a_wait_counts_from_the_arrival_of_the_request() {
        let Some(arrived) = Instant::now().checked_sub(Duration::from_secs(2)) else {
            return;
        };
        let r = Request {
            wait: Some(Duration::from_secs(5)),
            ..Request::of(Which::Next { label: None })
        };
        let left = r.waiting_since(arrived).wait.unwrap();
        assert!(left <= Duration::from_secs(3), "{left:?}");
        assert!(left >= Duration::from_secs(1), "{left:?}");
        let late = Request {
            wait: Some(Duration::from_secs(1)),
            ..Request::of(Which::Next { label: None })
        };
        assert_eq!(late.waiting_since(arrived).wait, Some(Duration::ZERO));
        let no_wait = Request::of(Which::Next { label: None });
        assert_eq!(no_wait.waiting_since(arrived).wait, None);
    }
}
