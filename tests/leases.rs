//! Issue 3: leases that hold, across real processes.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{json_lines, text, Env};
use tracker::{Actor, ClaimOptions, FakeClock, Guard, ItemRef, NewItem, Tracker};

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// The pid a test command wrote to `file`, once it is there in full.
fn pid_in(file: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

#[test]
fn eight_workers_drain_three_hundred_items_each_done_exactly_once() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        // 300 processes at once queue for the write lock: on a loaded machine the last of them
        // waits longer than the default lock timeout, and the making is not what is tested.
        let creators: Vec<_> = (0..300)
            .map(|i| env.spawn(&["--lock-timeout", "5m", "new", &format!("job {i}")]))
            .collect();
        for c in creators {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        let env = Arc::new(env);
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let env = Arc::clone(&env);
                std::thread::spawn(move || {
                    let me = format!("worker-{w}");
                    let mut finished = Vec::new();
                    loop {
                        let out =
                            env.run(&["--json", "--as", &me, "claim", "--next", "--ttl", "5m"]);
                        match out.status.code() {
                            Some(0) => {}
                            Some(4) => break,
                            other => panic!("claim --next exited {other:?}: {}", text(&out.stderr)),
                        }
                        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                        let num = v["num"].as_u64().unwrap().to_string();
                        let token = v["claim"]["token"].as_u64().unwrap().to_string();
                        let done = env.run(&["--as", &me, "done", &num, "--token", &token]);
                        assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
                        finished.push(num.parse::<u64>().unwrap());
                    }
                    (me, finished)
                })
            })
            .collect();
        let mut by_item: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for w in workers {
            let (me, finished) = w.join().unwrap();
            for n in finished {
                by_item.entry(n).or_default().push(me.clone());
            }
        }
        assert_eq!(by_item.len(), 300, "every item finished");
        assert!(
            by_item.values().all(|who| who.len() == 1),
            "an item was finished twice"
        );
        // The log agrees: one done op per item, by the worker that claimed it.
        let log = env.run(&["--json", "log"]);
        let ops = json_lines(&log.stdout);
        let mut claimed_by: HashMap<u64, String> = HashMap::new();
        let mut done_count: HashMap<u64, u32> = HashMap::new();
        for op in &ops {
            let num = op["num"].as_u64().unwrap();
            match op["op"].as_str().unwrap() {
                "claim" => {
                    claimed_by.insert(num, op["actor"].as_str().unwrap().to_string());
                }
                "done" => {
                    *done_count.entry(num).or_default() += 1;
                    assert_eq!(
                        claimed_by.get(&num).map(String::as_str),
                        op["actor"].as_str()
                    );
                }
                _ => {}
            }
        }
        assert!(done_count.values().all(|&c| c == 1));
        assert_eq!(done_count.len(), 300);
        assert_eq!(env.code(&["verify"]).0, 0);
    }
}

#[test]
fn a_run_killed_with_sigkill_frees_its_item_at_once() {
    let env = Env::new();
    env.json(&["new", "long job"]);
    let pidfile = env.path("child.pid");
    let script = format!("echo $$ > {}; exec sleep 60", pidfile.display());
    let mut run = env.spawn(&[
        "--as", "runner", "run", "1", "--ttl", "10m", "--", "sh", "-c", &script,
    ]);
    // Killed only once its command runs (the pid file is written), so there is an orphan to check.
    let child_pid = || pid_in(&pidfile);
    wait_until(
        "the run's command to start",
        Duration::from_secs(10),
        || child_pid().is_some(),
    );
    // And only once `run` has tied its lease to the command's group (a renewal, logged after
    // the command started): killed before that, the lease names a group not yet known, which
    // counts as alive until the first short lease runs out (a race this test lost under load).
    wait_until(
        "the lease to be tied to the command",
        Duration::from_secs(10),
        || {
            json_lines(&env.run(&["--json", "log"]).stdout)
                .last()
                .is_some_and(|op| op["op"] == "renew")
        },
    );
    assert_eq!(env.json(&["show", "1"])["claim"]["holder"], "runner");
    run.kill().unwrap();
    run.wait().unwrap();
    // The lease has ten minutes left, but its process is gone, and its command ends on the
    // SIGTERM the kernel sends it: the item is ready as soon as the command has exited.
    let v = env.json(&["--as", "rescuer", "claim", "--next", "--wait", "5s"]);
    assert_eq!(v["num"], 1);
    assert_eq!(v["claim"]["holder"], "rescuer");
    let ops = json_lines(&env.run(&["--json", "log"]).stdout);
    assert_eq!(ops.last().unwrap()["op"], "steal");
    // The killed run's command must not keep working on an item someone else now holds.
    let child = child_pid().unwrap();
    // SAFETY: signal 0 only checks whether the process exists.
    wait_until(
        "the orphaned command to stop",
        Duration::from_secs(5),
        || unsafe { libc::kill(child, 0) != 0 },
    );
}

#[test]
fn a_run_whose_lease_is_forced_away_stops_its_child_and_exits_3() {
    let env = Env::new();
    env.json(&["new", "contested"]);
    let pidfile = env.path("child.pid");
    let script = format!("echo $$ > {}; exec sleep 60", pidfile.display());
    // TTL 3s: the run renews every second.
    let run = env.spawn(&[
        "--as", "runner", "run", "1", "--ttl", "3s", "--", "sh", "-c", &script,
    ]);
    let child_pid = || pid_in(&pidfile);
    wait_until("the child to start", Duration::from_secs(10), || {
        child_pid().is_some()
    });
    let forced = env.json(&["--as", "boss", "claim", "1", "--force"]);
    assert_eq!(forced["claim"]["holder"], "boss");
    let started = Instant::now();
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("lost"), "{}", text(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(20));
    let child = child_pid().unwrap();
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(child, 0) } == 0;
    assert!(!alive, "the child was left running");
    let ops = json_lines(&env.run(&["--json", "log"]).stdout);
    assert!(ops
        .iter()
        .any(|o| o["op"] == "evict" && o["actor"] == "boss"));
    assert_eq!(env.json(&["show", "1"])["claim"]["holder"], "boss");
}

