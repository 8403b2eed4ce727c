//! The JSON this tracker prints, one type per shape: items, claims, ops, the board, reports,
//! exports and errors. Scripts and agents depend on them, so they change only by adding fields.
//! The CLI's `--json` and the MCP server's structured results are built from these types, and
//! [`schemas`] derives the JSON Schemas shipped in `docs/schemas` from the same types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::clock::format_rfc3339;
use crate::metrics::Metrics;
use crate::model::{Change, ItemView, Lease, Op};

/// A live lease on an item, as printed under an item's `claim`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimJson {
    /// Who holds the lease (`--as`, `TRACKER_AS`, or `user@host/tty`).
    pub holder: String,
    /// The fencing token of this acquisition: pass it with `--token` on every later step.
    #[schemars(range(min = 1))]
    pub token: u64,
    /// When this holder took the lease (RFC 3339, UTC).
    #[schemars(extend("format" = "date-time"))]
    pub acquired_at: String,
    /// The last claim or renewal.
    #[schemars(extend("format" = "date-time"))]
    pub renewed_at: String,
    /// When the lease ends unless renewed.
    #[schemars(extend("format" = "date-time"))]
    pub expires_at: String,
    /// The host the holder runs on.
    pub host: String,
    /// The process the lease is tied to (`run`, `claim --pid`, an MCP server), if any.
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

/// An item: what `new`, `claim`, `update`, `renew`, `release`, `done`, `dep add/rm` and `run`
/// print, one element of `list`, and one item of an export. `blocked_by` holds numbers (local to
/// this tracker); `blocked_by_ids` the same blockers by ULID, which stay valid across trackers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemJson {
    /// The item's ULID: its identity in every tracker it travels to.
    #[schemars(regex(pattern = r"^[0-9A-HJKMNP-TV-Z]{26}$"))]
    pub id: String,
    /// Its small number in this tracker (`#42`).
    #[schemars(range(min = 1))]
    pub num: u64,
    /// One line: 1 to 4096 bytes, no control characters.
    #[schemars(length(min = 1))]
    pub title: String,
    /// Free text, up to 1 MiB; empty when there is none.
    #[serde(default)]
    pub body: String,
    /// `open`, `done` or `cancelled`.
    #[schemars(extend("enum" = ["open", "done", "cancelled"]))]
    pub status: String,
    /// 0 (highest) to 4.
    #[schemars(range(max = 4))]
    pub priority: u8,
    /// Labels, in the order they were added.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Numbers of the items this one waits for.
    #[serde(default)]
    pub blocked_by: Vec<u64>,
    /// The same blockers by ULID.
    #[serde(default)]
    pub blocked_by_ids: Vec<String>,
    /// Starts at 1 and grows by exactly one with every change: pass it as `--if-version`.
    #[schemars(range(min = 1))]
    pub version: u64,
    /// When the item was created (RFC 3339, UTC, milliseconds).
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
    /// When the item last changed, claims and renewals included (RFC 3339, UTC, milliseconds).
    #[schemars(extend("format" = "date-time"))]
    pub updated_at: String,
    /// The live lease, or null when nobody holds the item.
    #[serde(default)]
    pub claim: Option<ClaimJson>,
    /// What kind of work: `task` (the default), `bug`, `feature`, `chore` or `epic`.
    #[serde(rename = "type", default = "task")]
    #[schemars(extend("enum" = ["task", "bug", "feature", "chore", "epic"]))]
    pub item_type: String,
    /// The number of the item this one is part of, or null.
    #[serde(default)]
    pub parent: Option<u64>,
    /// The same parent by ULID.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Why it was closed, if a reason was given.
    #[serde(default)]
    pub close_reason: Option<String>,
    /// Its comments, oldest first: in exports (and `show`), absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments: Option<Vec<CommentJson>>,
}

fn task() -> String {
    "task".into()
}

/// A comment on an item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommentJson {
    /// The comment's ULID: its identity in every tracker it travels to.
    #[schemars(regex(pattern = r"^[0-9A-HJKMNP-TV-Z]{26}$"))]
    pub id: String,
    /// Who wrote it.
    pub author: String,
    /// When it was written (RFC 3339, UTC, milliseconds).
    #[schemars(extend("format" = "date-time"))]
    pub at: String,
    /// The text.
    pub text: String,
}

