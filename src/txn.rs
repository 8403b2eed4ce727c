//! The machinery every change shares: one write transaction that finds the item, checks its
//! preconditions, makes the change and appends the op (`commit`), and idempotency keys.
//!
//! The clock is read inside the transaction, after the write lock is taken, so lease times and
//! `op.at` describe the moment the change was made, not the moment the command started waiting.

// This module hands out numbers, sequences, tokens and versions: no unchecked arithmetic here.
#![deny(clippy::arithmetic_side_effects)]

use serde_json::Value;
use ulid::Ulid;

use crate::clock::Now;
use crate::error::{Error, Result, Spelling};
use crate::model::{Change, Item, ItemView, Lease, Op, OpKind, Status};
use crate::rules::{self, LeaseState, Tie};
use crate::store::{Counter, IdempotencyRecord, ReadTxn, Storage, WriteTxn};
use crate::tracker::{has_open_child, resolve, Guard, ItemRef, Tracker};

/// How long an idempotency key is remembered. A repeat within this time returns the first
/// result; after it the key is forgotten and may be used afresh. Retries happen within minutes;
/// a day covers a client that retries after a long outage without keeping keys forever.
pub const IDEMPOTENCY_KEY_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

/// The longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_MAX: usize = 200;

/// The next value of `counter`, stored: the one way numbers, sequences and tokens are handed
/// out. Tokens also respect the floor an import set (`Counter::TokenFloor`).
pub(crate) fn next(t: &mut dyn WriteTxn, counter: Counter) -> Result<u64> {
    let mut last = t.counter(counter)?;
    if counter == Counter::LastToken {
        last = last.max(t.counter(Counter::TokenFloor)?);
    }
    let next = last.checked_add(1).ok_or_else(|| {
        Error::Data(format!(
            "counter {} is at its maximum ({last}); this tracker can hand out no more",
            counter.key()
        ))
    })?;
    t.set_counter(counter, next)?;
    Ok(next)
}

/// A command and its arguments as canonical JSON (object keys sorted), for idempotency keys.
/// Built from named fields, never from `Debug` output, so it stays the same across versions.
pub(crate) fn fingerprint(command: &str, args: Value) -> String {
    let mut v = args;
    if let Value::Object(m) = &mut v {
        m.insert("command".into(), Value::from(command));
    }
    // serde_json's maps are sorted by key, so equal arguments give equal text.
    v.to_string()
}

