//! The `Tracker` API: every command is one call, and every call that changes something is one
//! write transaction in which the check, the change and the op are made together.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ulid::Ulid;

use crate::clock::{Clock, Now, SystemClock};
use crate::error::{Error, Result};
use crate::host::Actor;
use crate::model::ulid_prefix_range;
use crate::model::{Item, ItemView, Lease, Op, Status};
use crate::rules::{self, LeaseState, Standing, Tie};
use crate::store::redb::{Access, RedbStore};
use crate::store::{ReadTxn, Setting, Storage};

pub use crate::model::ItemRef;

/// Preconditions a caller can put on a change. The default has none: the change is made
/// whatever the item's version, and a lease is then recognised by holder name alone.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    /// Compare-and-swap: refuse unless the item is at this version.
    pub if_version: Option<u64>,
    /// Fencing: refuse unless this is the live lease's token.
    pub token: Option<u64>,
    /// A repeat with the same key and arguments returns the first result and writes nothing.
    /// At most [`IDEMPOTENCY_KEY_MAX`](crate::IDEMPOTENCY_KEY_MAX) bytes, remembered for
    /// [`IDEMPOTENCY_KEY_LIFETIME_MS`](crate::IDEMPOTENCY_KEY_LIFETIME_MS).
    pub idempotency_key: Option<String>,
}

/// How a claim is made: [`Tracker::claim`], [`Tracker::claim_next`] and
/// [`Tracker::claim_waiting`] take it. The default is a plain claim for [`DEFAULT_TTL`] (not the
/// tracker's own default: use [`Tracker::default_ttl`] for that).
#[derive(Clone, Debug)]
pub struct ClaimOptions {
    /// The lease length, 1 s to 366 days ([`rules::MIN_TTL`], [`rules::MAX_TTL`]).
    pub ttl: Duration,
    /// Accepted for older callers and changes nothing: every claim takes over a lease whose
    /// holder process is provably gone (a steal, with a new token). `claim_next` refuses it.
    pub steal_stale: bool,
    /// Take the item even from another holder's live lease (an eviction, with a new token).
    pub force: bool,
    /// Tie the lease to this process; it ends early once the process is gone.
    pub pid: Option<u32>,
    /// With `pid`: the process group of the work `pid` started; the lease ends early only once
    /// that group is empty too.
    pub pgid: Option<u32>,
    /// Preconditions on the item: an expected version, the token of the lease being renewed, an
    /// idempotency key.
    pub guard: Guard,
}

impl Default for ClaimOptions {
    fn default() -> Self {
        ClaimOptions {
            ttl: DEFAULT_TTL,
            steal_stale: false,
            force: false,
            pid: None,
            pgid: None,
            guard: Guard::default(),
        }
    }
}

/// The process group a lease records while the group of the work its process will start is not
/// known yet (`run` between its claim and its command's start): a group that counts as alive, so
/// the lease cannot end early before the real group is recorded.
pub const GROUP_NOT_YET_KNOWN: u32 = 0;

/// The lease length of a claim that names none, unless the tracker has its own default
/// ([`Tracker::set_default_ttl`]): 15 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

/// Which items `list` shows.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// `None` means every status; the CLI defaults to open.
    pub status: Option<Status>,
    /// Only items `claim_next` could take: open, unblocked and without a live lease, in queue
    /// order (highest priority, then oldest). Ready items are open, so `status` is not
    /// consulted.
    pub ready: bool,
    /// Only items with a live lease.
    pub claimed: bool,
    /// Only items carrying this label.
    pub label: Option<String>,
    /// Only items whose live lease this actor name holds.
    pub holder: Option<String>,
    /// At most this many items (all of them for `None`).
    pub limit: Option<usize>,
    /// Only items of this type (format 2).
    pub item_type: Option<crate::model::ItemType>,
    /// Only items whose title, body or comments contain this text, ignoring case (format 2).
    pub search: Option<String>,
    /// Only the children of this item (format 2).
    pub parent: Option<ItemRef>,
    /// With `parent`: every item under it, at any depth, not only its children.
    pub descendants: bool,
}

