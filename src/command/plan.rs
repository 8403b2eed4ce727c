//! `new --plan FILE|-` and the MCP tool `plan`: many new items in one transaction, all or none.
//!
//! A plan is `{"items": [{"key": "k1", "title": "...", "type": "epic", "parent": "k0", ...}]}`:
//! keys name entries of the same plan; a parent or blocker that is no key names an existing
//! item (`12`, `"#12"` or a ULID prefix). Each entry is read on its own, so a fault names its
//! entry (`items[3] (key "k3")`).

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use super::item_type;
use super::Spelling;
use crate::error::{Error, Result};
use crate::model::ItemType;
use crate::rules::plan::{entry_name, PlanEntry, PlanRef, MAX_PLAN_BYTES, MAX_PLAN_ITEMS};
use crate::store::{PlannedItem, Storage};
use crate::tracker::{Guard, Tracker};

/// A plan, its entries read (their fields are checked by [`Tracker::plan`]).
#[derive(Clone, Debug)]
pub struct Request {
    /// The entries, in plan order.
    pub entries: Vec<PlanEntry>,
    /// A repeat with the same key and plan returns what the first call made.
    pub idempotency_key: Option<String>,
}

/// The JSON arguments of the tool `plan`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "PlanArgs")]
pub struct Args {
    /// The new items; parents and blockers name other entries by key, or existing items.
    #[schemars(with = "Vec<Entry>")]
    items: Vec<Value>,
    /// A repeat with the same key and plan returns what the first call made and creates nothing.
    idempotency_key: Option<String>,
}

impl Args {
    /// The request these arguments make.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the entry that does not fit.
    pub fn lower(self) -> Result<Request> {
        Ok(Request {
            entries: entries(self.items)?,
            idempotency_key: self.idempotency_key,
        })
    }
}

/// A plan document as `new --plan` reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    items: Vec<Value>,
}

/// One entry of a plan.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "PlanItem")]
pub struct Entry {
    /// Names this entry within the plan; other entries' parent and blocked_by use it.
    key: String,
    /// One line saying what is to be done.
    title: String,
    /// Details, any length up to 1 MiB.
    body: Option<String>,
    /// 0 (highest) to 4; 2 if not given.
    priority: Option<u8>,
    /// Labels to put on the item.
    labels: Option<Vec<String>>,
    /// task (the default), bug, feature, chore or epic.
    #[serde(rename = "type")]
    item_type: Option<String>,
    /// The item this one is part of: a key of this plan, or an existing item (12, "#12", a ULID prefix).
    parent: Option<Reference>,
    /// Items this one waits for: keys of this plan, or existing items.
    blocked_by: Option<Vec<Reference>>,
}

/// A key, or an existing item by number or ULID.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum Reference {
    /// A number.
    Num(u64),
    /// A key, `#N` or a ULID (prefix).
    Text(String),
}

/// Reads a plan document (`new --plan`): `{"items": [...]}`, at most [`MAX_PLAN_BYTES`].
///
/// # Errors
///
/// [`Error::Invalid`] for a document that is too large or not a plan, or an entry that does
/// not fit (naming it).
pub fn document(bytes: &[u8]) -> Result<Vec<PlanEntry>> {
    if bytes.len() > MAX_PLAN_BYTES {
        return Err(too_large());
    }
    let doc: Document = serde_json::from_slice(bytes).map_err(|e| {
        Error::Invalid(format!(
            "the plan is not a plan document ({e}); give {{\"items\": [{{\"key\": ..., \
             \"title\": ...}}, ...]}}"
        ))
    })?;
    entries(doc.items)
}

/// The error for a plan document over [`MAX_PLAN_BYTES`].
pub fn too_large() -> Error {
    Error::Invalid(format!(
        "the plan is larger than {} MiB; split it",
        MAX_PLAN_BYTES >> 20
    ))
}

/// The entries of a plan, each read on its own so that a fault names it.
///
/// # Errors
///
/// [`Error::Invalid`] naming the first entry that does not fit.
pub fn entries(items: Vec<Value>) -> Result<Vec<PlanEntry>> {
    if items.len() > MAX_PLAN_ITEMS {
        return Err(Error::Invalid(format!(
            "the plan has {} items; a plan holds at most {MAX_PLAN_ITEMS}, so split it",
            items.len()
        )));
    }
    let mut read = Vec::with_capacity(items.len());
    for (i, v) in items.into_iter().enumerate() {
        let name = match v.get("key").and_then(Value::as_str) {
            Some(k) => entry_name(i, k),
            None => format!("items[{i}]"),
        };
        let e: Entry =
            serde_json::from_value(v).map_err(|e| Error::Invalid(format!("{name}: {e}")))?;
        read.push((name, e));
    }
    let keys: HashSet<String> = read.iter().map(|(_, e)| e.key.clone()).collect();
    let reference = |name: &str, r: &Reference| match r {
        Reference::Num(n) => Ok(PlanRef::Item(crate::model::ItemRef::Num(*n))),
        Reference::Text(s) => {
            crate::plan::plan_ref(s, &keys).map_err(|why| Error::Invalid(format!("{name}: {why}")))
        }
    };
    let mut out = Vec::with_capacity(read.len());
    for (name, e) in read {
        let item_type = match &e.item_type {
            Some(ty) => item_type(Spelling::Json, "type", ty)
                .map_err(|err| Error::Invalid(format!("{name}: {}", message(&err))))?,
            None => ItemType::Task,
        };
        out.push(PlanEntry {
            parent: e.parent.as_ref().map(|r| reference(&name, r)).transpose()?,
            blocked_by: e
                .blocked_by
                .iter()
                .flatten()
                .map(|r| reference(&name, r))
                .collect::<Result<_>>()?,
            key: e.key,
            title: e.title,
            body: e.body.unwrap_or_default(),
            priority: e.priority,
            labels: e.labels.unwrap_or_default(),
            item_type,
        });
    }
    Ok(out)
}

fn message(e: &Error) -> String {
    match e {
        Error::Invalid(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Makes the plan's items.
///
/// # Errors
///
/// As [`Tracker::plan`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: Request) -> Result<Vec<PlannedItem>> {
    let g: Guard = super::guard(None, None, r.idempotency_key);
    t.plan(&r.entries, &g)
}
