//! Preconditions of a change (the version a caller expects, the fencing token it presents) and
//! the conflict messages that say who holds what, since when, and what to do next.

use crate::clock::{format_duration_short, Now};
use crate::error::{Error, Result, Spelling};
use crate::model::{Change, Item, Lease, Op};
use crate::rules::{self, ClaimRefusal, LeaseState, Standing};
use crate::store::{ReadTxn, Storage};
use crate::tracker::{Guard, Tracker};

impl<S: Storage> Tracker<S> {
    pub(crate) fn check_token(
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

    pub(crate) fn check_version(
        &self,
        t: &dyn ReadTxn,
        item: &Item,
        guard: &Guard,
        now: &Now,
    ) -> Result<()> {
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

    pub(crate) fn stale_token(
        &self,
        t: &dyn ReadTxn,
        item: &Item,
        token: u64,
        lease: Option<&Lease>,
        now: &Now,
    ) -> Error {
        let n = item.num;
        let msg = match lease {
            Some(l) if token < l.token => format!(
                "#{n}: fencing token {token} is stale: the item was claimed again since ({})",
                describe_other_lease(l, now)
            ),
            Some(l) if token > l.token => format!(
                "#{n}: fencing token {token} is not this item's lease ({}); pass the token your \
                 claim printed",
                describe_other_lease(l, now)
            ),
            Some(l) => format!(
                "#{n}: fencing token {token} belongs to a lease that has ended ({}); claim the \
                 item again",
                describe_other_lease(l, now)
            ),
            None => format!(
                "#{n}: fencing token {token} does not match: the item has no lease now; claim it \
                 first"
            ),
        };
        let view = self.view(t, item.id, now);
        match view {
            Ok(v) => Error::conflict_with(msg, v),
            Err(_) => Error::conflict(msg),
        }
    }

    /// Refuses while anyone but the caller (see [`rules::standing`]) has a live lease on `item`.
    pub(crate) fn refuse_if_held_by_other(
        &self,
        t: &dyn ReadTxn,
        item: &Item,
        lease: &Lease,
        token: Option<u64>,
        now: &Now,
        verb: &str,
    ) -> Result<()> {
        match self.standing(lease, token, now) {
            (LeaseState::Live, standing) if standing != Standing::Holder => {
                Err(self.not_yours(t, item, lease, standing, token, now, verb))
            }
            _ => Ok(()),
        }
    }

    /// The refusal of a change to a lease the caller does not hold, in the words its standing
    /// calls for.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn not_yours(
        &self,
        t: &dyn ReadTxn,
        item: &Item,
        lease: &Lease,
        standing: Standing,
        token: Option<u64>,
        now: &Now,
        verb: &str,
    ) -> Error {
        let text = describe_other_lease(lease, now);
        let msg = match (standing, token) {
            (Standing::WrongToken, Some(tok)) => {
                return self.stale_token(t, item, tok, Some(lease), now)
            }
            (Standing::SameNameUnproven, _) => same_name_unproven(item, &text, self.spelling()),
            (Standing::OtherProcess, _) => other_process(item, &text, verb, self.spelling()),
            _ => format!(
                "#{} is {text}; you ({}) cannot {verb}",
                item.num,
                self.actor().name
            ),
        };
        self.conflict_on(t, item, msg, now)
    }

    /// A conflict about `item`, carrying the item as it is now when it can be read.
    fn conflict_on(&self, t: &dyn ReadTxn, item: &Item, msg: String, now: &Now) -> Error {
        match self.view(t, item.id, now) {
            Ok(v) => Error::conflict_with(msg, v),
            Err(_) => Error::conflict(msg),
        }
    }

    pub(crate) fn claim_refused(
        &self,
        t: &dyn ReadTxn,
        item: &Item,
        lease: Option<&Lease>,
        refusal: ClaimRefusal,
        token: Option<u64>,
        now: &Now,
    ) -> Error {
        let (standing, l) = match (refusal, lease) {
            (ClaimRefusal::NotOpen(s), _) => {
                let msg = format!(
                    "#{} is {}; only open items can be claimed",
                    item.num,
                    s.as_str()
                );
                return self.conflict_on(t, item, msg, now);
            }
            (_, None) => return Error::Internal("a claim was refused over no lease".into()),
            (ClaimRefusal::HeldByOther, Some(l)) => {
                let msg = format!(
                    "#{} is {}; wait for it ({}), or take it with {}",
                    item.num,
                    describe_other_lease(l, now),
                    self.advise("wait"),
                    self.advise("force")
                );
                return self.conflict_on(t, item, msg, now);
            }
            (ClaimRefusal::SameNameUnproven, Some(l)) => (Standing::SameNameUnproven, l),
            (ClaimRefusal::OtherProcess, Some(l)) => (Standing::OtherProcess, l),
            (ClaimRefusal::WrongToken, Some(l)) => (Standing::WrongToken, l),
        };
        self.not_yours(t, item, l, standing, token, now, "claim it")
    }
}

/// A change refused because the lease, under the caller's own name, is tied to another living
/// process: two processes are two workers, whatever their names.
pub(crate) fn other_process(item: &Item, lease_text: &str, verb: &str, s: Spelling) -> String {
    let token = s.advice("token");
    // Only claims wait and evict; every guarded command takes the token.
    let what_to_do = if verb == "claim it" {
        format!(
            "Wait for it ({}), pass the {token} its claim gave, or take it over with {}",
            s.advice("wait"),
            s.advice("force")
        )
    } else {
        format!("Pass the {token} its claim gave")
    };
    format!(
        "#{} is {lease_text}. That is your name, but the lease is tied to another process that \
         is still running, and two processes are two workers: you cannot {verb} from here. \
         {what_to_do}",
        item.num
    )
}

/// A claim, renewal or release refused because the holder's name is the caller's name too,
/// and nothing else proves the caller is that holder: on the command line, a default name
/// without a terminal; over MCP and HTTP, a name sent with the request.
pub(crate) fn same_name_unproven(item: &Item, lease_text: &str, s: Spelling) -> String {
    let why_and_what = match s {
        Spelling::Flags => {
            "That is your default name too, but without a terminal or \
             --as/TRACKER_AS it cannot tell you apart from another agent: pass the --token \
             your claim printed, or name yourself with --as"
        }
        Spelling::Json => {
            "That is your name too, but a name sent with a request proves \
             nothing: pass the lease's `token` (its claim gave it)"
        }
    };
    format!("#{} is {lease_text}. {why_and_what}", item.num)
}

/// A lease in words, for its holder: "claimed by ana@box/pts/3 (host box, pid 4242) 4m ago,
/// renewed 20s ago, expires in 11m, token 7".
pub fn describe_lease(l: &Lease, now: &Now) -> String {
    format!("{}, token {}", lease_words(l, now), l.token)
}

/// A lease as told to someone who does not hold it: everything but the fencing token, which is
/// the holder's proof and no business of a refused caller's.
pub fn describe_other_lease(l: &Lease, now: &Now) -> String {
    lease_words(l, now)
}

fn lease_words(l: &Lease, now: &Now) -> String {
    let pid = l.pid.map(|p| format!(", pid {p}")).unwrap_or_default();
    let remaining = rules::lease_remaining_ms(l, now);
    let expiry = if remaining > 0 {
        format!("expires in {}", format_duration_short(remaining))
    } else {
        format!("expired {} ago", format_duration_short(-remaining))
    };
    format!(
        "claimed by {} (host {}{pid}) {} ago, renewed {} ago, {expiry}",
        l.holder,
        l.host,
        format_duration_short(now.wall_ms.saturating_sub(l.acquired_at)),
        format_duration_short(now.wall_ms.saturating_sub(l.renewed_at))
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
            Change::Type { old, new } => format!("type {}->{}", old.as_str(), new.as_str()),
            Change::Parent { new: Some(_), .. } => "parent set".into(),
            Change::Parent { new: None, .. } => "parent removed".into(),
            Change::CloseReason { .. } => "close reason".into(),
            // The op's actor is its author: the text is what is worth a glance.
            Change::Commented { comment } => {
                let first = comment.text.lines().next().unwrap_or_default();
                let mut short: String = first.chars().take(40).collect();
                if short.len() < comment.text.len() {
                    short.push('…');
                }
                format!("{short:?}")
            }
        })
        .collect();
    format!("{}: {}", op.kind.as_str(), parts.join(", "))
}
