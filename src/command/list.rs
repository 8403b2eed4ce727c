//! `list`: items by status, readiness, claim, label or holder.

use serde::Deserialize;

use super::{item_type, status_filter, Spelling};
use crate::error::Result;
use crate::model::ItemView;
use crate::store::Storage;
use crate::tracker::{ListQuery, Tracker};

/// Which items to list: the library's query, whose status is already known.
pub type Request = ListQuery;

/// The JSON arguments of `list`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "ListArgs")]
pub struct Args {
    /// open (the default), done, cancelled or all.
    status: Option<String>,
    /// Only items ready to be claimed: open, not blocked, no live claim; best first.
    ready: Option<bool>,
    /// Only items with a live claim.
    claimed: Option<bool>,
    /// Only items with this label.
    label: Option<String>,
    /// Only items claimed by this holder.
    holder: Option<String>,
    /// At most this many items.
    limit: Option<usize>,
    /// Only items of this type: task, bug, feature, chore or epic.
    #[serde(rename = "type")]
    item_type: Option<String>,
    /// Only items whose title or body contains this text (ignoring case).
    search: Option<String>,
}

impl Args {
    /// The request these arguments make.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for an unknown status or type.
    pub fn lower(self) -> Result<Request> {
        let item_type = self
            .item_type
            .as_deref()
            .map(|ty| item_type(Spelling::Json, "type", ty))
            .transpose()?;
        request(
            Spelling::Json,
            self.status.as_deref().unwrap_or("open"),
            ListQuery {
                ready: self.ready.unwrap_or(false),
                claimed: self.claimed.unwrap_or(false),
                label: self.label,
                holder: self.holder,
                limit: self.limit,
                status: None,
                item_type,
                search: self.search,
            },
        )
    }
}

/// `q` with the status filter `status` (a status or `all`), given for the field `status`.
///
/// # Errors
///
/// [`Error::Invalid`](crate::Error::Invalid) for an unknown status.
pub fn request(spelling: Spelling, status: &str, q: ListQuery) -> Result<Request> {
    Ok(ListQuery {
        status: status_filter(spelling, "status", status)?,
        ..q
    })
}

/// The items, best first for `ready`, else by number.
///
/// # Errors
///
/// As [`Tracker::list`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: &Request) -> Result<Vec<ItemView>> {
    t.list(r)
}

/// [`exec`], handing each item to `f` as it is read, in flat memory.
///
/// # Errors
///
/// As [`Tracker::list_each`], and whatever `f` returns.
pub fn each<S: Storage>(
    t: &Tracker<S>,
    r: &Request,
    f: &mut dyn FnMut(ItemView) -> Result<()>,
) -> Result<()> {
    t.list_each(r, f)
}
