//! Commands that change items: new, update, done, dependencies. Each is one write transaction
//! built on `txn` (find, check, change, log); leases are in `leasing`, checks and messages in
//! `conflict`.

use std::time::Duration;

use serde_json::json;
use ulid::Ulid;

use crate::error::{Error, Result};
use crate::model::{
    Change, Comment, Item, ItemType, ItemView, NewItem, OpKind, Patch, Status, DEFAULT_PRIORITY,
    MAX_COMMENTS_PER_ITEM,
};
use crate::rules::{self, DepRefusal, Tie};
use crate::store::{Counter, ReadTxn, Storage};
use crate::tracker::{resolve, Guard, ItemRef, Tracker};
use crate::txn::{fingerprint, next};

impl<S: Storage> Tracker<S> {
    /// Creates an item, open, at version 1, waiting for the items `blocked_by` names. With an
    /// idempotency key, a repeat returns the first item.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a bad title, body, priority or label; [`Error::NotFound`] when a
    /// blocker does not exist.
    pub fn new_item(
        &self,
        new: NewItem,
        blocked_by: &[ItemRef],
        guard: &Guard,
    ) -> Result<ItemView> {
        let title = rules::validate_title(&new.title).map_err(Error::Invalid)?;
        rules::validate_body(&new.body).map_err(Error::Invalid)?;
        let priority = rules::validate_priority(new.priority.unwrap_or(DEFAULT_PRIORITY))
            .map_err(Error::Invalid)?;
        let labels = rules::validate_labels(&new.labels).map_err(Error::Invalid)?;
        let item_type = new.item_type;
        self.store.write(|t| {
            let now = self.now_in(t)?;
            let mut blockers = Vec::new();
            for r in blocked_by {
                let b = resolve(t, r)?;
                if !blockers.contains(&b) {
                    blockers.push(b);
                }
            }
            let parent = new.parent.as_ref().map(|r| resolve(t, r)).transpose()?;
            if let Some(p) = parent.map(|p| self.load(t, p)).transpose()? {
                rules::may_take_open_child(&p).map_err(Error::conflict)?;
            }
            if let Some(p) = parent {
                // The parent will wait for the new item, which waits for its blockers.
                for b in &blockers {
                    if *b == p || depends_on(t, *b, p)? {
                        let (bn, pn) = (num_of(t, *b)?, num_of(t, p)?);
                        return Err(Error::conflict(format!(
                            "a new part of #{pn} cannot wait for #{bn}: #{bn} waits for #{pn}, \
                             which would wait for the new item (a cycle of dependencies and \
                             children)"
                        )));
                    }
                }
            }
            let mut args = json!({"title": title, "body": new.body, "priority": priority,
                "labels": labels,
                "blocked_by": blockers.iter().map(Ulid::to_string).collect::<Vec<_>>()});
            // Only when not the default, so a key used before format 2 repeats as it was.
            if item_type != ItemType::Task {
                args["type"] = item_type.as_str().into();
            }
            if let Some(p) = parent {
                args["parent"] = p.to_string().into();
            }
            let fp = fingerprint("new", args);
            self.idempotent(t, guard, &fp, &now, false, |t| {
                let num = next(t, Counter::LastNum)?;
                let item = Item {
                    id: new_ulid(now.wall_ms),
                    num,
                    title: title.clone(),
                    body: new.body.clone(),
                    status: Status::Open,
                    priority,
                    labels: labels.clone(),
                    blocked_by: blockers.clone(),
                    version: 1,
                    created_at: now.wall_ms,
                    updated_at: now.wall_ms,
                    item_type,
                    parent,
                    close_reason: None,
                };
                let id = item.id;
                let created = vec![Change::Created { item }];
                self.commit(t, &now, OpKind::New, None, None, created)?;
                Ok(id)
            })
        })
    }

    /// Changes fields. A status other than open also ends any lease, and like `done` it is
    /// refused while another holder has a live lease, or while the item has open children.
    pub fn update(&self, r: &ItemRef, patch: Patch, guard: &Guard) -> Result<ItemView> {
        self.update_with(r, patch, guard, false)
    }

