//! `dep add` and `dep rm` (`dep_add`, `dep_rm`): what an item waits for.

use serde::Deserialize;

use super::{guard, item_ref};
use crate::error::Result;
use crate::model::ItemView;
use crate::store::Storage;
use crate::tracker::{Guard, ItemRef, Tracker};

/// Whether the dependency is made or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// `item` waits for `blocker` (a cycle is refused).
    Add,
    /// `item` no longer waits for `blocker`.
    Remove,
}

/// A change of dependencies, validated.
#[derive(Clone, Debug)]
pub struct Request {
    /// Made or removed.
    pub edit: Edit,
    /// The item that waits.
    pub item: ItemRef,
    /// The item it waits for.
    pub blocker: ItemRef,
    /// Preconditions.
    pub guard: Guard,
}

/// The JSON arguments of `dep_add` and `dep_rm`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "DepArgs")]
pub struct Args {
    /// The item that waits.
    item: String,
    /// The item it waits for.
    blocker: String,
    token: Option<u64>,
    if_version: Option<u64>,
    idempotency_key: Option<String>,
}

impl Args {
    /// The request these arguments make for `edit`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for an item that is not a reference.
    pub fn lower(self, edit: Edit) -> Result<Request> {
        Ok(Request {
            edit,
            item: item_ref(&self.item)?,
            blocker: item_ref(&self.blocker)?,
            guard: guard(self.if_version, self.token, self.idempotency_key),
        })
    }
}

/// Makes or removes the dependency; returns the item that waits.
///
/// # Errors
///
/// As [`Tracker::dep_add`] and [`Tracker::dep_remove`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: Request) -> Result<ItemView> {
    match r.edit {
        Edit::Add => t.dep_add(&r.item, &r.blocker, &r.guard),
        Edit::Remove => t.dep_remove(&r.item, &r.blocker, &r.guard),
    }
}