/// `show`: the item, what it blocks, and its latest ops.
#[derive(Clone, Debug)]
pub struct ItemDetail {
    /// The item with its live lease and its blockers.
    pub view: ItemView,
    /// (number, identity) of the items waiting for this one.
    pub blocks: Vec<(u64, Ulid)>,
    /// The lease on file even when not live (expired or holder gone), with its state.
    pub lease: Option<(Lease, LeaseState)>,
    /// The item's last five ops, oldest first.
    pub recent_ops: Vec<Op>,
    /// Its comments, oldest first (format 2).
    pub comments: Vec<crate::model::Comment>,
    /// Its children: (number, identity, status), by number.
    pub children: Vec<(u64, Ulid, Status)>,
    /// Why it cannot be claimed now, in words (empty when it is ready).
    pub not_ready: Vec<String>,
}

impl ItemDetail {
    /// Whether it is ready: open, waiting for nothing open, and not claimed.
    pub fn ready(&self) -> bool {
        self.not_ready.is_empty()
    }

    /// How many of its children are done, cancelled, and in all.
    pub fn progress(&self) -> (usize, usize, usize) {
        let count = |s: Status| self.children.iter().filter(|c| c.2 == s).count();
        (
            count(Status::Done),
            count(Status::Cancelled),
            self.children.len(),
        )
    }
}

type AliveProbe = Arc<dyn Fn(u32, Option<u64>) -> bool + Send + Sync>;
type TieProbe = Arc<dyn Fn(&Lease) -> bool + Send + Sync>;

/// A tracker: a store, a clock, and who is acting.
///
/// Every method is one transaction on the store: reads see one snapshot, and every change is
/// checked, made and logged (one op per item changed) atomically, so any number of `Tracker`s,
/// in any number of processes, can work on one store at once. Errors map to the CLI's exit
/// codes ([`Error::exit_code`]); an [`Error::Conflict`] (someone else holds the item, or the
/// caller's version or token is stale) usually carries the item as it is now.
pub struct Tracker<S: Storage = RedbStore> {
    pub(crate) store: S,
    pub(crate) clock: Arc<dyn Clock>,
    // Facts about this process, read when first needed: a command that never takes a lease or
    // writes an op (show, list, status) pays nothing for them.
    actor: OnceLock<Actor>,
    host: OnceLock<String>,
    /// This process's pid namespace, in which a lease's pid means something only if it matches.
    pid_ns: OnceLock<Option<u64>>,
    alive: AliveProbe,
    tied_here: TieProbe,
    /// How its messages name the fields a caller could give (`--force` or `` `force` ``).
    spelling: crate::error::Spelling,
}

impl Tracker<RedbStore> {
    /// Creates a tracker file at `path` (and its directory); refuses to overwrite anything.
    /// `lock_timeout` bounds every later wait for the file's write lock ([`Error::Busy`] past it).
    pub fn init(path: &Path, lock_timeout: Duration) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("{}: cannot create directory", dir.display()), e))?;
        }
        Ok(Tracker::with_store(RedbStore::create(path, lock_timeout)?))
    }

    /// Opens an existing tracker file; read-only handles work on read-only files.
    pub fn open(path: &Path, access: Access, lock_timeout: Duration) -> Result<Self> {
        Ok(Tracker::with_store(RedbStore::open(
            path,
            access,
            lock_timeout,
        )?))
    }
}

impl<S: Storage> Tracker<S> {
    /// A tracker over any backend, with the system clock and this process's default actor.
    pub fn with_store(store: S) -> Self {
        Tracker {
            store,
            clock: Arc::new(SystemClock::new()),
            actor: OnceLock::new(),
            host: OnceLock::new(),
            pid_ns: OnceLock::new(),
            alive: Arc::new(crate::host::process_alive),
            tied_here: Arc::new(tied_to_this_process),
            spelling: crate::error::Spelling::Flags,
        }
    }

    /// Replaces the clock lease times and op stamps are read from (tests pass a [`FakeClock`]).
    /// A backend with a shared clock (PostgreSQL) still takes wall time from the server.
    ///
    /// [`FakeClock`]: crate::FakeClock
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Names fields in its messages' advice as `spelling` does: command-line flags (the
    /// default), or the JSON arguments of MCP tools and HTTP bodies.
    pub fn with_spelling(mut self, spelling: crate::error::Spelling) -> Self {
        self.spelling = spelling;
        self
    }

    /// `field` as this tracker's messages advise it (`--force`, or `` `force` ``).
    pub(crate) fn advise(&self, field: &str) -> String {
        self.spelling.advice(field)
    }

