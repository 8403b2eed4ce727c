//! Domain rules as plain functions over plain data: lease state, who may claim, readiness,
//! version checks, and `apply`, which replays one op onto a state. No database, no real clock.
//! The changes each command makes are built in `changes` (re-exported here: `update_changes`,
//! `done_changes`, `claim_changes`, ...).

use std::collections::BTreeMap;
use std::time::Duration;

use ulid::Ulid;

use crate::clock::Now;
use crate::model::{Change, Item, ItemView, Lease, Op, Patch, Status, MAX_PRIORITY};

mod changes;
pub mod plan;
pub use changes::{
    claim_changes, closing_ends_lease, dep_changes, done_changes, release_changes, renew_changes,
    update_changes, DepRefusal, Taker, TieTo,
};

/// How a lease stands at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Its holder owns the item.
    Live,
    /// Its deadline has passed; anyone may take the item.
    Expired,
    /// Before its deadline, but the process it is tied to is provably gone (same host and boot,
    /// and that pid no longer runs, or runs another program). `claim --next` and `--steal-stale`
    /// may take it.
    HolderGone,
}

/// Milliseconds until a lease's deadline (negative once it has passed). On the boot that took
/// the lease the monotonic clock decides, so wall-clock steps change nothing; elsewhere only the
/// wall clock can. The one place that says how long a lease has left.
pub fn lease_remaining_ms(lease: &Lease, now: &Now) -> i64 {
    match (
        &lease.boot_id,
        &now.boot_id,
        lease.deadline_mono_ms,
        now.mono_ms,
    ) {
        (Some(lb), Some(nb), Some(deadline), Some(mono)) if **lb == **nb => {
            let diff = i128::from(deadline) - i128::from(mono);
            i64::try_from(diff).unwrap_or(if diff > 0 { i64::MAX } else { i64::MIN })
        }
        _ => lease.expires_at.saturating_sub(now.wall_ms),
    }
}

/// Whether a lease's deadline has passed (see `lease_remaining_ms`).
pub fn lease_expired(lease: &Lease, now: &Now) -> bool {
    lease_remaining_ms(lease, now) <= 0
}

/// The shortest lease.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// The longest lease: a year and a day, so every deadline fits in any clock's range.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 86_400);

/// Checks a lease length (a claim's, a renewal's, or a tracker's default).
pub fn check_ttl(ttl: Duration) -> Result<Duration, String> {
    if ttl < MIN_TTL || ttl > MAX_TTL {
        return Err(format!(
            "a lease TTL of {} is out of range: use 1s to 366d",
            humantime::format_duration(ttl)
        ));
    }
    Ok(ttl)
}

/// Sets a lease's length and deadlines from `now`: a wall-clock deadline for other hosts and
/// boots, and a monotonic one for this boot.
pub fn set_deadline(lease: &mut Lease, ttl: Duration, now: &Now) {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    lease.ttl_ms = ms;
    lease.expires_at = now
        .wall_ms
        .saturating_add(i64::try_from(ms).unwrap_or(i64::MAX));
    lease.boot_id = now.boot_id.as_deref().map(str::to_string);
    lease.deadline_mono_ms = now.mono_ms.map(|m| m.saturating_add(ms));
}

/// The state of `lease` at `now`. `holder_gone` says whether its tied process is provably gone;
/// it is consulted only for a lease that would otherwise be live.
pub fn lease_state(lease: &Lease, now: &Now, holder_gone: impl Fn(&Lease) -> bool) -> LeaseState {
    if lease_expired(lease, now) {
        LeaseState::Expired
    } else if holder_gone(lease) {
        LeaseState::HolderGone
    } else {
        LeaseState::Live
    }
}

/// Who asks for a lease, and with what proof.
#[derive(Clone, Debug)]
pub struct Claimant<'a> {
    /// The actor name the lease would be held under.
    pub holder: &'a str,
    /// The holder name tells this actor apart from others (named, or from a terminal).
    pub distinct: bool,
    /// A fencing token the claimant presents, proving it holds the current lease.
    pub token: Option<u64>,
}