#[test]
fn run_marks_done_on_success_and_releases_on_failure_passing_the_exit_code() {
    let env = Env::new();
    env.json(&["new", "ok job"]);
    env.json(&["new", "failing job"]);
    let out = env.run(&[
        "run",
        "1",
        "--",
        "sh",
        "-c",
        "test -n \"$TRACKER_TOKEN\" && test \"$TRACKER_NUM\" = 1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(env.json(&["show", "1"])["status"], "done");
    let out = env.run(&["run", "2", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let v = env.json(&["show", "2"]);
    assert_eq!(v["status"], "open");
    assert!(v["claim"].is_null());
}

#[test]
fn claim_wait_gives_up_with_exit_5_and_succeeds_once_freed() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "x"]);
        env.json(&["--as", "a", "claim", "1"]);
        let (code, err) = env.code(&["--as", "b", "claim", "1", "--wait", "300ms"]);
        assert_eq!(code, 5, "{err}");
        let waiter = env.spawn(&["--json", "--as", "b", "claim", "1", "--wait", "20s"]);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(env.code(&["--as", "a", "release", "1"]).0, 0);
        let out = waiter.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
}

#[test]
fn conflict_message_names_the_holder_and_lease_times() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "x"]);
        env.json(&[
            "--as",
            "ana",
            "claim",
            "1",
            "--pid",
            &std::process::id().to_string(),
        ]);
        let (code, err) = env.code(&["--as", "bob", "claim", "1"]);
        assert_eq!(code, 3);
        for needle in ["ana", "host", "pid", "ago", "renewed", "expires in"] {
            assert!(err.contains(needle), "{needle:?} missing from {err:?}");
        }
    }
}

#[test]
fn unnamed_holders_without_a_terminal_cannot_silently_share_a_lease() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "x"]);
        let first = env.json(&["claim", "1"]);
        let token = first["claim"]["token"].as_u64().unwrap().to_string();
        // Same default name, no terminal, no token: could be another agent.
        let (code, err) = env.code(&["claim", "1"]);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("--token"), "{err}");
        // Presenting the token proves it is the same worker: a renewal, same token.
        let again = env.json(&["claim", "1", "--token", &token]);
        assert_eq!(again["claim"]["token"].as_u64().unwrap().to_string(), token);
    }
}

#[test]
fn a_wall_clock_jump_does_not_free_a_lease_whose_monotonic_deadline_is_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(1_800_000_000_000, "boot-1");
    let open = |who: &str| {
        Tracker::open(
            &dir.path().join("t.redb"),
            tracker::Access::ReadWrite,
            Duration::from_secs(5),
        )
        .unwrap()
        .with_clock(Arc::new(clock.clone()))
        .with_actor(Actor::named(who))
    };
    drop(Tracker::init(&dir.path().join("t.redb"), Duration::from_secs(5)).unwrap());
    let ana = open("ana");
    let n = ana
        .new_item(
            NewItem {
                title: "x".into(),
                ..Default::default()
            },
            &[],
            &Guard::default(),
        )
        .unwrap();
    let r = ItemRef::Num(n.item.num);
    let opts = ClaimOptions {
        ttl: Duration::from_secs(600),
        ..Default::default()
    };
    ana.claim(&r, &opts).unwrap();
    clock.step_wall(3_600_000);
    let bob = open("bob");
    assert!(
        bob.claim(&r, &opts).is_err(),
        "an hour's wall-clock jump freed a live lease"
    );
    assert!(bob.get(&r).unwrap().claim.is_some());
    // Time really passing does end it, and a jump back cannot keep it alive.
    clock.step_wall(-7_200_000);
    clock.advance(601_000);
    assert_eq!(bob.claim(&r, &opts).unwrap().claim.unwrap().holder, "bob");
}

#[test]
fn the_default_ttl_is_a_setting_of_the_tracker_and_flags_override_it() {
    let env = common::Env::empty();
    let init = env.run(&["init", "--default-ttl", "2m"]);
    assert_eq!(init.status.code(), Some(0), "{}", text(&init.stderr));
    env.json(&["new", "a"]);
    env.json(&["new", "b"]);
    let lease_secs = |v: &serde_json::Value| {
        let at = |k: &str| tracker::clock::parse_rfc3339(v["claim"][k].as_str().unwrap()).unwrap();
        (at("expires_at") - at("acquired_at")) / 1000
    };
    assert_eq!(lease_secs(&env.json(&["claim", "1"])), 120);
    assert_eq!(lease_secs(&env.json(&["claim", "2", "--ttl", "30s"])), 30);
    assert_eq!(
        env.json(&["config", "default-ttl"])["default_ttl_ms"],
        120_000
    );
    env.json(&["config", "default-ttl", "1h"]);
    env.json(&["new", "c"]);
    assert_eq!(lease_secs(&env.json(&["claim", "3"])), 3600);
    // Settings are not items: no op was logged for them.
    let ops = json_lines(&env.run(&["--json", "log"]).stdout);
    assert!(ops.iter().all(|o| o["op"] != "update"));
    assert_eq!(env.code(&["verify"]).0, 0);
}
