//! Commands that change items (new, update, done, dependencies) and the machinery every change
//! shares: one write transaction that checks its preconditions, makes the change and appends the
//! op (`commit`), and idempotency keys. Leases are in `leasing`, checks and messages in `conflict`.

use std::time::Duration;

use ulid::Ulid;

use crate::clock::Now;
use crate::error::{Error, Result};
use crate::model::{
    Change, Item, ItemView, Lease, NewItem, Op, OpKind, Patch, Status, DEFAULT_PRIORITY,
};
use crate::rules;
use crate::store::{Counter, IdempotencyRecord, ReadTxn, Storage, WriteTxn};
use crate::tracker::{resolve, Guard, ItemRef, Tracker};

impl<S: Storage> Tracker<S> {
    /// Creates an item. With an idempotency key, a repeat returns the first item.
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
        let mut labels: Vec<String> = Vec::new();
        for l in &new.labels {
            let l = rules::validate_label(l).map_err(Error::Invalid)?;
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
        let fingerprint = format!(
            "new {title:?} {:?} {priority} {labels:?} {blocked_by:?}",
            new.body
        );
        let now = self.now();
        self.store.write(|t| {
            self.idempotent(t, guard, &fingerprint, &now, |t| {
                let mut blockers = Vec::new();
                for r in blocked_by {
                    let b = resolve(t, r)?;
                    if !blockers.contains(&b) {
                        blockers.push(b);
                    }
                }
                let num = t.counter(Counter::LastNum)? + 1;
                t.set_counter(Counter::LastNum, num)?;
                let item = Item {
                    id: new_ulid(now.wall_ms),
                    num,
                    title: title.clone(),
                    body: new.body.clone(),
                    status: Status::Open,
                    priority,
                    labels: labels.clone(),
                    blocked_by: blockers,
                    version: 1,
                    created_at: now.wall_ms,
                    updated_at: now.wall_ms,
                };
                let id = item.id;
                self.commit(
                    t,
                    &now,
                    OpKind::New,
                    None,
                    None,
                    vec![Change::Created { item }],
                )?;
                Ok(id)
            })
        })
    }