    /// How this tracker's messages name fields.
    pub(crate) fn spelling(&self) -> crate::error::Spelling {
        self.spelling
    }

    /// Acts as `actor`: the holder name of its leases and the author of its ops.
    pub fn with_actor(mut self, actor: Actor) -> Self {
        self.actor = OnceLock::from(actor);
        self
    }

    /// Replaces the check of whether a lease's process still runs (tests simulate deaths). The
    /// probe gets the pid and its recorded start time (clock ticks since boot) and answers
    /// whether that very process still runs; it is asked only about leases taken on this host,
    /// boot and pid namespace.
    pub fn with_alive_probe(mut self, probe: AliveProbe) -> Self {
        self.alive = probe;
        self
    }

    /// Replaces the check of whether a lease's tied process is this process or one of its
    /// ancestors (tests play several processes in one). Asked only about leases
    /// whose pid means something here (same host, boot and pid namespace).
    pub fn with_tie_probe(mut self, probe: TieProbe) -> Self {
        self.tied_here = probe;
        self
    }

    /// Who this tracker acts as.
    pub fn actor(&self) -> &Actor {
        self.actor.get_or_init(Actor::default_for_this_process)
    }

    /// This host's name, as leases record it.
    pub(crate) fn host(&self) -> &str {
        self.host.get_or_init(crate::host::hostname)
    }

    /// This process's pid namespace (None without /proc).
    pub(crate) fn pid_ns(&self) -> Option<u64> {
        *self.pid_ns.get_or_init(crate::host::pid_namespace)
    }

    /// The backend, for reads and writes below the `Tracker` API (see [`Storage`]).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Now on this host's clock, never asking the backend: for what only shows time in words
    /// and decides nothing.
    pub fn local_now(&self) -> Now {
        self.clock.now()
    }

    /// Now, for display: the backend's shared clock if it has one, else this host's.
    pub fn now(&self) -> Now {
        if !self.store.has_shared_clock() {
            return self.clock.now();
        }
        let local = self.clock.now();
        match self.store.server_time_ms() {
            Ok(Some(wall_ms)) => Now {
                wall_ms,
                mono_ms: None,
                boot_id: local.boot_id,
            },
            _ => local,
        }
    }

    /// Now, inside a transaction: the backend's shared clock if it has one (a database server's;
    /// then only the wall clock counts, and only the boot id is kept, for pid checks), else this
    /// host's clocks.
    pub(crate) fn now_in(&self, t: &dyn ReadTxn) -> Result<Now> {
        let local = self.clock.now();
        Ok(match t.server_time_ms()? {
            Some(wall_ms) => Now {
                wall_ms,
                mono_ms: None,
                boot_id: local.boot_id,
            },
            None => local,
        })
    }

    /// The state of a lease now, as this host sees it.
    pub fn lease_state(&self, lease: &Lease, now: &Now) -> LeaseState {
        rules::lease_state(lease, now, |l| self.holder_gone(l, now))
    }

