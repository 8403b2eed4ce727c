//! Trackers written by the format-1 binary (tests/fixtures, made by make-format1.sh): today's
//! binary reads them as they are, on a file and on PostgreSQL.

mod common;

use std::path::PathBuf;

use common::{text, Env};
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
