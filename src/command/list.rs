//! `list`: items by status, readiness, claim, label or holder.

use serde::Deserialize;

use super::{item_type, status_filter, Spelling};
use crate::error::{Error, Result};
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
    /// Only items whose title, body or comments contain this text (ignoring case).
    search: Option<String>,
    /// Only the children of this item ("42", "#42" or a ULID prefix).
    parent: Option<String>,
    /// With parent: every item under it, at any depth, not only its children.
    descendants: Option<bool>,
}

impl Args {
    /// The request these arguments make.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for an unknown status or type, or a parent
    /// that is not an item reference.
    pub fn lower(self) -> Result<Request> {
        let item_type = self
            .item_type
            .as_deref()
            .map(|ty| item_type(Spelling::Json, "type", ty))
            .transpose()?;
        if self.descendants == Some(true) && self.parent.is_none() {
            return Err(Error::bad_field(
                "descendants",
                "only with a parent, whose descendants it lists",
            ));
        }
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
                parent: self.parent.as_deref().map(super::item_ref).transpose()?,
                descendants: self.descendants.unwrap_or(false),
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

/// `items` in tree order (`list --tree`): each item followed by its children among them, by
/// number, at one more depth; an item whose parent is not among them is a root (depth 0).
pub fn tree(items: Vec<ItemView>) -> Vec<(usize, ItemView)> {
    use std::collections::{BTreeMap, HashSet};
    let ids: HashSet<_> = items.iter().map(|v| v.item.id).collect();
    let mut roots = Vec::new();
    let mut children: BTreeMap<ulid::Ulid, Vec<ItemView>> = BTreeMap::new();
    for v in items {
        match v.item.parent.filter(|p| ids.contains(p)) {
            Some(p) => children.entry(p).or_default().push(v),
            None => roots.push(v),
        }
    }
    roots.sort_by_key(|v| v.item.num);
    let mut out = Vec::new();
    // Depth first, children by number; the stack holds what is still to print, last first.
    let mut stack: Vec<(usize, ItemView)> = roots.into_iter().rev().map(|v| (0, v)).collect();
    while let Some((depth, v)) = stack.pop() {
        if let Some(mut kids) = children.remove(&v.item.id) {
            kids.sort_by_key(|k| std::cmp::Reverse(k.item.num));
            stack.extend(kids.into_iter().map(|k| (depth + 1, k)));
        }
        out.push((depth, v));
    }
    out
}
