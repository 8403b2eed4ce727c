//! Issue 19: one worker per item, whatever the name or the transport. Two processes are two
//! workers: a lease tied to a living process (`run`, `tracker mcp`, `claim --pid`) answers only
//! to that process, its descendants, or its token; whatever `list --ready` shows, every claim
//! takes.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{text, Env};
use serde_json::{json, Value};

/// A process that lives until killed (or dropped): the "other process" a lease is tied to.
struct Sleeper(Child);

impl Sleeper {
    fn id(&self) -> u32 {
        self.0.id()
    }

    /// Ends it and reaps it, so its pid is provably gone.
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()?;
        self.0.wait().map(|_| ())
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper() -> Sleeper {
    Sleeper(
        Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn kinds_of_ops(env: &Env, item: &str) -> Vec<String> {
    let out = env.run(&["--json", "log", item]);
    common::json_lines(&out.stdout)
        .iter()
        .map(|op| op["op"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn two_runs_under_one_name_never_both_start_their_command() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "one job"]);
        let started = env.path("started");
        let script = format!("echo $$ >> {}; sleep 2", started.display());
        let runs: Vec<Child> = (0..4)
            .map(|_| {
                env.cmd(&["run", "1", "--", "sh", "-c", &script])
                    .env("TRACKER_AS", "me")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let codes: Vec<i32> = runs
            .into_iter()
            .map(|r| r.wait_with_output().unwrap().status.code().unwrap())
            .collect();
        let ran = std::fs::read_to_string(&started).unwrap_or_default();
        assert_eq!(
            ran.lines().count(),
            1,
            "commands started: {ran:?}, exits {codes:?}"
        );
        assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
        assert_eq!(codes.iter().filter(|c| **c == 3).count(), 3, "{codes:?}");
        let kinds = kinds_of_ops(&env, "1");
        assert_eq!(
            kinds.iter().filter(|k| *k == "claim").count(),
            1,
            "{kinds:?}"
        );
        assert_eq!(kinds.last().map(String::as_str), Some("done"), "{kinds:?}");
    }
}

#[test]
fn a_run_refuses_an_item_another_process_holds_under_the_same_name() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "held"]);
        let mut holder = sleeper();
        let pid = holder.id().to_string();
        env.json(&["--as", "me", "claim", "1", "--pid", &pid]);
        let marker = env.path("ran");
        let script = format!("touch {}", marker.display());
        let (code, err) = env.code(&["--as", "me", "run", "1", "--", "sh", "-c", &script]);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("two processes are two workers"), "{err}");
        assert!(
            !marker.exists(),
            "the command ran on an item another process holds"
        );
        holder.kill().unwrap();
    }
}

#[test]
fn a_lease_tied_to_a_living_process_answers_only_to_it_its_descendants_or_its_token() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "guarded"]);
        env.json(&["new", "blocker"]);
        let mut holder = sleeper();
        let pid = holder.id().to_string();
        let v = env.json(&["--as", "me", "claim", "1", "--pid", &pid, "--ttl", "1h"]);
        let token = v["claim"]["token"].as_u64().unwrap().to_string();
        let refused: [&[&str]; 7] = [
            &["claim", "1"],
            &["renew", "1"],
            &["release", "1"],
            &["done", "1"],
            &["update", "1", "--status", "cancelled"],
            &["dep", "add", "1", "2"],
            &["claim", "1", "--if-version", "2"],
        ];
        for args in refused {
            let mut full = vec!["--as", "me"];
            full.extend_from_slice(args);
            let (code, err) = env.code(&full);
            assert_eq!(code, 3, "{args:?} from another process was accepted: {err}");
        }
        // A change the lease does not guard is still anyone's.
        env.json(&["--as", "me", "update", "1", "--title", "renamed"]);
        // The token proves the worker, from any process; the lease stays tied to its process.
        let v = env.json(&["--as", "me", "renew", "1", "--token", &token]);
        assert_eq!(v["claim"]["pid"].as_u64().unwrap().to_string(), pid);
        let v = env.json(&[
            "--as",
            "me",
            "claim",
            "1",
            "--token",
            &token,
            "--pid",
            &std::process::id().to_string(),
        ]);
        assert_eq!(
            v["claim"]["pid"].as_u64().unwrap().to_string(),
            pid,
            "a renewal moved the tie"
        );
        assert_eq!(v["claim"]["token"].as_u64().unwrap().to_string(), token);
        // --force still evicts, visibly.
        let v = env.json(&["--as", "me", "claim", "1", "--force"]);
        assert_ne!(v["claim"]["token"].as_u64().unwrap().to_string(), token);
        assert_eq!(
            kinds_of_ops(&env, "1").last().map(String::as_str),
            Some("evict")
        );
        holder.kill().unwrap();
    }
}