    /// The acting holder, with the token it presents, as the rules see it.
    pub(crate) fn claimant(&self, token: Option<u64>) -> rules::Claimant<'_> {
        rules::Claimant {
            holder: &self.actor().name,
            distinct: self.actor().distinct,
            token,
        }
    }

    /// Whether a lease's pid means something here: it was recorded on this host, boot and pid
    /// namespace. A lease without a recorded namespace (older data) never qualifies.
    fn pids_comparable(&self, lease: &Lease, now: &Now) -> bool {
        let same_boot = matches!((&lease.boot_id, &now.boot_id), (Some(a), Some(b)) if **a == **b);
        let same_pid_ns = matches!((lease.pid_ns, self.pid_ns()), (Some(a), Some(b)) if a == b);
        same_boot && same_pid_ns && lease.host == self.host()
    }

    /// Whether the processes a lease is tied to are provably gone. Only a pid read where it was
    /// recorded proves anything; any other lease lives until its deadline.
    fn holder_gone(&self, lease: &Lease, now: &Now) -> bool {
        match lease.pid {
            Some(pid) if self.pids_comparable(lease, now) => {
                !(self.alive)(pid, lease.pid_start)
                    && !lease.pgid.is_some_and(crate::host::group_alive)
            }
            _ => false,
        }
    }

    /// How this process stands to the process `lease` is tied to: it is that process or a
    /// descendant of it ([`Tie::Ours`]), or not.
    pub(crate) fn tie_of(&self, lease: &Lease, now: &Now) -> Tie {
        if lease.pid.is_none() {
            return Tie::Untied;
        }
        if self.pids_comparable(lease, now) && (self.tied_here)(lease) {
            Tie::Ours
        } else {
            Tie::Other
        }
    }

    /// How the caller, presenting `token`, stands to `lease` now, with the lease's state.
    pub(crate) fn standing(
        &self,
        lease: &Lease,
        token: Option<u64>,
        now: &Now,
    ) -> (LeaseState, Standing) {
        let state = self.lease_state(lease, now);
        let tie = self.tie_of(lease, now);
        (
            state,
            rules::standing(lease, state, tie, &self.claimant(token)),
        )
    }

    /// Starts listening for committed writes (see [`Storage::listen`]); false when the
    /// backend cannot tell of them.
    pub fn listen(&self) -> bool {
        self.store.listen()
    }

    /// Waits at most `timeout` for a write to commit new ops (see
    /// [`Storage::wait_for_change`]); true if one did.
    pub fn wait_for_change(&self, timeout: Duration) -> bool {
        self.store.wait_for_change(timeout)
    }

    /// The lease length a claim gets when it names none: this tracker's setting, else 15 minutes.
    pub fn default_ttl(&self) -> Result<Duration> {
        let ms = self.store.setting(Setting::DefaultTtlMs)?;
        Ok(ms.map(Duration::from_millis).unwrap_or(DEFAULT_TTL))
    }

    /// Sets this tracker's default lease length (a setting, so no op is logged).
    pub fn set_default_ttl(&self, ttl: Duration) -> Result<()> {
        let ttl = rules::check_ttl(ttl).map_err(Error::Invalid)?;
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.store
            .write(|t| t.set_setting(Setting::DefaultTtlMs, ms))
    }

    // ---- reads -------------------------------------------------------------------------------

    /// `show`: the item, the items waiting for it, its lease even when no longer live, and its
    /// latest ops.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no item matches, [`Error::Invalid`] for an ambiguous prefix.
    pub fn show(&self, item: &ItemRef) -> Result<ItemDetail> {
        self.store.read(|t| {
            let now = self.now_in(t)?;
            let id = resolve(t, item)?;
            let view = self.view(t, id, &now)?;
            let mut blocks = Vec::new();
            for d in t.dependents(id)? {
                if let Some(i) = t.item(d)? {
                    blocks.push((i.num, d));
                }
            }
            blocks.sort();
            let lease = t.lease(id)?.map(|l| {
                let st = self.lease_state(&l, &now);
                (l, st)
            });
            let seqs = t.op_seqs_of(id)?;
            let mut recent_ops = Vec::new();
            for seq in seqs.iter().rev().take(5).rev() {
                if let Some(op) = t.op(*seq)? {
                    recent_ops.push(op);
                }
            }
            let comments = comments_of(t, id)?;
            let ids = t.children(id)?;
            t.prefetch(&ids)?;
            let mut children = Vec::with_capacity(ids.len());
            for c in ids {
                if let Some(i) = t.item(c)? {
                    children.push((i.num, c, i.status));
                }
            }
            children.sort();
            let mut open_blockers = Vec::new();
            for b in &view.item.blocked_by {
                if let Some(i) = t.item(*b)?.filter(|i| i.status == Status::Open) {
                    open_blockers.push(i.num);
                }
            }
            let not_ready = rules::why_not_ready(&view, &open_blockers, &children);
            Ok(ItemDetail {
                view,
                blocks,
                lease,
                recent_ops,
                comments,
                children,
                not_ready,
            })
        })
    }

    /// The item with its live lease and blockers (what the changing commands return).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no item matches, [`Error::Invalid`] for an ambiguous prefix.
    pub fn get(&self, item: &ItemRef) -> Result<ItemView> {
        self.store.read(|t| {
            let now = self.now_in(t)?;
            let id = resolve(t, item)?;
            self.view(t, id, &now)
        })
    }

    /// The items `q` selects, by number (or in queue order with `ready`), from one snapshot.
    pub fn list(&self, q: &ListQuery) -> Result<Vec<ItemView>> {
        let mut out = Vec::new();
        self.list_each(q, &mut |v| {
            out.push(v);
            Ok(())
        })?;
        Ok(out)
    }

    /// `list`, handing each item to `f` as it is read, so a scan of any size runs in flat
    /// memory (one read snapshot throughout). The lists that come by number from a set of
    /// identities (children, descendants, claimed items) hold that set's items first.
    pub fn list_each(
        &self,
        q: &ListQuery,
        f: &mut dyn FnMut(ItemView) -> Result<()>,
    ) -> Result<()> {
        let limit = q.limit.unwrap_or(usize::MAX);
        self.store.read(|t| {
            let now = self.now_in(t)?;
            let mut kept = 0usize;
            let search = q.search.as_ref().map(|s| s.to_lowercase());
            if limit == 0 {
                return Ok(());
            }
            // Comments live in the log: the items with a matching one, found in one pass.
            let commented = match &search {
                Some(s) => items_with_comment_containing(t, s)?,
                None => HashSet::new(),
            };
            let parent = q.parent.as_ref().map(|p| resolve(t, p)).transpose()?;
            let under = parent
                .filter(|_| q.descendants)
                .map(|p| subtree(t, p))
                .transpose()?;
            let below = |item: &Item, p: Ulid| match &under {
                Some(under) => under.contains(&item.id),
                None => item.parent == Some(p),
            };
            let mut consider = |item: Item| -> Result<bool> {
                // The item's own fields first: most items are passed over without more reads.
                let fits = (q.ready || q.status.is_none_or(|s| item.status == s))
                    && q.label.as_ref().is_none_or(|l| item.labels.contains(l))
                    && q.item_type.is_none_or(|ty| item.item_type == ty)
                    && parent.is_none_or(|p| below(&item, p))
                    && search.as_ref().is_none_or(|s| {
                        contains_ignoring_case(&item.title, s)
                            || contains_ignoring_case(&item.body, s)
                            || commented.contains(&item.id)
                    });
                if !fits {
                    return Ok(true);
                }
                let lease = t.lease(item.id)?;
                let v = self.view_of(t, item, lease, &now)?;
                let keep = (!q.ready || v.claim.is_none())
                    && (!q.claimed || v.claim.is_some())
                    && q.holder
                        .as_ref()
                        .is_none_or(|h| v.claim.as_ref().is_some_and(|c| &c.holder == h));
                if keep {
                    kept += 1;
                    f(v)?;
                }
                Ok(kept < limit)
            };
            let mut by_id = |id: Ulid| -> Result<bool> {
                match t.item(id)? {
                    Some(item) => consider(item),
                    None => Ok(true),
                }
            };
            if q.ready {
                t.visit_ready(&mut by_id)?;
            } else if let Some(p) = parent {
                let ids = match &under {
                    Some(under) => under.iter().copied().collect(),
                    None => t.children(p)?,
                };
                visit_by_num(t, ids, &mut consider)?;
            } else if q.claimed || q.holder.is_some() {
                let ids = t.leases()?.into_iter().map(|(id, _)| id).collect();
                visit_by_num(t, ids, &mut consider)?;
            } else if let Some(label) = &q.label {
                t.visit_label(label, &mut by_id)?;
            } else if let Some(s) = q.status {
                t.visit_status(s, &mut by_id)?;
            } else {
                t.visit_items(&mut consider)?;
            }
            Ok(())
        })
    }

    /// The view of an item as a command left it, with the lease it made (an idempotent repeat
    /// returns this, not the item as it is now).
    pub(crate) fn view_as_made(
        &self,
        t: &dyn ReadTxn,
        item: Item,
        lease: Option<Lease>,
    ) -> Result<ItemView> {
        let (blocked_by_nums, blocked) = self.blockers_of(t, &item)?;
        let parent_num = parent_num(t, &item)?;
        let waits_for_children = waits_for_children(t, &item)?;
        Ok(ItemView {
            item,
            claim: lease,
            blocked_by_nums,
            blocked,
            parent_num,
            waits_for_children,
        })
    }

    fn blockers_of(&self, t: &dyn ReadTxn, item: &Item) -> Result<(Vec<u64>, bool)> {
        let mut nums = Vec::with_capacity(item.blocked_by.len());
        let mut blocked = false;
        for b in &item.blocked_by {
            if let Some(bi) = t.item(*b)? {
                nums.push(bi.num);
                blocked |= bi.status == Status::Open;
            }
        }
        Ok((nums, blocked))
    }

    pub(crate) fn view(&self, t: &dyn ReadTxn, id: Ulid, now: &Now) -> Result<ItemView> {
        let item = t
            .item(id)?
            .ok_or_else(|| Error::NotFound(format!("no item {id}")))?;
        let lease = t.lease(id)?;
        self.view_of(t, item, lease, now)
    }

    /// The view of an item already read, with its lease (live or not) already looked up.
    pub(crate) fn view_of(
        &self,
        t: &dyn ReadTxn,
        item: Item,
        lease: Option<Lease>,
        now: &Now,
    ) -> Result<ItemView> {
        let claim = lease.filter(|l| self.lease_state(l, now) == LeaseState::Live);
        let (blocked_by_nums, blocked) = self.blockers_of(t, &item)?;
        let parent_num = parent_num(t, &item)?;
        let waits_for_children = waits_for_children(t, &item)?;
        Ok(ItemView {
            item,
            claim,
            blocked_by_nums,
            blocked,
            parent_num,
            waits_for_children,
        })
    }
}