/// How the asking process stands to the process a lease is tied to (`run`, `tracker mcp`,
/// `claim --pid`). Two processes are two workers whatever their names, so while a tied lease
/// lives, its name proves nothing to any other process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tie {
    /// The lease is tied to no process: its holder is recognised by a distinct name or a token.
    Untied,
    /// Tied to the asking process or to one of its ancestors.
    Ours,
    /// Tied to another process, or to one this host cannot see (another host, boot or
    /// namespace): only the lease's token proves the claimant is its worker.
    Other,
}

/// What a claimant is to a lease: the one home of "who may renew, release, finish or take over
/// a lease".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Its worker: the lease's token, or its (distinct) name from the process it is tied to.
    Holder,
    /// A token that is not this lease's.
    WrongToken,
    /// The holder's name, but a default one that cannot tell two agents apart, and no token.
    SameNameUnproven,
    /// The holder's name, but from another process than the living one the lease is tied to.
    OtherProcess,
    /// Another holder.
    Other,
}

/// How `who` stands to `lease`, which is in `state` and tied to a process as `tie` says. A
/// presented token decides alone. Without one the name must match, and must be proven: by the
/// tie while the tied process lives (the process or its descendants), else by being
/// a distinct name (given, or with a terminal). Once a lease has ended, its tie proves nothing
/// either way.
pub fn standing(lease: &Lease, state: LeaseState, tie: Tie, who: &Claimant) -> Standing {
    if let Some(token) = who.token {
        return if token == lease.token {
            Standing::Holder
        } else {
            Standing::WrongToken
        };
    }
    if lease.holder != who.holder {
        return Standing::Other;
    }
    let tie = if state == LeaseState::Live {
        tie
    } else {
        Tie::Untied
    };
    match tie {
        Tie::Ours => Standing::Holder,
        Tie::Other => Standing::OtherProcess,
        Tie::Untied if who.distinct => Standing::Holder,
        Tie::Untied => Standing::SameNameUnproven,
    }
}

/// What a claim will do to the item's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimAction {
    /// No lease, or only an ended one: a fresh acquisition.
    Acquire,
    /// The claimant already holds the live lease: extend it, same token.
    Renew,
    /// The holder is provably gone: take the lease over with a new token.
    Steal,
    /// `--force` over another holder's live lease.
    Evict,
}

/// Why a claim is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// Only open items can be claimed; this is the item's status.
    NotOpen(Status),
    /// Another holder has a live lease (and `force` was not given).
    HeldByOther,
    /// Same holder name, but nothing proves the claimant is that holder.
    SameNameUnproven,
    /// Same holder name, but the lease is tied to another living process.
    OtherProcess,
    /// The claimant presented a token that is not the lease's.
    WrongToken,
}

/// Decides a claim from the item's status and its current lease with that lease's state and
/// tie. Whatever `list --ready` shows is claimable: a lease whose holder is provably gone is
/// taken over by any claim (a steal, with a new token). `force` evicts a live lease.
pub fn decide_claim(
    status: Status,
    current: Option<(&Lease, LeaseState, Tie)>,
    who: &Claimant,
    force: bool,
) -> Result<ClaimAction, ClaimRefusal> {
    if status != Status::Open {
        return Err(ClaimRefusal::NotOpen(status));
    }
    let Some((lease, state, tie)) = current else {
        return Ok(ClaimAction::Acquire);
    };
    let standing = standing(lease, state, tie, who);
    if standing == Standing::WrongToken {
        return Err(ClaimRefusal::WrongToken);
    }
    match (state, standing) {
        (LeaseState::Expired, _) => Ok(ClaimAction::Acquire),
        // Abandoned: taken over with a fresh lease (an ended one is never revived), logged as a
        // steal whoever takes it, the same name included.
        (LeaseState::HolderGone, _) => Ok(ClaimAction::Steal),
        (LeaseState::Live, Standing::Holder) => Ok(ClaimAction::Renew),
        (LeaseState::Live, _) if force => Ok(ClaimAction::Evict),
        (LeaseState::Live, Standing::SameNameUnproven) => Err(ClaimRefusal::SameNameUnproven),
        (LeaseState::Live, Standing::OtherProcess) => Err(ClaimRefusal::OtherProcess),
        (LeaseState::Live, _) => Err(ClaimRefusal::HeldByOther),
    }
}

