//! Lease commands: claim (one item or the best ready one), wait for a claim, renew, release.
//! Each is one write transaction, so the check of who holds an item and the change are atomic.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::clock::{format_duration_short, Now};
use crate::conflict::describe_other_lease;
use crate::error::{Error, Result};
use crate::model::{Item, ItemView, Lease, OpKind};
use crate::rules::{self, ClaimAction, LeaseState, Standing, Taker, TieTo};
use crate::store::{Counter, ReadTxn, Storage, WriteTxn};
use crate::tracker::{ClaimOptions, Guard, ItemRef, Tracker};
use crate::txn::{fingerprint, next};

/// The arguments of a claim that make it what it is, for its idempotency fingerprint. Process
/// identity (`pid`) never enters it, so a worker restarted after a crash can repeat its keyed
/// claim; `steal_stale` changes nothing any more.
fn claim_args(opts: &ClaimOptions, ttl: Duration) -> serde_json::Value {
    json!({"ttl_ms": u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX), "force": opts.force})
}

impl<S: Storage> Tracker<S> {
    /// Takes a lease on one item; the same holder claiming again renews it (same token), and a
    /// lease whose holder is provably gone is taken over (`steal_stale` is implied). The
    /// returned item's `claim` carries the fencing token to pass as [`Guard::token`] on every
    /// later step.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when another worker has a live lease (another holder, or the same
    /// name from another process than the one the lease is tied to), or the item is not open; [`Error::Invalid`] for a TTL out of
    /// range or a `pid` that does not run here.
    pub fn claim(&self, r: &ItemRef, opts: &ClaimOptions) -> Result<ItemView> {
        let result = self.claim_once(r, opts);
        if matches!(result, Err(Error::Conflict { .. })) {
            self.note(Counter::RefusedClaims, 1);
        }
        result
    }

    fn claim_once(&self, r: &ItemRef, opts: &ClaimOptions) -> Result<ItemView> {
        let ttl = rules::check_ttl(opts.ttl).map_err(Error::Invalid)?;
        let args = claim_args(opts, ttl);
        self.change_item("claim", r, &opts.guard, args, |t, item, now| {
            self.take_lease(t, item, opts, ttl, now)
        })
    }

    /// Claims the best ready item: open, unblocked, no live lease; best priority, then oldest.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for options a claim of an item not yet chosen cannot honour: an
    /// expected version, a token, `force` or `steal_stale`.
    pub fn claim_next(&self, label: Option<&str>, opts: &ClaimOptions) -> Result<ItemView> {
        let unfit = [
            (opts.guard.if_version.is_some(), "--if-version"),
            (opts.guard.token.is_some(), "--token"),
            (opts.force, "--force"),
            (opts.steal_stale, "--steal-stale"),
        ];
        if let Some((_, flag)) = unfit.iter().find(|(given, _)| *given) {
            return Err(Error::Invalid(format!(
                "claim --next cannot take {flag}: it claims whichever item is ready, so there is \
                 no version, lease or holder to name beforehand (and it always takes over \
                 abandoned leases); claim a named item to use {flag}"
            )));
        }
        let ttl = rules::check_ttl(opts.ttl).map_err(Error::Invalid)?;
        let mut args = claim_args(opts, ttl);
        args["label"] = label.into();
        args["if_version"] = opts.guard.if_version.into();
        args["token"] = opts.guard.token.into();
        let fp = fingerprint("claim_next", args);
        self.store.write(|t| {
            let now = self.now_in(t)?;
            self.idempotent(t, &opts.guard, &fp, &now, true, |t| {
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
                self.take_lease(t, &item, opts, ttl, &now)?;
                Ok(id)
            })
        })
    }

    /// [`claim`](Self::claim) of `r`, or [`claim_next`](Self::claim_next) with `label` when `r`
    /// is `None`, retried with exponential backoff and jitter while the item is held (or nothing
    /// is ready) until `wait` runs out; then [`Error::Busy`] (exit 5). A claim with an expected
    /// version is not retried: a version conflict does not go away by waiting.
    pub fn claim_waiting(
        &self,
        r: Option<&ItemRef>,
        label: Option<&str>,
        opts: &ClaimOptions,
        wait: Duration,
    ) -> Result<ItemView> {
        self.claim_waiting_unless(r, label, opts, wait, &|| false)
    }