impl<S: Storage> Tracker<S> {
    /// Appends one op for the item with the next sequence number, applies it to the item and its
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
        let (mut item, version_before) = match (before, changes.first()) {
            (Some(b), _) => (b.clone(), b.version),
            (None, Some(Change::Created { item })) => {
                let before = item
                    .version
                    .checked_sub(1)
                    .ok_or_else(|| Error::Internal("an item created at version 0".into()))?;
                (item.clone(), before)
            }
            (None, _) => {
                return Err(Error::Internal(
                    "an op on an item that does not exist".into(),
                ))
            }
        };
        // A comment changes no field of the item: its op keeps the version.
        let step = u64::from(!changes.iter().all(Change::is_comment));
        let version_after = version_before.checked_add(step).ok_or_else(|| {
            Error::Invalid(format!(
                "#{} is at version {version_before}, the largest there is; it cannot change again",
                item.num
            ))
        })?;
        let seq = next(t, Counter::LastSeq)?;
        // `at` never goes back along the log, even if the wall clock steps back.
        let previous_at = match seq.checked_sub(1).filter(|s| *s > 0) {
            Some(prev) => t.op(prev)?.map(|op| op.at),
            None => None,
        };
        let id = item.id;
        let op = Op {
            seq,
            at: previous_at.map_or(now.wall_ms, |p| p.max(now.wall_ms)),
            actor: self.actor().name.clone(),
            kind,
            item: id,
            version_before,
            version_after,
            changes,
        };
        if step == 0 {
            return t.append_op(&op);
        }
        let mut lease = lease_before.clone();
        rules::apply_op_to(&mut item, &mut lease, &op);
        if before.is_none() && kind != OpKind::Import {
            // A new identity: nothing names it as a parent yet (an import's may, from its file).
            t.childless(id);
        }
        t.prefetch(&item.blocked_by)?;
        let ready = is_ready(t, &item)?;
        t.put_item(before, &item, ready)?;
        match &lease {
            Some(l) if lease_before.as_ref() != Some(l) => t.put_lease(id, l)?,
            None if lease_before.is_some() => t.remove_lease(id)?,
            _ => {}
        }
        t.append_op(&op)?;
        // A new item has no dependents yet (an import settles those listed before their
        // blocker existed at its end), so only a change between open and closed moves them.
        let was_open = before.is_some_and(|b| b.status == Status::Open);
        let is_open = item.status == Status::Open;
        // A parent waits for its open children: its readiness moves when a child is made,
        // opens, closes, or leaves for another parent.
        let old_parent = before.and_then(|b| b.parent);
        let mut parents = Vec::new();
        if old_parent != item.parent || before.is_none() || was_open != is_open {
            parents.extend(old_parent);
            parents.extend(item.parent.filter(|p| Some(*p) != old_parent));
        }
        match item.parent {
            // A new open child: its parent now waits for it, whatever its other children are,
            // so no scan of them (a plan's epic of 10,000 parts scanned them for every part).
            Some(p) if before.is_none() && is_open => self.hold_back(t, p)?,
            _ => settle_readiness(t, &parents)?,
        }
        if before.is_some() && was_open != is_open {
            settle_dependents(t, id)?;
        }
        Ok(())
    }

    /// Takes `id` out of the ready queue: it has just been given an open child. An identity not
    /// (yet) in the tracker is passed over.
    fn hold_back(&self, t: &mut dyn WriteTxn, id: Ulid) -> Result<()> {
        t.prefetch(&[id])?;
        if let Some(item) = t.item(id)? {
            t.put_item(Some(&item), &item, false)?;
        }
        Ok(())
    }

    /// Runs `f` unless `guard`'s idempotency key was used before (and is still remembered).
    /// A repeat by the same actor with the same fingerprint returns what the first call made,
    /// not the item as it is now; anything else is a conflict. Another actor learns nothing of
    /// the first call; the same actor is shown the command it first used the key for.
    ///
    /// A repeated claim (`claims`) hands over the lease it made only to the worker that holds
    /// it: while that lease is tied to another living process the repeat is a conflict, and once
    /// the lease has ended (its process gone, or expired) the repeat takes a fresh one, since a
    /// dead process's token is worth nothing to the one retrying.
    pub(crate) fn idempotent(
        &self,
        t: &mut dyn WriteTxn,
        guard: &Guard,
        fingerprint: &str,
        now: &Now,
        claims: bool,
        f: impl FnOnce(&mut dyn WriteTxn) -> Result<Ulid>,
    ) -> Result<ItemView> {
        let Some(key) = guard.idempotency_key.as_deref() else {
            let id = f(t)?;
            return self.view(t, id, now);
        };
        let Some(rec) = self.recall(t, key, fingerprint, now)? else {
            return self.run_and_remember(t, key, fingerprint, now, f);
        };
        match self.repeat_of(t, &rec, now, claims)? {
            Repeat::Recorded => {}
            Repeat::Fresh => return self.run_and_remember(t, key, fingerprint, now, f),
            Repeat::Refused(why) => {
                return Err(Error::conflict(format!(
                    "idempotency key {key:?} was already used for a claim by {}, {why}",
                    self.actor().name
                )))
            }
        }
        match rec.item_after {
            Some(item) => self.view_as_made(t, item, rec.lease_after),
            // Written before records kept their result: the item as it is now.
            None => self.view(t, rec.item, now),
        }
    }

    /// What idempotency key `key` remembers of an earlier call of the command `fingerprint`
    /// describes, by this actor: `None` when the key is unused (or forgotten). A key used by
    /// another actor, or for another command, is a conflict; a malformed key is refused.
    pub(crate) fn recall(
        &self,
        t: &dyn ReadTxn,
        key: &str,
        fingerprint: &str,
        now: &Now,
    ) -> Result<Option<IdempotencyRecord>> {
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX || key.chars().any(char::is_control) {
            return Err(Error::Invalid(format!(
                "an idempotency key is 1 to {IDEMPOTENCY_KEY_MAX} bytes with no control characters"
            )));
        }
        let remembered = t
            .idempotency(key)?
            .filter(|r| now.wall_ms.saturating_sub(r.at) < IDEMPOTENCY_KEY_LIFETIME_MS);
        let Some(rec) = remembered else {
            return Ok(None);
        };
        if rec.actor != self.actor().name {
            return Err(Error::conflict(format!(
                "idempotency key {key:?} was already used by another actor; keys belong to \
                 whoever used them first, so choose a new key"
            )));
        }
        if rec.fingerprint != fingerprint {
            return Err(Error::conflict(format!(
                "idempotency key {key:?} was already used for a different command \
                 ({}); use a new key",
                rec.fingerprint
            )));
        }
        Ok(Some(rec))
    }

    /// What a repeat of the keyed command `rec` may be given.
    fn repeat_of(
        &self,
        t: &dyn ReadTxn,
        rec: &IdempotencyRecord,
        now: &Now,
        claims: bool,
    ) -> Result<Repeat> {
        let Some(made) = &rec.lease_after else {
            return Ok(Repeat::Recorded);
        };
        let anonymous = !self.actor().distinct;
        // Two agents without a name or a terminal share one default name: a repeat cannot tell
        // them apart, so it must not hand over a lease (and its token) the first one took.
        let anonymous_refusal = || {
            Repeat::Refused(match self.spelling() {
                Spelling::Flags => "and without a terminal or --as/TRACKER_AS nothing tells you \
                     apart from another agent of that name; name yourself with --as to repeat \
                     claims by key"
                    .into(),
                Spelling::Json => "and a name sent with a request proves nothing, so the lease \
                     is not handed over again: read the item for its claim"
                    .into(),
            })
        };
        if !claims {
            return Ok(if anonymous {
                anonymous_refusal()
            } else {
                Repeat::Recorded
            });
        }
        let Some(on_file) = t.lease(rec.item)? else {
            // Released or finished since: the first result, as for any keyed command.
            return Ok(if anonymous {
                anonymous_refusal()
            } else {
                Repeat::Recorded
            });
        };
        // The lease it made was taken over, expired, or its process is gone: its token is worth
        // nothing to the one retrying, so the claim is made again and says what it finds now.
        let live = self.lease_state(&on_file, now) == LeaseState::Live;
        let Some(lease) = Some(on_file).filter(|l| l.token == made.token && live) else {
            return Ok(Repeat::Fresh);
        };
        Ok(match self.tie_of(&lease, now) {
            Tie::Ours => Repeat::Recorded,
            Tie::Untied if !anonymous => Repeat::Recorded,
            Tie::Untied => anonymous_refusal(),
            Tie::Other => Repeat::Refused(format!(
                "and the lease it made is tied to another process that is still running ({}); \
                 two processes are two workers: wait for it, or use a new key",
                crate::conflict::describe_other_lease(&lease, now)
            )),
        })
    }

    /// Runs the keyed command `f` and remembers its result under `key`.
    fn run_and_remember(
        &self,
        t: &mut dyn WriteTxn,
        key: &str,
        fingerprint: &str,
        now: &Now,
        f: impl FnOnce(&mut dyn WriteTxn) -> Result<Ulid>,
    ) -> Result<ItemView> {
        let id = f(t)?;
        let view = self.view(t, id, now)?;
        let record = IdempotencyRecord {
            fingerprint: fingerprint.to_string(),
            item: id,
            at: now.wall_ms,
            actor: self.actor().name.clone(),
            item_after: Some(view.item.clone()),
            lease_after: t.lease(id)?,
            created: Vec::new(),
        };
        t.put_idempotency(key, &record)?;
        Ok(view)
    }

    /// One command on the item `r` names, as one write transaction: an idempotency key's earlier
    /// result if there is one, else the item found at the expected version and handed to
    /// `change`, which makes its change and commits its op. `args` are the command's arguments
    /// for the fingerprint; the resolved item is added to them.
    pub(crate) fn change_item(
        &self,
        command: &str,
        r: &ItemRef,
        guard: &Guard,
        args: Value,
        mut change: impl FnMut(&mut dyn WriteTxn, &Item, &Now) -> Result<()>,
    ) -> Result<ItemView> {
        self.store.write(|t| {
            let now = self.now_in(t)?;
            let id = resolve(t, r)?;
            let mut args = args.clone();
            args["item"] = Value::from(id.to_string());
            args["if_version"] = guard.if_version.into();
            args["token"] = guard.token.into();
            let fp = fingerprint(command, args);
            let claims = command == "claim";
            self.idempotent(t, guard, &fp, &now, claims, |t| {
                let item = self.load(t, id)?;
                self.check_version(t, &item, guard, &now)?;
                change(t, &item, &now)?;
                Ok(item.id)
            })
        })
    }

    pub(crate) fn load(&self, t: &dyn ReadTxn, id: Ulid) -> Result<Item> {
        t.item(id)?
            .ok_or_else(|| Error::NotFound(format!("no item {id}")))
    }
}