/// Whether a renewal that ties its lease to process `pid` may tie `current` to it. `tie` is how
/// the claimant stands to `current`'s process, and `claimant_pid` is the claimant's own. A lease
/// tied to a living process never moves sideways: a token from another process renews it and
/// leaves it tied where it was. It may move down the process tree, to the claimant itself, when
/// the claimant is that process or a descendant (`run` under a shell that ran `claim --pid $$`
/// becomes the item's worker, so a second `run` from the same shell is another worker). An untied
/// lease takes any tie, and a lease tied to `pid` itself takes it again (`run` completing its tie
/// with its command's process group).
pub fn may_retie(current: &Lease, pid: u32, tie: Tie, claimant_pid: u32) -> bool {
    match current.pid {
        None => true,
        Some(tied) if tied == pid => true,
        Some(_) => tie == Tie::Ours && pid == claimant_pid,
    }
}

/// A ready item is open, waits for no open item (a blocker, or one of its own children:
/// `has_open_child`), and has no live lease (checked apart).
pub fn is_ready(
    item: &Item,
    blocker_status: impl Fn(&Ulid) -> Option<Status>,
    has_open_child: bool,
) -> bool {
    !has_open_child && is_unblocked_open(item, blocker_status)
}

/// A closed item takes no open child: it would be closed while a part of it is open, which only
/// `--force` may do. The error says what to do instead.
pub fn may_take_open_child(parent: &Item) -> Result<(), String> {
    match parent.status {
        Status::Open => Ok(()),
        s => Err(format!(
            "#{} is {}: reopen it first (update {} --status open) to give it an open part",
            parent.num,
            s.as_str(),
            parent.num
        )),
    }
}

/// Why the item of `view` cannot be claimed now, in words, given the numbers of its open
/// blockers and its children (number, identity, status): not open, waiting for open blockers
/// or open children, or claimed. Empty when it is ready.
pub fn why_not_ready(
    view: &ItemView,
    open_blockers: &[u64],
    children: &[(u64, Ulid, Status)],
) -> Vec<String> {
    let item = &view.item;
    let mut why = Vec::new();
    if item.status != Status::Open {
        why.push(format!("it is {}", item.status.as_str()));
        return why;
    }
    if !open_blockers.is_empty() {
        let nums: Vec<String> = open_blockers.iter().map(|n| format!("#{n}")).collect();
        why.push(format!("it waits for {}, still open", nums.join(", ")));
    }
    let open: Vec<String> = children
        .iter()
        .filter(|c| c.2 == Status::Open)
        .map(|c| format!("#{}", c.0))
        .collect();
    if !open.is_empty() {
        why.push(format!(
            "{} of its children {} open: {}",
            open.len(),
            if open.len() == 1 { "is" } else { "are" },
            open.join(", ")
        ));
    }
    if let Some(l) = &view.claim {
        why.push(format!("{} holds it", l.holder));
    }
    why
}

/// Open, and not waiting on an open blocker (children aside: [`is_ready`]).
pub fn is_unblocked_open(item: &Item, blocker_status: impl Fn(&Ulid) -> Option<Status>) -> bool {
    item.status == Status::Open
        && item
            .blocked_by
            .iter()
            .all(|b| blocker_status(b) != Some(Status::Open))
}

/// The longest title, in bytes (after trimming).
pub const MAX_TITLE_BYTES: usize = 4096;

/// Checks a title and returns it trimmed: not empty, at most [`MAX_TITLE_BYTES`], and free of
/// control characters (newlines included). The error is a message for people.
pub fn validate_title(title: &str) -> Result<String, String> {
    let t = title.trim();
    if t.is_empty() {
        return Err("the title is empty; give the item a short description".into());
    }
    if t.len() > MAX_TITLE_BYTES {
        return Err(format!(
            "the title is {} bytes long; the limit is {MAX_TITLE_BYTES} bytes, so put details in --body",
            t.len()
        ));
    }
    if t.chars().any(|c| c.is_control()) {
        return Err("the title contains control characters (newlines, escapes); put multi-line text in --body".into());
    }
    Ok(t.to_string())
}

