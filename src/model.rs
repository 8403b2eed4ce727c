//! Plain data: items, leases, operations and the changes they carry.
//!
//! Nothing here touches a database or a clock; every type is serialisable with named fields
//! (MessagePack on disk, JSON for export), so fields can be added without breaking old files.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// Milliseconds since the Unix epoch, UTC, as read from the wall clock.
pub type WallMs = i64;

/// Where an item is in its life: `open` (to do or in progress: the only status an item can be
/// claimed in, and the one that holds back the items it blocks), `done` (finished), or
/// `cancelled` (dropped without being finished; like `done`, it no longer blocks anything).
// The variants are described here rather than one by one: a doc comment on a variant would turn
// the JSON Schema's plain `enum` of names into a `oneOf` of constants.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Status {
    Open,
    Done,
    Cancelled,
}

impl Status {
    /// Every status, in the order of their codes.
    pub const ALL: [Status; 3] = [Status::Open, Status::Done, Status::Cancelled];

    /// The lowercase name used in JSON, on the command line and in messages: `open`, `done`,
    /// `cancelled`. `Status::parse` reads it back.
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

    /// The status named exactly `s` (lowercase, as `as_str` writes it), if any.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A unit of work. `version` starts at 1 and grows by exactly one with every op on the item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Item {
    /// The item's identity: a ULID whose time part is its creation, the same in every tracker
    /// an export carries it to.
    #[schemars(with = "String")]
    pub id: Ulid,
    /// Its small number in this tracker (`#42`): handed out in order, never reused, and local to
    /// the tracker (an import numbers new items afresh).
    pub num: u64,
    /// One line, trimmed: 1 to 4096 bytes, no control characters.
    pub title: String,
    /// Free text of any length up to 1 MiB; empty by default.
    #[serde(default)]
    pub body: String,
    /// Where the item is in its life.
    pub status: Status,
    /// 0 (highest) to 4; 2 unless given. The ready queue takes the highest first.
    pub priority: u8,
    /// Distinct labels, in the order they were added: 1 to 100 bytes each, no commas or control
    /// characters.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Items that must be finished before this one is ready, by identity (numbers are per file).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub blocked_by: Vec<Ulid>,
    /// Starts at 1 and grows by exactly one with every op on the item (claims and renewals
    /// included); a change made with an expected version is refused once it moved on.
    pub version: u64,
    /// When the item was created (wall clock, ms since the Unix epoch).
    pub created_at: WallMs,
    /// When the last op on it was made (wall clock, ms); an imported item keeps the time it had
    /// in the export.
    pub updated_at: WallMs,
    /// What kind of work it is (format 2; items of format 1 are tasks).
    #[serde(default, rename = "type")]
    pub item_type: ItemType,
    /// The item this one is part of, by identity (format 2).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub parent: Option<Ulid>,
    /// Why it was closed (`done --reason`, `update --status cancelled --reason`; format 2).
    #[serde(default)]
    pub close_reason: Option<String>,
}

/// What kind of work an item is: `task` (the default), `bug`, `feature`, `chore` or `epic` (a
/// body of work split into child items).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum ItemType {
    #[default]
    Task,
    Bug,
    Feature,
    Chore,
    Epic,
}

impl ItemType {
    /// Every type, in the order `--help` lists them.
    pub const ALL: [ItemType; 5] = [
        ItemType::Task,
        ItemType::Bug,
        ItemType::Feature,
        ItemType::Chore,
        ItemType::Epic,
    ];

    /// The lowercase name used in JSON, on the command line and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::Task => "task",
            ItemType::Bug => "bug",
            ItemType::Feature => "feature",
            ItemType::Chore => "chore",
            ItemType::Epic => "epic",
        }
    }

    /// The type named `s` (as [`as_str`](Self::as_str) spells it), if any.
    pub fn parse(s: &str) -> Option<ItemType> {
        ItemType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A note on an item (format 2): appended, never edited, with an identity of its own so that
/// two trackers' comments merge without loss or duplication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Comment {
    /// Its identity: a ULID whose time part is when it was written.
    #[schemars(with = "String")]
    pub id: Ulid,
    /// Who wrote it (the actor).
    pub author: String,
    /// When it was written (wall clock, ms).
    pub at: WallMs,
    /// The text: 1 byte to `MAX_COMMENT_BYTES`.
    pub text: String,
}

/// The longest comment, in bytes.
pub const MAX_COMMENT_BYTES: usize = 64 * 1024;
/// The most comments one item may carry.
pub const MAX_COMMENTS_PER_ITEM: usize = 1000;

