//! The JSON Schemas in docs/schemas are the ones the types give (regenerate with
//! `UPDATE_SCHEMAS=1 cargo test --release --test schemas`), and real outputs validate against them.

mod common;

use common::{text, Env};
use serde_json::Value;

fn shipped(name: &str) -> Value {
    let path = format!("{}/docs/schemas/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn the_shipped_schemas_are_the_ones_the_types_give() {
    for (name, schema) in tracker::json::schemas() {
        let path = format!("{}/docs/schemas/{name}.json", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, serde_json::to_string_pretty(&schema).unwrap() + "\n").unwrap();
        }
        assert_eq!(
            shipped(name),
            schema,
            "docs/schemas/{name}.json is out of date: UPDATE_SCHEMAS=1 cargo test --release --test schemas"
        );
    }
}

fn valid(schema: &Value, instance: &Value, what: &str) {
    let validator = jsonschema::validator_for(schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{instance}");
}

#[test]
fn real_outputs_validate_against_the_shipped_schemas() {
    let env = Env::new();
    let item = shipped("item");
    let created = env.json(&["new", "x", "-l", "db", "--body", "b"]);
    valid(&item, &created, "new --json");
    env.json(&["new", "y", "--blocked-by", "1"]);
    let claimed = env.json(&["--as", "ana", "claim", "1"]);
    valid(&item, &claimed, "claim --json");
    valid(&shipped("claim"), &claimed["claim"], "the claim");
    for v in env.json(&["list", "--status", "all"]).as_array().unwrap() {
        valid(&item, v, "list --json");
    }
    valid(&item, &env.json(&["show", "2"]), "show --json");
    let export: Value = serde_json::from_slice(&env.run(&["export"]).stdout).unwrap();
    for v in export["items"].as_array().unwrap() {
        valid(&item, v, "an exported item");
    }
    let error = shipped("error");
    for args in [
        &["--json", "--as", "bob", "claim", "1"][..],
        &["--json", "show", "99"],
        &["--json", "new", ""],
    ] {
        let out = env.run(args);
        let v: Value = serde_json::from_slice(&out.stderr).unwrap();
        valid(&error, &v, &format!("{args:?}: {}", text(&out.stderr)));
        if let Some(current) = v["error"].get("current") {
            valid(&item, current, "error.current");
        }
    }
}
