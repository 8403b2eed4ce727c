//! Trackers written by the format-1 binary (tests/fixtures, made by make-format1.sh): today's
//! binary reads them as they are, on a file and on PostgreSQL.

use crate::common;

use std::path::PathBuf;

use crate::common::{text, Env};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A copy of the format-1 redb fixture (the committed file is never opened for writing).
fn redb_fixture() -> Env {
    let env = Env::empty();
    std::fs::copy(fixture("format1.redb"), &env.db).unwrap();
    env
}

/// The format-1 PostgreSQL fixture loaded into a schema of its own; `None` without a server.
fn pg_fixture() -> Option<Env> {
    let url = tracker::store::pg::test_schema_url()?;
    let schema = url.rsplit("search_path%3D").next().unwrap().to_string();
    let dump = std::fs::read_to_string(fixture("format1-pg.sql")).unwrap();
    let sql = dump
        .replace("CREATE SCHEMA fixture_format1;", "")
        .replace("fixture_format1.", &format!("{schema}."));
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(&sql).unwrap();
    Some(Env {
        dir: tempfile::tempdir().unwrap(),
        db: PathBuf::from(url),
        backend: "postgres",
    })
}

/// Both fixtures: the file, and the schema when a test server is there.
fn fixtures() -> Vec<Env> {
    let mut all = vec![redb_fixture()];
    all.extend(pg_fixture());
    all
}

/// (num, title, status, priority, labels, blockers) of every item, by number.
fn summary(items: &Value) -> Vec<(u64, String, String, u64, Value, Value)> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["num"].as_u64().unwrap(),
                i["title"].as_str().unwrap().to_string(),
                i["status"].as_str().unwrap().to_string(),
                i["priority"].as_u64().unwrap(),
                i["labels"].clone(),
                i["blocked_by"].clone(),
            )
        })
        .collect()
}

/// What make-format1.sh wrote, as the format-1 export of the redb fixture has it.
fn expected() -> Vec<(u64, String, String, u64, Value, Value)> {
    let export: Value =
        serde_json::from_slice(&std::fs::read(fixture("format1-export.json")).unwrap()).unwrap();
    summary(&export["items"])
}

#[test]
fn todays_binary_reads_format_1_trackers_as_they_are() {
    for env in fixtures() {
        let b = env.backend;
        let items = env.json(&["list", "--status", "all"]);
        assert_eq!(summary(&items), expected(), "{b}");
        let (code, err) = env.code(&["verify"]);
        assert_eq!(code, 0, "{b}: verify: {err}");
        let held = env.json(&["show", "8"]);
        assert_eq!(held["claim"]["holder"], "agent-ana", "{b}: {held}");
        assert_eq!(env.json(&["show", "9"])["claim"], Value::Null, "{b}");
        let ready: Vec<u64> = env
            .json(&["list", "--ready"])
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["num"].as_u64().unwrap())
            .collect();
        assert_eq!(ready, [2, 7, 1, 9, 10, 12], "{b}");
        let log = common::json_lines(&env.run(&["--json", "log"]).stdout);
        assert_eq!(log.len(), 26, "{b}");
        let out = env.run(&["status"]);
        assert_eq!(out.status.code(), Some(0), "{b}: {}", text(&out.stderr));
    }
}

