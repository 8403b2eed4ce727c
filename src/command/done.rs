//! `done`: mark an item done and drop its lease.

use serde::Deserialize;

use super::{guard, item_ref};
use crate::error::Result;
use crate::model::ItemView;
use crate::store::Storage;
use crate::tracker::{Guard, ItemRef, Tracker};

/// A `done`, validated.
#[derive(Clone, Debug)]
pub struct Request {
    /// The item.
    pub item: ItemRef,
    /// Finish it even while another holder has a live lease.
    pub force: bool,
    /// Why it is done: its close reason.
    pub reason: Option<String>,
    /// Preconditions: the lease's token, usually.
    pub guard: Guard,
}

/// The JSON arguments of `done`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "DoneArgs")]
pub struct Args {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
    /// The fencing token your claim returned.
    token: Option<u64>,
    if_version: Option<u64>,
    /// Finish it even though another holder has a live lease.
    force: Option<bool>,
    idempotency_key: Option<String>,
    /// Why it is done (its close_reason).
    reason: Option<String>,
}

impl Args {
    /// The request these arguments make.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for an item that is not a reference.
    pub fn lower(self) -> Result<Request> {
        Ok(Request {
            item: item_ref(&self.item)?,
            force: self.force.unwrap_or(false),
            reason: self.reason,
            guard: guard(self.if_version, self.token, self.idempotency_key),
        })
    }
}

/// Marks the item done.
///
/// # Errors
///
/// As [`Tracker::done_with_reason`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: Request) -> Result<ItemView> {
    t.done_with_reason(&r.item, &r.guard, r.force, r.reason.as_deref())
}
