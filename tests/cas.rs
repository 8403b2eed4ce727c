//! Issue 4: optimistic concurrency across processes: versioned updates, `edit`, dependencies,
//! idempotency keys.

use crate::common;

use std::sync::Arc;

use crate::common::{text, Env};

#[test]
fn six_processes_increment_a_counter_twenty_times_each_without_losing_one() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        let env = Arc::new(env);
        env.json(&["new", "counter", "--body", "0"]);
        let workers: Vec<_> = (0..6)
            .map(|w| {
                let env = Arc::clone(&env);
                std::thread::spawn(move || {
                    let me = format!("w{w}");
                    let mut conflicts = 0;
                    for _ in 0..20 {
                        loop {
                            let v = env.json(&["show", "1"]);
                            let n: u64 = v["body"].as_str().unwrap().parse().unwrap();
                            let version = v["version"].as_u64().unwrap().to_string();
                            let body = (n + 1).to_string();
                            let out = env.run(&[
                                "--as",
                                &me,
                                "update",
                                "1",
                                "--body",
                                &body,
                                "--if-version",
                                &version,
                            ]);
                            match out.status.code() {
                                Some(0) => break,
                                Some(3) => conflicts += 1,
                                other => panic!("update exited {other:?}: {}", text(&out.stderr)),
                            }
                        }
                    }
                    conflicts
                })
            })
            .collect();
        let conflicts: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        let v = env.json(&["show", "1"]);
        assert_eq!(v["body"], "120");
        assert_eq!(v["version"], 121);
        assert_eq!(env.code(&["verify"]).0, 0);
        eprintln!("{conflicts} conflicts were retried");
    }
}

#[test]
fn a_version_mismatch_says_the_current_version_and_who_made_it() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "x"]);
        env.json(&["--as", "ana", "update", "1", "--title", "y"]);
        let stale = [
            "--as",
            "bob",
            "update",
            "1",
            "--title",
            "z",
            "--if-version",
            "1",
        ];
        let out = env.run(&[&["--json"][..], &stale].concat());
        assert_eq!(out.status.code(), Some(3));
        let err = text(&out.stderr);
        assert!(err.contains("version 2") && err.contains("ana"), "{err}");
        let human = env.run(&stale);
        assert!(text(&human.stderr).starts_with("tracker: conflict: "));
        // With --json the failure is data on stderr, with the current state, for the script to
        // decide; nothing is on stdout.
        assert!(out.stdout.is_empty());
        let error: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
        assert_eq!(error["error"]["kind"], "conflict");
        assert_eq!(error["error"]["code"], 3);
        assert_eq!(error["error"]["item"], 1);
        assert_eq!(error["error"]["current"]["title"], "y");
        assert_eq!(env.json(&["show", "1"])["title"], "y");
    }
}

#[test]
fn if_version_guards_every_mutating_command() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "a"]);
        env.json(&["new", "b"]);
        for args in [
            &["claim", "1", "--if-version", "9"][..],
            &["done", "1", "--if-version", "9"][..],
            &["release", "1", "--if-version", "9"][..],
            &["dep", "add", "1", "2", "--if-version", "9"][..],
            &["update", "1", "--priority", "0", "--if-version", "9"][..],
        ] {
            let (code, err) = env.code(args);
            assert_eq!(code, 3, "{args:?}: {err}");
        }
        assert_eq!(env.json(&["show", "1"])["version"], 1);
    }
}