/// What a repeat of a keyed command may be given.
enum Repeat {
    /// What the first call made.
    Recorded,
    /// Nothing of it: the command runs again, and its new result is remembered.
    Fresh,
    /// A conflict, for this reason.
    Refused(String),
}

/// Writes the readiness of the items waiting for `id` again (it opened or closed).
fn settle_dependents(t: &mut dyn WriteTxn, id: Ulid) -> Result<()> {
    let dependents = t.dependents(id)?;
    // Each dependent and its blockers, fetched together (one round trip each step on a
    // database), however many there are.
    t.prefetch(&dependents)?;
    let mut blockers = Vec::new();
    for d in &dependents {
        if let Some(dep) = t.item(*d)? {
            blockers.extend(dep.blocked_by);
        }
    }
    t.prefetch(&blockers)?;
    settle_readiness(t, &dependents)
}

/// Writes the readiness of each of `ids` again (unchanged items whose children or blockers
/// moved); an identity not (yet) in the tracker is passed over.
fn settle_readiness(t: &mut dyn WriteTxn, ids: &[Ulid]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    t.prefetch(ids)?;
    for id in ids {
        if let Some(item) = t.item(*id)? {
            let ready = is_ready(t, &item)?;
            t.put_item(Some(&item), &item, ready)?;
        }
    }
    Ok(())
}

/// Whether `item` belongs in the ready queue, judged from the stored status of its blockers
/// and of its children.
pub(crate) fn is_ready(t: &dyn ReadTxn, item: &Item) -> Result<bool> {
    if item.status != Status::Open {
        return Ok(false);
    }
    let mut statuses = Vec::with_capacity(item.blocked_by.len());
    for b in &item.blocked_by {
        statuses.push((*b, t.item(*b)?.map(|i| i.status)));
    }
    let has_open_child = has_open_child(t, item.id)?;
    Ok(rules::is_ready(
        item,
        |b| {
            statuses
                .iter()
                .find(|(id, _)| id == b)
                .and_then(|(_, s)| *s)
        },
        has_open_child,
    ))
}