    /// [`claim_waiting`](Self::claim_waiting) that gives up as soon as `stopped()` says so (a
    /// cancelled request, a client that has gone): no attempt is made after that, and the result
    /// is [`Error::Busy`]. It is asked before every attempt and during every pause.
    pub fn claim_waiting_unless(
        &self,
        r: Option<&ItemRef>,
        label: Option<&str>,
        opts: &ClaimOptions,
        wait: Duration,
        stopped: &dyn Fn() -> bool,
    ) -> Result<ItemView> {
        let deadline = Instant::now().checked_add(wait).ok_or_else(|| {
            Error::Invalid(format!(
                "{} {} is too long for this system's clock",
                self.advise("wait"),
                humantime::format_duration(wait)
            ))
        })?;
        // Before the first attempt, so that a write committed after it wakes the first pause.
        let listening = self.store.listen();
        let mut delay = Duration::from_millis(10);
        let mut seed = u64::from(std::process::id()) ^ self.now().wall_ms.cast_unsigned();
        let mut retries = 0u64;
        loop {
            if stopped() {
                self.note(Counter::WaitRetries, retries);
                return Err(Error::Busy(
                    "the claim was called off while it waited; nothing was claimed".into(),
                ));
            }
            let attempt = match r {
                Some(r) => self.claim_once(r, opts),
                None => self.claim_next(label, opts),
            };
            let retry = match &attempt {
                Err(Error::Conflict { .. }) => opts.guard.if_version.is_none(),
                Err(Error::NotFound(_)) => r.is_none(),
                // The store stayed busy or the database did not answer (a restart): waiting
                // is what the caller asked for.
                Err(Error::Busy(_)) => true,
                _ => false,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if !retry {
                if retries > 0 {
                    self.note(Counter::WaitRetries, retries);
                }
                if matches!(attempt, Err(Error::Conflict { .. })) {
                    self.note(Counter::RefusedClaims, 1);
                }
                return attempt;
            }
            if left.is_zero() {
                self.note(Counter::WaitRetries, retries);
                if r.is_some() {
                    self.note(Counter::RefusedClaims, 1);
                }
                let why = attempt.err().map(|e| e.to_string()).unwrap_or_default();
                return Err(Error::Busy(format!(
                    "waited {} and the claim still could not be made: {why}",
                    format_duration_short(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
                )));
            }
            // xorshift: jitter spreads waiting workers apart, no RNG crate needed.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let jitter = 0.5 + (seed % 1000) as f64 / 1000.0;
            let d = delay.mul_f64(jitter).min(left);
            if listening {
                self.pause_for_change(d, stopped);
            } else {
                pause(d, stopped);
            }
            delay = (delay * 2).min(Duration::from_secs(1));
            retries += 1;
        }
    }

    /// Extends the caller's lease (`heartbeat`).
    /// Without `ttl`, the lease is extended by its own TTL.
    pub fn renew(&self, r: &ItemRef, ttl: Option<Duration>, guard: &Guard) -> Result<ItemView> {
        let ttl = ttl
            .map(rules::check_ttl)
            .transpose()
            .map_err(Error::Invalid)?;
        let args = json!({"ttl_ms": ttl.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))});
        self.change_item("renew", r, guard, args, |t, item, now| {
            if item.status != crate::model::Status::Open {
                return Err(Error::conflict(format!(
                    "#{} is {}; only open items have leases to renew",
                    item.num,
                    item.status.as_str()
                )));
            }
            let lease = self.own_lease(t, item, guard.token, now, "renew")?;
            let changes = rules::renew_changes(&lease, ttl, now);
            self.commit(t, now, OpKind::Renew, Some(item), Some(lease), changes)
        })
    }