/// Whether `text` contains `lower` (already lowercase), ignoring case.
fn contains_ignoring_case(text: &str, lower: &str) -> bool {
    // Most text is ASCII: compared without lowercasing a copy of it.
    if text.is_ascii() && lower.is_ascii() {
        let (t, l) = (text.as_bytes(), lower.as_bytes());
        return l.is_empty() || t.windows(l.len()).any(|w| w.eq_ignore_ascii_case(l));
    }
    text.to_lowercase().contains(lower)
}

/// The items with a comment containing `lower` (lowercase), ignoring case: one pass over the
/// log, keeping only the identities that match.
fn items_with_comment_containing(t: &dyn ReadTxn, lower: &str) -> Result<HashSet<Ulid>> {
    let mut found = HashSet::new();
    visit_comments(t, &mut |item, comment| {
        if contains_ignoring_case(&comment.text, lower) {
            found.insert(item);
        }
    })?;
    Ok(found)
}

/// The items `ids` (those still in the table), by number, handed to `f` until it says stop.
fn visit_by_num(
    t: &dyn ReadTxn,
    ids: Vec<Ulid>,
    f: &mut dyn FnMut(Item) -> Result<bool>,
) -> Result<()> {
    t.prefetch(&ids)?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        items.extend(t.item(id)?);
    }
    items.sort_by_key(|i| i.num);
    for item in items {
        if !f(item)? {
            break;
        }
    }
    Ok(())
}