#[test]
fn labels_status_and_priority_update() {
    let env = Env::new();
    env.json(&["new", "x", "--label", "a", "--label", "b"]);
    let v = env.json(&[
        "update",
        "1",
        "--add-label",
        "c",
        "--remove-label",
        "a",
        "--priority",
        "0",
    ]);
    assert_eq!(v["labels"], serde_json::json!(["b", "c"]));
    assert_eq!(v["priority"], 0);
    assert_eq!(v["version"], 2, "one op for one command");
    let v = env.json(&["update", "1", "--status", "cancelled"]);
    assert_eq!(v["status"], "cancelled");
    assert_eq!(
        env.json(&["list", "--label", "c"])
            .as_array()
            .unwrap()
            .len(),
        0,
        "list shows open items by default"
    );
    assert_eq!(
        env.json(&["list", "--label", "c", "--status", "all"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn dependencies_block_readiness_and_cycles_are_refused() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "design"]);
        env.json(&["new", "build", "--blocked-by", "1"]);
        env.json(&["new", "ship"]);
        env.json(&["dep", "add", "3", "2"]);
        let (code, err) = env.code(&["dep", "add", "1", "3"]);
        assert_eq!(code, 3, "1 -> 3 -> 2 -> 1 is a cycle: {err}");
        assert!(err.contains("cycle"), "{err}");
        let ready: Vec<u64> = env
            .json(&["list", "--ready"])
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["num"].as_u64().unwrap())
            .collect();
        assert_eq!(ready, [1]);
        let shown = env.json(&["show", "2"]);
        assert_eq!(shown["blocked_by"], serde_json::json!([1]));
        assert_eq!(shown["blocks"], serde_json::json!([3]));
        env.json(&["done", "1"]);
        assert_eq!(env.json(&["claim", "--next"])["num"], 2);
        env.json(&["dep", "rm", "3", "2"]);
        assert_eq!(env.json(&["claim", "--next", "--as", "other"])["num"], 3);
        assert_eq!(env.code(&["dep", "rm", "3", "2"]).0, 4);
    }
}

#[test]
fn idempotency_keys_on_new_and_other_commands() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        let a = env.json(&["new", "once", "--idempotency-key", "k-1"]);
        let b = env.json(&["new", "once", "--idempotency-key", "k-1"]);
        assert_eq!(a["id"], b["id"]);
        let (code, err) = env.code(&["new", "twice", "--idempotency-key", "k-1"]);
        assert_eq!(code, 3, "{err}");
        let u1 = env.json(&[
            "update",
            "1",
            "--title",
            "renamed",
            "--idempotency-key",
            "u-1",
        ]);
        let u2 = env.json(&[
            "update",
            "1",
            "--title",
            "renamed",
            "--idempotency-key",
            "u-1",
        ]);
        assert_eq!(u1["version"], 2);
        assert_eq!(u2["version"], 2, "the repeat wrote nothing");
        let ops = common::json_lines(&env.run(&["--json", "log"]).stdout);
        assert_eq!(ops.len(), 2);
    }
}

fn editor_script(env: &Env, name: &str, body: &str) -> String {
    let p = env.path(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&p)
        .status()
        .unwrap();
    p.display().to_string()
}

#[test]
fn edit_saves_changes_made_in_the_editor() {
    let env = Env::new();
    env.json(&["new", "old title", "--body", "old body", "--label", "x"]);
    let script = editor_script(
        &env,
        "ed.sh",
        "sed -i -e 's/^title: .*/title: new title/' -e 's/^labels: .*/labels: x, y/' -e 's/^old body$/new body/' \"$1\"",
    );
    let out = env
        .cmd(&["--json", "edit", "1"])
        .env("EDITOR", &script)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = env.json(&["show", "1"]);
    assert_eq!(v["title"], "new title");
    assert_eq!(v["body"], "new body");
    assert_eq!(v["labels"], serde_json::json!(["x", "y"]));
    assert_eq!(v["version"], 2);
    // An editor that changes nothing saves nothing.
    let out = env
        .cmd(&["edit", "1"])
        .env("EDITOR", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(env.json(&["show", "1"])["version"], 2);
}

#[test]
fn edit_racing_an_update_keeps_the_users_text_and_overwrites_nothing() {
    let env = Env::new();
    env.json(&["new", "original"]);
    // While the user is "typing", another process changes the item.
    let racer = format!(
        "{} --db {} --as racer update 1 --title from-the-racer >/dev/null",
        common::bin(),
        env.db.display()
    );
    let script = editor_script(
        &env,
        "race.sh",
        &format!("{racer}\nsed -i 's/^title: .*/title: typed by the user/' \"$1\""),
    );
    let out = env
        .cmd(&["edit", "1"])
        .env("EDITOR", &script)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let kept = err
        .split_whitespace()
        .find(|w| w.contains("tracker-edit-"))
        .expect("the kept file's path is printed")
        .trim_end_matches([',', '.', ';']);
    let saved = std::fs::read_to_string(kept).unwrap();
    assert!(saved.contains("typed by the user"), "{saved}");
    assert_eq!(env.json(&["show", "1"])["title"], "from-the-racer");
    let _ = std::fs::remove_file(kept);
}
