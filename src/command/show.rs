//! `show`: one item, its claim, blockers and latest ops.

use serde::Deserialize;

use super::item_ref;
use crate::error::Result;
use crate::store::Storage;
use crate::tracker::{ItemDetail, ItemRef, Tracker};

/// Which item to show.
#[derive(Clone, Debug)]
pub struct Request {
    /// The item.
    pub item: ItemRef,
}

/// The JSON arguments of `show` (and of every tool that names one item and nothing else).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "ItemArgs")]
pub struct Args {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
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
        })
    }
}

/// The item in detail.
///
/// # Errors
///
/// As [`Tracker::show`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: Request) -> Result<ItemDetail> {
    t.show(&r.item)
}
