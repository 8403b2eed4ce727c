//! Agents and scripts as first-class users: failures as data with `--json`, and the MCP server
//! driven by a real MCP client that nobody here wrote (the official Python SDK).

use crate::common;

use std::process::{Command, Stdio};

use crate::common::{text, Env};
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
            common::tracker()
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

/// Whether the official MCP Python SDK is installed (`pip install mcp`; `.ci/run` installs it).
fn python_sdk() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import mcp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must drive `tracker mcp` with the MCP Python SDK (pip install mcp)"
        );
        eprintln!("SKIPPED: the MCP Python SDK is not installed (pip install mcp)");
    }
    ok
}

fn client_script() -> String {
    format!("{}/tests/mcp/client.py", env!("CARGO_MANIFEST_DIR"))
}

/// The client's lines, by step.
fn steps(out: &std::process::Output) -> std::collections::BTreeMap<String, Value> {
    assert!(
        out.status.success(),
        "client failed: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["step"].as_str().unwrap().to_string(), v))
        .collect()
}

/// An agent works the usual loop through `tracker mcp`, driven by the official Python SDK: every
/// tool is listed with a description and schemas, results are the `--json` shapes, failures are
/// tool errors carrying the error object, and CLI users see the same tracker.
#[test]
fn an_agent_works_through_tracker_mcp_with_the_official_python_sdk() {
    if !python_sdk() {
        return;
    }
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        let out = common::command("python3")
            .arg(client_script())
            .arg(common::bin())
            .arg(&env.db)
            .arg("work")
            .env("TRACKER_TTL", "7m")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let s = steps(&out);
        assert_eq!(s["init"]["server"], "tracker", "the server names itself");
        let names: Vec<&str> = s["tools"]["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "claim",
                "claim_next",
                "comment",
                "dep_add",
                "dep_rm",
                "done",
                "list",
                "log",
                "new",
                "plan",
                "release",
                "renew",
                "show",
                "status",
                "update"
            ]
        );
        for (name, schema) in s["tools"]["schemas"].as_object().unwrap() {
            assert!(
                schema["description"].as_str().is_some_and(|d| d.len() > 20),
                "{name}"
            );
            assert_eq!(schema["input"]["type"], "object", "{name}");
            assert_eq!(schema["output"]["type"], "object", "{name}");
        }
        let ok = |step: &str| {
            assert_eq!(s[step]["is_error"], false, "{step}: {}", s[step]);
            s[step]["structured"].clone()
        };
        let err = |step: &str, kind: &str, code: i64| {
            assert_eq!(s[step]["is_error"], true, "{step}: {}", s[step]);
            let e = &s[step]["structured"]["error"];
            assert_eq!(
                (e["kind"].as_str(), e["code"].as_i64()),
                (Some(kind), Some(code)),
                "{step}"
            );
        };
        assert_eq!(ok("new")["title"], "from an agent");
        let claimed = ok("claim_next");
        assert_eq!(claimed["num"], 2, "the best ready item (priority 0)");
        let holder = claimed["claim"]["holder"].as_str().unwrap().to_string();
        assert_eq!(holder, "mcp", "the client's name, the same after a restart");
        assert!(
            claimed["claim"]["pid"].as_u64().is_some(),
            "tied to the server process"
        );
        assert!(ok("renew")["claim"]["token"] == claimed["claim"]["token"]);
        err("wrong_token", "conflict", 3);
        assert_eq!(ok("done")["status"], "done");
        err("missing", "not_found", 4);
        assert_eq!(ok("list")["items"].as_array().unwrap().len(), 2);
        assert!(ok("log")["ops"].as_array().unwrap().len() >= 4);
        assert_eq!(ok("status")["done"], 1);
        assert_eq!(ok("dep_add")["blocked_by"], serde_json::json!([2]));
        err("dep_cycle", "conflict", 3);
        ok("dep_rm");
        err("update", "conflict", 3);
        // A claim without ttl lasts $TRACKER_TTL, as on the command line.
        let lease = &ok("claim_default_ttl")["claim"];
        let at = |f: &str| tracker::clock::parse_rfc3339(lease[f].as_str().unwrap()).unwrap();
        assert_eq!(
            at("expires_at") - at("acquired_at"),
            7 * 60 * 1000,
            "{lease}"
        );
        // Arguments that do not fit a tool's schema are tool errors like any other failure.
        err("bad_args_missing", "invalid", 2);
        err("bad_args_type", "invalid", 2);
        // A misspelt argument is refused, not ignored (claim_next would otherwise claim any item).
        err("bad_args_unknown", "invalid", 2);
        // Beside the agent, the command line sees the same items and the agent's ops.
        let log = common::json_lines(&env.run(&["--json", "log", "2"]).stdout);
        assert!(log.iter().any(|op| op["actor"] == holder.as_str()));
        assert_eq!(env.json(&["show", "2"])["status"], "done");
        assert_eq!(env.code(&["verify"]).0, 0);
    }
}