/// Every item under `root` at any depth (not `root` itself), read from the children index.
fn subtree(t: &dyn ReadTxn, root: Ulid) -> Result<HashSet<Ulid>> {
    let (mut under, mut next) = (HashSet::new(), vec![root]);
    while let Some(id) = next.pop() {
        // Parents never loop (every write refuses it); `insert` stops a damaged index anyway.
        next.extend(t.children(id)?.into_iter().filter(|c| under.insert(*c)));
    }
    under.remove(&root);
    Ok(under)
}

/// Every comment in the tracker with its item, in log order: one pass over the log (comments
/// live in their ops). `list --search` and `export` read them so.
pub(crate) fn visit_comments(
    t: &dyn ReadTxn,
    f: &mut dyn FnMut(Ulid, crate::model::Comment),
) -> Result<()> {
    t.visit_ops(1, &mut |op| {
        for c in op.changes {
            if let crate::model::Change::Commented { comment } = c {
                f(op.item, comment);
            }
        }
        Ok(true)
    })
}

/// The children of `id` that are open, by identity: what it waits for besides its blockers.
pub(crate) fn open_children(t: &dyn ReadTxn, id: Ulid) -> Result<Vec<Item>> {
    let children = t.children(id)?;
    if children.is_empty() {
        return Ok(Vec::new());
    }
    t.prefetch(&children)?;
    let mut open = Vec::new();
    for c in children {
        if let Some(child) = t.item(c)?.filter(|c| c.status == Status::Open) {
            open.push(child);
        }
    }
    Ok(open)
}

