//! Hostile use of the command line: absurd arguments, hostile names and titles, planted
//! symlinks, broken standard output, and processes that refuse to die.

mod common;

use common::{text, Env};

/// Every duration the command line takes, at values that would overflow a deadline.
#[test]
fn huge_durations_are_refused_at_parse_time_with_exit_2() {
    let env = Env::new();
    env.json(&["new", "x"]);
    for huge in ["500000000000y", "367d", "5000000000000000y"] {
        for args in [
            &["claim", "1", "--wait", huge][..],
            &["claim", "1", "--ttl", huge],
            &["claim", "--next", "--ttl", huge],
            &["renew", "1", "--ttl", huge],
            &["run", "1", "--ttl", huge, "--", "true"],
            &["--lock-timeout", huge, "list"],
            &["config", "default-ttl", huge],
        ] {
            let out = env.run(args);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(!err.contains("internal error"), "{args:?}: {err}");
            assert!(
                err.contains(huge),
                "{args:?}: the message names the value: {err}"
            );
        }
        let out = std::process::Command::new(common::bin())
            .args(["--db", env.path("other.redb").to_str().unwrap()])
            .args(["init", "--default-ttl", huge])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let out = env
            .cmd(&["claim", "1"])
            .env("TRACKER_TTL", huge)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "TRACKER_TTL={huge}: {err}");
        assert!(err.contains("TRACKER_TTL"), "{err}");
    }
    assert!(
        !env.path("other.redb").exists(),
        "init with a bad --default-ttl made a file"
    );
    // Nothing was claimed or changed by any of them.
    assert!(env.json(&["show", "1"])["claim"].is_null());
    assert_eq!(env.json(&["show", "1"])["version"], 1);
}

/// An executable script at `name` in the test's directory.
fn script(env: &Env, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = env.path(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

/// The pid the next process started here will most likely get (pids are handed out in order).
fn next_pid() -> u32 {
    let mut probe = std::process::Command::new("true").spawn().unwrap();
    let pid = probe.id();
    probe.wait().unwrap();
    pid + 1
}

#[test]
fn edit_drafts_are_private_files_that_never_follow_a_planted_link() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    env.json(&["new", "secret plans"]);
    // The shared temp directory, where another user plants links at the names `edit` used to
    // choose (tracker-edit-NUM-PID.txt) for the pids it is about to get.
    let tmp = env.path("shared-tmp");
    std::fs::create_dir(&tmp).unwrap();
    let victim = env.path("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let first = next_pid();
    for pid in first..first + 400 {
        let link = tmp.join(format!("tracker-edit-1-{pid}.txt"));
        std::os::unix::fs::symlink(&victim, link).unwrap();
    }
    let seen = env.path("seen.txt");
    let editor = script(
        &env,
        "ed.sh",
        &format!(
            "stat -c '%a %F' \"$1\" > {seen}\nsed -i 's/^title: .*/title: revised plans/' \"$1\"",
            seen = seen.display()
        ),
    );
    let out = env
        .cmd(&["edit", "1"])
        .env("TMPDIR", &tmp)
        .env("EDITOR", &editor)
        .env_remove("VISUAL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o777, 0o644);
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(seen.trim(), "600 regular file", "the editor saw {seen:?}");
    assert_eq!(env.json(&["show", "1"])["title"], "revised plans");
    // Saved, so the draft is gone: only the planted links are left.
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_type().unwrap().is_symlink())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "drafts left behind: {left:?}");
}
