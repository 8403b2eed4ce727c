//! The README's quick start works as written, from nothing to a claimed and done item.

mod common;

use std::process::Command;

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
    let out = Command::new("bash")
        .arg("-c")
        .arg(&rest)
        .current_dir(home.path())
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env_remove("TRACKER_DB")
        .env_remove("TRACKER_AS")
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
