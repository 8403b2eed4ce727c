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
