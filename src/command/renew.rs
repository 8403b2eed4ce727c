//! `renew` (`heartbeat`): extend the caller's lease.

use std::time::Duration;

use serde::Deserialize;

use super::{duration, guard, item_ref, Spelling};
use crate::durations::Use;
use crate::error::Result;
use crate::model::ItemView;
use crate::store::Storage;
use crate::tracker::{Guard, ItemRef, Tracker};

/// A renewal, validated.
#[derive(Clone, Debug)]
pub struct Request {
    /// The item.
    pub item: ItemRef,
    /// The new lease length from now; `None` is the lease's own TTL.
    pub ttl: Option<Duration>,
    /// Preconditions: the token of the lease being renewed, usually.
    pub guard: Guard,
}

/// The JSON arguments of `renew`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "RenewArgs")]
pub struct Args {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
    /// New lease length from now, like "15m" (default: the lease's own TTL).
    ttl: Option<String>,
    /// The fencing token your claim returned.
    token: Option<u64>,
    if_version: Option<u64>,
    idempotency_key: Option<String>,
}

impl Args {
    /// The request these arguments make.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for a TTL out of range or an item that is not
    /// a reference.
    pub fn lower(self) -> Result<Request> {
        let ttl = duration(Spelling::Json, "ttl", self.ttl.as_deref(), Use::Ttl)?;
        Ok(Request {
            item: item_ref(&self.item)?,
            ttl,
            guard: guard(self.if_version, self.token, self.idempotency_key),
        })
    }
}

/// Extends the lease.
///
/// # Errors
///
/// As [`Tracker::renew`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: Request) -> Result<ItemView> {
    t.renew(&r.item, r.ttl, &r.guard)
}