/// A lease on one item. It is live until its deadline; see `rules::lease_state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Lease {
    /// The name of the actor that holds it (`--as`, `TRACKER_AS`, or `user@host/tty`).
    pub holder: String,
    /// Fencing token: strictly increasing over the whole file, new for every acquisition.
    pub token: u64,
    /// When this acquisition was made (wall clock, ms); renewals keep it.
    pub acquired_at: WallMs,
    /// The last claim or renewal: the holder's heartbeat (wall clock, ms).
    pub renewed_at: WallMs,
    /// The wall-clock deadline (ms), which other hosts and boots go by; on the boot that set it,
    /// `deadline_mono_ms` decides instead.
    pub expires_at: WallMs,
    /// The lease length last set, in milliseconds; a renewal that names none extends by it.
    pub ttl_ms: u64,
    /// The host the lease was taken on; `pid` means something only there.
    pub host: String,
    /// The process the lease is tied to (`run`, `claim --pid`); a lease without one lives by TTL only.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Start time of `pid` (clock ticks since boot), so a recycled pid is not mistaken for the holder.
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// Boot the monotonic deadline belongs to (with the time namespace, outside the initial
    /// one); deadlines, and pid start times, from another boot or namespace mean nothing.
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
        /// The item as it was created (at version 1, or at the version an import brought).
        item: Item,
    },
    /// The whole item was replaced by a newer imported version.
    Replaced {
        /// The item as it was here.
        old: Box<Item>,
        /// The item as the export had it.
        new: Box<Item>,
    },
    /// The title changed.
    Title {
        /// The title before.
        old: String,
        /// The title after.
        new: String,
    },
    /// The body changed.
    Body {
        /// The body before.
        old: String,
        /// The body after.
        new: String,
    },
    /// The priority changed.
    Priority {
        /// The priority before.
        old: u8,
        /// The priority after.
        new: u8,
    },
    /// The status changed (`done`, or `update --status`).
    Status {
        /// The status before.
        old: Status,
        /// The status after.
        new: Status,
    },
    /// A label was added.
    LabelAdded {
        /// The label added.
        label: String,
    },
    /// A label was removed.
    LabelRemoved {
        /// The label removed.
        label: String,
    },
    /// The item now waits for another one (`dep add`).
    BlockerAdded {
        /// The ULID of the item it waits for.
        #[schemars(with = "String")]
        blocker: Ulid,
    },
    /// The item no longer waits for another one (`dep rm`).
    BlockerRemoved {
        /// The ULID of the item it waited for.
        #[schemars(with = "String")]
        blocker: Ulid,
    },
    /// A lease was taken, renewed, stolen or evicted: `old` is the lease it replaced, if any.
    LeaseSet {
        /// The lease on file before, live or not; a renewal keeps its token.
        old: Option<Lease>,
        /// The lease now.
        new: Lease,
    },
    /// A lease ended: released, or dropped because the item was finished or closed.
    LeaseCleared {
        /// The lease that ended.
        old: Lease,
    },
    /// The type changed (format 2).
    Type {
        /// The type before.
        old: ItemType,
        /// The type after.
        new: ItemType,
    },
    /// The parent changed (format 2): set, moved or removed.
    Parent {
        /// The parent before, by ULID.
        #[schemars(with = "Option<String>")]
        old: Option<Ulid>,
        /// The parent after, by ULID.
        #[schemars(with = "Option<String>")]
        new: Option<Ulid>,
    },
    /// The close reason changed (format 2).
    CloseReason {
        /// The reason before.
        old: Option<String>,
        /// The reason after.
        new: Option<String>,
    },
    /// A comment was appended (format 2). Not a change of the item's fields: the op that carries
    /// it leaves `version` and `updated_at` alone.
    Commented {
        /// The comment.
        comment: Comment,
    },
}

impl Change {
    /// Whether the change is a comment, which touches no field of the item.
    pub fn is_comment(&self) -> bool {
        matches!(self, Change::Commented { .. })
    }
}

/// The command-level name of an op, for people and filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// An item was created.
    New,
    /// Fields changed (`update`).
    Update,
    /// A lease was acquired on an item with none, or only an ended one.
    Claim,
    /// The holder extended its own lease (`renew`, or a repeated claim); the token stays.
    Renew,
    /// A lease taken from a holder that is provably gone.
    Steal,
    /// A live lease taken by `--force`.
    Evict,
    /// The holder gave its lease back.
    Release,
    /// The item was finished (`done`).
    Done,
    /// A dependency was added (`dep add`).
    DepAdd,
    /// A dependency was removed (`dep rm`).
    DepRemove,
    /// An import created or replaced the item.
    Import,
    /// A comment was appended (`comment`, or one an import brought; format 2).
    Comment,
}

impl OpKind {
    /// The snake_case name `log` shows and JSON carries: `new`, `claim`, `dep_add`, ...
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
            OpKind::Comment => "comment",
        }
    }
}

/// One entry of the ops log: one command's change to one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Gapless and strictly increasing from 1.
    pub seq: u64,
    /// When the change was made (wall clock, ms), read inside the transaction that made it; never
    /// earlier than the previous op's, even if the wall clock stepped back.
    pub at: WallMs,
    /// The name of the actor that made it.
    pub actor: String,
    /// Which command made it.
    pub kind: OpKind,
    /// The identity of the item it changed.
    pub item: Ulid,
    /// The item's version before the op; for an op that creates the item, one less than the
    /// version it was created at (0 for `new`).
    pub version_before: u64,
    /// The item's version after it: `version_before + 1`, except for an op that only comments,
    /// which leaves the version as it was.
    pub version_after: u64,
    /// What changed, each with its before and after, in the order applied.
    pub changes: Vec<Change>,
}

