//! `new`: create an item.

use serde::Deserialize;

use super::{guard, item_ref, item_refs, item_type, priority, Spelling};
use crate::error::Result;
use crate::model::{ItemType, ItemView, NewItem};
use crate::store::Storage;
use crate::tracker::{Guard, ItemRef, Tracker};

/// A new item, validated.
#[derive(Clone, Debug)]
pub struct Request {
    /// Title, body, priority (already in range) and labels.
    pub new: NewItem,
    /// The items it waits for.
    pub blocked_by: Vec<ItemRef>,
    /// A repeat with the same key returns the first item and creates nothing.
    pub idempotency_key: Option<String>,
}

/// The JSON arguments of `new`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "NewArgs")]
pub struct Args {
    /// One line saying what is to be done.
    title: String,
    /// Details, any length up to 1 MiB.
    body: Option<String>,
    /// 0 (highest) to 4; 2 if not given.
    priority: Option<u8>,
    /// Labels to put on the item.
    labels: Option<Vec<String>>,
    /// Items this one waits for ("42", "#42" or a ULID prefix).
    blocked_by: Option<Vec<String>>,
    /// A repeat with the same key returns the first item and creates nothing.
    idempotency_key: Option<String>,
    /// task (the default), bug, feature, chore or epic.
    #[serde(rename = "type")]
    item_type: Option<String>,
    /// The item this one is part of ("42", "#42" or a ULID prefix).
    parent: Option<String>,
}

impl Args {
    /// The request these arguments make.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for a priority out of range, an unknown type,
    /// or a blocker or parent that is not an item reference.
    pub fn lower(self) -> Result<Request> {
        let priority = priority(Spelling::Json, "priority", self.priority)?;
        Ok(Request {
            blocked_by: item_refs(&self.blocked_by.unwrap_or_default())?,
            new: NewItem {
                title: self.title,
                body: self.body.unwrap_or_default(),
                priority,
                labels: self.labels.unwrap_or_default(),
                item_type: match &self.item_type {
                    Some(ty) => item_type(Spelling::Json, "type", ty)?,
                    None => ItemType::Task,
                },
                parent: self.parent.as_deref().map(item_ref).transpose()?,
            },
            idempotency_key: self.idempotency_key,
        })
    }
}

/// Creates the item.
///
/// # Errors
///
/// As [`Tracker::new_item`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: Request) -> Result<ItemView> {
    let g: Guard = guard(None, None, r.idempotency_key);
    t.new_item(r.new, &r.blocked_by, &g)
}