#[test]
fn a_run_under_a_shell_that_holds_the_item_becomes_its_only_worker() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "shared by a shell"]);
        let (a, b) = (env.path("a"), env.path("b"));
        // The shell ties the item to itself, then starts one run in the background and a second
        // one beside it; and it exits while the first run's command still works.
        let script = format!(
            "t() {{ {bin} --db '{db}' --as me \"$@\"; }}; t claim 1 --pid $$ >/dev/null || exit 9; \
             t run 1 -- sh -c 'touch {a}; sleep 3' >/dev/null 2>&1 & sleep 1; \
             t run 1 -- touch {b} >/dev/null 2>&1; echo $? > {b}.code",
            bin = common::bin(),
            db = env.db.display(),
            a = a.display(),
            b = b.display()
        );
        let out = common::command("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let code = std::fs::read_to_string(env.path("b.code")).unwrap();
        assert_eq!(code.trim(), "3", "the second run was not refused");
        assert!(!b.exists(), "a second run started its command on the item");
        assert!(a.exists());
        // The shell is gone, the first run still works: the item is not ready.
        let (code, err) = env.code(&["--as", "alice", "claim", "1"]);
        assert_eq!(code, 3, "taken while the first run still works: {err}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while env.json(&["show", "1"])["status"] != "done" {
            assert!(Instant::now() < deadline, "the first run never finished");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A live holder whose process /proc hides from us (another user's, under `hidepid`) is not
/// taken for gone.
#[test]
fn a_holder_hidden_by_hidepid_is_still_alive() {
    let env = Env::new();
    env.json(&["new", "held by another user"]);
    let mut holder = sleeper();
    let pid = holder.id().to_string();
    env.json(&["--as", "alice", "claim", "1", "--pid", &pid, "--ttl", "1h"]);
    // Let the unprivileged user write the file.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&env.db, std::fs::Permissions::from_mode(0o666)).unwrap();
    for hidepid in ["1", "2"] {
        let script = format!(
            "mount -t proc -o hidepid={hidepid} proc /proc || exit 99; exec setpriv --reuid=65534 \
             --regid=65534 --clear-groups {bin} --db '{db}' --as bob claim 1",
            bin = common::bin(),
            db = env.db.display()
        );
        let out = common::command("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if out.status.code() == Some(99) || out.status.code().is_none() {
            eprintln!(
                "SKIPPED: cannot mount /proc with hidepid here: {}",
                text(&out.stderr)
            );
            return;
        }
        assert_eq!(
            out.status.code(),
            Some(3),
            "hidepid={hidepid}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(env.json(&["show", "1"])["claim"]["holder"], "alice");
    holder.kill().unwrap();
}

#[test]
fn the_process_a_lease_is_tied_to_and_its_children_act_on_it_by_name() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "mine"]);
        let script = format!(
            "set -e; t() {{ {bin} --db '{db}' --as me \"$@\" >/dev/null; }}; \
             t claim 1 --pid $$; t renew 1; t claim 1; (t renew 1); t done 1",
            bin = common::bin(),
            db = env.db.display()
        );
        let out = common::command("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(env.json(&["show", "1"])["status"], "done");
    }
}

#[test]
fn an_item_whose_holder_is_gone_is_claimable_by_every_command_that_claims() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        for i in 0..4 {
            env.json(&["new", &format!("abandoned {i}")]);
            let mut gone = sleeper();
            let pid = gone.id().to_string();
            env.json(&[
                "--as",
                "ghost",
                "claim",
                &(i + 1).to_string(),
                "--pid",
                &pid,
                "--ttl",
                "1h",
            ]);
            gone.kill().unwrap();
        }
        let ready = env.json(&["list", "--ready"]);
        assert_eq!(ready.as_array().unwrap().len(), 4, "{ready}");
        let refused_before = env.json(&["status"])["metrics"]["refused_claims_total"].clone();
        // A plain claim, a waiting claim (at once, not after its wait), run, and --steal-stale.
        env.json(&["--as", "a", "claim", "1"]);
        let started = Instant::now();
        env.json(&["--as", "b", "claim", "2", "--wait", "30s"]);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "claim --wait waited for a ready item"
        );
        let (code, err) = env.code(&["--as", "c", "run", "3", "--", "true"]);
        assert_eq!(code, 0, "{err}");
        env.json(&["--as", "d", "claim", "4", "--steal-stale"]);
        for n in ["1", "2", "3", "4"] {
            let kinds = kinds_of_ops(&env, n);
            assert!(kinds.contains(&"steal".to_string()), "#{n}: {kinds:?}");
        }
        let status = env.json(&["status"]);
        assert_eq!(
            status["metrics"]["refused_claims_total"], refused_before,
            "{status}"
        );
        assert_eq!(status["metrics"]["overall"]["stale_steals"], 4, "{status}");
    }
}