/// Field changes asked for by `update`; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patch {
    /// A new title (trimmed and checked like a new item's).
    pub title: Option<String>,
    /// A new body, replacing the old one whole.
    pub body: Option<String>,
    /// A new priority, 0 (highest) to 4.
    pub priority: Option<u8>,
    /// A new status; any but open also ends the item's lease, and is refused while another
    /// holder has a live one.
    pub status: Option<Status>,
    /// Labels to add; ones already there change nothing.
    pub add_labels: Vec<String>,
    /// Labels to remove (after the additions); ones not there change nothing.
    pub remove_labels: Vec<String>,
    /// A new type.
    pub item_type: Option<ItemType>,
    /// A new parent: `Some(None)` removes it.
    pub parent: Option<Option<ItemRef>>,
    /// Why the item closes (with a status other than open).
    pub close_reason: Option<String>,
}

/// What a new item starts with (its blockers are named separately, as they must be looked up).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewItem {
    /// Required: one line, trimmed, 1 to 4096 bytes, no control characters.
    pub title: String,
    /// Free text, up to 1 MiB.
    pub body: String,
    /// 0 (highest) to 4; `None` gives `DEFAULT_PRIORITY`.
    pub priority: Option<u8>,
    /// Labels; repeats are dropped.
    pub labels: Vec<String>,
    /// Its type; `task` unless given.
    pub item_type: ItemType,
    /// The item it is part of, if any.
    pub parent: Option<ItemRef>,
}

/// An item together with its live lease, as commands return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemView {
    /// The item as stored.
    pub item: Item,
    /// The live lease, if any (expired and stale leases are not shown as claims).
    pub claim: Option<Lease>,
    /// Numbers of the items this one waits for, in `blocked_by` order.
    pub blocked_by_nums: Vec<u64>,
    /// Whether any of those is still open.
    pub blocked: bool,
    /// The number of its parent, if it has one (format 2).
    pub parent_num: Option<u64>,
    /// Whether it is open and any of its children still is: it waits for them (format 2).
    pub waits_for_children: bool,
}

/// The priority of an item created without one.
pub const DEFAULT_PRIORITY: u8 = 2;
/// The lowest priority (priorities run from 0, the highest, to this).
pub const MAX_PRIORITY: u8 = 4;

/// How an item is named on the command line: `42`, `#42`, a ULID, or a unique ULID prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemRef {
    /// The item's number in this tracker (`42` or `#42`).
    Num(u64),
    /// The start of its ULID, uppercase: the whole 26 characters, or any prefix that only one
    /// item's ULID starts with.
    Prefix(String),
}

impl ItemRef {
    /// Reads `42`, `#42`, a ULID or a ULID prefix (any case; surrounding blanks ignored). Only
    /// the form is checked here: whether such an item exists, and whether a prefix is unique, is
    /// decided when the reference is used.
    ///
    /// # Errors
    ///
    /// What is wrong, for anything else or a number too large for a `u64` (the command layer
    /// makes it bad input: `command::item_ref`).
    pub fn parse(s: &str) -> std::result::Result<ItemRef, String> {
        let t = s.trim();
        let digits = t.strip_prefix('#').unwrap_or(t);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return digits
                .parse()
                .map(ItemRef::Num)
                .map_err(|_| format!("item number {t:?} is too large"));
        }
        if t.is_empty()
            || t.len() > 26
            || !t.bytes().all(|b| b.is_ascii_alphanumeric())
            || ulid_prefix_range(t).is_none()
        {
            return Err(format!(
                "{s:?} is not an item: give a number (42 or #42), a ULID, or a ULID prefix"
            ));
        }
        Ok(ItemRef::Prefix(t.to_ascii_uppercase()))
    }
}

impl std::fmt::Display for ItemRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ItemRef::Num(n) => write!(f, "#{n}"),
            ItemRef::Prefix(p) => f.write_str(p),
        }
    }
}

/// The bounds of every identity whose Crockford base32 text starts with `prefix`.
pub(crate) fn ulid_prefix_range(prefix: &str) -> Option<(Ulid, Ulid)> {
    if prefix.is_empty() || prefix.len() > 26 {
        return None;
    }
    let upper = prefix.to_ascii_uppercase();
    let lo = format!("{upper:0<26}");
    let hi = format!("{upper:Z<26}");
    let lo = Ulid::from_string(&lo).ok()?;
    // A first character above 7 overflows 128 bits: no ULID has it, so `hi` fails too.
    let hi = Ulid::from_string(&hi).unwrap_or(Ulid(u128::MAX));
    Some((lo, hi))
}
