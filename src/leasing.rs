//! Lease commands: claim (one item or the best ready one), wait for a claim, renew, release.
//! Each is one write transaction, so the check of who holds an item and the change are atomic.

use std::time::{Duration, Instant};

use crate::clock::{format_duration_short, Now};
use crate::conflict::describe_lease;
use crate::error::{Error, Result};
use crate::model::{Change, Item, ItemView, Lease, OpKind};
use crate::rules::{self, ClaimAction, ClaimFlags, Claimant, LeaseState};
use crate::store::{Counter, ReadTxn, Storage, WriteTxn};
use crate::tracker::{ClaimOptions, Guard, ItemRef, Tracker};

impl<S: Storage> Tracker<S> {
    /// Takes a lease on one item; the same holder claiming again renews it.
    pub fn claim(&self, r: &ItemRef, opts: &ClaimOptions) -> Result<ItemView> {
        let ttl = check_ttl(opts.ttl)?;
        let fingerprint = format!("claim {r} {opts:?}");
        self.change_item(r, &opts.guard, &fingerprint, |t, item, now| {
            self.take_lease(t, item, opts, ttl, now)
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
        self.change_item(r, guard, &fingerprint, |t, item, now| {
            let lease = self.own_lease(t, item, guard.token, now, "renew")?;
            let mut new = lease.clone();
            new.renewed_at = now.wall_ms;
            let ttl = ttl.unwrap_or(Duration::from_millis(lease.ttl_ms));
            self.set_deadline(&mut new, ttl, now);
            let changes = vec![Change::LeaseSet {
                old: Some(lease.clone()),
                new,
            }];
            self.commit(t, now, OpKind::Renew, Some(item), Some(lease), changes)
        })
    }

    /// Gives the caller's lease back. An item with no lease is left as it is.
    pub fn release(&self, r: &ItemRef, guard: &Guard) -> Result<ItemView> {
        let fingerprint = format!("release {r} {:?} {:?}", guard.if_version, guard.token);
        self.change_item(r, guard, &fingerprint, |t, item, now| {
            if t.lease(item.id)?.is_none() && guard.token.is_none() {
                return Ok(());
            }
            let lease = self.own_lease(t, item, guard.token, now, "release")?;
            let changes = vec![Change::LeaseCleared { old: lease.clone() }];
            self.commit(t, now, OpKind::Release, Some(item), Some(lease), changes)
        })
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
                pgid: None,
                pid_ns: None,
            },
        };
        if opts.pid.is_some() {
            lease.pid = opts.pid;
            lease.pid_start = pid_start;
            lease.pgid = opts.pgid;
            lease.pid_ns = self.pid_ns;
        }
        self.set_deadline(&mut lease, ttl, now);
        let changes = vec![Change::LeaseSet {
            old: current.clone(),
            new: lease,
        }];
        self.commit(t, now, kind, Some(item), current, changes)?;
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
}

fn check_ttl(ttl: Duration) -> Result<Duration> {
    if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(366 * 86_400) {
        return Err(Error::Invalid(format!(
            "a lease TTL of {ttl:?} is out of range: use 1s to 366d"
        )));
    }
    Ok(ttl)
}
