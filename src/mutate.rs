//! Commands that change items: each is one write transaction that checks its preconditions,
//! makes the change, and appends the op, so no other process can slip in between.

use std::time::{Duration, Instant};

use ulid::Ulid;

use crate::clock::{format_duration_short, Now};
use crate::error::{Error, Result};
use crate::model::{
    Change, Item, ItemView, Lease, NewItem, Op, OpKind, Patch, Status, DEFAULT_PRIORITY,
};
use crate::rules::{self, ClaimAction, ClaimFlags, ClaimRefusal, Claimant, LeaseState};
use crate::store::{Counter, IdempotencyRecord, ReadTxn, Storage, WriteTxn};
use crate::tracker::{resolve, ClaimOptions, Guard, ItemRef, Tracker};

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
                    id,
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
        let now = self.now();
        self.store.write(|t| {
            self.idempotent(t, guard, &fingerprint, &now, |t| {
                let item = self.target(t, r, guard, &now)?;
                let id = item.id;
                let lease = t.lease(id)?;
                self.check_token(t, &item, lease.as_ref(), guard.token, &now)?;
                let mut changes = rules::patch_changes(&item, &patch);
                let closing = patch.status.is_some_and(|s| s != Status::Open);
                if let (true, Some(l)) = (closing, &lease) {
                    if self.lease_state(l, &now) == LeaseState::Live
                        && !rules::holds(l, &self.actor.name, guard.token)
                    {
                        return Err(self.held_conflict(
                            t,
                            &item,
                            l,
                            &now,
                            "change its status (use `tracker done --force`)",
                        ));
                    }
                    changes.push(Change::LeaseCleared { old: l.clone() });
                }
                if !changes.is_empty() {
                    self.commit(t, &now, OpKind::Update, Some(&item), lease, id, changes)?;
                }
                Ok(id)
            })
        })
    }

    /// Takes a lease on one item; the same holder claiming again renews it.
    pub fn claim(&self, r: &ItemRef, opts: &ClaimOptions) -> Result<ItemView> {
        let ttl = check_ttl(opts.ttl)?;
        let fingerprint = format!("claim {r} {opts:?}");
        let now = self.now();
        self.store.write(|t| {
            self.idempotent(t, &opts.guard, &fingerprint, &now, |t| {
                let item = self.target(t, r, &opts.guard, &now)?;
                let id = item.id;
                self.take_lease(t, &item, opts, ttl, &now)?;
                Ok(id)
            })
        })
    }

    /// Claims the best ready item: open, unblocked, no live lease; best priority, then oldest.
    pub fn claim_next(&self, label: Option<&str>, opts: &ClaimOptions) -> Result<ItemView> {
        let ttl = check_ttl(opts.ttl)?;
        let fingerprint = format!("claim --next {label:?} {opts:?}");
        let now = self.now();
        self.store.write(|t| {
            self.idempotent(t, &opts.guard, &fingerprint, &now, |t| {
                let mut found = None;
                {
                    let r: &dyn ReadTxn = &*t;
                    r.visit_ready(&mut |id| {
                        if let Some(l) = label {
                            let labelled = r.item(id)?.is_some_and(|i| i.labels.iter().any(|x| x == l));
                            if !labelled {
                                return Ok(true);
                            }
                        }
                        let free = match r.lease(id)? {
                            None => true,
                            Some(lease) => self.lease_state(&lease, &now) != LeaseState::Live,
                        };
                        if free {
                            found = Some(id);
                        }
                        Ok(!free)
                    })?;
                }
                let Some(id) = found else {
                    return Err(Error::NotFound(match label {
                        Some(l) => format!("nothing is ready with label {l:?}"),
                        None => "nothing is ready: every open item is claimed, blocked, or there are none".into(),
                    }));
                };
                let item = self.load(t, id)?;
                let opts = ClaimOptions {
                    steal_stale: true,
                    ..opts.clone()
                };
                self.take_lease(t, &item, &opts, ttl, &now)?;
                Ok(id)
            })
        })
    }

    /// `claim` or `claim --next`, retried with exponential backoff and jitter while the item is
    /// held (or nothing is ready) until `wait` runs out; then exit 5.
    pub fn claim_waiting(
        &self,
        r: Option<&ItemRef>,
        label: Option<&str>,
        opts: &ClaimOptions,
        wait: Duration,
    ) -> Result<ItemView> {
        let deadline = Instant::now() + wait;
        let mut delay = Duration::from_millis(10);
        let mut seed = u64::from(std::process::id()) ^ (self.now().wall_ms as u64);
        loop {
            let attempt = match r {
                Some(r) => self.claim(r, opts),
                None => self.claim_next(label, opts),
            };
            let retry = match &attempt {
                Err(Error::Conflict { .. }) => opts.guard.if_version.is_none(),
                Err(Error::NotFound(_)) => r.is_none(),
                _ => false,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if !retry {
                return attempt;
            }
            if left.is_zero() {
                let why = attempt.err().map(|e| e.to_string()).unwrap_or_default();
                return Err(Error::Busy(format!(
                    "waited {} and the claim still could not be made: {why}",
                    format_duration_short(wait.as_millis() as i64)
                )));
            }
            // xorshift: jitter spreads waiting workers apart, no RNG crate needed.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let jitter = 0.5 + (seed % 1000) as f64 / 1000.0;
            std::thread::sleep(delay.mul_f64(jitter).min(left));
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// Extends the caller's lease (`heartbeat`).
    /// Without `ttl`, the lease is extended by its own TTL.
    pub fn renew(&self, r: &ItemRef, ttl: Option<Duration>, guard: &Guard) -> Result<ItemView> {
        let ttl = ttl.map(check_ttl).transpose()?;
        let fingerprint = format!("renew {r} {ttl:?} {:?} {:?}", guard.if_version, guard.token);
        let now = self.now();
        self.store.write(|t| {
            self.idempotent(t, guard, &fingerprint, &now, |t| {
                let item = self.target(t, r, guard, &now)?;
                let id = item.id;
                let lease = self.own_lease(t, &item, guard.token, &now, "renew")?;
                let mut new = lease.clone();
                new.renewed_at = now.wall_ms;
                let ttl = ttl.unwrap_or(Duration::from_millis(lease.ttl_ms));
                self.set_deadline(&mut new, ttl, &now);
                let changes = vec![Change::LeaseSet {
                    old: Some(lease.clone()),
                    new,
                }];
                self.commit(
                    t,
                    &now,
                    OpKind::Renew,
                    Some(&item),
                    Some(lease),
                    id,
                    changes,
                )?;
                Ok(id)
            })
        })
    }

    /// Gives the caller's lease back. An item with no lease is left as it is.
    pub fn release(&self, r: &ItemRef, guard: &Guard) -> Result<ItemView> {
        let fingerprint = format!("release {r} {:?} {:?}", guard.if_version, guard.token);
        let now = self.now();
        self.store.write(|t| {
            self.idempotent(t, guard, &fingerprint, &now, |t| {
                let item = self.target(t, r, guard, &now)?;
                let id = item.id;
                if t.lease(id)?.is_none() && guard.token.is_none() {
                    return Ok(id);
                }
                let lease = self.own_lease(t, &item, guard.token, &now, "release")?;
                let changes = vec![Change::LeaseCleared { old: lease.clone() }];
                self.commit(
                    t,
                    &now,
                    OpKind::Release,
                    Some(&item),
                    Some(lease),
                    id,
                    changes,
                )?;
                Ok(id)
            })
        })
    }

    /// Marks an item done and drops its lease; refused while another holder has a live lease,
    /// unless `force`.
    pub fn done(&self, r: &ItemRef, guard: &Guard, force: bool) -> Result<ItemView> {
        let fingerprint = format!("done {r} {:?} {:?} {force}", guard.if_version, guard.token);
        let now = self.now();
        self.store.write(|t| {
            self.idempotent(t, guard, &fingerprint, &now, |t| {
                let item = self.target(t, r, guard, &now)?;
                let id = item.id;
                let lease = t.lease(id)?;
                self.check_token(t, &item, lease.as_ref(), guard.token, &now)?;
                let mut changes = Vec::new();
                if let Some(l) = &lease {
                    let live = self.lease_state(l, &now) == LeaseState::Live;
                    if live && !force && !rules::holds(l, &self.actor.name, guard.token) {
                        return Err(self.held_conflict(
                            t,
                            &item,
                            l,
                            &now,
                            "finish it (or pass --force)",
                        ));
                    }
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
                    self.commit(t, &now, OpKind::Done, Some(&item), lease, id, changes)?;
                }
                Ok(id)
            })
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
                self.commit(t, &now, kind, Some(&item), lease, id, vec![change])?;
                Ok(id)
            })
        })
    }

    // ---- shared steps ------------------------------------------------------------------------

    /// Appends one op for `id` with the next sequence number, applies it to the item and its
    /// lease through `rules::apply_op_to`, and keeps every index in step.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn commit(
        &self,
        t: &mut dyn WriteTxn,
        now: &Now,
        kind: OpKind,
        before: Option<&Item>,
        lease_before: Option<Lease>,
        id: Ulid,
        changes: Vec<Change>,
    ) -> Result<(Item, Option<Lease>)> {
        let seq = t.counter(Counter::LastSeq)? + 1;
        let (mut item, version_before) = match (before, changes.first()) {
            (Some(b), _) => (b.clone(), b.version),
            (None, Some(Change::Created { item })) => (item.clone(), item.version - 1),
            (None, _) => return Err(Error::Internal(format!("op on missing item {id}"))),
        };
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
        Ok((item, lease))
    }

    /// Runs `f` unless `guard`'s idempotency key was used before: then returns what the first
    /// call made if the arguments match, and a conflict if they do not.
    fn idempotent(
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

    fn take_lease(
        &self,
        t: &mut dyn WriteTxn,
        item: &Item,
        opts: &ClaimOptions,
        ttl: Duration,
        now: &Now,
    ) -> Result<()> {
        let current = t.lease(item.id)?;
        let state = current.as_ref().map(|l| self.lease_state(l, now));
        let who = Claimant {
            holder: &self.actor.name,
            distinct: self.actor.distinct,
            token: opts.guard.token,
        };
        let flags = ClaimFlags {
            steal_stale: opts.steal_stale,
            force: opts.force,
        };
        if let (Some(tok), Some(l)) = (opts.guard.token, &current) {
            if tok != l.token {
                return Err(self.stale_token(t, item, tok, Some(l), now));
            }
        }
        let action = rules::decide_claim(item.status, current.as_ref().zip(state), &who, flags)
            .map_err(|refusal| self.claim_refused(t, item, current.as_ref(), refusal, now))?;
        let (kind, token) = match action {
            ClaimAction::Renew => (
                OpKind::Renew,
                current.as_ref().map(|l| l.token).unwrap_or(0),
            ),
            ClaimAction::Acquire => (OpKind::Claim, t.counter(Counter::LastToken)? + 1),
            ClaimAction::Steal => (OpKind::Steal, t.counter(Counter::LastToken)? + 1),
            ClaimAction::Evict => (OpKind::Evict, t.counter(Counter::LastToken)? + 1),
        };
        let pid_start = opts.pid.and_then(crate::host::process_start);
        if let (Some(pid), None) = (opts.pid, pid_start) {
            return Err(Error::Invalid(format!(
                "--pid {pid}: no such process on this host"
            )));
        }
        let mut lease = match (&current, action) {
            (Some(l), ClaimAction::Renew) => Lease {
                renewed_at: now.wall_ms,
                ..l.clone()
            },
            _ => Lease {
                holder: self.actor.name.clone(),
                token,
                acquired_at: now.wall_ms,
                renewed_at: now.wall_ms,
                expires_at: 0,
                ttl_ms: 0,
                host: self.host.clone(),
                pid: None,
                pid_start: None,
                boot_id: None,
                deadline_mono_ms: None,
            },
        };
        if opts.pid.is_some() {
            lease.pid = opts.pid;
            lease.pid_start = pid_start;
        }
        self.set_deadline(&mut lease, ttl, now);
        let changes = vec![Change::LeaseSet {
            old: current.clone(),
            new: lease,
        }];
        self.commit(t, now, kind, Some(item), current, item.id, changes)?;
        Ok(())
    }

    fn set_deadline(&self, lease: &mut Lease, ttl: Duration, now: &Now) {
        let ms = ttl.as_millis() as u64;
        lease.ttl_ms = ms;
        lease.expires_at = now.wall_ms.saturating_add(ms as i64);
        lease.boot_id = now.boot_id.as_deref().map(str::to_string);
        lease.deadline_mono_ms = now.mono_ms.map(|m| m.saturating_add(ms));
    }

    /// The lease on `item` if the caller holds it (by token, or by name without one).
    fn own_lease(
        &self,
        t: &dyn ReadTxn,
        item: &Item,
        token: Option<u64>,
        now: &Now,
        verb: &str,
    ) -> Result<Lease> {
        let lease = t.lease(item.id)?;
        // Expired, or its process is gone: shown as no claim, so no token of it works.
        let ended = lease
            .as_ref()
            .is_some_and(|l| self.lease_state(l, now) != LeaseState::Live);
        match (&lease, token) {
            (None, Some(tok)) => Err(self.stale_token(t, item, tok, None, now)),
            (None, None) => Err(Error::conflict(format!(
                "#{} is not claimed, so there is nothing to {verb}; claim it first",
                item.num
            ))),
            // A token is good only while its lease lives; an ended lease is never revived.
            (Some(l), Some(tok)) if l.token != tok || ended => {
                Err(self.stale_token(t, item, tok, Some(l), now))
            }
            (Some(l), None) if ended && verb == "renew" => Err(Error::conflict(format!(
                "#{}: your lease has ended ({}); claim it again",
                item.num,
                describe_lease(l, now)
            ))),
            (Some(l), _) if rules::holds(l, &self.actor.name, token) => Ok(l.clone()),
            (Some(l), _) => Err(self.held_conflict(t, item, l, now, verb)),
        }
    }

    fn check_token(
        &self,
        t: &dyn ReadTxn,
        item: &Item,
        lease: Option<&Lease>,
        token: Option<u64>,
        now: &Now,
    ) -> Result<()> {
        match (token, lease) {
            (Some(tok), Some(l))
                if l.token == tok && self.lease_state(l, now) == LeaseState::Live =>
            {
                Ok(())
            }
            (Some(tok), l) => Err(self.stale_token(t, item, tok, l, now)),
            (None, _) => Ok(()),
        }
    }

    fn check_version(&self, t: &dyn ReadTxn, item: &Item, guard: &Guard, now: &Now) -> Result<()> {
        let Some(expected) = guard.if_version else {
            return Ok(());
        };
        if expected == item.version {
            return Ok(());
        }
        let last = match t.op_seqs_of(item.id)?.last() {
            Some(seq) => t.op(*seq)?,
            None => None,
        };
        let by = last
            .map(|op| {
                format!(
                    "; version {} was made by {} {} ago ({})",
                    op.version_after,
                    op.actor,
                    format_duration_short(now.wall_ms - op.at),
                    describe_changes(&op)
                )
            })
            .unwrap_or_default();
        Err(Error::conflict_with(
            format!(
                "#{} is at version {}, not {expected}{by}; read it again and retry",
                item.num, item.version
            ),
            self.view(t, item.id, now)?,
        ))
    }

    fn stale_token(
        &self,
        t: &dyn ReadTxn,
        item: &Item,
        token: u64,
        lease: Option<&Lease>,
        now: &Now,
    ) -> Error {
        let current = match lease {
            Some(l) => format!(
                "the lease now has token {} ({})",
                l.token,
                describe_lease(l, now)
            ),
            None => "the item has no lease now".to_string(),
        };
        let view = self.view(t, item.id, now);
        let msg = format!("#{}: fencing token {token} is stale; {current}", item.num);
        match view {
            Ok(v) => Error::conflict_with(msg, v),
            Err(_) => Error::conflict(msg),
        }
    }

    fn held_conflict(
        &self,
        t: &dyn ReadTxn,
        item: &Item,
        lease: &Lease,
        now: &Now,
        verb: &str,
    ) -> Error {
        let msg = format!(
            "#{} is {}; you ({}) cannot {verb}",
            item.num,
            describe_lease(lease, now),
            self.actor.name
        );
        match self.view(t, item.id, now) {
            Ok(v) => Error::conflict_with(msg, v),
            Err(_) => Error::conflict(msg),
        }
    }

    fn claim_refused(
        &self,
        t: &dyn ReadTxn,
        item: &Item,
        lease: Option<&Lease>,
        refusal: ClaimRefusal,
        now: &Now,
    ) -> Error {
        let lease_text = lease.map(|l| describe_lease(l, now)).unwrap_or_default();
        let msg = match refusal {
            ClaimRefusal::NotOpen(s) => format!(
                "#{} is {}; only open items can be claimed",
                item.num,
                s.as_str()
            ),
            ClaimRefusal::HeldByOther => format!(
                "#{} is {lease_text}; wait for it (--wait), or take it with --force",
                item.num
            ),
            ClaimRefusal::SameNameUnproven => format!(
                "#{} is {lease_text}. That is your default name too, but without a terminal or \
                 --as/TRACKER_AS it cannot tell you apart from another agent: pass --token {} \
                 to renew your own lease, or name yourself with --as",
                item.num,
                lease.map(|l| l.token).unwrap_or(0)
            ),
            ClaimRefusal::HolderGoneNeedsSteal => format!(
                "#{} is {lease_text}, but its process is gone; take it with --steal-stale",
                item.num
            ),
        };
        match self.view(t, item.id, now) {
            Ok(v) => Error::conflict_with(msg, v),
            Err(_) => Error::conflict(msg),
        }
    }

    /// The item a command acts on: found, loaded, and at the version the caller expects.
    fn target(&self, t: &dyn ReadTxn, r: &ItemRef, guard: &Guard, now: &Now) -> Result<Item> {
        let item = self.load(t, resolve(t, r)?)?;
        self.check_version(t, &item, guard, now)?;
        Ok(item)
    }

    fn load(&self, t: &dyn ReadTxn, id: Ulid) -> Result<Item> {
        t.item(id)?
            .ok_or_else(|| Error::NotFound(format!("no item {id}")))
    }
}