/// The longest actor name: a name is stored in every op its actor makes and in its leases.
pub const MAX_ACTOR_BYTES: usize = 200;

/// Checks an actor's name (`--as`, `TRACKER_AS`, `X-Tracker-As`) and returns it trimmed: not
/// empty, at most [`MAX_ACTOR_BYTES`]. It is kept exactly as given otherwise (every terminal
/// output escapes control characters, and `--as` has always taken them). The error is a
/// message for people.
pub fn validate_actor_name(name: &str) -> Result<String, String> {
    let n = name.trim();
    if n.is_empty() {
        return Err("the name is empty".into());
    }
    if n.len() > MAX_ACTOR_BYTES {
        return Err(format!(
            "the name is {} bytes long; the limit is {MAX_ACTOR_BYTES} bytes",
            n.len()
        ));
    }
    Ok(n.to_string())
}

/// Checks a label and returns it trimmed: 1 to 100 bytes, with no commas (the CLI splits on them)
/// or control characters. The error is a message for people.
pub fn validate_label(label: &str) -> Result<String, String> {
    let l = label.trim();
    if l.is_empty() || l.len() > 100 || l.chars().any(|c| c.is_control() || c == ',') {
        return Err(format!(
            "invalid label {label:?}: labels are 1 to 100 bytes of text (fewer characters outside \
             ASCII), with no commas or control characters"
        ));
    }
    Ok(l.to_string())
}

/// The most labels one item may carry: plenty for any tagging scheme, and few enough that an
/// item stays a small record and every label operation stays cheap.
pub const MAX_LABELS: usize = 100;

/// Checks labels ([`validate_label`] each) and returns them trimmed, repeats dropped: at most
/// [`MAX_LABELS`] distinct ones. Stops at the first label past the cap, so a huge list costs no
/// more than a full one. The error is a message for people.
pub fn validate_labels(labels: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for l in labels {
        let l = validate_label(l)?;
        if !out.contains(&l) {
            if out.len() == MAX_LABELS {
                return Err(too_many_labels(labels.len()));
            }
            out.push(l);
        }
    }
    Ok(out)
}

/// Checks the labels an item would carry after `changes`: at most [`MAX_LABELS`].
pub fn check_labels_after(item: &Item, changes: &[Change]) -> Result<(), String> {
    let added = changes
        .iter()
        .filter(|c| matches!(c, Change::LabelAdded { .. }))
        .count();
    let removed = changes
        .iter()
        .filter(|c| matches!(c, Change::LabelRemoved { .. }))
        .count();
    let after = (item.labels.len() + added).saturating_sub(removed);
    if added > 0 && after > MAX_LABELS {
        return Err(format!(
            "#{} would carry {after} labels; an item carries at most {MAX_LABELS}, so remove \
             some first (--remove-label)",
            item.num
        ));
    }
    Ok(())
}

fn too_many_labels(given: usize) -> String {
    format!(
        "{given} labels given, more than {MAX_LABELS} different ones; an item carries at most \
         {MAX_LABELS} labels"
    )
}

/// Checks a body's size: at most 1 MiB (any content is allowed). The error is a message for
/// people.
pub fn validate_body(body: &str) -> Result<(), String> {
    const MAX: usize = 1 << 20;
    if body.len() > MAX {
        return Err(format!(
            "the body is {} bytes; the limit is {MAX} bytes",
            body.len()
        ));
    }
    Ok(())
}

/// A priority as text (a command-line flag): a number, checked by [`validate_priority`].
pub fn parse_priority(s: &str) -> Result<u8, String> {
    let p = s.trim().parse::<u8>().map_err(|_| {
        format!("{s:?} is not a priority: use a number, 0 (highest) to {MAX_PRIORITY}")
    })?;
    validate_priority(p)
}