    /// Gives the caller's lease back. An item with no lease is left as it is.
    pub fn release(&self, r: &ItemRef, guard: &Guard) -> Result<ItemView> {
        self.change_item("release", r, guard, json!({}), |t, item, now| {
            if t.lease(item.id)?.is_none() && guard.token.is_none() {
                return Ok(());
            }
            let lease = self.own_lease(t, item, guard.token, now, "release")?;
            let changes = rules::release_changes(&lease);
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
        let who = self.claimant(opts.guard.token);
        let seen = current
            .as_ref()
            .map(|l| (l, self.lease_state(l, now), self.tie_of(l, now)));
        let action =
            rules::decide_claim(item.status, seen, &who, opts.force).map_err(|refusal| {
                self.claim_refused(t, item, current.as_ref(), refusal, opts.guard.token, now)
            })?;
        let (kind, token) = match action {
            ClaimAction::Renew => (
                OpKind::Renew,
                current.as_ref().map(|l| l.token).unwrap_or(0),
            ),
            ClaimAction::Acquire => (OpKind::Claim, next(t, Counter::LastToken)?),
            ClaimAction::Steal => (OpKind::Steal, next(t, Counter::LastToken)?),
            ClaimAction::Evict => (OpKind::Evict, next(t, Counter::LastToken)?),
        };
        let pid_start = opts.pid.and_then(crate::host::process_start);
        if let (Some(pid), None) = (opts.pid, pid_start) {
            return Err(Error::Invalid(format!(
                "--pid {pid}: no such process on this host"
            )));
        }
        let tie_here = match (opts.pid, seen, action) {
            (Some(pid), Some((l, _, tie)), ClaimAction::Renew) => {
                rules::may_retie(l, pid, tie, std::process::id())
            }
            (pid, _, _) => pid.is_some(),
        };
        let tie = opts.pid.filter(|_| tie_here).map(|pid| TieTo {
            pid,
            pid_start,
            pgid: opts.pgid,
            pid_ns: self.pid_ns(),
        });
        let taker = Taker {
            holder: &self.actor().name,
            host: self.host(),
            token,
        };
        let changes = rules::claim_changes(current.as_ref(), action, &taker, tie, ttl, now);
        self.commit(t, now, kind, Some(item), current, changes)?;
        Ok(())
    }

    /// The lease on `item` if the caller holds it (see [`rules::standing`]).
    fn own_lease(
        &self,
        t: &dyn ReadTxn,
        item: &Item,
        token: Option<u64>,
        now: &Now,
        verb: &str,
    ) -> Result<Lease> {
        let Some(l) = t.lease(item.id)? else {
            return Err(match token {
                Some(tok) => self.stale_token(t, item, tok, None, now),
                None => Error::conflict(format!(
                    "#{} is not claimed, so there is nothing to {verb}; claim it first",
                    item.num
                )),
            });
        };
        let (state, standing) = self.standing(&l, token, now);
        // Expired, or its process is gone: shown as no claim, so no token of it works.
        let ended = state != LeaseState::Live;
        match (token, standing) {
            // A token is good only while its lease lives; an ended lease is never revived.
            (Some(tok), s) if s != Standing::Holder || ended => {
                Err(self.stale_token(t, item, tok, Some(&l), now))
            }
            (None, _) if ended && l.holder == self.actor().name && verb == "renew" => {
                Err(Error::conflict(format!(
                    "#{}: your lease has ended ({}); claim it again",
                    item.num,
                    describe_other_lease(&l, now)
                )))
            }
            // Someone else's lease that has ended: the item is free, and nothing of it is ours.
            (None, s) if ended && s != Standing::Holder => Err(Error::conflict(format!(
                "#{} has no live lease (the last one, {}, has ended), so there is nothing of \
                 yours to {verb}; claim it first",
                item.num,
                describe_other_lease(&l, now)
            ))),
            (_, Standing::Holder) => Ok(l),
            (_, s) => Err(self.not_yours(t, item, &l, s, token, now, verb)),
        }
    }
}

/// Sleeps for `d`, in short steps, returning early once `stopped()` says so: a called-off wait
/// ends within a step, not after a backoff of up to a second.
impl<S: Storage> Tracker<S> {
    /// Like `pause`, but over as soon as a write commits new ops (told by the store).
    fn pause_for_change(&self, d: Duration, stopped: &dyn Fn() -> bool) {
        const STEP: Duration = Duration::from_millis(50);
        let end = Instant::now() + d;
        while !stopped() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || self.store.wait_for_change(left.min(STEP)) {
                return;
            }
        }
    }
}

fn pause(d: Duration, stopped: &dyn Fn() -> bool) {
    const STEP: Duration = Duration::from_millis(10);
    let end = Instant::now() + d;
    while !stopped() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(STEP));
    }
}
