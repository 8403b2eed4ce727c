//! `new --plan` (and the MCP tool `plan`): a graph of new items made in one write transaction,
//! all or none. The checks and the order are `rules::plan`'s; here the references to existing
//! items are resolved, the items are made one `new` op each (parent and blockers in the
//! `Created` item, so replay and `verify` hold), and an idempotency key remembers every item
//! made.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use ulid::Ulid;

use crate::clock::Now;
use crate::error::{Error, Result};
use crate::model::{Change, Item, ItemRef, OpKind, Status};
use crate::rules::plan::{self, Checked, PlanEntry, PlanRef, Target};
use crate::store::{Counter, IdempotencyRecord, PlannedItem, ReadTxn, Storage, WriteTxn};
use crate::tracker::{resolve, Guard, Tracker};
use crate::txn::next;

/// Items made (and their rows read) together: on a database, a chunk's rows and those of the
/// items they name are fetched in one round trip, as an import does.
const CHUNK: usize = 500;

impl<S: Storage> Tracker<S> {
    /// Makes every entry of the plan, in one write transaction: all of them or none. Returns
    /// what was made (key, number, identity) in plan order. With an idempotency key, a repeat
    /// by the same actor of the same plan returns what the first call made and makes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the entry (its index and key) for a bad field, a duplicate or
    /// unknown key, an item that does not exist, a cycle, or a plan over the limits
    /// ([`plan::MAX_PLAN_ITEMS`]); [`Error::Conflict`] for a key used for something else.
    pub fn plan(&self, entries: &[PlanEntry], guard: &Guard) -> Result<Vec<PlannedItem>> {
        // Everything that needs no store is checked before the write lock is taken.
        plan::check(entries, &|_| Ok(Ulid::nil())).map_err(Error::Invalid)?;
        self.store.write(|t| {
            let now = self.now_in(t)?;
            let found = resolve_existing(t, entries)?;
            let checked = plan::check(entries, &|r| {
                found
                    .get(&r.to_string())
                    .cloned()
                    .unwrap_or_else(|| Err("not resolved".into()))
            })
            .map_err(Error::Invalid)?;
            for (i, e) in checked.iter().enumerate() {
                if let Some(crate::rules::plan::Target::Existing(p)) = e.parent {
                    if let Some(parent) = t.item(p)? {
                        crate::rules::may_take_open_child(&parent).map_err(|why| {
                            Error::Invalid(format!(
                                "{}: {why}",
                                crate::rules::plan::entry_name(i, &e.key)
                            ))
                        })?;
                    }
                }
            }
            let key = guard.idempotency_key.as_deref();
            // Only a keyed plan needs its digest.
            let fp = key.map(|_| fingerprint(&checked)).unwrap_or_default();
            if let Some(key) = key {
                if let Some(rec) = self.recall(t, key, &fp, &now)? {
                    return Ok(rec.created);
                }
            }
            let waits = existing_waits(t, &checked)?;
            let order = plan::order(&checked, &waits).map_err(Error::Invalid)?;
            let created = self.make(t, &now, &checked, &order)?;
            if let Some(key) = key {
                let record = IdempotencyRecord {
                    fingerprint: fp.clone(),
                    item: created[0].id,
                    at: now.wall_ms,
                    actor: self.actor().name.clone(),
                    item_after: None,
                    lease_after: None,
                    created: created.clone(),
                };
                t.put_idempotency(key, &record)?;
            }
            Ok(created)
        })
    }

    /// Makes the entries in `order`, one `new` op each; returns them in plan order.
    fn make(
        &self,
        t: &mut dyn WriteTxn,
        now: &Now,
        plan: &[Checked],
        order: &[usize],
    ) -> Result<Vec<PlannedItem>> {
        let ids: Vec<Ulid> = plan
            .iter()
            .map(|_| crate::mutate::new_ulid(now.wall_ms))
            .collect();
        let id_of = |target: &Target| match target {
            Target::Entry(j) => ids[*j],
            Target::Existing(id) => *id,
        };
        let mut nums = vec![0u64; plan.len()];
        for chunk in order.chunks(CHUNK) {
            // The new rows (known absent, with no dependents yet) and the rows they name.
            let mut rows = Vec::new();
            for i in chunk {
                rows.push(ids[*i]);
                rows.extend(
                    plan[*i]
                        .parent
                        .iter()
                        .chain(&plan[*i].blocked_by)
                        .map(id_of),
                );
            }
            t.prefetch(&rows)?;
            for i in chunk {
                let e = &plan[*i];
                let num = next(t, Counter::LastNum)?;
                nums[*i] = num;
                let item = Item {
                    id: ids[*i],
                    num,
                    title: e.title.clone(),
                    body: e.body.clone(),
                    status: Status::Open,
                    priority: e.priority,
                    labels: e.labels.clone(),
                    blocked_by: e.blocked_by.iter().map(id_of).collect(),
                    version: 1,
                    created_at: now.wall_ms,
                    updated_at: now.wall_ms,
                    item_type: e.item_type,
                    parent: e.parent.as_ref().map(id_of),
                    close_reason: None,
                };
                let created = vec![Change::Created { item }];
                self.commit(t, now, OpKind::New, None, None, created)?;
            }
        }
        Ok(plan
            .iter()
            .zip(ids.iter().zip(nums))
            .map(|(e, (id, num))| PlannedItem {
                key: e.key.clone(),
                num,
                id: *id,
            })
            .collect())
    }
}