/// Two agents, each through its own `tracker mcp`, and a command-line worker drain one queue
/// together: every item is done exactly once, and the log verifies.
#[test]
fn two_agents_and_a_cli_worker_drain_a_queue_together() {
    if !python_sdk() {
        return;
    }
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        let n = 40;
        for i in 1..=n {
            env.json(&["new", &format!("job {i}")]);
        }
        let mut agents: Vec<_> = (0..2)
            .map(|_| {
                common::command("python3")
                    .arg(client_script())
                    .arg(common::bin())
                    .arg(&env.db)
                    .arg("drain")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // The command-line worker joins once the agents are at work (Python starts slowly).
        let started = std::time::Instant::now();
        while env.json(&["status"])["metrics"]["overall"]["done"] == 0 {
            assert!(started.elapsed().as_secs() < 60, "the agents never started");
            if agents.iter_mut().any(|a| a.try_wait().unwrap().is_some()) {
                let out = agents.remove(0).wait_with_output().unwrap();
                panic!(
                    "an agent ended early: {}\n{}",
                    text(&out.stdout),
                    text(&out.stderr)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut by_cli = Vec::new();
        loop {
            let out = env.run(&["--json", "--as", "cli-worker", "claim", "--next"]);
            match out.status.code() {
                Some(0) => {}
                Some(4) => break,
                other => panic!("claim --next exited {other:?}: {}", text(&out.stderr)),
            }
            let item: Value = serde_json::from_slice(&out.stdout).unwrap();
            let (num, token) = (item["num"].to_string(), item["claim"]["token"].to_string());
            let done = env.run(&["--as", "cli-worker", "done", &num, "--token", &token]);
            assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
            by_cli.push(item["num"].as_u64().unwrap());
        }
        let mut all = by_cli.clone();
        for agent in agents {
            let s = steps(&agent.wait_with_output().unwrap());
            assert_eq!(s["stopped"]["structured"]["error"]["kind"], "not_found");
            all.extend(
                s["drained"]["nums"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap()),
            );
        }
        all.sort_unstable();
        assert_eq!(
            all,
            (1..=n).collect::<Vec<_>>(),
            "every item done exactly once"
        );
        let log = common::json_lines(&env.run(&["--json", "log"]).stdout);
        let dones = log.iter().filter(|op| op["op"] == "done").count();
        assert_eq!(dones, usize::try_from(n).unwrap(), "one done op per item");
        assert_eq!(env.code(&["verify"]).0, 0);
        eprintln!("cli worker did {} of {n}", by_cli.len());
    }
}

/// A lease taken through the server is tied to it: when the agent's server dies, the item is
/// free at once for others; while it lives, nobody else gets it.
#[test]
fn an_agent_that_dies_frees_its_items_at_once() {
    if !python_sdk() {
        return;
    }
    let env = Env::new();
    env.json(&["new", "held by an agent"]);
    let mut agent = common::command("python3")
        .arg(client_script())
        .arg(common::bin())
        .arg(&env.db)
        .arg("hold")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the claim line.
    let mut reader = std::io::BufReader::new(agent.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0,
            "client ended"
        );
        if line.contains("\"claim\"") && line.contains("\"step\": \"claim\"") {
            break;
        }
    }
    let claim: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(claim["is_error"], false, "{claim}");
    let server_pid = claim["structured"]["claim"]["pid"].as_u64().unwrap();
    // Alive: nobody else gets it.
    assert_eq!(env.code(&["--as", "other", "claim", "--next"]).0, 4);
    // The agent's server dies (its client is killed, and the server with it).
    unsafe { libc::kill(libc::pid_t::try_from(server_pid).unwrap(), libc::SIGKILL) };
    let _ = agent.kill();
    let _ = agent.wait();
    let mut taken = None;
    for _ in 0..100 {
        let out = env.run(&["--json", "--as", "other", "claim", "--next"]);
        if out.status.code() == Some(0) {
            taken = Some(serde_json::from_slice::<Value>(&out.stdout).unwrap());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let taken = taken.expect("the dead agent's item was not freed");
    assert_eq!(taken["claim"]["holder"], "other");
}

/// `status` reports what coordination cost, from the ops log (and running totals for what leaves
/// no op), overall and per holder, over the whole log or a window.
#[test]
fn status_counts_lease_events_refusals_and_time_to_claim_and_to_done() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        for i in 1..=3 {
            env.json(&["new", &format!("t{i}")]);
        }
        let run = |args: &[&str]| env.run(args).status.code();
        assert_eq!(run(&["--as", "ana", "claim", "1"]), Some(0));
        assert_eq!(run(&["--as", "ana", "renew", "1"]), Some(0));
        assert_eq!(run(&["--as", "bob", "claim", "1"]), Some(3), "refused");
        assert_eq!(
            run(&["--as", "bob", "claim", "1", "--wait", "300ms"]),
            Some(5)
        );
        assert_eq!(run(&["--as", "ana", "done", "1"]), Some(0));
        assert_eq!(run(&["--as", "bob", "claim", "2", "--ttl", "1s"]), Some(0));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(
            run(&["--as", "cy", "claim", "2"]),
            Some(0),
            "after bob's expired"
        );
        assert_eq!(run(&["--as", "cy", "claim", "3"]), Some(0));
        assert_eq!(run(&["--as", "dee", "claim", "3", "--force"]), Some(0));
        assert_eq!(run(&["--as", "dee", "release", "3"]), Some(0));
        // Finishing through update counts as done too.
        assert_eq!(
            run(&["--as", "cy", "update", "2", "--status", "done"]),
            Some(0)
        );
        let m = env.json(&["status"])["metrics"].clone();
        assert_eq!(
            m["overall"],
            serde_json::json!({"acquisitions": 5, "renewals": 1, "releases": 1, "done": 2,
                "stale_steals": 0, "forced_evictions": 1, "expirations": 1})
        );
        assert_eq!(m["refused_claims_total"], 2);
        assert!(m["wait_retries_total"].as_u64().unwrap() >= 1);
        assert_eq!(m["by_holder"]["dee"]["forced_evictions"], 1);
        assert_eq!(m["by_holder"]["cy"]["expirations"], 1);
        assert_eq!(m["new_to_first_claim"]["count"], 3);
        assert_eq!(m["claim_to_done"]["count"], 2);
        assert!(m["claim_to_done"]["p95_ms"].as_i64().is_some());
        // A window that starts after all of it counts nothing from the log.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let recent = env.json(&["status", "--since", "1s"])["metrics"].clone();
        assert_eq!(recent["overall"]["acquisitions"], 0);
        let human = text(&env.run(&["status"]).stdout);
        assert!(human.contains("coordination over the whole log"), "{human}");
    }
}

/// Calls through the official Python SDK run side by side: a renew and a ping made while a claim
/// waits are answered while it still waits, and a cancelled wait claims nothing later.
#[test]
fn a_waiting_claim_through_the_python_sdk_stalls_no_other_call_and_cancels_cleanly() {
    if !python_sdk() {
        return;
    }
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "held by the agent"]);
        let out = common::command("python3")
            .arg(client_script())
            .arg(common::bin())
            .arg(&env.db)
            .arg("concurrent")
            .env("TRACKER_AS", "agent")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let s = steps(&out);
        assert_eq!(s["held"]["is_error"], false, "{}", s["held"]);
        assert_eq!(
            s["renew_beside_wait"]["is_error"], false,
            "{}",
            s["renew_beside_wait"]
        );
        assert_eq!(
            s["renew_beside_wait"]["pending"], true,
            "the renew waited for the claim"
        );
        assert_eq!(
            s["ping_beside_wait"]["pending"], true,
            "the ping waited for the claim"
        );
        assert_eq!(s["new"]["is_error"], false);
        assert!(
            s["after_cancel"]["structured"]["claim"].is_null(),
            "a cancelled wait claimed the new item: {}",
            s["after_cancel"]
        );
    }
}