impl From<&crate::model::Comment> for CommentJson {
    fn from(c: &crate::model::Comment) -> Self {
        CommentJson {
            id: c.id.to_string(),
            author: c.author.clone(),
            at: format_rfc3339(c.at),
            text: c.text.clone(),
        }
    }
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
            item_type: i.item_type.as_str().to_string(),
            parent: v.parent_num,
            parent_id: i.parent.map(|p| p.to_string()),
            close_reason: i.close_reason.clone(),
            comments: None,
        }
    }
}

/// `show`: the item plus `blocks`, the numbers of the items waiting for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ShowJson {
    /// The item's fields, at the top level of the object.
    #[serde(flatten)]
    pub item: ItemJson,
    /// Numbers of the items waiting for this one.
    pub blocks: Vec<u64>,
    /// Its comments, oldest first.
    pub comments: Vec<CommentJson>,
    /// Numbers of its children (the items whose parent it is), lowest first.
    pub children: Vec<u64>,
    /// How far its children are.
    pub progress: ProgressJson,
    /// Whether it can be claimed now: open, waiting for no open blocker or child, unclaimed.
    pub ready: bool,
    /// Why it is not ready, in words (empty when it is).
    pub not_ready: Vec<String>,
}

/// `show`'s count of an item's children by how they ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ProgressJson {
    /// Children done.
    pub done: usize,
    /// Children cancelled.
    pub cancelled: usize,
    /// Children in all.
    pub total: usize,
}

impl From<&crate::ItemDetail> for ShowJson {
    fn from(d: &crate::ItemDetail) -> Self {
        let (done, cancelled, total) = d.progress();
        ShowJson {
            item: ItemJson::from(&d.view),
            blocks: d.blocks.iter().map(|(n, _)| *n).collect(),
            comments: d.comments.iter().map(CommentJson::from).collect(),
            children: d.children.iter().map(|c| c.0).collect(),
            progress: ProgressJson {
                done,
                cancelled,
                total,
            },
            ready: d.ready(),
            not_ready: d.not_ready.clone(),
        }
    }
}

/// One op of the log: `log --json` prints one per line (JSON Lines).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct OpJson<'a> {
    /// Its place in the log: 1, 2, 3, ... with no gaps.
    #[schemars(range(min = 1))]
    pub seq: u64,
    /// When the change was made (RFC 3339, UTC, milliseconds); never earlier than the op before.
    #[schemars(extend("format" = "date-time"))]
    pub at: String,
    /// Who made the change.
    pub actor: &'a str,
    /// What kind of change, by the command's name: `new`, `update`, `claim`, `renew`, `steal`,
    /// `evict`, `release`, `done`, `dep_add`, `dep_remove`, `import` or `comment`.
    pub op: &'static str,
    /// The item's ULID.
    pub item: String,
    /// The item's number in this tracker (null if the item is no longer in its table).
    pub num: Option<u64>,
    /// The item's version before the change.
    pub version_before: u64,
    /// The item's version after it: one more, except for a `comment`, which changes no field
    /// of the item and leaves its version as it was.
    pub version_after: u64,
    /// Each change with its before and after; `change` names it.
    pub changes: &'a [Change],
}

impl<'a> OpJson<'a> {
    /// The JSON of `op`, whose item has number `num` here.
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

/// `list`'s answer over MCP and HTTP, `{"items": [...]}`: their results are objects, so the
/// list is wrapped (the command line prints the bare array).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ItemsJson {
    /// The items, in `list`'s order.
    pub items: Vec<ItemJson>,
}

impl ItemsJson {
    /// The answer listing `items`.
    pub fn new(items: &[ItemView]) -> Self {
        ItemsJson {
            items: items.iter().map(ItemJson::from).collect(),
        }
    }
}

/// `log`'s answer over MCP and HTTP, `{"ops": [...]}`, wrapped for the same reason.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct OpsJson<'a> {
    /// The ops, oldest first.
    pub ops: Vec<OpJson<'a>>,
}

impl<'a> OpsJson<'a> {
    /// The answer listing `ops`, each with its item's number here.
    pub fn new(ops: &'a [(Op, Option<u64>)]) -> Self {
        OpsJson {
            ops: ops.iter().map(|(op, num)| OpJson::new(op, *num)).collect(),
        }
    }
}

/// A claim on the board, with the item it is on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct BoardClaimJson {
    /// The item's number in this tracker.
    pub num: u64,
    /// The item's ULID.
    pub id: String,
    /// The item's title.
    pub title: String,
    /// The lease.
    pub claim: ClaimJson,
    /// Milliseconds since the holder last claimed or renewed.
    pub heartbeat_age_ms: i64,
}