/// Checks a priority: 0 (highest) to [`MAX_PRIORITY`]. The error is a message for people.
pub fn validate_priority(p: u8) -> Result<u8, String> {
    if p > MAX_PRIORITY {
        return Err(format!(
            "priority {p} is out of range: use 0 (highest) to {MAX_PRIORITY}"
        ));
    }
    Ok(p)
}

/// The changes that `patch` makes to `item`; fields already as asked produce no change.
pub fn patch_changes(item: &Item, patch: &Patch) -> Vec<Change> {
    let mut changes = Vec::new();
    if let Some(t) = &patch.title {
        if *t != item.title {
            changes.push(Change::Title {
                old: item.title.clone(),
                new: t.clone(),
            });
        }
    }
    if let Some(b) = &patch.body {
        if *b != item.body {
            changes.push(Change::Body {
                old: item.body.clone(),
                new: b.clone(),
            });
        }
    }
    if let Some(p) = patch.priority {
        if p != item.priority {
            changes.push(Change::Priority {
                old: item.priority,
                new: p,
            });
        }
    }
    if let Some(s) = patch.status {
        if s != item.status {
            changes.push(Change::Status {
                old: item.status,
                new: s,
            });
        }
    }
    let mut labels = item.labels.clone();
    for l in &patch.add_labels {
        if !labels.contains(l) {
            labels.push(l.clone());
            changes.push(Change::LabelAdded { label: l.clone() });
        }
    }
    for l in &patch.remove_labels {
        if let Some(i) = labels.iter().position(|x| x == l) {
            labels.remove(i);
            changes.push(Change::LabelRemoved { label: l.clone() });
        }
    }
    changes.extend(structure_changes(item, patch));
    changes
}

/// The format-2 part of `patch_changes`: type, parent, and the close reason, which follows the
/// status (set by a close, cleared by a reopening).
fn structure_changes(item: &Item, patch: &Patch) -> Vec<Change> {
    let mut changes = Vec::new();
    if let Some(t) = patch.item_type.filter(|t| *t != item.item_type) {
        changes.push(Change::Type {
            old: item.item_type,
            new: t,
        });
    }
    let reason = match patch.status {
        Some(s) if s != item.status && s == Status::Open => Some(None),
        Some(s) if s != item.status => Some(patch.close_reason.clone()),
        _ => patch.close_reason.clone().map(Some),
    };
    if let Some(r) = reason.filter(|r| *r != item.close_reason) {
        changes.push(Change::CloseReason {
            old: item.close_reason.clone(),
            new: r,
        });
    }
    changes
}

/// The longest close reason, in bytes.
pub const MAX_REASON_BYTES: usize = 4096;

/// Checks a close reason: 1 to `MAX_REASON_BYTES` bytes once trimmed, which it returns.
pub fn validate_reason(reason: &str) -> Result<String, String> {
    let r = reason.trim();
    if r.is_empty() {
        return Err("the reason is empty".into());
    }
    if r.len() > MAX_REASON_BYTES {
        return Err(format!(
            "the reason is {} bytes, more than the {MAX_REASON_BYTES} allowed",
            r.len()
        ));
    }
    Ok(r.to_string())
}

/// Checks a comment's text: 1 to `MAX_COMMENT_BYTES` bytes once trimmed, which it returns.
pub fn validate_comment(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("the comment is empty".into());
    }
    if t.len() > crate::model::MAX_COMMENT_BYTES {
        return Err(format!(
            "the comment is {} bytes, more than the {} allowed",
            t.len(),
            crate::model::MAX_COMMENT_BYTES
        ));
    }
    Ok(t.to_string())
}