fn check_ttl(ttl: Duration) -> Result<Duration> {
    if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(366 * 86_400) {
        return Err(Error::Invalid(format!(
            "a lease TTL of {ttl:?} is out of range: use 1s to 366d"
        )));
    }
    Ok(ttl)
}

fn is_ready(t: &dyn ReadTxn, item: &Item) -> Result<bool> {
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

/// "claimed by ana@box/pts/3 (host box, pid 4242) 4m ago, renewed 20s ago, expires in 11m".
pub fn describe_lease(l: &Lease, now: &Now) -> String {
    let pid = l.pid.map(|p| format!(", pid {p}")).unwrap_or_default();
    let remaining = match (&l.boot_id, &now.boot_id, l.deadline_mono_ms, now.mono_ms) {
        (Some(a), Some(b), Some(d), Some(m)) if **a == **b => d as i64 - m as i64,
        _ => l.expires_at - now.wall_ms,
    };
    let expiry = if remaining > 0 {
        format!("expires in {}", format_duration_short(remaining))
    } else {
        format!("expired {} ago", format_duration_short(-remaining))
    };
    format!(
        "claimed by {} (host {}{pid}) {} ago, renewed {} ago, {expiry}, token {}",
        l.holder,
        l.host,
        format_duration_short(now.wall_ms - l.acquired_at),
        format_duration_short(now.wall_ms - l.renewed_at),
        l.token
    )
}

/// A few words on what an op changed, for messages.
pub fn describe_changes(op: &Op) -> String {
    let parts: Vec<String> = op
        .changes
        .iter()
        .map(|c| match c {
            Change::Created { .. } => "created".into(),
            Change::Replaced { .. } => "replaced by import".into(),
            Change::Title { .. } => "title".into(),
            Change::Body { .. } => "body".into(),
            Change::Priority { old, new } => format!("priority {old}->{new}"),
            Change::Status { old, new } => format!("{}->{}", old.as_str(), new.as_str()),
            Change::LabelAdded { label } => format!("+{label}"),
            Change::LabelRemoved { label } => format!("-{label}"),
            Change::BlockerAdded { .. } => "blocker added".into(),
            Change::BlockerRemoved { .. } => "blocker removed".into(),
            Change::LeaseSet { new, .. } => format!("lease {} token {}", new.holder, new.token),
            Change::LeaseCleared { old } => format!("lease of {} ended", old.holder),
        })
        .collect();
    format!("{}: {}", op.kind.as_str(), parts.join(", "))
}