/// `status`: items by state, live and stale claims, and what coordination cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct StatusJson {
    /// Open items: ready, blocked or claimed.
    pub open: u64,
    /// Items done.
    pub done: u64,
    /// Items cancelled.
    pub cancelled: u64,
    /// Open, unblocked and unclaimed: what `claim --next` can take.
    pub ready: u64,
    /// Open and waiting for an unfinished blocker.
    pub blocked: u64,
    /// Items with a live claim.
    pub claimed: u64,
    /// Every live claim, by item number.
    pub live_claims: Vec<BoardClaimJson>,
    /// Claims past their TTL, or whose holder process is gone: free for `--steal-stale`.
    pub stale_claims: Vec<BoardClaimJson>,
    /// Coordination metrics over the whole log, or over the window `status --since` gave.
    pub metrics: Metrics,
}

impl StatusJson {
    /// The JSON of a board, with the metrics to show beside it; heartbeat ages are taken at
    /// `now`.
    pub fn new(b: &crate::board::Board, metrics: Metrics, now: &crate::Now) -> Self {
        let claim = |i: &crate::Item, l: &Lease| BoardClaimJson {
            num: i.num,
            id: i.id.to_string(),
            title: i.title.clone(),
            claim: ClaimJson::from(l),
            heartbeat_age_ms: now.wall_ms.saturating_sub(l.renewed_at),
        };
        StatusJson {
            open: b.open,
            done: b.done,
            cancelled: b.cancelled,
            ready: b.ready,
            blocked: b.blocked,
            claimed: b.live.len() as u64,
            live_claims: b.live.iter().map(|(i, l)| claim(i, l)).collect(),
            stale_claims: b.stale.iter().map(|(i, l, _)| claim(i, l)).collect(),
            metrics,
        }
    }
}

/// `verify`: what was replayed and every mismatch found (exit 6 unless `ok`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct VerifyJson {
    /// True when the tables agree with the log: no problems.
    pub ok: bool,
    /// Ops replayed: the last sequence number of the log.
    pub ops: u64,
    /// Items in the items table.
    pub items: u64,
    /// Leases on file, live or not.
    pub leases: u64,
    /// The last fencing token the log hands out.
    pub last_token: u64,
    /// Each mismatch in words, first one first.
    pub problems: Vec<String>,
}

/// `rebuild`: what the tables were rebuilt from and to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RebuildJson {
    /// Ops replayed: the last sequence number of the log.
    pub ops: u64,
    /// Items written from the replay.
    pub items: u64,
    /// Leases written from the replay, live or not.
    pub leases: u64,
}

/// `upgrade`: the format the tracker had and has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct UpgradeJson {
    /// Whether it was migrated (false: it was already of this format).
    pub upgraded: bool,
    /// Its format version before.
    pub from: u64,
    /// Its format version now.
    pub to: u64,
}

/// `import`: how each item of the export was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ImportJson {
    /// Items new to this tracker.
    pub created: u64,
    /// Items replaced by the export's newer version.
    pub replaced: u64,
    /// Items already as the export has them (or newer here).
    pub unchanged: u64,
    /// Items changed on both sides and kept as they are here (`--prefer ours`).
    pub kept: u64,
}

/// `new --plan` (and the MCP tool `plan`): every item the plan made, in plan order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanJson {
    /// One per entry of the plan, in its order.
    pub created: Vec<PlannedJson>,
}

/// One item a plan made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedJson {
    /// The key the plan gave the entry.
    #[schemars(length(min = 1))]
    pub key: String,
    /// The item's number in this tracker.
    #[schemars(range(min = 1))]
    pub num: u64,
    /// The item's ULID.
    #[schemars(regex(pattern = r"^[0-9A-HJKMNP-TV-Z]{26}$"))]
    pub id: String,
}

impl From<&[crate::store::PlannedItem]> for PlanJson {
    fn from(made: &[crate::store::PlannedItem]) -> Self {
        PlanJson {
            created: made
                .iter()
                .map(|p| PlannedJson {
                    key: p.key.clone(),
                    num: p.num,
                    id: p.id.to_string(),
                })
                .collect(),
        }
    }
}

/// `init`: where the tracker is and whether this call made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct InitJson {
    /// The tracker file, or the database URL without its password.
    pub path: String,
    /// False when a tracker was already there (nothing changed).
    pub created: bool,
    /// The tracker's format version (data-format.md).
    pub format_version: u64,
}

