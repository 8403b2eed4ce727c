//! Issue 5: the ops log, verify/rebuild, export and import.

use std::time::Duration;

use crate::common::{json_lines, text, Env};

fn populated() -> Env {
    populate(Env::new())
}

/// One populated tracker on every backend.
fn populated_each() -> Vec<Env> {
    Env::each().into_iter().map(populate).collect()
}

fn populate(env: Env) -> Env {
    env.json(&[
        "new",
        "alpha",
        "--label",
        "x",
        "--priority",
        "1",
        "--body",
        "multi\nline",
    ]);
    env.json(&["new", "beta", "--blocked-by", "1"]);
    env.json(&["new", "gamma"]);
    env.json(&["--as", "ana", "claim", "3"]);
    env.json(&["update", "2", "--title", "beta two"]);
    env.json(&["done", "1"]);
    env
}

fn items_without_claims(export: &serde_json::Value) -> Vec<serde_json::Value> {
    export["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i["claim"] = serde_json::Value::Null;
            i
        })
        .collect()
}

#[test]
fn export_import_export_round_trips_and_a_second_import_changes_nothing() {
    let src = populated();
    let file = src.path("snap.json");
    let out = src.run(&["export", "-o", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let first: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(first["item_count"], 3);
    assert_eq!(first["last_op_seq"], 6);

    // Into a file and into PostgreSQL: moving a file's tracker over is export then import.
    for dst in Env::each() {
        eprintln!("into: {}", dst.backend);
        let r = dst.json(&["import", file.to_str().unwrap()]);
        assert_eq!(r["created"], 3);
        let again: serde_json::Value =
            serde_json::from_slice(&dst.run(&["export"]).stdout).unwrap();
        // Claims are local to a file (their tokens belong to it): everything else is the same.
        assert_eq!(items_without_claims(&again), items_without_claims(&first));
        let seq_before = again["last_op_seq"].clone();
        let r = dst.json(&["import", file.to_str().unwrap()]);
        assert_eq!(
            (
                r["created"].as_u64(),
                r["replaced"].as_u64(),
                r["unchanged"].as_u64()
            ),
            (Some(0), Some(0), Some(3))
        );
        let after: serde_json::Value =
            serde_json::from_slice(&dst.run(&["export"]).stdout).unwrap();
        assert_eq!(
            after["last_op_seq"], seq_before,
            "a second import wrote an op"
        );
        assert_eq!(dst.code(&["verify"]).0, 0);
        // Readiness survives: beta waited for alpha, which is done.
        assert_eq!(
            dst.json(&["show", "2"])["blocked_by"],
            serde_json::json!([1])
        );
    }
}

#[test]
fn jsonl_export_imports_too_and_newer_versions_replace_older_ones() {
    let src = populated();
    let lines = src.run(&["export", "--jsonl"]).stdout;
    let parsed = json_lines(&lines);
    assert_eq!(parsed.len(), 4, "a header and three items");
    assert_eq!(parsed[0]["format"], "tracker-export");
    let dst = Env::new();
    let file = dst.path("snap.jsonl");
    std::fs::write(&file, &lines).unwrap();
    assert_eq!(dst.json(&["import", file.to_str().unwrap()])["created"], 3);
    // The source moves on; importing its newer export replaces the older copy.
    src.json(&["update", "3", "--title", "gamma two"]);
    std::fs::write(&file, src.run(&["export", "--jsonl"]).stdout).unwrap();
    let r = dst.json(&["import", file.to_str().unwrap()]);
    assert_eq!(r["replaced"], 1);
    assert_eq!(dst.json(&["show", "3"])["title"], "gamma two");
    assert_eq!(dst.code(&["verify"]).0, 0);
}

#[test]
fn a_malformed_import_names_line_and_column_and_writes_nothing() {
    for env in populated_each() {
        eprintln!("backend: {}", env.backend);
        let bad = env.path("bad.json");
        std::fs::write(
            &bad,
            "{\"format\":\"tracker-export\",\"format_version\":1,\n\"items\":[{\"id\": 12}\n",
        )
        .unwrap();
        let before = env.run(&["export"]).stdout;
        let (code, err) = env.code(&["import", bad.to_str().unwrap()]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("column"), "{err}");
        let after = env.run(&["export"]).stdout;
        let strip = |b: &[u8]| text(b).lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(strip(&before), strip(&after));
    }
}

#[test]
fn exports_are_deterministic() {
    let env = populated();
    let a = text(&env.run(&["export"]).stdout);
    std::thread::sleep(Duration::from_millis(5));
    let b = text(&env.run(&["export"]).stdout);
    // Only the header line (with exported_at) may differ.
    assert_eq!(
        a.lines().skip(1).collect::<Vec<_>>(),
        b.lines().skip(1).collect::<Vec<_>>()
    );
    assert!(a.lines().count() >= 5, "one item per line: {a}");
}

#[test]
fn killing_export_o_leaves_the_old_file_or_the_whole_new_one() {
    let env = Env::new();
    for i in 0..300 {
        env.json(&["new", &format!("item {i} {}", "x".repeat(200))]);
    }
    let target = env.path("out.json");
    std::fs::write(&target, "OLD").unwrap();
    for round in 0..20u64 {
        let mut child = env.spawn(&["export", "-o", target.to_str().unwrap()]);
        std::thread::sleep(Duration::from_micros(500 + round * 700));
        let _ = child.kill();
        let _ = child.wait();
        let content = std::fs::read(&target).unwrap();
        if content != b"OLD" {
            let v: serde_json::Value = serde_json::from_slice(&content)
                .unwrap_or_else(|e| panic!("round {round}: a half-written export is visible: {e}"));
            assert_eq!(v["items"].as_array().unwrap().len(), 300);
        }
    }
}

#[test]
fn log_filters_by_item_since_and_limit_and_follow_sees_new_ops() {
    for env in populated_each() {
        eprintln!("backend: {}", env.backend);
        let all = json_lines(&env.run(&["--json", "log"]).stdout);
        assert_eq!(all.len(), 6);
        let of_3 = json_lines(&env.run(&["--json", "log", "3"]).stdout);
        assert_eq!(
            of_3.iter()
                .map(|o| o["op"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["new", "claim"]
        );
        let tail = json_lines(
            &env.run(&["--json", "log", "--since", "5", "--limit", "1"])
                .stdout,
        );
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0]["seq"], 5);

        let mut follower = env.spawn(&["--json", "log", "--follow", "--since", "7"]);
        let stdout = follower.stdout.take().unwrap();
        let (tx, seen) = std::sync::mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let op: serde_json::Value = serde_json::from_str(&line).unwrap();
                let _ = tx.send(op["seq"].as_u64().unwrap());
            }
        });
        let next = |what: &str| {
            seen.recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("--follow did not print {what}"))
        };
        env.json(&["new", "late"]);
        assert_eq!(next("op 7"), 7);
        // Between polls --follow holds nothing, so this writer is not kept waiting.
        let started = std::time::Instant::now();
        env.json(&["--lock-timeout", "2s", "new", "later"]);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(next("op 8"), 8);
        let _ = follower.kill();
        let _ = follower.wait();
        reader.join().unwrap();
        assert!(
            seen.try_recv().is_err(),
            "--follow printed more than the two new ops"
        );
    }
}

#[test]
fn verify_reports_ok_and_rebuild_keeps_everything() {
    for env in populated_each() {
        eprintln!("backend: {}", env.backend);
        let (code, _) = env.code(&["verify"]);
        assert_eq!(code, 0);
        let v = env.json(&["verify"]);
        assert_eq!(v["ok"], true);
        assert_eq!(v["ops"], 6);
        let before = env.run(&["export"]).stdout;
        assert_eq!(env.code(&["rebuild"]).0, 0);
        let after = env.run(&["export"]).stdout;
        let strip = |b: &[u8]| text(b).lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(strip(&before), strip(&after));
        assert_eq!(env.code(&["verify"]).0, 0);
    }
}
