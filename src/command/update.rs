//! `update`: change an item's fields.

use serde::Deserialize;

use super::{guard, item_ref, item_type, priority, status_value, Spelling};
use crate::error::{Error, Result};
use crate::model::{ItemView, Patch};
use crate::store::Storage;
use crate::tracker::{Guard, ItemRef, Tracker};

/// A change of fields, validated.
#[derive(Clone, Debug)]
pub struct Request {
    /// The item.
    pub item: ItemRef,
    /// What changes. [`Request::new`] refuses an empty one; `edit` may send one (nothing is
    /// written then).
    pub patch: Patch,
    /// Preconditions.
    pub guard: Guard,
    /// Close it (a closing status) even while it has open children.
    pub force: bool,
}

/// The fields an update can change, by their JSON names, in the order messages list them.
pub const FIELDS: [&str; 9] = [
    "title",
    "body",
    "priority",
    "status",
    "add_labels",
    "remove_labels",
    "type",
    "parent",
    "no_parent",
];

impl Request {
    /// The update of `item` by `patch`, refused when the patch changes nothing, naming the
    /// fields that would the transport's way.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`]: nothing to update.
    pub fn new(spelling: Spelling, item: ItemRef, patch: Patch, guard: Guard) -> Result<Request> {
        if patch == Patch::default() {
            let names = FIELDS.map(|f| spelling.name(f));
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            return Err(Error::nothing_to_update(&names));
        }
        Ok(Request {
            item,
            patch,
            guard,
            force: false,
        })
    }
}

/// The JSON arguments of `update`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "UpdateArgs")]
pub struct Args {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
    title: Option<String>,
    body: Option<String>,
    /// 0 (highest) to 4.
    priority: Option<u8>,
    /// open, done or cancelled; closing also ends the lease.
    status: Option<String>,
    add_labels: Option<Vec<String>>,
    remove_labels: Option<Vec<String>>,
    /// Refuse (conflict, code 3) unless the item is at this version.
    if_version: Option<u64>,
    /// The fencing token of your lease, if you hold one.
    token: Option<u64>,
    idempotency_key: Option<String>,
    /// task, bug, feature, chore or epic.
    #[serde(rename = "type")]
    item_type: Option<String>,
    /// Make it part of this item (a parent chain never loops: code 3).
    parent: Option<String>,
    /// Make it part of no item.
    no_parent: Option<bool>,
    /// With a closing status: why it closed.
    reason: Option<String>,
    /// With a closing status: close it even while it has open children.
    force: Option<bool>,
}

impl Args {
    /// The request these arguments make.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a priority out of range, an unknown status or type, an item or
    /// parent that is not a reference, both `parent` and `no_parent`, or nothing to update.
    pub fn lower(self) -> Result<Request> {
        let priority = priority(Spelling::Json, "priority", self.priority)?;
        let item = item_ref(&self.item)?;
        let status = self
            .status
            .as_deref()
            .map(|s| status_value(Spelling::Json, "status", s))
            .transpose()?;
        let patch = Patch {
            title: self.title,
            body: self.body,
            priority,
            status,
            add_labels: self.add_labels.unwrap_or_default(),
            remove_labels: self.remove_labels.unwrap_or_default(),
            item_type: self
                .item_type
                .as_deref()
                .map(|ty| item_type(Spelling::Json, "type", ty))
                .transpose()?,
            parent: parent_change(
                Spelling::Json,
                self.parent.as_deref(),
                self.no_parent.unwrap_or(false),
            )?,
            close_reason: self.reason,
        };
        let g = guard(self.if_version, self.token, self.idempotency_key);
        let mut r = Request::new(Spelling::Json, item, patch, g)?;
        r.force = self.force.unwrap_or(false);
        Ok(r)
    }
}

/// What `parent`/`no_parent` (`--parent`/`--no-parent`) ask of the item's parent: a new one
/// (`Some(Some(..))`), none (`Some(None)`), or no change.
///
/// # Errors
///
/// [`Error::Invalid`] for both, or a parent that is not an item reference.
pub fn parent_change(
    spelling: Spelling,
    parent: Option<&str>,
    no_parent: bool,
) -> Result<Option<Option<ItemRef>>> {
    match (parent, no_parent) {
        (Some(_), true) => Err(Error::Invalid(format!(
            "give {} or {}, not both",
            spelling.name("parent"),
            spelling.name("no_parent")
        ))),
        (Some(p), false) => Ok(Some(Some(item_ref(p)?))),
        (None, true) => Ok(Some(None)),
        (None, false) => Ok(None),
    }
}

/// Makes the change.
///
/// # Errors
///
/// As [`Tracker::update_with`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: Request) -> Result<ItemView> {
    t.update_with(&r.item, r.patch, &r.guard, r.force)
}