/// `config default-ttl`: the tracker's default lease length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ConfigJson {
    /// The lease length, in milliseconds, of a claim that names none.
    pub default_ttl_ms: u64,
}

/// A failure: printed on stderr with `--json` (stdout stays empty), and the structured content
/// of an MCP tool error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ErrorJson {
    /// What went wrong.
    pub error: ErrorBody,
}

/// What went wrong, for a program to branch on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// The kind of failure: `invalid`, `conflict`, `not_found`, `busy`, `data`, `io` or
    /// `internal`; over HTTP (`tracker serve`) also `unauthorized` (401) and `forbidden` (403).
    #[schemars(extend("enum" = ["invalid", "conflict", "not_found", "busy", "data", "io", "internal", "unauthorized", "forbidden"]))]
    pub kind: &'static str,
    /// The exit code the CLI gives for this kind.
    #[schemars(range(min = 1, max = 6))]
    pub code: i32,
    /// What happened, to what, and what to do next.
    pub message: String,
    /// The item a conflict is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<u64>,
    /// That item's live claim, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<ClaimJson>,
    /// That item as it is now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<ItemJson>,
}

/// A failure as data: `{"error": {"kind", "code", "message", ...}}`. A conflict over an item also
/// carries the item's number, its live lease's holder (`holder`, a claim object, when there is
/// one) and the item as it is now (`current`), so a caller can decide what to do next.
pub fn error_json(e: &crate::Error) -> ErrorJson {
    let current = match e {
        crate::Error::Conflict {
            current: Some(v), ..
        } => Some(&**v),
        _ => None,
    };
    ErrorJson {
        error: ErrorBody {
            kind: e.kind(),
            code: e.exit_code(),
            message: e.to_string(),
            item: current.map(|v| v.item.num),
            holder: current.and_then(|v| v.claim.as_ref()).map(ClaimJson::from),
            current: current.map(ItemJson::from),
        },
    }
}

impl std::fmt::Display for ErrorJson {
    /// One line of JSON.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&line)
    }
}

impl From<ErrorJson> for serde_json::Value {
    fn from(e: ErrorJson) -> Self {
        serde_json::to_value(e).unwrap_or_default()
    }
}

/// The first line (JSON Lines) or the opening fields (JSON) of an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExportHeader {
    /// Always `tracker-export`: marks the file as an export.
    #[schemars(extend("const" = "tracker-export"))]
    pub format: String,
    /// The format version of the tracker that wrote it; an import refuses a newer one.
    #[schemars(range(min = 1))]
    pub format_version: u64,
    /// When the snapshot was taken (RFC 3339, UTC, milliseconds).
    #[schemars(extend("format" = "date-time"))]
    pub exported_at: String,
    /// The sequence number of the last op the export includes.
    pub last_op_seq: u64,
    /// How many items follow; an import refuses an export with more or fewer.
    pub item_count: u64,
    /// The last fencing token handed out; an import raises its tracker's token floor to it.
    #[serde(default)]
    pub last_token: u64,
}

/// An export in its JSON layout: the header's fields and `items`. (`export` streams it, one item
/// per line; this type names the shape for the schema.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExportJson {
    /// The header's fields, at the top level of the object.
    #[serde(flatten)]
    pub header: ExportHeader,
    /// Every item, in ULID order.
    pub items: Vec<ItemJson>,
}

/// The value of an export's `format` field.
pub const EXPORT_FORMAT: &str = "tracker-export";

/// The JSON Schemas of everything this tracker prints, by name; `docs/schemas/NAME.json` holds
/// each, and a test keeps them in step with these types and checks real outputs against them.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn of<T: JsonSchema>() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
    }
    vec![
        ("item", of::<ItemJson>()),
        ("claim", of::<ClaimJson>()),
        ("show", of::<ShowJson>()),
        ("list", of::<Vec<ItemJson>>()),
        ("op", of::<OpJson<'static>>()),
        ("status", of::<StatusJson>()),
        ("verify", of::<VerifyJson>()),
        ("rebuild", of::<RebuildJson>()),
        ("upgrade", of::<UpgradeJson>()),
        ("import", of::<ImportJson>()),
        ("plan", of::<PlanJson>()),
        ("init", of::<InitJson>()),
        ("config", of::<ConfigJson>()),
        ("export", of::<ExportJson>()),
        ("export-header", of::<ExportHeader>()),
        ("error", of::<ErrorJson>()),
    ]
}