    /// `update`; with `force`, a closing status closes an item with open children too.
    pub fn update_with(
        &self,
        r: &ItemRef,
        patch: Patch,
        guard: &Guard,
        force: bool,
    ) -> Result<ItemView> {
        let mut patch = patch;
        if let Some(t) = &patch.title {
            patch.title = Some(rules::validate_title(t).map_err(Error::Invalid)?);
        }
        if let Some(b) = &patch.body {
            rules::validate_body(b).map_err(Error::Invalid)?;
        }
        if let Some(p) = patch.priority {
            rules::validate_priority(p).map_err(Error::Invalid)?;
        }
        patch.add_labels = rules::validate_labels(&patch.add_labels).map_err(Error::Invalid)?;
        for l in &mut patch.remove_labels {
            *l = rules::validate_label(l).map_err(Error::Invalid)?;
        }
        if let Some(r) = &patch.close_reason {
            patch.close_reason = Some(rules::validate_reason(r).map_err(Error::Invalid)?);
        }
        // A reason and --force say how an item closes: without a closing status they mean nothing.
        let closing = patch.status.is_some_and(|s| s != Status::Open);
        for (given, what) in [
            (patch.close_reason.is_some(), "a reason".to_string()),
            (force, self.advise("force")),
        ] {
            if given && !closing {
                return Err(Error::Invalid(format!(
                    "{what} is given only with a closing status ({} done or cancelled)",
                    self.advise("status")
                )));
            }
        }
        let mut args = json!({"title": patch.title, "body": patch.body, "priority": patch.priority,
            "status": patch.status.map(Status::as_str), "add_labels": patch.add_labels,
            "remove_labels": patch.remove_labels});
        // Format-2 arguments only when given, so a key used before format 2 repeats as it was.
        if let Some(ty) = patch.item_type {
            args["type"] = ty.as_str().into();
        }
        if let Some(r) = &patch.close_reason {
            args["reason"] = r.as_str().into();
        }
        if let Some(p) = &patch.parent {
            args["parent"] = p.as_ref().map(|r| format!("{r:?}")).into();
        }
        if force {
            args["force"] = true.into();
        }
        self.change_item("update", r, guard, args, |t, item, now| {
            let lease = t.lease(item.id)?;
            self.check_token(t, item, lease.as_ref(), guard.token, now)?;
            let mut changes = rules::update_changes(item, lease.as_ref(), &patch);
            rules::check_labels_after(item, &changes).map_err(Error::Invalid)?;
            if let Some(p) = &patch.parent {
                changes.extend(parent_change(t, item, p.as_ref())?);
            }
            // An open item joins (or, reopened, rejoins) its parent: a closed one takes none.
            let parent_after = changes
                .iter()
                .find_map(|c| match c {
                    Change::Parent { new, .. } => Some(*new),
                    _ => None,
                })
                .unwrap_or(item.parent);
            let status_after = patch.status.unwrap_or(item.status);
            let joins = parent_after != item.parent || item.status != Status::Open;
            if let (Some(p), Status::Open, true) = (parent_after, status_after, joins) {
                rules::may_take_open_child(&self.load(t, p)?).map_err(Error::conflict)?;
            }
            if let (true, Some(l)) = (closing, &lease) {
                let verb = "close it";
                self.refuse_if_held_by_other(t, item, l, guard.token, now, verb)?;
            }
            if closing && item.status == Status::Open && !force {
                refuse_if_open_children(t, item, &self.advise("force"))?;
            }
            if !changes.is_empty() {
                self.commit(t, now, OpKind::Update, Some(item), lease, changes)?;
            }
            Ok(())
        })
    }

    /// Marks an item done and drops its lease; refused while another holder has a live lease,
    /// unless `force`.
    pub fn done(&self, r: &ItemRef, guard: &Guard, force: bool) -> Result<ItemView> {
        self.done_with_reason(r, guard, force, None)
    }

