//! Plans (`new --plan`, the MCP tool `plan`): the pure checks of a graph of new items, and the
//! order they are made in. No store: the `Tracker` resolves the references to existing items
//! and hands them here as identities.
//!
//! A plan's entries are named by their `key`s; an entry's parent and blockers are other
//! entries (by key) or existing items. Two relations decide what is refused and in what order
//! items are made:
//!
//! - **waiting**: an item waits for its blockers, and a parent waits for its children. A cycle
//!   of waiting (through entries, and through existing items an entry's references reach) would
//!   leave every item on it waiting forever: refused;
//! - **making**: an entry is made after its parent and its blockers, when they are entries, so
//!   every reference in a `Created` op names an item that exists (replay and `verify` hold). An
//!   entry blocked by one of its own parts loops this order without waiting forever (the parent
//!   waits for its parts anyway): refused too, saying to drop the blocker.

use std::collections::{BTreeSet, HashMap};

use ulid::Ulid;

use crate::model::{ItemRef, ItemType, DEFAULT_PRIORITY};

/// The most entries a plan may hold.
pub const MAX_PLAN_ITEMS: usize = 50_000;

/// The most bytes a plan document may take (each body is also held to the body limit).
pub const MAX_PLAN_BYTES: usize = 64 << 20;

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 200;

/// How an entry names its parent or a blocker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanRef {
    /// Another entry of the plan, by its key.
    Key(String),
    /// An item that already exists.
    Item(ItemRef),
}

/// One entry of a plan, as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanEntry {
    /// Names the entry within the plan: unique, 1 to [`MAX_KEY_BYTES`] bytes, no control
    /// characters.
    pub key: String,
    /// As `new`'s title.
    pub title: String,
    /// As `new`'s body.
    pub body: String,
    /// 0 (highest) to 4; `None` gives the default.
    pub priority: Option<u8>,
    /// Its labels.
    pub labels: Vec<String>,
    /// Its type.
    pub item_type: ItemType,
    /// The item it is part of.
    pub parent: Option<PlanRef>,
    /// The items it waits for.
    pub blocked_by: Vec<PlanRef>,
}

/// An entry's fields, checked as `new` checks them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The key.
    pub key: String,
    /// Trimmed.
    pub title: String,
    /// Within the body limit.
    pub body: String,
    /// In range.
    pub priority: u8,
    /// Trimmed, repeats dropped.
    pub labels: Vec<String>,
    /// Its type.
    pub item_type: ItemType,
    /// Its parent: an entry or an existing item.
    pub parent: Option<Target>,
    /// Its blockers, repeats dropped.
    pub blocked_by: Vec<Target>,
}

/// What a checked reference names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The entry at this index of the plan.
    Entry(usize),
    /// An existing item.
    Existing(Ulid),
}

/// How messages name entry `index`: `items[3] (key "k3")`.
pub fn entry_name(index: usize, key: &str) -> String {
    format!("items[{index}] (key {key:?})")
}

/// Checks the plan's size and keys, and each entry's fields, in order: the first fault found,
/// naming its entry. References to entries become their indexes, references to items what
/// `existing` finds (the item's identity, or why there is none).
///
/// # Errors
///
/// A message for people naming the entry.
pub fn check(
    entries: &[PlanEntry],
    existing: &dyn Fn(&ItemRef) -> Result<Ulid, String>,
) -> Result<Vec<Checked>, String> {
    if entries.is_empty() {
        return Err("the plan has no items; give at least one in \"items\"".into());
    }
    if entries.len() > MAX_PLAN_ITEMS {
        return Err(format!(
            "the plan has {} items; a plan holds at most {MAX_PLAN_ITEMS}, so split it",
            entries.len()
        ));
    }
    let mut keys: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let bad = |why: String| format!("{}: {why}", entry_name(i, &e.key));
        if e.key.is_empty() || e.key.len() > MAX_KEY_BYTES || e.key.chars().any(char::is_control) {
            return Err(bad(format!(
                "a key is 1 to {MAX_KEY_BYTES} bytes with no control characters"
            )));
        }
        if let Some(first) = keys.insert(&e.key, i) {
            return Err(bad(format!("the key is also the key of items[{first}]")));
        }
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| check_entry(i, e, &keys, existing))
        .collect()
}