/// Every existing item the plan names, by the reference as written: its identity, or why
/// there is none (a store's own failure is an error).
fn resolve_existing(
    t: &dyn ReadTxn,
    entries: &[PlanEntry],
) -> Result<HashMap<String, std::result::Result<Ulid, String>>> {
    let mut found = HashMap::new();
    let refs = entries
        .iter()
        .flat_map(|e| e.parent.iter().chain(&e.blocked_by))
        .filter_map(|r| match r {
            PlanRef::Item(r) => Some(r),
            PlanRef::Key(_) => None,
        });
    for r in refs {
        let shown = r.to_string();
        if found.contains_key(&shown) {
            continue;
        }
        let id = match resolve(t, r) {
            Ok(id) => Ok(id),
            Err(Error::NotFound(_)) => Err("no such item".to_string()),
            Err(Error::Invalid(why)) => Err(why),
            Err(e) => return Err(e),
        };
        found.insert(shown, id);
    }
    Ok(found)
}

/// Pairs (a, b) of existing items the plan names, where blocker a waits, directly or not, for
/// parent b (b is a's ancestor, or blocks a, or blocks an item a waits for, ...): with the
/// plan's entries, such a pair closes a cycle when a blocks an entry under b.
fn existing_waits(t: &dyn ReadTxn, plan: &[Checked]) -> Result<Vec<(Ulid, Ulid)>> {
    let existing = |targets: &mut dyn Iterator<Item = &Target>| -> HashSet<Ulid> {
        targets
            .filter_map(|t| match t {
                Target::Existing(id) => Some(*id),
                Target::Entry(_) => None,
            })
            .collect()
    };
    let parents = existing(&mut plan.iter().filter_map(|e| e.parent.as_ref()));
    let blockers = existing(&mut plan.iter().flat_map(|e| &e.blocked_by));
    let mut pairs = Vec::new();
    if parents.is_empty() || blockers.is_empty() {
        return Ok(pairs);
    }
    for p in parents {
        // Who waits for p: its parent (a parent waits for its parts) and the items it blocks,
        // and so on upwards, one round trip per step on a database.
        let mut seen = HashSet::from([p]);
        let mut layer = vec![p];
        while !layer.is_empty() {
            t.prefetch(&layer)?;
            let mut up = Vec::new();
            for id in &layer {
                let parent = t.item(*id)?.and_then(|i| i.parent);
                for w in parent.into_iter().chain(t.dependents(*id)?) {
                    if seen.insert(w) {
                        up.push(w);
                    }
                }
            }
            layer = up;
        }
        pairs.extend(
            blockers
                .iter()
                .filter(|b| **b != p && seen.contains(b))
                .map(|b| (*b, p)),
        );
    }
    Ok(pairs)
}

/// The plan as its idempotency key remembers it: its size and a digest of its canonical JSON
/// (every field as checked, references to items by identity), so that a record stays small
/// however large the plan.
fn fingerprint(plan: &[Checked]) -> String {
    let target = |t: &Target| match t {
        Target::Entry(j) => json!({"key": plan[*j].key}),
        Target::Existing(id) => json!({"id": id.to_string()}),
    };
    let mut digest = Sha256::new();
    for e in plan {
        let mut v = json!({"key": e.key, "title": e.title, "body": e.body,
            "priority": e.priority, "labels": e.labels, "type": e.item_type.as_str(),
            "blocked_by": e.blocked_by.iter().map(target).collect::<Vec<_>>()});
        if let Some(p) = &e.parent {
            v["parent"] = target(p);
        }
        digest.update(v.to_string().as_bytes());
        digest.update(b"\n");
    }
    let hex: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    crate::txn::fingerprint(
        "plan",
        json!({"items": plan.len(), "sha256": Value::from(hex)}),
    )
}

/// The references a plan entry makes, as written: a key of the plan wins over an item of the
/// same spelling; a number (`12`, `#12`) or a ULID (prefix) that is no key names an item.
///
/// # Errors
///
/// What is wrong with `s` when it is neither.
pub fn plan_ref(s: &str, keys: &HashSet<String>) -> std::result::Result<PlanRef, String> {
    if keys.contains(s) {
        return Ok(PlanRef::Key(s.to_string()));
    }
    ItemRef::parse(s)
        .map(PlanRef::Item)
        .map_err(|_| format!("{s:?} is neither a key of this plan nor an item (#N or a ULID)"))
}
