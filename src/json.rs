//! The JSON shapes of CLI.md (items, claims, ops) and of exports. Scripts depend on them, so they
//! change only by adding fields.

use serde::{Deserialize, Serialize};

use crate::clock::format_rfc3339;
use crate::model::{Change, ItemView, Lease, Op};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClaimJson {
    pub holder: String,
    pub token: u64,
    pub acquired_at: String,
    pub renewed_at: String,
    pub expires_at: String,
    pub host: String,
    pub pid: Option<u32>,
}

impl From<&Lease> for ClaimJson {
    fn from(l: &Lease) -> Self {
        ClaimJson {
            holder: l.holder.clone(),
            token: l.token,
            acquired_at: format_rfc3339(l.acquired_at),
            renewed_at: format_rfc3339(l.renewed_at),
            expires_at: format_rfc3339(l.expires_at),
            host: l.host.clone(),
            pid: l.pid,
        }
    }
}

/// An item as CLI.md prints it. `blocked_by` holds numbers (local to this file); `blocked_by_ids`
/// the same blockers by ULID, which stay valid across files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ItemJson {
    pub id: String,
    pub num: u64,
    pub title: String,
    #[serde(default)]
    pub body: String,
    pub status: String,
    pub priority: u8,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub blocked_by: Vec<u64>,
    #[serde(default)]
    pub blocked_by_ids: Vec<String>,
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub claim: Option<ClaimJson>,
}

impl From<&ItemView> for ItemJson {
    fn from(v: &ItemView) -> Self {
        let i = &v.item;
        ItemJson {
            id: i.id.to_string(),
            num: i.num,
            title: i.title.clone(),
            body: i.body.clone(),
            status: i.status.as_str().to_string(),
            priority: i.priority,
            labels: i.labels.clone(),
            blocked_by: v.blocked_by_nums.clone(),
            blocked_by_ids: i.blocked_by.iter().map(|b| b.to_string()).collect(),
            version: i.version,
            created_at: format_rfc3339(i.created_at),
            updated_at: format_rfc3339(i.updated_at),
            claim: v.claim.as_ref().map(ClaimJson::from),
        }
    }
}

/// One ops-log entry, as `log --json` prints it (one per line).
#[derive(Clone, Debug, Serialize)]
pub struct OpJson<'a> {
    pub seq: u64,
    pub at: String,
    pub actor: &'a str,
    pub op: &'static str,
    pub item: String,
    pub num: Option<u64>,
    pub version_before: u64,
    pub version_after: u64,
    pub changes: &'a [Change],
}

impl<'a> OpJson<'a> {
    pub fn new(op: &'a Op, num: Option<u64>) -> Self {
        OpJson {
            seq: op.seq,
            at: format_rfc3339(op.at),
            actor: &op.actor,
            op: op.kind.as_str(),
            item: op.item.to_string(),
            num,
            version_before: op.version_before,
            version_after: op.version_after,
            changes: &op.changes,
        }
    }
}

/// The JSON Schemas of the JSON this tracker prints, by name: `item` (every command that shows or
/// changes an item), `claim` (an item's live lease) and `error` (a failure with `--json`, and an
/// MCP tool error). `docs/schemas/NAME.json` holds each, and a test keeps them in step.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    let item = serde_json::to_value(schemars::schema_for!(ItemJson)).unwrap_or_default();
    let claim = serde_json::to_value(schemars::schema_for!(ClaimJson)).unwrap_or_default();
    let error = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Error",
        "description": "A failure: printed on stderr with --json (stdout stays empty), and the \
            structured content of an MCP tool error.",
        "type": "object",
        "required": ["error"],
        "additionalProperties": false,
        "properties": {"error": {
            "type": "object",
            "required": ["kind", "code", "message"],
            "properties": {
                "kind": {"enum": ["invalid", "conflict", "not_found", "busy", "data", "io", "internal"]},
                "code": {"enum": [1, 2, 3, 4, 5, 6]},
                "message": {"type": "string"},
                "item": {"type": "integer", "minimum": 1, "description": "The item a conflict is about."},
                "holder": {"description": "The live claim on that item, if any (a claim object).", "type": "object"},
                "current": {"description": "That item as it is now (an item object).", "type": "object"}
            }
        }}
    });
    vec![("item", item), ("claim", claim), ("error", error)]
}

/// `show --json`: the item object plus `blocks`, the numbers of the items waiting for it.
pub fn detail_json(d: &crate::ItemDetail) -> serde_json::Value {
    let mut j = serde_json::to_value(ItemJson::from(&d.view)).unwrap_or_default();
    j["blocks"] = d.blocks.iter().map(|(n, _)| *n).collect::<Vec<_>>().into();
    j
}

/// `status --json`: counts by state, live claims with their heartbeat age, stale claims.
pub fn board_json(b: &crate::board::Board, now: &crate::Now) -> serde_json::Value {
    let claim = |i: &crate::Item, l: &Lease| {
        serde_json::json!({"num": i.num, "id": i.id.to_string(), "title": i.title,
            "claim": ClaimJson::from(l),
            "heartbeat_age_ms": now.wall_ms.saturating_sub(l.renewed_at)})
    };
    serde_json::json!({
        "open": b.open, "done": b.done, "cancelled": b.cancelled,
        "ready": b.ready, "blocked": b.blocked, "claimed": b.live.len(),
        "live_claims": b.live.iter().map(|(i, l)| claim(i, l)).collect::<Vec<_>>(),
        "stale_claims": b.stale.iter().map(|(i, l, _)| claim(i, l)).collect::<Vec<_>>(),
    })
}

/// A failure as data: `{"error": {"kind", "code", "message", ...}}`. A conflict over an item also
/// carries the item's number, its live lease's holder (`holder`, a claim object, when there is
/// one) and the item as it is now (`current`), so a caller can decide what to do next.
pub fn error_json(e: &crate::Error) -> serde_json::Value {
    let mut err = serde_json::json!({
        "kind": e.kind(),
        "code": e.exit_code(),
        "message": e.to_string(),
    });
    if let crate::Error::Conflict {
        current: Some(v), ..
    } = e
    {
        err["item"] = v.item.num.into();
        if let Some(claim) = &v.claim {
            err["holder"] = serde_json::to_value(ClaimJson::from(claim)).unwrap_or_default();
        }
        err["current"] = serde_json::to_value(ItemJson::from(&**v)).unwrap_or_default();
    }
    serde_json::json!({ "error": err })
}

/// The first line (JSON Lines) or the opening fields (JSON) of an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHeader {
    pub format: String,
    pub format_version: u64,
    pub exported_at: String,
    pub last_op_seq: u64,
    pub item_count: u64,
    /// The last fencing token handed out; an import raises its tracker's token floor to it.
    #[serde(default)]
    pub last_token: u64,
}

pub const EXPORT_FORMAT: &str = "tracker-export";
