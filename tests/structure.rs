//! Work structure (format 2) through the CLI, on a file and on PostgreSQL: types, parents,
//! close reasons and comments, in the log, verify, rebuild, export and import.

use crate::common;

use crate::common::{text, Env};
use serde_json::Value;

#[test]
fn types_parents_and_close_reasons() {
    for env in Env::each() {
        let b = env.backend;
        let epic = env.json(&["new", "The epic", "--type", "epic"]);
        assert_eq!(epic["type"], "epic", "{b}");
        let child = env.json(&["new", "A part", "--parent", "1", "--type", "bug"]);
        assert_eq!(child["parent"], 1, "{b}");
        assert_eq!(child["parent_id"], epic["id"], "{b}");
        assert_eq!(env.json(&["new", "Plain"])["type"], "task", "{b}");
        let (code, err) = env.code(&["new", "x", "--type", "story"]);
        assert_eq!(code, 2, "{b}: {err}");
        // A parent chain never loops.
        let (code, err) = env.code(&["update", "1", "--parent", "2"]);
        assert_eq!(code, 3, "{b}: {err}");
        let (code, err) = env.code(&["update", "1", "--parent", "1"]);
        assert_eq!(code, 3, "{b}: {err}");
        let moved = env.json(&["update", "2", "--parent", "3", "--type", "chore"]);
        assert_eq!(
            (moved["parent"].clone(), moved["type"].clone()),
            (3.into(), "chore".into())
        );
        assert_eq!(
            env.json(&["update", "2", "--no-parent"])["parent"],
            Value::Null,
            "{b}"
        );
        let done = env.json(&["done", "2", "--reason", "fixed upstream"]);
        assert_eq!(done["close_reason"], "fixed upstream", "{b}");
        let dropped = env.json(&["update", "3", "--status", "cancelled", "--reason", "dup"]);
        assert_eq!(dropped["close_reason"], "dup", "{b}");
        let (code, err) = env.code(&["update", "1", "--reason", "why"]);
        assert_eq!(code, 2, "{b}: a reason without closing: {err}");
        // Reopening clears the reason.
        let reopened = env.json(&["update", "3", "--status", "open"]);
        assert_eq!(reopened["close_reason"], Value::Null, "{b}");
        let (code, err) = env.code(&["verify"]);
        assert_eq!(code, 0, "{b}: {err}");
    }
}

#[test]
fn a_comment_is_an_op_that_keeps_the_version() {
    for env in Env::each() {
        let b = env.backend;
        env.json(&["new", "Noted"]);
        let v = env.json(&["--as", "ana", "comment", "1", "halfway: the parser is done"]);
        assert_eq!(v["version"], 1, "{b}");
        env.json(&["--as", "bo", "comment", "1", "second note"]);
        // A holder's --if-version still holds after a note.
        let up = env.json(&["update", "1", "--title", "Noted twice", "--if-version", "1"]);
        assert_eq!(up["version"], 2, "{b}");
        let shown = env.json(&["show", "1"]);
        let comments = shown["comments"].as_array().unwrap();
        let who: Vec<&str> = comments
            .iter()
            .map(|c| c["author"].as_str().unwrap())
            .collect();
        assert_eq!(who, ["ana", "bo"], "{b}: {shown}");
        assert_eq!(comments[0]["text"], "halfway: the parser is done", "{b}");
        let (code, err) = env.code(&["comment", "1", "  "]);
        assert_eq!(code, 2, "{b}: {err}");
        let big = "x".repeat(64 * 1024 + 1);
        assert_eq!(env.code(&["comment", "1", &big]).0, 2, "{b}");
        let log = common::json_lines(&env.run(&["--json", "log", "1"]).stdout);
        let kinds: Vec<&str> = log.iter().map(|o| o["op"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["new", "comment", "comment", "update"], "{b}");
        let out = env.run(&["show", "1"]);
        assert!(text(&out.stdout).contains("second note"), "{b}");
        for cmd in ["verify", "rebuild", "verify"] {
            let (code, err) = env.code(&[cmd]);
            assert_eq!(code, 0, "{b}: {cmd}: {err}");
        }
        assert_eq!(
            env.json(&["show", "1"])["comments"],
            shown["comments"],
            "{b}"
        );
    }
}

#[test]
fn export_and_import_carry_structure_and_merge_comments_once() {
    for (from, to) in Env::each().into_iter().zip(Env::each().into_iter().rev()) {
        let b = format!("{} -> {}", from.backend, to.backend);
        from.json(&["new", "Epic", "--type", "epic"]);
        from.json(&["new", "Child", "--parent", "1"]);
        from.json(&["comment", "2", "from the first tracker"]);
        from.json(&["done", "2", "--reason", "shipped"]);
        let file = from.path("export.json");
        let out = from.run(&["export", "-o", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{b}: {}", text(&out.stderr));
        for round in 0..2 {
            let out = to.run(&["import", file.to_str().unwrap()]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{b} {round}: {}",
                text(&out.stderr)
            );
        }
        let child = to.json(&["show", "2"]);
        assert_eq!(child["parent"], 1, "{b}");
        assert_eq!(child["close_reason"], "shipped", "{b}");
        assert_eq!(to.json(&["show", "1"])["type"], "epic", "{b}");
        assert_eq!(
            child["comments"].as_array().unwrap().len(),
            1,
            "{b}: {child}"
        );
        assert_eq!(
            child["comments"],
            from.json(&["show", "2"])["comments"],
            "{b}"
        );
        let (code, err) = to.code(&["verify"]);
        assert_eq!(code, 0, "{b}: {err}");
    }
}

#[test]
fn list_by_type_and_by_text() {
    for env in Env::each() {
        let b = env.backend;
        env.json(&["new", "Crash on START", "--type", "bug"]);
        env.json(&[
            "new",
            "Docs",
            "--body",
            "explain the start-up",
            "--type",
            "chore",
        ]);
        env.json(&["new", "Unrelated", "--type", "bug"]);
        let nums = |args: &[&str]| -> Vec<u64> {
            env.json(args)
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["num"].as_u64().unwrap())
                .collect()
        };
        assert_eq!(nums(&["list", "--type", "bug"]), [1, 3], "{b}");
        assert_eq!(nums(&["list", "--search", "start"]), [1, 2], "{b}");
        assert_eq!(
            nums(&["list", "--search", "START", "--type", "chore"]),
            [2],
            "{b}"
        );
        assert_eq!(env.code(&["list", "--type", "story"]).0, 2, "{b}");
    }
}

/// Found by the hostile test of issue 22: comments merged from another tracker were listed in
/// the order they arrived, so two trackers that exchanged exports showed them differently.
#[test]
fn merged_comments_read_in_the_order_they_were_written_in_both_trackers() {
    let (one, two) = (Env::new(), Env::new());
    one.json(&["new", "shared"]);
    let export = |env: &Env| {
        let path = env.path("out.json");
        let out = env.run(&["export", "-o", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        path
    };
    let import = |env: &Env, path: &std::path::Path| {
        let out = env.run(&["import", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    };
    import(&two, &export(&one));
    one.json(&["comment", "1", "one-first"]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    two.json(&["comment", "1", "two-second"]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    one.json(&["comment", "1", "one-third"]);
    let (from_one, from_two) = (export(&one), export(&two));
    import(&two, &from_one);
    import(&one, &from_two);
    let texts = |env: &Env| -> Vec<String> {
        env.json(&["show", "1"])["comments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["text"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(texts(&one), ["one-first", "two-second", "one-third"]);
    assert_eq!(texts(&two), texts(&one));
}