    /// `done` recording why (`done --reason`) as the item's `close_reason`.
    pub fn done_with_reason(
        &self,
        r: &ItemRef,
        guard: &Guard,
        force: bool,
        reason: Option<&str>,
    ) -> Result<ItemView> {
        let reason = match reason {
            Some(r) => Some(rules::validate_reason(r).map_err(Error::Invalid)?),
            None => None,
        };
        let mut args = json!({"force": force});
        if let Some(r) = &reason {
            args["reason"] = r.as_str().into();
        }
        self.change_item("done", r, guard, args, |t, item, now| {
            let lease = t.lease(item.id)?;
            self.check_token(t, item, lease.as_ref(), guard.token, now)?;
            if let (Some(l), false) = (&lease, force) {
                let verb = format!("finish it (or pass {})", self.advise("force"));
                self.refuse_if_held_by_other(t, item, l, guard.token, now, &verb)?;
            }
            if item.status == Status::Open && !force {
                refuse_if_open_children(t, item, &self.advise("force"))?;
            }
            let changes = rules::done_changes(item, lease.as_ref(), reason.as_ref());
            if !changes.is_empty() {
                self.commit(t, now, OpKind::Done, Some(item), lease, changes)?;
            }
            Ok(())
        })
    }

    /// Appends a comment to an item (format 2): an op of its own, with an identity, the actor as
    /// author and the op's time, that changes no field, so the item's version stays. With an
    /// idempotency key, a repeat returns the item and adds nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for an empty or too long text, or an item at its comment limit.
    pub fn comment(&self, r: &ItemRef, text: &str, guard: &Guard) -> Result<ItemView> {
        let text = rules::validate_comment(text).map_err(Error::Invalid)?;
        let args = json!({"text": text});
        self.change_item("comment", r, guard, args, |t, item, now| {
            let count = crate::tracker::comments_of(t, item.id)?.len();
            if count >= MAX_COMMENTS_PER_ITEM {
                return Err(Error::Invalid(format!(
                    "#{} already has {count} comments, the most an item may carry",
                    item.num
                )));
            }
            let comment = Comment {
                id: new_ulid(now.wall_ms),
                author: self.actor().name.clone(),
                at: now.wall_ms,
                text: text.clone(),
            };
            let lease = t.lease(item.id)?;
            let changes = vec![Change::Commented { comment }];
            self.commit(t, now, OpKind::Comment, Some(item), lease, changes)
        })
    }

    /// Makes `r` wait for `blocker`; a self-dependency or a cycle is refused.
    pub fn dep_add(&self, r: &ItemRef, blocker: &ItemRef, guard: &Guard) -> Result<ItemView> {
        self.dep_change(r, blocker, guard, true)
    }

    /// Makes `r` stop waiting for `blocker`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when `r` was not blocked by `blocker` (nothing is logged).
    pub fn dep_remove(&self, r: &ItemRef, blocker: &ItemRef, guard: &Guard) -> Result<ItemView> {
        self.dep_change(r, blocker, guard, false)
    }

    fn dep_change(
        &self,
        r: &ItemRef,
        blocker: &ItemRef,
        guard: &Guard,
        add: bool,
    ) -> Result<ItemView> {
        let command = if add { "dep_add" } else { "dep_rm" };
        let blocker_id = |t: &dyn ReadTxn| resolve(t, blocker);
        // The blocker is resolved once more inside the change; numbers never move, so both agree.
        let args = json!({"blocker": blocker.to_string()});
        self.change_item(command, r, guard, args, |t, item, now| {
            let b = blocker_id(t)?;
            let blocker_item = self.load(t, b)?;
            let lease = t.lease(item.id)?;
            // A token, if given, must be the live lease's, as for every other change; and a
            // lease tied to a living process keeps every other process (under any name) from
            // changing what the item waits for. Untied, dependencies stay anyone's to plan.
            self.check_token(t, item, lease.as_ref(), guard.token, now)?;
            if let Some(l) = lease.as_ref().filter(|l| self.tie_of(l, now) == Tie::Other) {
                let verb = "change what it waits for";
                self.refuse_if_held_by_other(t, item, l, guard.token, now, verb)?;
            }
            let waits = || depends_on(t, b, item.id);
            let changes = rules::dep_changes(item, b, add, waits)?.map_err(|why| {
                let (i, blocker) = (item.num, blocker_item.num);
                match why {
                    DepRefusal::NotBlocked => {
                        Error::NotFound(format!("#{i} is not blocked by #{blocker}"))
                    }
                    DepRefusal::SelfBlock => Error::conflict(format!("#{i} cannot block itself")),
                    DepRefusal::Cycle => Error::conflict(format!(
                        "#{blocker} already waits (directly or not) for #{i}; making #{i} wait \
                         for #{blocker} would be a cycle"
                    )),
                }
            })?;
            if changes.is_empty() {
                return Ok(());
            }
            let kind = if add {
                OpKind::DepAdd
            } else {
                OpKind::DepRemove
            };
            self.commit(t, now, kind, Some(item), lease, changes)
        })
    }
}