/// Issue 22 through the official Python SDK: a planner writes a tree of two epics with their
/// children at once (a repeat of the keyed plan returns the same tree and makes nothing), leaves
/// a comment, and two agents drain it: every item is done exactly once, and each epic only after
/// all of its children; the item waiting for both epics last of all.
#[test]
fn two_agents_drain_a_planned_tree_through_the_python_sdk_epics_after_their_children() {
    if !python_sdk() {
        return;
    }
    for env in Env::each() {
        let b = env.backend;
        let run = |scenario: &str, name: &str| {
            common::command("python3")
                .arg(client_script())
                .arg(common::bin())
                .arg(&env.db)
                .arg(scenario)
                .env("TRACKER_AS", name)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let s = steps(&run("plan", "planner").wait_with_output().unwrap());
        assert!(
            !s["plan"]["is_error"].as_bool().unwrap(),
            "{b}: {}",
            s["plan"]
        );
        let created = s["plan"]["structured"]["created"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(created.len(), 8, "{b}");
        assert_eq!(
            s["plan_again"]["structured"], s["plan"]["structured"],
            "{b}"
        );
        assert_eq!(
            s["show"]["structured"]["comments"][0]["text"],
            "use the v2 schema"
        );
        assert_eq!(
            s["show"]["structured"]["version"], 1,
            "{b}: a comment keeps the version"
        );
        let num = |key: &str| {
            created.iter().find(|c| c["key"] == key).unwrap()["num"]
                .as_u64()
                .unwrap()
        };
        let agents: Vec<_> = ["agent-1", "agent-2"]
            .iter()
            .map(|name| run("drain_tree", name))
            .collect();
        let mut done_by_agents = Vec::new();
        for a in agents {
            let s = steps(&a.wait_with_output().unwrap());
            assert!(
                !s.contains_key("done_failed"),
                "{b}: {:?}",
                s.get("done_failed")
            );
            done_by_agents.extend(
                s["drained"]["done"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_u64().unwrap()),
            );
        }
        done_by_agents.sort_unstable();
        let mut all: Vec<u64> = created.iter().map(|c| c["num"].as_u64().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(done_by_agents, all, "{b}: every item done exactly once");
        // The order the log saw them done in.
        let log = common::json_lines(&env.run(&["--json", "log"]).stdout);
        let done_at = |n: u64| {
            log.iter()
                .position(|op| op["op"] == "done" && op["num"] == n)
                .unwrap_or_else(|| panic!("{b}: #{n} has no done op"))
        };
        for (epic, children) in [("e1", ["a", "b", "c"].as_slice()), ("e2", &["d", "f"])] {
            for c in children {
                assert!(
                    done_at(num(c)) < done_at(num(epic)),
                    "{b}: {epic} was done before its child {c}"
                );
            }
        }
        assert!(done_at(num("e1")) < done_at(num("g")) && done_at(num("e2")) < done_at(num("g")));
        let shown = env.json(&["show", &num("e1").to_string()]);
        assert_eq!(
            shown["progress"],
            serde_json::json!({"done": 3, "cancelled": 0, "total": 3}),
            "{b}"
        );
        assert_eq!(shown["close_reason"], "finished", "{b}");
        assert_eq!(env.code(&["verify"]).0, 0, "{b}");
    }
}