/// Applies one change to an item and its lease slot.
pub fn apply_change(item: &mut Item, lease: &mut Option<Lease>, change: &Change) {
    match change {
        Change::Created { item: new } => *item = new.clone(),
        Change::Replaced { new, .. } => *item = (**new).clone(),
        Change::Title { new, .. } => item.title = new.clone(),
        Change::Body { new, .. } => item.body = new.clone(),
        Change::Priority { new, .. } => item.priority = *new,
        Change::Status { new, .. } => item.status = *new,
        Change::LabelAdded { label } => {
            if !item.labels.contains(label) {
                item.labels.push(label.clone());
            }
        }
        Change::LabelRemoved { label } => item.labels.retain(|l| l != label),
        Change::BlockerAdded { blocker } => {
            if !item.blocked_by.contains(blocker) {
                item.blocked_by.push(*blocker);
            }
        }
        Change::BlockerRemoved { blocker } => item.blocked_by.retain(|b| b != blocker),
        Change::LeaseSet { new, .. } => *lease = Some(new.clone()),
        Change::LeaseCleared { .. } => *lease = None,
        Change::Type { new, .. } => item.item_type = *new,
        Change::Parent { new, .. } => item.parent = *new,
        Change::CloseReason { new, .. } => item.close_reason = new.clone(),
        Change::Commented { .. } => {}
    }
}

/// Whether `op` only appends comments: it changes no field, so it leaves the item's version and
/// time alone.
pub fn only_comments(op: &Op) -> bool {
    !op.changes.is_empty() && op.changes.iter().all(Change::is_comment)
}

/// Applies an op's changes to its item and lease and stamps the item with the op's version and
/// time. Commands and replay both go through here, so they cannot disagree.
pub fn apply_op_to(item: &mut Item, lease: &mut Option<Lease>, op: &Op) {
    if only_comments(op) {
        return;
    }
    for change in &op.changes {
        apply_change(item, lease, change);
    }
    item.version = op.version_after;
    // A whole item brought in by import keeps its own times.
    let whole = op
        .changes
        .iter()
        .any(|c| matches!(c, Change::Created { .. } | Change::Replaced { .. }));
    if !whole {
        item.updated_at = op.at;
    }
}

/// Everything the ops log determines: items, leases and counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Every item, by identity.
    pub items: BTreeMap<Ulid, Item>,
    /// Every lease on file (live or not), by item identity.
    pub leases: BTreeMap<Ulid, Lease>,
    /// The sequence number of the last op applied (0 before the first).
    pub last_seq: u64,
    /// The highest item number created.
    pub last_num: u64,
    /// The highest fencing token handed out.
    pub last_token: u64,
}

/// Why an op cannot follow the state it is applied to. Each variant names the offending op by
/// its `seq`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The op's sequence number is not the one after the state's last.
    #[error("op {seq}: expected sequence number {expected}")]
    SeqGap {
        /// The op's sequence number.
        seq: u64,
        /// The sequence number the log should have had next.
        expected: u64,
    },
    /// The op changes an item that no earlier op created.
    #[error("op {seq}: item {item} does not exist")]
    UnknownItem {
        /// The op's sequence number.
        seq: u64,
        /// The item's identity.
        item: Ulid,
    },
    /// The op creates an item that already exists.
    #[error("op {seq}: item {item} already exists")]
    DuplicateItem {
        /// The op's sequence number.
        seq: u64,
        /// The item's identity.
        item: Ulid,
    },
    /// The op starts from another version than the item is at.
    #[error("op {seq}: item {item} is at version {actual}, the op expects {expected}")]
    VersionMismatch {
        /// The op's sequence number.
        seq: u64,
        /// The item's identity.
        item: Ulid,
        /// The op's `version_before`.
        expected: u64,
        /// The item's version in the state.
        actual: u64,
    },
    /// The op's `version_after` is not `version_before + 1`.
    #[error("op {seq}: version goes from {before} to {after}, not by one")]
    VersionStep {
        /// The op's sequence number.
        seq: u64,
        /// The op's `version_before`.
        before: u64,
        /// The op's `version_after`.
        after: u64,
    },
    /// A new acquisition's fencing token is not above every token before it.
    #[error("op {seq}: fencing token {token} does not exceed the last one, {last}")]
    TokenNotIncreasing {
        /// The op's sequence number.
        seq: u64,
        /// The token the op hands out.
        token: u64,
        /// The highest token handed out before it.
        last: u64,
    },
    /// The op creates an item under a number another item has.
    #[error("op {seq}: number {num} is already used")]
    DuplicateNum {
        /// The op's sequence number.
        seq: u64,
        /// The item number used twice.
        num: u64,
    },
}