/// An item waits for its open children: closing it before them is a conflict that names them.
fn refuse_if_open_children(t: &dyn ReadTxn, item: &Item, force: &str) -> Result<()> {
    let open = crate::tracker::open_children(t, item.id)?;
    if open.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 10;
    let mut named: Vec<String> = open
        .iter()
        .take(SHOWN)
        .map(|c| format!("#{}", c.num))
        .collect();
    if open.len() > SHOWN {
        named.push(format!("and {} more", open.len() - SHOWN));
    }
    Err(Error::conflict(format!(
        "#{} has {} open {}: {}; close {} first, or pass {} to close it anyway",
        item.num,
        open.len(),
        if open.len() == 1 { "child" } else { "children" },
        named.join(", "),
        if open.len() == 1 { "it" } else { "them" },
        force,
    )))
}

/// The number of the item `id`, or 0 for none (only in messages).
fn num_of(t: &dyn ReadTxn, id: Ulid) -> Result<u64> {
    Ok(t.item(id)?.map_or(0, |i| i.num))
}

/// Whether `from` waits, directly or through others, for `target`: an item waits for its
/// blockers and for its children.
pub(crate) fn depends_on(t: &dyn ReadTxn, from: Ulid, target: Ulid) -> Result<bool> {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![from];
    while let Some(id) = stack.pop() {
        if id == target {
            return Ok(true);
        }
        if !seen.insert(id) {
            continue;
        }
        if let Some(i) = t.item(id)? {
            stack.extend(i.blocked_by.iter().copied());
            stack.extend(t.children(id)?);
        }
    }
    Ok(false)
}

/// The change that gives `item` the parent `to` names (none for `None`), if it has another;
/// an item that would become part of itself is refused as a cycle.
fn parent_change(t: &dyn ReadTxn, item: &Item, to: Option<&ItemRef>) -> Result<Option<Change>> {
    let new = match to {
        Some(r) => {
            let p = resolve(t, r)?;
            if p == item.id {
                return Err(Error::conflict(format!(
                    "#{} cannot be part of itself (a cycle)",
                    item.num
                )));
            }
            if parent_loops(t, item.id, p)? {
                let num = num_of(t, p)?;
                return Err(Error::conflict(format!(
                    "#{} cannot be part of #{num}: #{num} is already part of it, so the parent \
                     chain would loop (a cycle)",
                    item.num
                )));
            }
            // The parent will wait for it: refused if it already waits for the parent.
            if depends_on(t, item.id, p)? {
                let num = t.item(p)?.map_or(0, |p| p.num);
                return Err(Error::conflict(format!(
                    "#{} cannot be part of #{num}: it waits for #{num}, which would then wait \
                     for it (a cycle of dependencies and children)",
                    item.num
                )));
            }
            Some(p)
        }
        None => None,
    };
    Ok((new != item.parent).then_some(Change::Parent {
        old: item.parent,
        new,
    }))
}

/// Whether `parent`, or any item up its parent chain, is `id`.
pub(crate) fn parent_loops(t: &dyn ReadTxn, id: Ulid, parent: Ulid) -> Result<bool> {
    let mut seen = std::collections::HashSet::new();
    let mut at = Some(parent);
    while let Some(p) = at {
        if p == id {
            return Ok(true);
        }
        if !seen.insert(p) {
            return Ok(false);
        }
        at = t.item(p)?.and_then(|i| i.parent);
    }
    Ok(false)
}

/// A fresh identity whose time part is the clock's, so ULIDs sort by creation.
pub(crate) fn new_ulid(wall_ms: i64) -> Ulid {
    let ms = u64::try_from(wall_ms).unwrap_or(0);
    Ulid::from_datetime(std::time::UNIX_EPOCH + Duration::from_millis(ms))
}
