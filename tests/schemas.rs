//! The JSON Schemas in docs/schemas are the ones the types give (regenerate with
//! `UPDATE_SCHEMAS=1 cargo test --release --test integration schemas::`), and real outputs of
//! every command that prints JSON validate against them, on every backend.

use std::collections::BTreeSet;

use crate::common::{json_lines, text, Env};
use serde_json::Value;

fn shipped(name: &str) -> Value {
    let path = format!("{}/docs/schemas/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_shipped_schemas_are_the_ones_the_types_give() {
    let dir = format!("{}/docs/schemas", env!("CARGO_MANIFEST_DIR"));
    let mut names = BTreeSet::new();
    for (name, schema) in tracker::json::schemas() {
        let path = format!("{dir}/{name}.json");
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, serde_json::to_string_pretty(&schema).unwrap() + "\n").unwrap();
        }
        assert_eq!(
            shipped(name),
            schema,
            "docs/schemas/{name}.json is out of date: UPDATE_SCHEMAS=1 cargo test --release --test integration schemas::"
        );
        names.insert(format!("{name}.json"));
    }
    // No schema left behind for a shape that is gone.
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        on_disk, names,
        "docs/schemas holds exactly the shipped schemas"
    );
}

/// Checks outputs against the shipped schemas and remembers which schemas were used.
#[derive(Default)]
struct Checker {
    used: BTreeSet<&'static str>,
}

impl Checker {
    fn check(&mut self, name: &'static str, instance: &Value, what: &str) {
        let validator = jsonschema::validator_for(&shipped(name)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} against {name}.json: {errors:?}\n{instance}"
        );
        self.used.insert(name);
    }

    fn failure(&mut self, env: &Env, args: &[&str]) -> Value {
        let out = env.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        let v: Value = serde_json::from_slice(&out.stderr)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out.stderr)));
        self.check("error", &v, &format!("{args:?}"));
        if let Some(current) = v["error"].get("current") {
            self.check("item", current, "error.current");
        }
        if let Some(holder) = v["error"].get("holder") {
            self.check("claim", holder, "error.holder");
        }
        v
    }
}

