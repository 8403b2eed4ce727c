//! Plain data: items, leases, operations and the changes they carry.
//!
//! Nothing here touches a database or a clock; every type is serialisable with named fields
//! (MessagePack on disk, JSON for export), so fields can be added without breaking old files.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// Milliseconds since the Unix epoch, UTC, as read from the wall clock.
pub type WallMs = i64;

/// Where an item is in its life.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Done,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Open, Status::Done, Status::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Done => "done",
            Status::Cancelled => "cancelled",
        }
    }

    /// Stable one-byte code used as an index key.
    pub fn code(self) -> u8 {
        match self {
            Status::Open => 0,
            Status::Done => 1,
            Status::Cancelled => 2,
        }
    }

    /// The status a `code` stands for, if any.
    pub fn from_code(code: u8) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.code() == code)
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A unit of work. `version` starts at 1 and grows by exactly one with every op on the item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Item {
    #[schemars(with = "String")]
    pub id: Ulid,
    pub num: u64,
    pub title: String,
    #[serde(default)]
    pub body: String,
    pub status: Status,
    pub priority: u8,
    #[serde(default)]
    pub labels: Vec<String>,
    /// Items that must be finished before this one is ready, by identity (numbers are per file).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub blocked_by: Vec<Ulid>,
    pub version: u64,
    pub created_at: WallMs,
    pub updated_at: WallMs,
}

/// A lease on one item. It is live until its deadline; see `rules::lease_state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Lease {
    pub holder: String,
    /// Fencing token: strictly increasing over the whole file, new for every acquisition.
    pub token: u64,
    pub acquired_at: WallMs,
    pub renewed_at: WallMs,
    pub expires_at: WallMs,
    pub ttl_ms: u64,
    pub host: String,
    /// The process the lease is tied to (`run`, `claim --pid`); a lease without one lives by TTL only.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Start time of `pid` (clock ticks since boot), so a recycled pid is not mistaken for the holder.
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// Boot the monotonic deadline belongs to; deadlines from another boot mean nothing.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// CLOCK_BOOTTIME (ms) at which the lease ends, immune to wall-clock steps on this boot.
    #[serde(default)]
    pub deadline_mono_ms: Option<u64>,
    /// The process group `run` started its command in. Its children may outlive `run` (a
    /// command can ignore SIGTERM), so the holder is gone only once no process of the group is.
    #[serde(default)]
    pub pgid: Option<u32>,
    /// The pid namespace `pid` and `pgid` are numbers in (inode of /proc/self/ns/pid): another
    /// container on this host, with the same hostname and boot, sees other processes under the
    /// same numbers. Without it (leases from before it was recorded) no pid proves anything.
    #[serde(default)]
    pub pid_ns: Option<u64>,
}

/// What one op did to its item. An op carries the before and after of every change, so the log
/// can be replayed, checked and shown without the tables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// The item came into being (by `new`, or by `import` when it was not here before).
    Created {
        item: Item,
    },
    /// The whole item was replaced by a newer imported version.
    Replaced {
        old: Box<Item>,
        new: Box<Item>,
    },
    Title {
        old: String,
        new: String,
    },
    Body {
        old: String,
        new: String,
    },
    Priority {
        old: u8,
        new: u8,
    },
    Status {
        old: Status,
        new: Status,
    },
    LabelAdded {
        label: String,
    },
    LabelRemoved {
        label: String,
    },
    BlockerAdded {
        #[schemars(with = "String")]
        blocker: Ulid,
    },
    BlockerRemoved {
        #[schemars(with = "String")]
        blocker: Ulid,
    },
    /// A lease was taken, renewed, stolen or evicted: `old` is the lease it replaced, if any.
    LeaseSet {
        old: Option<Lease>,
        new: Lease,
    },
    LeaseCleared {
        old: Lease,
    },
}

/// The command-level name of an op, for people and filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    New,
    Update,
    Claim,
    Renew,
    /// A lease taken from a holder that is provably gone.
    Steal,
    /// A live lease taken by `--force`.
    Evict,
    Release,
    Done,
    DepAdd,
    DepRemove,
    Import,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::New => "new",
            OpKind::Update => "update",
            OpKind::Claim => "claim",
            OpKind::Renew => "renew",
            OpKind::Steal => "steal",
            OpKind::Evict => "evict",
            OpKind::Release => "release",
            OpKind::Done => "done",
            OpKind::DepAdd => "dep_add",
            OpKind::DepRemove => "dep_remove",
            OpKind::Import => "import",
        }
    }
}

/// One entry of the ops log: one command's change to one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Gapless and strictly increasing from 1.
    pub seq: u64,
    pub at: WallMs,
    pub actor: String,
    pub kind: OpKind,
    pub item: Ulid,
    pub version_before: u64,
    pub version_after: u64,
    pub changes: Vec<Change>,
}

/// Field changes asked for by `update`; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patch {
    pub title: Option<String>,
    pub body: Option<String>,
    pub priority: Option<u8>,
    pub status: Option<Status>,
    pub add_labels: Vec<String>,
    pub remove_labels: Vec<String>,
}

/// What a new item starts with (its blockers are named separately, as they must be looked up).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewItem {
    pub title: String,
    pub body: String,
    pub priority: Option<u8>,
    pub labels: Vec<String>,
}

/// An item together with its live lease, as commands return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemView {
    pub item: Item,
    /// The live lease, if any (expired and stale leases are not shown as claims).
    pub claim: Option<Lease>,
    /// Numbers of the items this one waits for, in `blocked_by` order.
    pub blocked_by_nums: Vec<u64>,
    /// Whether any of those is still open.
    pub blocked: bool,
}

pub const DEFAULT_PRIORITY: u8 = 2;
pub const MAX_PRIORITY: u8 = 4;