#[test]
fn claim_next_refuses_what_it_cannot_honour() {
    let env = Env::new();
    env.json(&["new", "x"]);
    for extra in [
        &["--if-version", "1"][..],
        &["--token", "1"],
        &["--force"],
        &["--steal-stale"],
    ] {
        let mut args = vec!["--as", "me", "claim", "--next"];
        args.extend_from_slice(extra);
        let (code, err) = env.code(&args);
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains(extra[0]), "{extra:?}: {err}");
    }
    assert!(
        env.json(&["show", "1"])["claim"].is_null(),
        "a refused claim --next claimed"
    );
}

#[test]
fn done_force_over_another_holders_live_lease_counts_as_a_forced_eviction() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "x"]);
        env.json(&["new", "y"]);
        env.json(&["--as", "ana", "claim", "1"]);
        env.json(&["--as", "bob", "done", "1", "--force"]);
        // The holder's own done is not an eviction.
        env.json(&["--as", "ana", "claim", "2"]);
        env.json(&["--as", "ana", "done", "2"]);
        let m = &env.json(&["status"])["metrics"]["overall"];
        assert_eq!(m["forced_evictions"], 1, "{m}");
        assert_eq!(m["done"], 2, "{m}");
    }
}

#[test]
fn a_keyed_claim_repeated_by_another_process_waits_for_the_first_to_be_gone() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "x"]);
        let mut first = sleeper();
        let first_pid = first.id().to_string();
        let v = env.json(&[
            "--as",
            "agent",
            "claim",
            "1",
            "--pid",
            &first_pid,
            "--idempotency-key",
            "k1",
        ]);
        let token = v["claim"]["token"].as_u64().unwrap();
        let mut second = sleeper();
        let second_pid = second.id().to_string();
        let retry = [
            "--as",
            "agent",
            "claim",
            "1",
            "--pid",
            &second_pid,
            "--idempotency-key",
            "k1",
        ];
        let (code, err) = env.code(&retry);
        assert_eq!(
            code, 3,
            "a repeat handed another living process's lease over: {err}"
        );
        first.kill().unwrap();
        let v = env.json(&retry);
        assert!(v["claim"]["token"].as_u64().unwrap() > token, "{v}");
        assert_eq!(v["claim"]["pid"].as_u64().unwrap().to_string(), second_pid);
        // The second process dies too, and someone else takes the item: the repeat does not
        // pass the dead lease off as held (it claims afresh, and is refused).
        second.kill().unwrap();
        env.json(&["--as", "alice", "claim", "1"]);
        let (code, err) = env.code(&["--as", "agent", "claim", "1", "--idempotency-key", "k1"]);
        assert_eq!(
            code, 3,
            "a repeat handed back a lease that has ended: {err}"
        );
    }
}

/// A `tracker mcp` server driven with raw JSON-RPC lines.
struct Mcp {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    next_id: u64,
}

impl Mcp {
    fn start(env: &Env, name: &str) -> Mcp {
        let mut child = env
            .cmd(&["--as", name, "mcp"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut m = Mcp {
            child,
            out,
            next_id: 1,
        };
        m.request(
            "initialize",
            json!({"protocolVersion": "2025-03-26", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}),
        );
        m.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        m
    }

    fn send(&mut self, v: &Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{v}").unwrap();
        stdin.flush().unwrap();
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let mut line = String::new();
            assert!(
                self.out.read_line(&mut line).unwrap() > 0,
                "the server closed its output"
            );
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == json!(id) {
                return v;
            }
        }
    }

    /// A tool call's structured result, and whether it is a tool error.
    fn call(&mut self, tool: &str, args: Value) -> (bool, Value) {
        let r = self.request("tools/call", json!({"name": tool, "arguments": args}));
        let result = &r["result"];
        (
            result["isError"] == json!(true),
            result["structuredContent"].clone(),
        )
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

#[test]
fn two_mcp_servers_under_one_name_are_two_workers() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "x"]);
        let mut a = Mcp::start(&env, "agent");
        let mut b = Mcp::start(&env, "agent");
        let (err, got) = a.call("claim", json!({"item": "1"}));
        assert!(!err, "{got}");
        let token = got["claim"]["token"].clone();
        let (err, got) = b.call("claim", json!({"item": "1"}));
        assert!(err, "the second server took the first one's item: {got}");
        assert_eq!(got["error"]["code"], 3, "{got}");
        let (err, got) = b.call("renew", json!({"item": "1"}));
        assert!(err && got["error"]["code"] == 3, "{got}");
        let (err, got) = b.call("done", json!({"item": "1"}));
        assert!(err && got["error"]["code"] == 3, "{got}");
        // The first server's lease is still its own, tied to it.
        let (err, got) = a.call("renew", json!({"item": "1"}));
        assert!(!err, "{got}");
        assert_eq!(got["claim"]["token"], token);
        a.kill();
        // Its agent is gone: the item is ready, and the other server takes it over.
        let (err, got) = b.call("claim", json!({"item": "1"}));
        assert!(!err, "{got}");
        assert_ne!(got["claim"]["token"], token);
        b.kill();
    }
}