#[test]
fn every_json_output_validates_against_its_shipped_schema() {
    for env in Env::each() {
        let mut c = Checker::default();
        c.check("init", &env.json(&["init"]), "init (again)");
        let created = env.json(&["new", "x", "-l", "db", "--body", "b", "-p", "0"]);
        c.check("item", &created, "new");
        env.json(&["new", "y", "--blocked-by", "1"]);
        env.json(&["new", "z"]);
        let claimed = env.json(&["--as", "ana", "claim", "1", "--ttl", "1h"]);
        c.check("item", &claimed, "claim");
        c.check("claim", &claimed["claim"], "the claim");
        let token = claimed["claim"]["token"].to_string();
        for args in [
            &["--as", "ana", "renew", "1", "--token", &token][..],
            &[
                "--as", "ana", "update", "1", "--title", "x2", "--token", &token,
            ],
            &["dep", "add", "3", "1"],
            &["dep", "rm", "3", "1"],
            &["--as", "bo", "claim", "--next"],
            &["--as", "bo", "release", "3"],
            &["--as", "ana", "done", "1", "--token", &token],
            &["--as", "cy", "run", "2", "--", "true"],
        ] {
            c.check("item", &env.json(args), &format!("{args:?}"));
        }
        let list = env.json(&["list", "--status", "all"]);
        assert_eq!(list.as_array().unwrap().len(), 3);
        c.check("list", &list, "list");
        c.check("show", &env.json(&["show", "2"]), "show");
        let ops = json_lines(&env.run(&["--json", "log"]).stdout);
        assert!(ops.len() >= 10, "{ops:?}");
        for op in &ops {
            c.check("op", op, "a log line");
        }
        env.json(&["--as", "dee", "claim", "3"]);
        let status = env.json(&["status"]);
        assert_eq!(status["live_claims"].as_array().unwrap().len(), 1);
        c.check("status", &status, "status");
        c.check(
            "status",
            &env.json(&["status", "--since", "1h"]),
            "status --since",
        );
        c.check("verify", &env.json(&["verify"]), "verify");
        c.check("config", &env.json(&["config", "default-ttl"]), "config");
        c.check(
            "config",
            &env.json(&["config", "default-ttl", "20m"]),
            "config set",
        );

        let export: Value = serde_json::from_slice(&env.run(&["export"]).stdout).unwrap();
        c.check("export", &export, "export");
        let lines = json_lines(&env.run(&["export", "--jsonl"]).stdout);
        c.check("export-header", &lines[0], "export --jsonl header");
        for item in &lines[1..] {
            c.check("item", item, "export --jsonl item");
        }
        let file = env.path("export.json");
        std::fs::write(&file, serde_json::to_vec(&export).unwrap()).unwrap();
        c.check(
            "import",
            &env.json(&["import", file.to_str().unwrap()]),
            "import",
        );

        c.failure(&env, &["--json", "--as", "bob", "claim", "3"]);
        c.failure(&env, &["--json", "show", "99"]);
        c.failure(&env, &["--json", "new", ""]);
        c.failure(
            &env,
            &["--json", "update", "2", "--if-version", "1", "-p", "1"],
        );
        c.failure(&env, &["--json", "claim", "--bogus-flag"]);
        c.check("rebuild", &env.json(&["rebuild"]), "rebuild");
        c.check("upgrade", &env.json(&["upgrade"]), "upgrade");
        env.json(&["new", "An epic", "--type", "epic"]);
        env.json(&["new", "Its part", "--parent", "4", "--type", "bug"]);
        c.check("item", &env.json(&["comment", "5", "a note"]), "comment");
        c.check("show", &env.json(&["show", "5"]), "show with a comment");
        let ops = json_lines(&env.run(&["--json", "log", "5"]).stdout);
        c.check("op", ops.last().unwrap(), "a comment's op");
        let export: Value = serde_json::from_slice(&env.run(&["export"]).stdout).unwrap();
        c.check("export", &export, "export with structure");
        let file = env.path("plan.json");
        let plan = r##"{"items": [{"key": "e", "title": "E", "type": "epic"},
            {"key": "p", "title": "P", "parent": "e", "blocked_by": ["#1"]}]}"##;
        std::fs::write(&file, plan).unwrap();
        let made = env.json(&["new", "--plan", file.to_str().unwrap()]);
        c.check("plan", &made, "new --plan");

        let every: BTreeSet<&str> = tracker::json::schemas().iter().map(|(n, _)| *n).collect();
        let untested: Vec<_> = every.difference(&c.used).collect();
        assert!(
            untested.is_empty(),
            "{}: schemas no output was checked against: {untested:?}",
            env.backend
        );
    }
}

#[test]
fn the_schemas_refuse_what_the_tracker_never_prints() {
    let env = Env::new();
    let item = env.json(&["new", "x"]);
    let valid = |name: &str, v: &Value| {
        jsonschema::validator_for(&shipped(name))
            .unwrap()
            .is_valid(v)
    };
    assert!(valid("item", &item));
    for (field, bad) in [
        ("id", Value::from("not-a-ulid")),
        ("status", Value::from("doing")),
        ("priority", Value::from(5)),
        ("version", Value::from(0)),
        ("title", Value::from("")),
    ] {
        let mut v = item.clone();
        v[field] = bad;
        assert!(
            !valid("item", &v),
            "an item with {field} = {} passed",
            v[field]
        );
    }
    let mut missing = item.clone();
    missing.as_object_mut().unwrap().remove("num");
    assert!(!valid("item", &missing), "an item without num passed");
    let error = serde_json::json!({"error": {"kind": "oops", "code": 3, "message": "m"}});
    assert!(!valid("error", &error), "an unknown error kind passed");
}
