//! `log`: the ops log, oldest first.

use serde::Deserialize;

use super::item_ref;
use crate::error::Result;
use crate::model::Op;
use crate::store::Storage;
use crate::tracker::{ItemRef, Tracker};

/// Which ops, validated.
#[derive(Clone, Debug)]
pub struct Request {
    /// Only this item's ops.
    pub item: Option<ItemRef>,
    /// Only ops with this sequence number or later.
    pub since: u64,
    /// At most this many ops.
    pub limit: Option<usize>,
}

/// The JSON arguments of `log`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "LogArgs")]
pub struct Args {
    /// Only this item's ops.
    item: Option<String>,
    /// Only ops with this sequence number or later.
    since: Option<u64>,
    /// At most this many ops.
    limit: Option<usize>,
}

impl Args {
    /// The request these arguments make.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for an item that is not a reference.
    pub fn lower(self) -> Result<Request> {
        Ok(Request {
            item: self.item.as_deref().map(item_ref).transpose()?,
            since: self.since.unwrap_or(0),
            limit: self.limit,
        })
    }
}

/// The ops, each with its item's number (`None` if the item is gone).
///
/// # Errors
///
/// As [`Tracker::log`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: &Request) -> Result<Vec<(Op, Option<u64>)>> {
    t.log(r.item.as_ref(), r.since, r.limit)
}

/// [`exec`], handing each op to `f` as it is read, in flat memory.
///
/// # Errors
///
/// As [`Tracker::log_each`], and whatever `f` returns.
pub fn each<S: Storage>(
    t: &Tracker<S>,
    r: &Request,
    f: &mut dyn FnMut(Op, Option<u64>) -> Result<()>,
) -> Result<()> {
    t.log_each(r.item.as_ref(), r.since, r.limit, f)
}