fn check_entry(
    i: usize,
    e: &PlanEntry,
    keys: &HashMap<&str, usize>,
    existing: &dyn Fn(&ItemRef) -> Result<Ulid, String>,
) -> Result<Checked, String> {
    let bad = |why: String| format!("{}: {why}", entry_name(i, &e.key));
    let title = super::validate_title(&e.title).map_err(bad)?;
    super::validate_body(&e.body).map_err(bad)?;
    let priority = super::validate_priority(e.priority.unwrap_or(DEFAULT_PRIORITY)).map_err(bad)?;
    let labels = super::validate_labels(&e.labels).map_err(bad)?;
    let entry = |r: &PlanRef, what: &str| match r {
        PlanRef::Key(k) => match keys.get(k.as_str()) {
            Some(j) if *j == i => Err(bad(format!("{what} {k:?} is the entry itself"))),
            Some(j) => Ok(Target::Entry(*j)),
            None => Err(bad(format!("{what} {k:?} is not a key of this plan"))),
        },
        PlanRef::Item(r) => existing(r)
            .map(Target::Existing)
            .map_err(|why| bad(format!("{what} {r}: {why}"))),
    };
    let parent = e.parent.as_ref().map(|r| entry(r, "parent")).transpose()?;
    let mut blocked_by = Vec::new();
    for r in &e.blocked_by {
        let t = entry(r, "blocker")?;
        if !blocked_by.contains(&t) {
            blocked_by.push(t);
        }
    }
    Ok(Checked {
        key: e.key.clone(),
        title,
        body: e.body.clone(),
        priority,
        labels,
        item_type: e.item_type,
        parent,
        blocked_by,
    })
}

