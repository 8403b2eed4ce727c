//! Issue 22: a parent waits for its children, on a file and on PostgreSQL. An item with open
//! children is not ready, `claim --next` never hands it out, closing it is refused (exit 3,
//! naming them) unless `--force`; parent links and dependencies never form a cycle together;
//! `show` tells the children, the progress and why an item is not ready; `list --parent`,
//! `--tree` and `--search` (comments included) find them; `verify` and `rebuild` agree.

use crate::common::{text, Env};
use serde_json::Value;

fn nums(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i["num"].as_u64().unwrap())
        .collect()
}

fn ready(env: &Env) -> Vec<u64> {
    nums(&env.json(&["list", "--ready"]))
}

#[test]
fn a_parent_waits_for_its_open_children_and_is_handed_out_after_them() {
    for env in Env::each() {
        let b = env.backend;
        env.json(&["new", "The epic", "--type", "epic", "-p", "0"]);
        env.json(&["new", "Part one", "--parent", "1"]);
        env.json(&["new", "Part two", "--parent", "1"]);
        let shown = env.json(&["show", "1"]);
        assert_eq!(shown["children"], serde_json::json!([2, 3]), "{b}");
        assert_eq!(
            shown["progress"],
            serde_json::json!({"done": 0, "cancelled": 0, "total": 2}),
            "{b}"
        );
        assert_eq!(shown["ready"], false, "{b}");
        let why = shown["not_ready"].to_string();
        assert!(why.contains("#2") && why.contains("#3"), "{b}: {why}");
        assert_eq!(ready(&env), [2, 3], "{b}: the epic (P0) is not ready");
        // Closing it first is refused and names the open children.
        let (code, err) = env.code(&["done", "1"]);
        assert_eq!(code, 3, "{b}: {err}");
        assert!(err.contains("#2") && err.contains("#3"), "{b}: {err}");
        let (code, err) = env.code(&["update", "1", "--status", "cancelled"]);
        assert_eq!(code, 3, "{b}: {err}");
        assert_eq!(env.json(&["show", "1"])["status"], "open", "{b}");
        // claim --next drains the children and never the epic while they are open.
        assert_eq!(
            env.json(&["--as", "ana", "claim", "--next"])["num"],
            2,
            "{b}"
        );
        assert_eq!(
            env.json(&["--as", "ana", "claim", "--next"])["num"],
            3,
            "{b}"
        );
        let (code, err) = env.code(&["--as", "ana", "claim", "--next"]);
        assert_eq!(
            code, 4,
            "{b}: nothing is ready while #2 and #3 are held: {err}"
        );
        env.json(&["--as", "ana", "done", "2"]);
        assert!(ready(&env).is_empty(), "{b}: #3 is still open");
        env.json(&[
            "--as",
            "ana",
            "update",
            "3",
            "--status",
            "cancelled",
            "--reason",
            "not needed",
        ]);
        let shown = env.json(&["show", "1"]);
        assert_eq!(shown["ready"], true, "{b}: {shown}");
        assert_eq!(
            shown["progress"],
            serde_json::json!({"done": 1, "cancelled": 1, "total": 2}),
            "{b}"
        );
        assert_eq!(
            env.json(&["--as", "ana", "claim", "--next"])["num"],
            1,
            "{b}"
        );
        // A child reopened makes its parent wait again.
        env.json(&["--as", "ana", "release", "1"]);
        env.json(&["update", "2", "--status", "open"]);
        assert_eq!(ready(&env), [2], "{b}");
        // Moved to no parent, it no longer holds the epic back.
        env.json(&["update", "2", "--no-parent"]);
        assert_eq!(ready(&env), [1, 2], "{b}");
        assert_eq!(env.code(&["verify"]).0, 0, "{b}");
        assert_eq!(env.code(&["rebuild"]).0, 0, "{b}");
        assert_eq!(ready(&env), [1, 2], "{b}: after rebuild");
        assert_eq!(env.code(&["verify"]).0, 0, "{b}");
    }
}