/// Whether any child of `id` is open: read a few at a time, stopping at the first open one, so
/// a parent of thousands of parts, most of them open, costs a few reads (what readiness asks
/// after every change of a part).
pub(crate) fn has_open_child(t: &dyn ReadTxn, id: Ulid) -> Result<bool> {
    const CHUNK: usize = 64;
    let children = t.children(id)?;
    for chunk in children.chunks(CHUNK) {
        t.prefetch(chunk)?;
        for c in chunk {
            if t.item(*c)?.is_some_and(|c| c.status == Status::Open) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Whether `item` is open with an open child (only an open item waits).
fn waits_for_children(t: &dyn ReadTxn, item: &Item) -> Result<bool> {
    if item.status != Status::Open {
        return Ok(false);
    }
    has_open_child(t, item.id)
}

/// The comments on item `id`, oldest first, read from its ops (a comment is an op of its own).
pub(crate) fn comments_of(t: &dyn ReadTxn, id: Ulid) -> Result<Vec<crate::model::Comment>> {
    let mut out = Vec::new();
    for seq in t.op_seqs_of(id)? {
        if let Some(op) = t.op(seq)? {
            for c in op.changes {
                if let crate::model::Change::Commented { comment } = c {
                    out.push(comment);
                }
            }
        }
    }
    // Oldest first by when they were written, not when they arrived here: comments merged from
    // another tracker read in the same order in both.
    out.sort_by_key(|c| (c.at, c.id));
    Ok(out)
}

/// The number of `item`'s parent, if it has one.
fn parent_num(t: &dyn ReadTxn, item: &Item) -> Result<Option<u64>> {
    match item.parent {
        Some(p) => Ok(t.item(p)?.map(|p| p.num)),
        None => Ok(None),
    }
}

/// Whether `lease` is tied to this process or to one of its ancestors. (Its process group keeps
/// a lease alive but proves nothing: a group id carries no start time, so a recycled one could
/// be anyone's.)
fn tied_to_this_process(lease: &Lease) -> bool {
    lease
        .pid
        .is_some_and(|pid| crate::host::is_self_or_ancestor(pid, lease.pid_start))
}

/// Finds the item `r` names, inside a read or write transaction of the store (for code that
/// works below the `Tracker` API).
///
/// # Errors
///
/// [`Error::NotFound`] when no item has that number or prefix, [`Error::Invalid`] when a prefix
/// matches more than one item.
pub fn resolve(t: &dyn ReadTxn, r: &ItemRef) -> Result<Ulid> {
    match r {
        ItemRef::Num(n) => t.id_by_num(*n)?.ok_or_else(|| {
            Error::NotFound(format!(
                "no item #{n}; `tracker list --status all` shows every item"
            ))
        }),
        ItemRef::Prefix(p) => {
            let (lo, hi) = ulid_prefix_range(p)
                .ok_or_else(|| Error::Invalid(format!("{p:?} is not a ULID prefix")))?;
            let ids = t.ids_between(lo, hi, 2)?;
            match ids.as_slice() {
                [one] => Ok(*one),
                [] => Err(Error::NotFound(format!("no item with an id starting {p}"))),
                _ => Err(Error::Invalid(format!(
                    "{p} is ambiguous: more than one item id starts with it; give more characters"
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::store::mem::MemStore;

    /// A lease tied to a pid that the probe says is gone, on this host and boot.
    fn lease_of_a_dead_pid(pid_ns: Option<u64>) -> Lease {
        Lease {
            holder: "ana".into(),
            token: 1,
            acquired_at: 0,
            renewed_at: 0,
            expires_at: i64::MAX,
            ttl_ms: 60_000,
            host: crate::host::hostname(),
            pid: Some(4242),
            pid_start: Some(7),
            boot_id: Some("boot".into()),
            deadline_mono_ms: None,
            pgid: None,
            pid_ns,
        }
    }

    #[test]
    fn a_pid_proves_a_holder_gone_only_in_the_pid_namespace_it_was_recorded_in() {
        let clock = FakeClock::new(1_800_000_000_000, "boot");
        let t = Tracker::with_store(MemStore::new())
            .with_clock(Arc::new(clock))
            .with_alive_probe(Arc::new(|_, _| false));
        let now = t.now();
        let ours = t.pid_ns().expect("this test needs /proc");
        let here = lease_of_a_dead_pid(Some(ours));
        assert_eq!(t.lease_state(&here, &now), LeaseState::HolderGone);
        let other_container = lease_of_a_dead_pid(Some(ours + 1));
        assert_eq!(t.lease_state(&other_container, &now), LeaseState::Live);
        // Written before namespaces were recorded: the pid could be anyone's, so it proves nothing.
        let old_data = lease_of_a_dead_pid(None);
        assert_eq!(t.lease_state(&old_data, &now), LeaseState::Live);
    }
}
