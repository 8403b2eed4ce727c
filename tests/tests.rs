//! The integration tests: one binary (ripgrep's layout), a module per area in `tests/<area>.rs`,
//! and one helper module, `tests/common`, that every area builds its `tracker` commands with.
//! Cargo's automatic test targets are off (`autotests = false` in Cargo.toml), so a file in
//! `tests/` runs only once it has its line below; `every_test_file_is_a_module_of_this_binary`
//! fails for one that does not. Run one area with `cargo test --release --test integration
//! <area>::`.

mod common;

// The areas: one line each, `mod <area>;` for tests/<area>.rs, in alphabetical order.
mod agents;
mod board;
mod cas;
mod children;
mod core;
mod corruption;
mod decode_props;
mod group_commit;
mod hostile_cli;
mod integrity;
mod leases;
mod lock_wait;
mod log_export;
mod mcp_wire;
mod one_worker;
mod pg_connect;
mod pg_faults;
mod pg_hosts;
mod pg_import_kill;
mod pg_retry;
mod plans;
mod props;
mod readme;
mod refusals;
mod reliability;
mod schemas;
mod serve;
mod structure;
mod terminal;
mod time_namespaces;
mod upgrade;
mod worktrees;

/// A file in `tests/` without its `mod` line above would never be compiled or run.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    let this = std::fs::read_to_string(format!("{dir}/tests.rs")).unwrap();
    let mut areas = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(area) = name.strip_suffix(".rs") else {
            continue;
        };
        if area != "tests" {
            areas += 1;
            assert!(
                this.contains(&format!("\nmod {area};\n")),
                "tests/{name} is not a module of tests/tests.rs: add `mod {area};` there"
            );
        }
    }
    assert!(areas >= 20, "only {areas} test files found in {dir}");
}