/// (idempotency keys, leases on file) as the tables hold them.
fn kept_rows(env: &Env) -> (Vec<String>, usize) {
    if env.backend == "postgres" {
        let mut c = postgres::Client::connect(env.db.to_str().unwrap(), postgres::NoTls).unwrap();
        let keys = c
            .query("SELECT key FROM tracker_idempotency ORDER BY key", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let leases: i64 = c
            .query_one("SELECT count(*) FROM tracker_claims", &[])
            .unwrap()
            .get(0);
        return (keys, usize::try_from(leases).unwrap());
    }
    use tracker::store::Storage;
    let store = tracker::RedbStore::open(
        &env.db,
        tracker::Access::ReadOnly,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    store
        .read(|t| {
            let mut keys = Vec::new();
            t.visit_idempotency(&mut |(k, _)| {
                keys.push(k);
                Ok(true)
            })?;
            Ok((keys, t.leases()?.len()))
        })
        .unwrap()
}

/// Everything a reader can see: items, the log, the export's items, keys and leases.
fn everything(env: &Env) -> (Value, Value, Value, (Vec<String>, usize)) {
    let items = env.json(&["list", "--status", "all"]);
    let log: Vec<Value> = common::json_lines(&env.run(&["--json", "log"]).stdout);
    let out = env.run(&["export"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let export: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        items,
        Value::from(log),
        export["items"].clone(),
        kept_rows(env),
    )
}

#[test]
fn a_write_to_a_format_1_tracker_exits_6_naming_upgrade_and_changes_nothing() {
    for env in fixtures() {
        let b = env.backend;
        let before = everything(&env);
        for args in [
            &["new", "one more"][..],
            &["done", "1"],
            &["--as", "agent-ana", "renew", "8"],
            &["dep", "rm", "1", "3"],
            &["rebuild"],
        ] {
            let (code, err) = env.code(args);
            assert_eq!(code, 6, "{b} {args:?}: {err}");
            assert!(err.contains("tracker upgrade"), "{b} {args:?}: {err}");
            assert!(err.contains("format version 1"), "{b} {args:?}: {err}");
        }
        assert_eq!(everything(&env), before, "{b}");
    }
}

#[test]
fn upgrade_migrates_both_fixtures_with_nothing_lost() {
    for env in fixtures() {
        let b = env.backend;
        let before = everything(&env);
        assert_eq!(before.3 .0.len(), 3, "{b}: the fixture's keys");
        assert_eq!(
            before.3 .1, 2,
            "{b}: the fixture's leases (live and expired)"
        );
        let up = env.json(&["upgrade"]);
        assert_eq!(
            up,
            serde_json::json!({"upgraded": true, "from": 1, "to": 2}),
            "{b}"
        );
        let after = everything(&env);
        // The format-2 fields were already read with their defaults; nothing moves.
        for i in after.0.as_array().unwrap() {
            assert_eq!(i["type"], "task", "{b}");
            assert!(i["parent"].is_null() && i["close_reason"].is_null(), "{b}");
        }
        assert_eq!(after.0, before.0, "{b}: items");
        assert_eq!(after.1, before.1, "{b}: log");
        assert_eq!(after.2, before.2, "{b}: export");
        assert_eq!(after.3, before.3, "{b}: keys and leases");
        let (code, err) = env.code(&["verify"]);
        assert_eq!(code, 0, "{b}: verify after upgrade: {err}");
        assert_eq!(env.json(&["upgrade"])["upgraded"], false, "{b}");
        // Writable now, and the log goes on from the fixture's.
        let made = env.json(&["new", "after the upgrade"]);
        assert_eq!(made["num"], 13, "{b}");
        assert_eq!(env.json(&["done", "1"])["status"], "done", "{b}");
        let (code, err) = env.code(&["verify"]);
        assert_eq!(code, 0, "{b}: verify after writes: {err}");
        let old = std::path::Path::new("/tmp/tracker-format1");
        if !old.exists() {
            eprintln!("SKIPPED: the format-1 binary /tmp/tracker-format1 is not here");
            continue;
        }
        let out = std::process::Command::new(old)
            .arg("--db")
            .arg(&env.db)
            .args(["list"])
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{b}: {err}");
        assert!(
            err.contains("format version 2") && err.contains("1"),
            "{b}: {err}"
        );
    }
}

#[test]
fn upgrade_on_postgresql_needs_the_right_to_create_tables_and_says_so() {
    let Some(env) = pg_fixture() else { return };
    let url = env.db.to_str().unwrap().to_string();
    let schema = url.rsplit("search_path%3D").next().unwrap().to_string();
    let role = format!("{schema}_user");
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA {schema} TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};"
    ))
    .unwrap();
    let weak = Env {
        dir: tempfile::tempdir().unwrap(),
        db: PathBuf::from(url.replacen("postgres@", &format!("{role}@"), 1)),
        backend: "postgres",
    };
    assert_eq!(
        weak.json(&["list", "--status", "all"])
            .as_array()
            .unwrap()
            .len(),
        12
    );
    let (code, err) = weak.code(&["upgrade"]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("CREATE right") && err.contains("tracker upgrade"),
        "{err}"
    );
    // Still format 1, untouched: the owner upgrades it.
    assert_eq!(env.code(&["new", "x"]).0, 6);
    assert_eq!(env.json(&["upgrade"])["from"], 1);
    assert_eq!(weak.json(&["new", "by the weak role"])["num"], 13);
}

#[test]
fn import_takes_a_format_1_export() {
    for env in Env::each() {
        let b = env.backend;
        let file = fixture("format1-export.json");
        let out = env.run(&["import", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{b}: {}", text(&out.stderr));
        let items = env.json(&["list", "--status", "all"]);
        assert_eq!(summary(&items), expected(), "{b}");
        assert!(
            items
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["type"] == "task"),
            "{b}"
        );
        let (code, err) = env.code(&["verify"]);
        assert_eq!(code, 0, "{b}: {err}");
    }
}
