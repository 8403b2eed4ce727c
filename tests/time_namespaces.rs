//! Issue 19, item 3: a time namespace (`unshare --time --boottime N`) shifts CLOCK_BOOTTIME and
//! the process start times in /proc by N. Leases taken inside one must neither look N longer to
//! everyone else, nor let a process inside take an item someone outside holds, nor have their
//! live `run` taken for gone because its start time reads differently outside.

use crate::common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{text, Env};

/// Two hours, as the example: longer than the one-hour leases these tests take.
const SHIFT_SECS: &str = "7200";

/// Whether this machine lets us make a time namespace (root, util-linux, Linux 5.6 or later).
fn can_unshare_time(test: &str) -> bool {
    let ok = Command::new("unshare")
        .args(["--time", "--boottime", SHIFT_SECS, "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED {test}: `unshare --time --boottime {SHIFT_SECS}` failed here \
             (needs root, util-linux and Linux 5.6 or later)"
        );
    }
    ok
}

/// `tracker ARGS` in a new time namespace whose CLOCK_BOOTTIME runs two hours ahead.
fn shifted(env: &Env, args: &[&str]) -> Command {
    let mut c = common::command("unshare");
    c.args(["--time", "--boottime", SHIFT_SECS])
        .arg(common::bin())
        .arg("--db")
        .arg(&env.db)
        .args(args)
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
    c
}

fn code_of(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// The "expires in ..." part of `show`'s claim line.
fn expires_in(env: &Env, item: &str) -> String {
    let shown = text(&env.run(&["show", item]).stdout);
    let at = shown
        .find("expires in ")
        .unwrap_or_else(|| panic!("no lease shown: {shown}"));
    shown[at..].split(',').next().unwrap().to_string()
}

#[test]
fn a_claim_in_a_shifted_time_namespace_respects_a_lease_taken_outside() {
    if !can_unshare_time("a_claim_in_a_shifted_time_namespace_respects_a_lease_taken_outside") {
        return;
    }
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "held outside"]);
        env.json(&["new", "free"]);
        let held = env.json(&["--as", "outside", "claim", "1", "--ttl", "1h"]);
        // Inside, CLOCK_BOOTTIME is two hours ahead: read against it, the one-hour lease had
        // ended an hour ago.
        let out = shifted(&env, &["--as", "inside", "claim", "1"])
            .output()
            .unwrap();
        assert_eq!(
            code_of(&out),
            3,
            "{}: took a live lease from inside a time namespace: {}",
            env.backend,
            text(&out.stderr)
        );
        // The free item is taken as a live one-hour lease with a new token...
        let out = shifted(
            &env,
            &["--json", "--as", "inside", "claim", "2", "--ttl", "1h"],
        )
        .output()
        .unwrap();
        assert_eq!(code_of(&out), 0, "{}: {}", env.backend, text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["claim"]["holder"], "inside");
        assert!(v["claim"]["token"].as_u64() > held["claim"]["token"].as_u64());
        // ...and then nothing is ready, inside either.
        let out = shifted(&env, &["--as", "inside2", "claim", "--next"])
            .output()
            .unwrap();
        assert_eq!(code_of(&out), 4, "{}: {}", env.backend, text(&out.stdout));
        assert_eq!(env.json(&["show", "1"])["claim"]["holder"], "outside");
    }
}

#[test]
fn a_lease_taken_in_a_shifted_time_namespace_lasts_its_ttl_for_everyone_else() {
    if !can_unshare_time(
        "a_lease_taken_in_a_shifted_time_namespace_lasts_its_ttl_for_everyone_else",
    ) {
        return;
    }
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "held inside"]);
        let out = shifted(
            &env,
            &["--json", "--as", "inside", "claim", "1", "--ttl", "1h"],
        )
        .output()
        .unwrap();
        assert_eq!(code_of(&out), 0, "{}: {}", env.backend, text(&out.stderr));
        // One hour from outside (59m once a millisecond has passed), not three.
        let left = expires_in(&env, "1");
        assert!(
            left == "expires in 59m" || left == "expires in 1h",
            "{}: the lease looks {left} long outside",
            env.backend
        );
        let v = env.json(&["show", "1"]);
        let at = |k: &str| tracker::clock::parse_rfc3339(v["claim"][k].as_str().unwrap()).unwrap();
        assert_eq!(at("expires_at") - at("acquired_at"), 3_600_000);
        let (code, err) = env.code(&["--as", "outside", "claim", "1"]);
        assert_eq!(code, 3, "{}: {err}", env.backend);
    }
}

#[test]
fn a_live_holder_in_a_shifted_time_namespace_is_not_taken_for_gone() {
    if !can_unshare_time("a_live_holder_in_a_shifted_time_namespace_is_not_taken_for_gone") {
        return;
    }
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "held by a live process inside"]);
        let ready = env.path("ready");
        // The lease is tied to the shell's pid (which then becomes the sleep) and to its start
        // time as read inside: two hours later than the same process's start time read outside.
        let script = format!(
            "{bin} --as inside claim 1 --pid $$ --ttl 10m >/dev/null && touch {ready}; \
             exec sleep 30",
            bin = common::bin(),
            ready = ready.display()
        );
        // The tracker by environment: a PostgreSQL URL has characters a shell would act on.
        let mut inner = common::command("unshare")
            .args(["--time", "--boottime", SHIFT_SECS, "sh", "-c", &script])
            .env("TRACKER_DB", &env.db)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(Instant::now() < end, "the claim inside never happened");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Compared, the start times would say the pid now names another process.
        let (steal, steal_err) = env.code(&["--as", "outside", "claim", "1", "--steal-stale"]);
        let (next, next_err) = env.code(&["--as", "outside", "claim", "--next"]);
        inner.kill().unwrap();
        inner.wait().unwrap();
        assert_eq!(
            steal, 3,
            "{}: a live holder lost its item: {steal_err}",
            env.backend
        );
        assert_eq!(next, 4, "{}: offered as ready: {next_err}", env.backend);
        assert_eq!(env.json(&["show", "1"])["claim"]["holder"], "inside");
    }
}
