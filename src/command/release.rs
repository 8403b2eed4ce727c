//! `release`: give the caller's lease back without finishing the item.

use serde::Deserialize;

use super::{guard, item_ref};
use crate::error::Result;
use crate::model::ItemView;
use crate::store::Storage;
use crate::tracker::{Guard, ItemRef, Tracker};

/// A release, validated.
#[derive(Clone, Debug)]
pub struct Request {
    /// The item.
    pub item: ItemRef,
    /// Preconditions: the lease's token, usually.
    pub guard: Guard,
}

/// The JSON arguments of `release`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "LeaseArgs")]
pub struct Args {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
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
    /// [`Error::Invalid`](crate::Error::Invalid) for an item that is not a reference.
    pub fn lower(self) -> Result<Request> {
        Ok(Request {
            item: item_ref(&self.item)?,
            guard: guard(self.if_version, self.token, self.idempotency_key),
        })
    }
}

/// Gives the lease back.
///
/// # Errors
///
/// As [`Tracker::release`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: Request) -> Result<ItemView> {
    t.release(&r.item, &r.guard)
}