    /// Changes fields; a status other than open also ends any lease.
    pub fn update(&self, r: &ItemRef, patch: Patch, guard: &Guard) -> Result<ItemView> {
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
        for l in patch
            .add_labels
            .iter_mut()
            .chain(patch.remove_labels.iter_mut())
        {
            *l = rules::validate_label(l).map_err(Error::Invalid)?;
        }
        let fingerprint = format!(
            "update {r} {patch:?} {:?} {:?}",
            guard.if_version, guard.token
        );
        self.change_item(r, guard, &fingerprint, |t, item, now| {
            let lease = t.lease(item.id)?;
            self.check_token(t, item, lease.as_ref(), guard.token, now)?;
            let mut changes = rules::patch_changes(item, &patch);
            let closing = patch.status.is_some_and(|s| s != Status::Open);
            if let (true, Some(l)) = (closing, &lease) {
                let verb = "change its status (use `tracker done --force`)";
                self.refuse_if_held_by_other(t, item, l, guard.token, now, verb)?;
                changes.push(Change::LeaseCleared { old: l.clone() });
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
        let fingerprint = format!("done {r} {:?} {:?} {force}", guard.if_version, guard.token);
        self.change_item(r, guard, &fingerprint, |t, item, now| {
            let lease = t.lease(item.id)?;
            self.check_token(t, item, lease.as_ref(), guard.token, now)?;
            let mut changes = Vec::new();
            if let (Some(l), false) = (&lease, force) {
                self.refuse_if_held_by_other(
                    t,
                    item,
                    l,
                    guard.token,
                    now,
                    "finish it (or pass --force)",
                )?;
            }
            if item.status != Status::Done {
                changes.push(Change::Status {
                    old: item.status,
                    new: Status::Done,
                });
            }
            if let Some(l) = &lease {
                changes.push(Change::LeaseCleared { old: l.clone() });
            }
            if !changes.is_empty() {
                self.commit(t, now, OpKind::Done, Some(item), lease, changes)?;
            }
            Ok(())
        })
    }

    /// Makes `r` wait for `blocker`; a self-dependency or a cycle is refused.
    pub fn dep_add(&self, r: &ItemRef, blocker: &ItemRef, guard: &Guard) -> Result<ItemView> {
        self.dep_change(r, blocker, guard, true)
    }

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
        let fingerprint = format!("dep {add} {r} {blocker} {:?}", guard.if_version);
        let now = self.now();
        self.store.write(|t| {
            self.idempotent(t, guard, &fingerprint, &now, |t| {
                let id = resolve(t, r)?;
                let b = resolve(t, blocker)?;
                let item = self.load(t, id)?;
                let blocker_item = self.load(t, b)?;
                self.check_version(t, &item, guard, &now)?;
                let present = item.blocked_by.contains(&b);
                let change = match (add, present) {
                    (true, true) => return Ok(id),
                    (false, false) => {
                        return Err(Error::NotFound(format!(
                            "#{} is not blocked by #{}",
                            item.num, blocker_item.num
                        )))
                    }
                    (true, false) => {
                        if b == id {
                            return Err(Error::conflict(format!("#{} cannot block itself", item.num)));
                        }
                        if depends_on(t, b, id)? {
                            return Err(Error::conflict(format!(
                                "#{} already waits (directly or not) for #{}; making #{} wait for #{} would be a cycle",
                                blocker_item.num, item.num, item.num, blocker_item.num
                            )));
                        }
                        Change::BlockerAdded { blocker: b }
                    }
                    (false, true) => Change::BlockerRemoved { blocker: b },
                };
                let kind = if add { OpKind::DepAdd } else { OpKind::DepRemove };
                let lease = t.lease(id)?;
                self.commit(t, &now, kind, Some(&item), lease, vec![change])?;
                Ok(id)
            })
        })
    }

    // ---- shared steps ------------------------------------------------------------------------

    /// Appends one op for `id` with the next sequence number, applies it to the item and its
    /// lease through `rules::apply_op_to`, and keeps every index in step.
    pub(crate) fn commit(
        &self,
        t: &mut dyn WriteTxn,
        now: &Now,
        kind: OpKind,
        before: Option<&Item>,
        lease_before: Option<Lease>,
        changes: Vec<Change>,
    ) -> Result<()> {
        let seq = t.counter(Counter::LastSeq)? + 1;
        let (mut item, version_before) = match (before, changes.first()) {
            (Some(b), _) => (b.clone(), b.version),
            (None, Some(Change::Created { item })) => (item.clone(), item.version - 1),
            (None, _) => {
                return Err(Error::Internal(
                    "an op on an item that does not exist".into(),
                ))
            }
        };
        let id = item.id;
        let op = Op {
            seq,
            at: now.wall_ms,
            actor: self.actor.name.clone(),
            kind,
            item: id,
            version_before,
            version_after: version_before + 1,
            changes,
        };
        let mut lease = lease_before.clone();
        rules::apply_op_to(&mut item, &mut lease, &op);
        for change in &op.changes {
            if let Change::LeaseSet { old, new } = change {
                if old.as_ref().is_none_or(|o| o.token != new.token) {
                    t.set_counter(Counter::LastToken, new.token)?;
                }
            }
        }
        let ready = is_ready(t, &item)?;
        t.put_item(before, &item, ready)?;
        match &lease {
            Some(l) if lease_before.as_ref() != Some(l) => t.put_lease(id, l)?,
            None if lease_before.is_some() => t.remove_lease(id)?,
            _ => {}
        }
        t.append_op(&op)?;
        t.set_counter(Counter::LastSeq, seq)?;
        let was_open = before.is_some_and(|b| b.status == Status::Open);
        if was_open != (item.status == Status::Open) {
            for d in t.dependents(id)? {
                if let Some(dep) = t.item(d)? {
                    let ready = is_ready(t, &dep)?;
                    t.put_item(Some(&dep), &dep, ready)?;
                }
            }
        }
        Ok(())
    }

    /// Runs `f` unless `guard`'s idempotency key was used before: then returns what the first
    /// call made if the arguments match, and a conflict if they do not.
    pub(crate) fn idempotent(
        &self,
        t: &mut dyn WriteTxn,
        guard: &Guard,
        fingerprint: &str,
        now: &Now,
        f: impl FnOnce(&mut dyn WriteTxn) -> Result<Ulid>,
    ) -> Result<ItemView> {
        let Some(key) = guard.idempotency_key.as_deref() else {
            let id = f(t)?;
            return self.view(t, id, now);
        };
        if key.is_empty() || key.len() > 200 {
            return Err(Error::Invalid(
                "an idempotency key is 1 to 200 characters".into(),
            ));
        }
        if let Some(rec) = t.idempotency(key)? {
            if rec.fingerprint != fingerprint {
                return Err(Error::conflict(format!(
                    "idempotency key {key:?} was already used for a different command ({}); use a new key",
                    rec.fingerprint
                )));
            }
            return self.view(t, rec.item, now);
        }
        let id = f(t)?;
        let record = IdempotencyRecord {
            fingerprint: fingerprint.to_string(),
            item: id,
            at: now.wall_ms,
        };
        t.put_idempotency(key, &record)?;
        self.view(t, id, now)
    }

    /// One command on the item `r` names, as one write transaction: an idempotency key's earlier
    /// result if there is one, else the item found at the expected version and handed to
    /// `change`, which makes its change and commits its op.
    pub(crate) fn change_item(
        &self,
        r: &ItemRef,
        guard: &Guard,
        fingerprint: &str,
        change: impl FnOnce(&mut dyn WriteTxn, &Item, &Now) -> Result<()>,
    ) -> Result<ItemView> {
        let now = self.now();
        self.store.write(|t| {
            self.idempotent(t, guard, fingerprint, &now, |t| {
                let item = self.target(t, r, guard, &now)?;
                change(t, &item, &now)?;
                Ok(item.id)
            })
        })
    }

    /// The item a command acts on: found, loaded, and at the version the caller expects.
    pub(crate) fn target(
        &self,
        t: &dyn ReadTxn,
        r: &ItemRef,
        guard: &Guard,
        now: &Now,
    ) -> Result<Item> {
        let item = self.load(t, resolve(t, r)?)?;
        self.check_version(t, &item, guard, now)?;
        Ok(item)
    }

    pub(crate) fn load(&self, t: &dyn ReadTxn, id: Ulid) -> Result<Item> {
        t.item(id)?
            .ok_or_else(|| Error::NotFound(format!("no item {id}")))
    }
}

pub(crate) fn is_ready(t: &dyn ReadTxn, item: &Item) -> Result<bool> {
    let mut statuses = Vec::with_capacity(item.blocked_by.len());
    for b in &item.blocked_by {
        statuses.push((*b, t.item(*b)?.map(|i| i.status)));
    }
    Ok(rules::is_unblocked_open(item, |b| {
        statuses
            .iter()
            .find(|(id, _)| id == b)
            .and_then(|(_, s)| *s)
    }))
}

/// Whether `from` waits, directly or through others, for `target`.
fn depends_on(t: &dyn ReadTxn, from: Ulid, target: Ulid) -> Result<bool> {
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
        }
    }
    Ok(false)
}

/// A fresh identity whose time part is the clock's, so ULIDs sort by creation.
fn new_ulid(wall_ms: i64) -> Ulid {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(wall_ms.max(0) as u64);
    Ulid::from_datetime(t)
}
