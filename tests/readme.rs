//! The README's quick start works as written, from nothing to a claimed and done item.

use crate::common;

#[test]
fn the_readme_quick_start_runs_from_nothing_to_a_done_item() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme
        .find("## Quick start")
        .expect("a Quick start section")..];
    let start = section.find("```sh\n").unwrap() + 6;
    let command = section[start..].lines().next().unwrap();
    // The build step is what produced the binary under test; everything after it runs as written.
    let steps: Vec<&str> = command.split(" && ").collect();
    assert!(steps[0].starts_with("cargo build --release"), "{command}");
    assert!(steps[1].starts_with("export PATH="), "{command}");
    let rest = steps[2..].join(" && ");
    assert!(
        !rest.contains("cargo"),
        "only the build step may use cargo: {rest}"
    );
    let bin_dir = std::path::Path::new(common::bin()).parent().unwrap();
    let home = tempfile::tempdir().unwrap();
    let out = common::command("bash")
        .arg("-c")
        .arg(&rest)
        .current_dir(home.path())
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    let stdout = common::text(&out.stdout);
    assert!(
        out.status.success(),
        "{rest}\n{stdout}\n{}",
        common::text(&out.stderr)
    );
    assert!(stdout.contains("claimed #1"), "{stdout}");
    assert!(stdout.contains("done #1"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("#1") && l.contains("done")),
        "{stdout}"
    );
}

/// The Guarantees table names the tests that prove each promise; each of them must exist.
#[test]
fn every_test_the_guarantees_table_names_exists() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let start = readme.find("## Guarantees").expect("a Guarantees section");
    let end = readme[start..]
        .find("\n## ")
        .map_or(readme.len(), |e| start + e);
    let section = &readme[start..end];
    let mut sources = String::new();
    for dir in ["tests", "src", "src/store", "src/cli"] {
        for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let mut named = 0;
    for quoted in section.split('`').skip(1).step_by(2) {
        // Test names are snake_case with several words; file names and commands are not.
        let is_test_name = quoted.matches('_').count() >= 3
            && quoted
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if is_test_name {
            named += 1;
            assert!(
                sources.contains(&format!("fn {quoted}("))
                    || sources.contains(&format!("fn {quoted}<")),
                "the Guarantees table names `{quoted}`, but no such test exists"
            );
        }
        if let Some(file) = quoted.strip_suffix(".rs") {
            assert!(
                std::path::Path::new(&format!("{root}/{file}.rs")).exists(),
                "the Guarantees table names {quoted}, which does not exist"
            );
        }
    }
    assert!(named >= 30, "only {named} tests named");
}
