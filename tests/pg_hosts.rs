//! PostgreSQL for teams on many machines: clients on several hosts (each in a UTS namespace of
//! its own, with its own hostname) share one tracker, and a client whose clock is hours off
//! changes nothing about who holds what, since the database server's clock decides.
//! Runs when a test server is there (`TRACKER_TEST_PG`; always in CI).

use crate::common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{text, Env};
use serde_json::Value;

/// `tracker ARGS` run as if on host `host`: a new UTS namespace with that hostname.
fn on_host(env: &Env, host: &str, args: &[&str]) -> Command {
    let mut c = common::command("unshare");
    c.arg("--uts")
        .arg("sh")
        .arg("-c")
        .arg(format!("hostname {host} && exec \"$0\" \"$@\""))
        .arg(common::bin())
        .arg("--db")
        .arg(&env.db)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// `tracker ARGS` with the wall clock shifted by `offset` (libfaketime, e.g. "+5h").
fn skewed(env: &Env, offset: &str, args: &[&str]) -> Output {
    common::command("faketime")
        .arg("-f")
        .arg(offset)
        .arg(common::bin())
        .arg("--db")
        .arg(&env.db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "CI must have {tool}");
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

fn json(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn clients_on_four_hosts_race_for_the_same_items_and_each_is_claimed_once() {
    let Some(env) = Env::postgres() else { return };
    if !have("unshare") {
        return;
    }
    for i in 0..12 {
        env.json(&["new", &format!("task {i}")]);
    }
    let hosts = ["alpha", "beta", "gamma", "delta"];
    // Every host's worker claims until nothing is left, all at once.
    let workers: Vec<_> = hosts
        .iter()
        .map(|h| {
            let mut c = common::command("unshare");
            c.arg("--uts")
                .arg("sh")
                .arg("-c")
                .arg(format!(
                    "hostname {h}; while \"$0\" --db \"$1\" --json --as \"worker@{h}\" claim --next; do :; done"
                ))
                .arg(common::bin())
                .arg(&env.db)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut claimed: Vec<(u64, String)> = Vec::new();
    for w in workers {
        let out = w.wait_with_output().unwrap();
        for line in text(&out.stdout).lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            claimed.push((
                v["num"].as_u64().unwrap(),
                v["claim"]["host"].as_str().unwrap().to_string(),
            ));
        }
    }
    let mut nums: Vec<u64> = claimed.iter().map(|c| c.0).collect();
    nums.sort_unstable();
    assert_eq!(nums, (1..=12).collect::<Vec<_>>(), "each item exactly once");
    // Each lease records the host its client ran on.
    for (num, host) in &claimed {
        let shown = env.json(&["show", &num.to_string()]);
        assert_eq!(shown["claim"]["host"].as_str(), Some(host.as_str()));
        assert!(hosts.contains(&host.as_str()), "{host}");
    }
    let tokens: std::collections::BTreeSet<u64> = (1..=12)
        .map(|n| {
            env.json(&["show", &n.to_string()])["claim"]["token"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(tokens.len(), 12, "every acquisition has its own token");
    assert_eq!(env.code(&["verify"]).0, 0);
    let board = env.json(&["status"]);
    assert_eq!(
        (board["claimed"].as_u64(), board["ready"].as_u64()),
        (Some(12), Some(0))
    );
}

#[test]
fn a_holder_is_judged_gone_by_its_pid_only_on_its_own_host() {
    let Some(env) = Env::postgres() else { return };
    if !have("unshare") {
        return;
    }
    env.json(&["new", "tied to a process on alpha"]);
    // On alpha, a lease tied to a process that then dies.
    let mut worker = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = worker.id().to_string();
    let out = on_host(&env, "alpha", &["--as", "a", "claim", "1", "--pid", &pid])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    worker.kill().unwrap();
    worker.wait().unwrap();
    // beta cannot see alpha's processes (the pid means nothing there): not provably gone.
    let out = on_host(&env, "beta", &["--as", "b", "claim", "1", "--steal-stale"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // On alpha the same pid is provably gone: the lease may be taken at once.
    let out = on_host(
        &env,
        "alpha",
        &["--json", "--as", "c", "claim", "1", "--steal-stale"],
    )
    .output()
    .unwrap();
    assert_eq!(json(&out)["claim"]["holder"], "c");
}

#[test]
fn a_client_whose_clock_is_hours_off_neither_frees_a_live_lease_nor_keeps_a_dead_one() {
    let Some(env) = Env::postgres() else { return };
    if !have("faketime") {
        return;
    }
    env.json(&["new", "held"]);
    env.json(&["new", "short"]);
    let held = env.json(&["--as", "ana", "claim", "1", "--ttl", "10m"]);
    // Five hours ahead: to this client ana's lease looks long dead, but the server decides.
    let ahead = skewed(&env, "+5h", &["--as", "bob", "claim", "1"]);
    assert_eq!(ahead.status.code(), Some(3), "{}", text(&ahead.stderr));
    let next = skewed(&env, "+5h", &["--json", "--as", "bob", "claim", "--next"]);
    assert_eq!(json(&next)["num"], 2, "claim --next skipped the live lease");
    // Its own lease is stamped by the server's clock, not five hours ahead.
    let real_now = held["claim"]["acquired_at"].as_str().unwrap().to_string();
    let bob = json(&next);
    let expires =
        tracker::clock::parse_rfc3339(bob["claim"]["expires_at"].as_str().unwrap()).unwrap();
    let acquired = tracker::clock::parse_rfc3339(&real_now).unwrap();
    assert!(
        (expires - acquired) < 30 * 60_000,
        "a skewed client's lease ran on its own clock: {bob}"
    );
    // Five hours behind: a lease that has ended is not kept alive by this client's clock.
    env.json(&["new", "brief"]);
    env.json(&["--as", "cy", "claim", "3", "--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    let behind = skewed(&env, "-5h", &["--json", "--as", "dee", "claim", "3"]);
    assert_eq!(json(&behind)["claim"]["holder"], "dee");
    assert_eq!(env.code(&["verify"]).0, 0);
}
