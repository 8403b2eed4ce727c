//! `comment`: append a note to an item. It changes no field, so the item's version stays and
//! nobody's `--if-version` breaks.

use serde::Deserialize;

use super::{guard, item_ref};
use crate::error::Result;
use crate::model::ItemView;
use crate::store::Storage;
use crate::tracker::{ItemRef, Tracker};

/// A comment, validated as far as it can be without the tracker (its length is checked where it
/// is written, with the item's comment count).
#[derive(Clone, Debug)]
pub struct Request {
    /// The item.
    pub item: ItemRef,
    /// What it says.
    pub text: String,
    /// A repeat with the same key returns the first result and adds nothing.
    pub idempotency_key: Option<String>,
}

/// The JSON arguments of `comment`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "CommentArgs")]
pub struct Args {
    /// The item: its number ("42" or "#42") or a unique ULID prefix.
    item: String,
    /// The comment (at most 64 KiB).
    text: String,
    /// A repeat with the same key returns the first result and adds nothing.
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
            text: self.text,
            idempotency_key: self.idempotency_key,
        })
    }
}

/// Appends the comment; the item comes back with it.
///
/// # Errors
///
/// As [`Tracker::comment`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: Request) -> Result<ItemView> {
    t.comment(&r.item, &r.text, &guard(None, None, r.idempotency_key))
}