#[test]
fn force_closes_a_parent_with_open_children() {
    for env in Env::each() {
        let b = env.backend;
        env.json(&["new", "Epic", "--type", "epic"]);
        env.json(&["new", "Child", "--parent", "1"]);
        assert_eq!(env.json(&["done", "1", "--force"])["status"], "done", "{b}");
        env.json(&["new", "Epic two", "--type", "epic"]);
        env.json(&["new", "Child two", "--parent", "3"]);
        let closed = env.json(&["update", "3", "--status", "cancelled", "--force"]);
        assert_eq!(closed["status"], "cancelled", "{b}");
        assert_eq!(ready(&env), [2, 4], "{b}");
        assert_eq!(env.code(&["verify"]).0, 0, "{b}");
    }
}

#[test]
fn parents_and_dependencies_never_form_a_cycle_together() {
    for env in Env::each() {
        let b = env.backend;
        env.json(&["new", "Epic"]);
        env.json(&["new", "Child", "--parent", "1"]);
        env.json(&["new", "Other"]);
        // The child waiting for its parent would leave both waiting forever.
        let (code, err) = env.code(&["dep", "add", "2", "1"]);
        assert_eq!(code, 3, "{b}: {err}");
        // Through another item: #3 waits for the epic, so it cannot be a child of it... only
        // when it would wait for its own parent.
        env.json(&["dep", "add", "3", "1"]);
        let (code, err) = env.code(&["update", "3", "--parent", "1"]);
        assert_eq!(code, 3, "{b}: {err}");
        assert!(err.contains("cycle"), "{b}: {err}");
        // A new part of #1 cannot wait for #3, which waits for #1.
        let (code, err) = env.code(&["new", "Trap", "--parent", "1", "--blocked-by", "3"]);
        assert_eq!(code, 3, "{b}: {err}");
        // An epic under its own child loops.
        let (code, err) = env.code(&["update", "1", "--parent", "2"]);
        assert_eq!(code, 3, "{b}: {err}");
        assert_eq!(
            env.json(&["list", "--status", "all"])
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(env.code(&["verify"]).0, 0, "{b}");
    }
}

#[test]
fn list_by_parent_as_a_tree_and_by_text_in_comments() {
    for env in Env::each() {
        let b = env.backend;
        env.json(&["new", "Epic A", "--type", "epic"]);
        env.json(&["new", "Loose task"]);
        env.json(&["new", "A's first", "--parent", "1"]);
        env.json(&["new", "A's second", "--parent", "1"]);
        env.json(&["new", "Under the first", "--parent", "3"]);
        assert_eq!(nums(&env.json(&["list", "--parent", "1"])), [3, 4], "{b}");
        assert_eq!(nums(&env.json(&["list", "--parent", "#3"])), [5], "{b}");
        assert_eq!(nums(&env.json(&["list", "--tree"])), [1, 3, 5, 4, 2], "{b}");
        let out = env.run(&["list", "--tree"]);
        let lines = text(&out.stdout);
        assert!(lines.contains("└ A's first"), "{b}: {lines}");
        assert!(lines.contains("  └ Under the first"), "{b}: {lines}");
        // Under an item, a tree is everything under it, at any depth; --limit cuts it in tree
        // order (not the first N by number before the tree is built).
        let under = ["list", "--parent", "1", "--tree"];
        assert_eq!(nums(&env.json(&under)), [3, 5, 4], "{b}");
        let cut = ["list", "--tree", "--limit", "3"];
        assert_eq!(nums(&env.json(&cut)), [1, 3, 5], "{b}");
        env.json(&["comment", "4", "We chose the NEEDLE approach"]);
        assert_eq!(nums(&env.json(&["list", "--search", "needle"])), [4], "{b}");
        assert_eq!(nums(&env.json(&["list", "--search", "LOOSE"])), [2], "{b}");
        let (code, err) = env.code(&["list", "--parent", "99"]);
        assert_eq!(code, 4, "{b}: {err}");
    }
}

/// Found by the hostile test of issue 22: a closed parent took open parts without `--force` (a
/// new part, a moved open item, a part reopened), and `run` on a parent with open children
/// left its lease behind when its `done` was refused.
#[test]
fn a_closed_parent_takes_no_open_part_and_run_gives_back_what_it_cannot_finish() {
    for env in Env::each() {
        let b = env.backend;
        env.json(&["new", "Epic"]);
        env.json(&["new", "Part", "--parent", "1"]);
        env.json(&["new", "Loose"]);
        env.json(&["done", "2"]);
        env.json(&["done", "1", "--reason", "shipped"]);
        let (code, err) = env.code(&["new", "Late part", "--parent", "1"]);
        assert_eq!(code, 3, "{b}: {err}");
        assert!(err.contains("reopen"), "{b}: {err}");
        let (code, err) = env.code(&["update", "3", "--parent", "1"]);
        assert_eq!(code, 3, "{b}: {err}");
        let (code, err) = env.code(&["update", "2", "--status", "open"]);
        assert_eq!(code, 3, "{b}: {err}");
        // A closed item may move under a closed parent; reopened, the parent takes parts again.
        env.json(&["done", "3"]);
        assert_eq!(env.json(&["update", "3", "--parent", "1"])["parent"], 1);
        env.json(&["update", "1", "--status", "open"]);
        assert_eq!(
            env.json(&["update", "2", "--status", "open"])["status"],
            "open"
        );
        // A repeated done changes nothing, its reason included.
        let first = env.json(&["done", "2", "--reason", "first"]);
        let again = env.json(&["done", "2", "--reason", "second"]);
        assert_eq!(again["close_reason"], "first", "{b}");
        assert_eq!(again["version"], first["version"], "{b}");
        // run on an epic with an open part: refused at the end, and the lease given back.
        env.json(&["update", "2", "--status", "open"]);
        let out = env.run(&["--as", "ana", "run", "1", "--", "true"]);
        assert_eq!(out.status.code(), Some(3), "{b}: {}", text(&out.stderr));
        let shown = env.json(&["show", "1"]);
        assert!(shown["claim"].is_null(), "{b}: {shown}");
        assert_eq!(shown["status"], "open", "{b}");
        assert_eq!(env.code(&["verify"]).0, 0, "{b}");
    }
}

/// Found by a hostile test: a 20,000-level chain printed 400 MB of indent. Past 16 levels the
/// depth is a number and the indent stops growing.
#[test]
fn a_deep_tree_is_indented_at_most_sixteen_levels() {
    let env = Env::new();
    let entries: Vec<Value> = (0..40)
        .map(|i| {
            let mut e = serde_json::json!({"key": format!("k{i}"), "title": format!("level {i}")});
            if i > 0 {
                e["parent"] = format!("k{}", i - 1).into();
            }
            e
        })
        .collect();
    let plan = env.path("chain.json");
    std::fs::write(&plan, serde_json::json!({ "items": entries }).to_string()).unwrap();
    env.json(&["new", "--plan", plan.to_str().unwrap()]);
    let out = env.run(&["list", "--tree", "--wide"]);
    let lines = text(&out.stdout);
    let deepest = lines.lines().find(|l| l.contains("level 39")).unwrap();
    assert!(deepest.contains("└[39] level 39"), "{deepest}");
    let sixteenth = lines.lines().find(|l| l.contains("level 16")).unwrap();
    assert!(
        sixteenth.contains(&format!("{}└ level 16", "  ".repeat(15))),
        "{sixteenth}"
    );
    let widest = lines.lines().map(str::len).max().unwrap();
    assert!(widest < 120, "{lines}");
}