/// The order to make the entries in: each after its parent and blockers among the entries,
/// otherwise in plan order. `existing_waits` lists pairs (a, b) of existing items where a
/// waits, directly or not, for b: with the entries' references they can close a cycle (an
/// entry blocked by an existing item that waits for the entry's existing parent).
///
/// # Errors
///
/// A message naming an entry on a cycle, and the cycle.
pub fn order(plan: &[Checked], existing_waits: &[(Ulid, Ulid)]) -> Result<Vec<usize>, String> {
    refuse_waiting_cycles(plan, existing_waits)?;
    let n = plan.len();
    // Making: an edge from what must exist first to what refers to it.
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut needs = vec![0usize; n];
    for (i, e) in plan.iter().enumerate() {
        for t in e.parent.iter().chain(&e.blocked_by) {
            if let Target::Entry(j) = t {
                after[*j].push(i);
                needs[i] += 1;
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|i| needs[*i] == 0).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        out.push(i);
        for j in &after[i] {
            needs[*j] -= 1;
            if needs[*j] == 0 {
                ready.insert(*j);
            }
        }
    }
    if out.len() == n {
        return Ok(out);
    }
    let left: Vec<bool> = needs.iter().map(|d| *d > 0).collect();
    let preds = |i: usize| {
        let e = &plan[i];
        e.parent
            .iter()
            .chain(&e.blocked_by)
            .filter_map(|t| match t {
                Target::Entry(j) if left[*j] => Some(Node::Entry(*j)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let start = left.iter().position(|l| *l).unwrap_or(0);
    let cycle = find_cycle(Node::Entry(start), |node| match node {
        Node::Entry(i) => preds(i),
        Node::Existing(_) => Vec::new(),
    });
    Err(format!(
        "{}: parents and blockers are made before the items that name them, and here that \
         order loops ({}): an item blocked by one of its own parts (which it waits for anyway, \
         as their parent) makes such a loop, so drop that blocker",
        name_of(plan, cycle[0]),
        describe(plan, &cycle, "is made after"),
    ))
}

/// A node of the waiting graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Node {
    Entry(usize),
    Existing(Ulid),
}

/// Refuses a cycle of waiting: blockers, and parents waiting for their children.
fn refuse_waiting_cycles(plan: &[Checked], existing_waits: &[(Ulid, Ulid)]) -> Result<(), String> {
    let mut waits: HashMap<Node, Vec<Node>> = HashMap::new();
    let node = |t: &Target| match t {
        Target::Entry(j) => Node::Entry(*j),
        Target::Existing(id) => Node::Existing(*id),
    };
    for (i, e) in plan.iter().enumerate() {
        let me = Node::Entry(i);
        let mine = waits.entry(me).or_default();
        mine.extend(e.blocked_by.iter().map(node));
        if let Some(p) = &e.parent {
            waits.entry(node(p)).or_default().push(me);
        }
    }
    for (a, b) in existing_waits {
        waits
            .entry(Node::Existing(*a))
            .or_default()
            .push(Node::Existing(*b));
    }
    // Kahn's algorithm on "waits for": what is left over lies on, or waits for, a cycle.
    let mut indegree: HashMap<Node, usize> = waits.keys().map(|k| (*k, 0)).collect();
    for targets in waits.values() {
        for t in targets {
            *indegree.entry(*t).or_default() += 1;
        }
    }
    let mut free: Vec<Node> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(n, _)| *n)
        .collect();
    while let Some(n) = free.pop() {
        for t in waits.get(&n).into_iter().flatten() {
            let d = indegree.entry(*t).or_default();
            *d -= 1;
            if *d == 0 {
                free.push(*t);
            }
        }
    }
    let left: BTreeSet<usize> = indegree
        .iter()
        .filter_map(|(n, d)| match n {
            Node::Entry(i) if *d > 0 => Some(*i),
            _ => None,
        })
        .collect();
    let Some(start) = left.first() else {
        return Ok(());
    };
    // Every node left has a predecessor left, so walking them back finds a cycle. A node left
    // over has indegree > 0 from nodes also left over (freed nodes decremented theirs).
    let mut preds: HashMap<Node, Vec<Node>> = HashMap::new();
    for (from, targets) in &waits {
        if indegree.get(from).is_some_and(|d| *d > 0) {
            for t in targets {
                preds.entry(*t).or_default().push(*from);
            }
        }
    }
    let mut cycle = find_cycle(Node::Entry(*start), |n| {
        preds.get(&n).cloned().unwrap_or_default()
    });
    // Walked backwards: reversed, each node waits for the next; told from its first entry.
    cycle.reverse();
    let first_at = (0..cycle.len())
        .filter_map(|k| match cycle[k] {
            Node::Entry(i) => Some((i, k)),
            Node::Existing(_) => None,
        })
        .min()
        .map_or(0, |(_, k)| k);
    cycle.rotate_left(first_at);
    let first = cycle[0];
    Err(format!(
        "{}: a cycle of waiting ({}): an item waits for its blockers and a parent for its \
         parts, so none of them could ever be ready",
        name_of(plan, first),
        describe(plan, &cycle, "waits for"),
    ))
}

/// Walks `next` from `start` until a node repeats: the cycle, in the order walked.
fn find_cycle(start: Node, next: impl Fn(Node) -> Vec<Node>) -> Vec<Node> {
    let mut path = vec![start];
    let mut at: HashMap<Node, usize> = HashMap::from([(start, 0)]);
    let mut n = start;
    loop {
        let Some(p) = next(n).first().copied() else {
            return path;
        };
        if let Some(i) = at.get(&p) {
            return path.split_off(*i);
        }
        at.insert(p, path.len());
        path.push(p);
        n = p;
    }
}

fn name_of(plan: &[Checked], n: Node) -> String {
    match n {
        Node::Entry(i) => entry_name(i, &plan[i].key),
        Node::Existing(id) => format!("item {id}"),
    }
}

fn describe(plan: &[Checked], cycle: &[Node], verb: &str) -> String {
    let short = |n: &Node| match n {
        Node::Entry(i) => format!("{:?}", plan[*i].key),
        Node::Existing(id) => format!("item {id}"),
    };
    let mut s: Vec<String> = cycle.iter().map(short).collect();
    if let Some(first) = cycle.first() {
        s.push(short(first));
    }
    s.join(&format!(" {verb} "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, parent: Option<&str>, blocked_by: &[&str]) -> PlanEntry {
        PlanEntry {
            key: key.into(),
            title: format!("item {key}"),
            body: String::new(),
            priority: None,
            labels: Vec::new(),
            item_type: ItemType::Task,
            parent: parent.map(|p| PlanRef::Key(p.into())),
            blocked_by: blocked_by
                .iter()
                .map(|b| PlanRef::Key((*b).into()))
                .collect(),
        }
    }

    fn no_items(r: &ItemRef) -> Result<Ulid, String> {
        Err(format!("no item {r}"))
    }

    fn order_of(entries: &[PlanEntry]) -> Result<Vec<usize>, String> {
        order(&check(entries, &no_items)?, &[])
    }

    #[test]
    fn parents_and_blockers_are_made_first_otherwise_in_plan_order() {
        let plan = [
            entry("child", Some("epic"), &["dep"]),
            entry("epic", None, &[]),
            entry("dep", None, &[]),
            entry("free", None, &[]),
        ];
        assert_eq!(order_of(&plan).unwrap(), [1, 2, 0, 3]);
    }

    #[test]
    fn a_cycle_of_blockers_is_refused_naming_an_entry_on_it() {
        let plan = [
            entry("a", None, &["b"]),
            entry("b", None, &["c"]),
            entry("c", None, &["a"]),
            entry("d", None, &["a"]),
        ];
        let e = order_of(&plan).unwrap_err();
        assert!(e.contains("cycle of waiting"), "{e}");
        assert!(e.starts_with("items[0]"), "{e}");
        assert!(!e.contains("\"d\""), "{e}");
    }

    #[test]
    fn a_part_blocked_by_its_parent_is_a_cycle_of_waiting() {
        let plan = [
            entry("epic", None, &[]),
            entry("part", Some("epic"), &["epic"]),
        ];
        let e = order_of(&plan).unwrap_err();
        assert!(e.contains("cycle of waiting"), "{e}");
    }

    #[test]
    fn a_parent_blocked_by_its_part_is_refused_as_a_loop_of_making() {
        let plan = [
            entry("epic", None, &["part"]),
            entry("part", Some("epic"), &[]),
        ];
        let e = order_of(&plan).unwrap_err();
        assert!(e.contains("drop that blocker"), "{e}");
    }

    #[test]
    fn a_parent_chain_that_loops_is_refused() {
        let plan = [entry("a", Some("b"), &[]), entry("b", Some("a"), &[])];
        assert!(order_of(&plan).unwrap_err().contains("cycle"));
    }

    #[test]
    fn a_cycle_through_existing_items_is_refused() {
        let (x, y) = (Ulid::from_parts(1, 1), Ulid::from_parts(1, 2));
        let mut plan = check(&[entry("a", None, &[])], &no_items).unwrap();
        // a is part of x and blocked by y, which waits for x: x waits for a waits for y.
        plan[0].parent = Some(Target::Existing(x));
        plan[0].blocked_by = vec![Target::Existing(y)];
        assert!(order(&plan, &[]).is_ok());
        let e = order(&plan, &[(y, x)]).unwrap_err();
        assert!(
            e.contains("cycle of waiting") && e.contains("items[0]"),
            "{e}"
        );
    }

    #[test]
    fn keys_are_unique_known_and_not_the_entry_itself() {
        let e = check(&[entry("a", None, &[]), entry("a", None, &[])], &no_items).unwrap_err();
        assert!(e.starts_with("items[1] (key \"a\")"), "{e}");
        let e = check(&[entry("a", None, &["zz"])], &no_items).unwrap_err();
        assert!(e.contains("\"zz\" is not a key"), "{e}");
        let e = check(&[entry("a", Some("a"), &[])], &no_items).unwrap_err();
        assert!(e.contains("the entry itself"), "{e}");
        assert!(check(&[entry("", None, &[])], &no_items).is_err());
        assert!(check(&[], &no_items).is_err());
    }

    #[test]
    fn fields_are_checked_as_new_checks_them() {
        let mut e = entry("a", None, &[]);
        e.title = "  ".into();
        let msg = check(&[entry("ok", None, &[]), e.clone()], &no_items).unwrap_err();
        assert!(
            msg.starts_with("items[1] (key \"a\"): the title is empty"),
            "{msg}"
        );
        e.title = "x".into();
        e.priority = Some(9);
        assert!(check(&[e.clone()], &no_items)
            .unwrap_err()
            .contains("priority 9"));
        e.priority = None;
        e.labels = vec!["a,b".into()];
        assert!(check(&[e], &no_items).is_err());
    }
}