/// Replays one op onto `state`, checking that it fits: the next sequence number, the item's
/// version, and a fresh fencing token for every new acquisition.
pub fn apply(state: &mut State, op: &Op) -> Result<(), ApplyError> {
    let seq = op.seq;
    let expected = state.last_seq.saturating_add(1);
    if seq != expected {
        return Err(ApplyError::SeqGap { seq, expected });
    }
    let step = u64::from(!only_comments(op));
    if op.version_before.checked_add(step) != Some(op.version_after) {
        return Err(ApplyError::VersionStep {
            seq,
            before: op.version_before,
            after: op.version_after,
        });
    }
    let creating = op.changes.iter().find_map(|c| match c {
        Change::Created { item } => Some(item),
        _ => None,
    });
    let mut item = match (state.items.get(&op.item), creating) {
        (Some(_), Some(_)) => return Err(ApplyError::DuplicateItem { seq, item: op.item }),
        (None, None) => return Err(ApplyError::UnknownItem { seq, item: op.item }),
        (None, Some(created)) => {
            if created.num <= state.last_num && state.items.values().any(|i| i.num == created.num) {
                return Err(ApplyError::DuplicateNum {
                    seq,
                    num: created.num,
                });
            }
            state.last_num = state.last_num.max(created.num);
            created.clone()
        }
        (Some(existing), None) => existing.clone(),
    };
    if creating.is_none() && item.version != op.version_before {
        return Err(ApplyError::VersionMismatch {
            seq,
            item: op.item,
            expected: op.version_before,
            actual: item.version,
        });
    }
    let mut lease = state.leases.get(&op.item).cloned();
    for change in &op.changes {
        if let Change::LeaseSet { old, new } = change {
            let renewal = old.as_ref().is_some_and(|o| o.token == new.token);
            if !renewal {
                if new.token <= state.last_token {
                    return Err(ApplyError::TokenNotIncreasing {
                        seq,
                        token: new.token,
                        last: state.last_token,
                    });
                }
                state.last_token = new.token;
            }
        }
    }
    apply_op_to(&mut item, &mut lease, op);
    state.items.insert(op.item, item);
    match lease {
        Some(l) => state.leases.insert(op.item, l),
        None => state.leases.remove(&op.item),
    };
    state.last_seq = seq;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The label limit is in bytes, and the message says so (it said characters, and a label of
    /// 40 non-ASCII characters was refused as longer than 100 "characters").
    #[test]
    fn the_label_limit_is_stated_in_bytes() {
        let label = "é".repeat(51);
        assert_eq!(label.chars().count(), 51);
        let err = validate_label(&label).unwrap_err();
        assert!(err.contains("100 bytes"), "{err}");
        assert!(validate_label(&"é".repeat(50)).is_ok());
    }
    use std::sync::Arc;

    fn lease(holder: &str, token: u64) -> Lease {
        Lease {
            holder: holder.into(),
            token,
            acquired_at: 0,
            renewed_at: 0,
            expires_at: 60_000,
            ttl_ms: 60_000,
            host: "h".into(),
            pid: None,
            pid_start: None,
            boot_id: Some("b1".into()),
            deadline_mono_ms: Some(1_060_000),
            pgid: None,
            pid_ns: None,
        }
    }

    fn now(wall: i64, mono: u64, boot: &str) -> Now {
        Now {
            wall_ms: wall,
            mono_ms: Some(mono),
            boot_id: Some(Arc::from(boot)),
        }
    }

    #[test]
    fn wall_clock_jump_forward_does_not_expire_a_lease_on_the_same_boot() {
        let l = lease("a", 1);
        assert!(!lease_expired(
            &l,
            &now(60_000 + 3_600_000, 1_030_000, "b1")
        ));
        assert!(lease_expired(&l, &now(60_000, 1_060_000, "b1")));
    }

    #[test]
    fn wall_clock_jump_back_does_not_keep_a_dead_lease() {
        let l = lease("a", 1);
        assert!(lease_expired(&l, &now(-3_600_000, 1_070_000, "b1")));
    }

    #[test]
    fn another_boot_falls_back_to_the_wall_clock() {
        let l = lease("a", 1);
        assert!(!lease_expired(&l, &now(59_000, 5, "b2")));
        assert!(lease_expired(&l, &now(60_000, 5, "b2")));
    }

    #[test]
    fn claim_decisions() {
        let l = lease("ana", 7);
        let ana = Claimant {
            holder: "ana",
            distinct: true,
            token: None,
        };
        let anon_ana = Claimant {
            distinct: false,
            ..ana.clone()
        };
        let bob = Claimant {
            holder: "bob",
            distinct: true,
            token: None,
        };
        let decide = |state, tie, who: &Claimant, force| {
            decide_claim(Status::Open, Some((&l, state, tie)), who, force)
        };
        use LeaseState::{Expired, HolderGone, Live};
        use Tie::{Other, Ours, Untied};
        assert_eq!(decide(Live, Untied, &ana, false), Ok(ClaimAction::Renew));
        assert_eq!(
            decide(Live, Untied, &anon_ana, false),
            Err(ClaimRefusal::SameNameUnproven)
        );
        // Two processes are two workers, whatever their names.
        assert_eq!(
            decide(Live, Other, &ana, false),
            Err(ClaimRefusal::OtherProcess)
        );
        assert_eq!(decide(Live, Ours, &anon_ana, false), Ok(ClaimAction::Renew));
        let with_token = Claimant {
            token: Some(7),
            ..anon_ana.clone()
        };
        assert_eq!(
            decide(Live, Other, &with_token, false),
            Ok(ClaimAction::Renew)
        );
        // A wrong token is refused even with the holder's own distinct name.
        let wrong_token = Claimant {
            token: Some(6),
            ..ana.clone()
        };
        assert_eq!(
            decide(Live, Ours, &wrong_token, false),
            Err(ClaimRefusal::WrongToken)
        );
        assert_eq!(
            decide(Live, Untied, &bob, false),
            Err(ClaimRefusal::HeldByOther)
        );
        assert_eq!(decide(Live, Untied, &bob, true), Ok(ClaimAction::Evict));
        assert_eq!(decide(Live, Other, &ana, true), Ok(ClaimAction::Evict));
        // What is ready is claimable: an abandoned lease goes to any claim.
        assert_eq!(
            decide(HolderGone, Other, &ana, false),
            Ok(ClaimAction::Steal)
        );
        assert_eq!(
            decide(HolderGone, Other, &bob, false),
            Ok(ClaimAction::Steal)
        );
        assert_eq!(
            decide(HolderGone, Other, &bob, true),
            Ok(ClaimAction::Steal)
        );
        assert_eq!(
            decide(Expired, Other, &bob, false),
            Ok(ClaimAction::Acquire)
        );
        assert_eq!(
            decide_claim(Status::Done, None, &bob, false),
            Err(ClaimRefusal::NotOpen(Status::Done))
        );
    }

    #[test]
    fn a_living_tie_moves_only_down_to_the_claimant_itself() {
        let mut l = lease("ana", 7);
        assert!(may_retie(&l, 10, Tie::Untied, 99));
        l.pid = Some(10);
        assert!(may_retie(&l, 10, Tie::Other, 99));
        // A token from another process renews, and the lease stays with its process.
        assert!(!may_retie(&l, 11, Tie::Other, 11));
        // A descendant of the tied process may become the worker itself, and only itself.
        assert!(may_retie(&l, 11, Tie::Ours, 11));
        assert!(!may_retie(&l, 12, Tie::Ours, 11));
    }

    #[test]
    fn titles_are_checked() {
        assert!(validate_title("  ").is_err());
        assert!(validate_title("a\x1b[31mred").is_err());
        assert_eq!(validate_title("  fix it ").unwrap(), "fix it");
    }
}
