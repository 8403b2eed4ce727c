//! Agents and scripts as first-class users: failures as data with `--json`, and the MCP server
//! driven by a real MCP client that nobody here wrote (the official Python SDK).

mod common;

use std::process::{Command, Stdio};

use common::{text, Env};
use serde_json::Value;

/// With `--json`, every failure is one JSON object on stderr, and stdout stays empty.
#[test]
fn with_json_every_failure_is_one_error_object_on_stderr_and_nothing_on_stdout() {
    let env = Env::new();
    env.json(&["new", "x"]);
    env.json(&["--as", "ana", "claim", "1"]);
    let holder = common::WriteLockHolder::hold(&env.db);
    let busy = env.run(&["--json", "--lock-timeout", "200ms", "new", "y"]);
    holder.release();
    let not_a_tracker = env.path("notes.txt");
    std::fs::write(&not_a_tracker, "hello").unwrap();
    let cases: Vec<(&str, i32, std::process::Output)> = vec![
        ("invalid", 2, env.run(&["--json", "new", ""])),
        (
            "conflict",
            3,
            env.run(&["--json", "--as", "bob", "claim", "1"]),
        ),
        ("not_found", 4, env.run(&["--json", "show", "99"])),
        ("busy", 5, busy),
        (
            "data",
            6,
            Command::new(common::bin())
                .args(["--json", "--db", not_a_tracker.to_str().unwrap(), "list"])
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        ),
        ("invalid", 2, env.run(&["--json", "list", "--no-such-flag"])),
    ];
    for (kind, code, out) in cases {
        assert_eq!(
            out.status.code(),
            Some(code),
            "{kind}: {}",
            text(&out.stderr)
        );
        assert!(
            out.stdout.is_empty(),
            "{kind}: stdout {}",
            text(&out.stdout)
        );
        let v: Value = serde_json::from_slice(&out.stderr)
            .unwrap_or_else(|e| panic!("{kind}: not one JSON object ({e}): {}", text(&out.stderr)));
        assert_eq!(v["error"]["kind"], kind);
        assert_eq!(v["error"]["code"], code);
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        if kind == "conflict" {
            assert_eq!(v["error"]["item"], 1);
            assert_eq!(v["error"]["holder"]["holder"], "ana");
        }
    }
}
