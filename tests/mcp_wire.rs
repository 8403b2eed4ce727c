//! `tracker mcp` spoken to line by line, as raw JSON-RPC: every request gets an answer (malformed
//! ones too), calls run side by side, cancellation and a closed input are honoured, durations and
//! labels are refused as on the command line, and idempotency keys survive a restart.
//! Every read has a deadline, so a missing answer fails the test instead of hanging it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{text, Env};
use serde_json::{json, Value};

/// Longer than any answer takes; reaching it means there was no answer.
const NO_ANSWER: Duration = Duration::from_secs(20);

/// One `tracker mcp` process, handshake done, with its output read by a thread.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    next_id: u64,
}

impl Server {
    /// Starts a server on `env`'s tracker that introduces itself as `client`.
    fn start(env: &Env, client: &str) -> Server {
        let mut child = env
            .cmd(&["mcp"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Server {
            stdin: child.stdin.take(),
            child,
            lines,
            next_id: 100,
        };
        let init = s.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": client, "version": "1"}}),
        );
        let answer = s.answer_to(init);
        assert_eq!(
            answer["result"]["serverInfo"]["name"], "tracker",
            "{answer}"
        );
        s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        s
    }

    fn send_raw(&mut self, line: &[u8]) {
        let w = self.stdin.as_mut().expect("input still open");
        w.write_all(line).unwrap();
        w.write_all(b"\n").unwrap();
        w.flush().unwrap();
    }

    fn send(&mut self, msg: &Value) {
        self.send_raw(msg.to_string().as_bytes());
    }

    /// Sends a request; returns its id.
    fn request(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    fn call_request(&mut self, tool: &str, args: Value) -> u64 {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
    }

    /// The next message the server writes.
    fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(NO_ANSWER)
            .unwrap_or_else(|_| panic!("no answer from the server within {NO_ANSWER:?}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// The answer to request `id`; answers to others, if any come first, are a failure.
    fn answer_to(&self, id: u64) -> Value {
        let m = self.next();
        assert_eq!(
            m["id"], id,
            "expected the answer to request {id} first: {m}"
        );
        m
    }

    /// A tool call's structured result, and whether it is a tool error.
    fn call(&mut self, tool: &str, args: Value) -> (bool, Value) {
        let id = self.call_request(tool, args);
        let m = self.answer_to(id);
        let r = &m["result"];
        assert!(r.is_object(), "{tool}: not a tool result: {m}");
        (r["isError"] == true, r["structuredContent"].clone())
    }

    fn ok(&mut self, tool: &str, args: Value) -> Value {
        let (err, v) = self.call(tool, args.clone());
        assert!(!err, "{tool} {args}: {v}");
        v
    }

    fn refused(&mut self, tool: &str, args: Value) -> Value {
        let (err, v) = self.call(tool, args.clone());
        assert!(err, "{tool} {args} was not refused: {v}");
        v["error"].clone()
    }

    /// Closes the server's input; returns once it has exited.
    fn close_and_wait(self) {
        self.close_and_read_the_rest();
    }

    /// Closes the server's input; once it has exited, what it wrote that was not read yet.
    fn close_and_read_the_rest(mut self) -> Vec<Value> {
        drop(self.stdin.take());
        let end = Instant::now() + NO_ANSWER;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the server did not exit within {NO_ANSWER:?} of its input closing");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // Closing its input is how a client ends a session: that is a clean exit (on
        // PostgreSQL it once ended with an internal error from the store's drop).
        assert_eq!(
            status.code(),
            Some(0),
            "the server's exit when its input closed"
        );
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(NO_ANSWER) {
            rest.push(serde_json::from_str(&line).unwrap());
        }
        rest
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Long enough for a claim still retrying to have retried (its backoff is at most 1s).
fn longer_than_a_retry() {
    std::thread::sleep(Duration::from_millis(2500));
}

/// Unparseable lines, absurd nesting, a line over the size limit and arguments of the wrong
/// type each get an error answer, and the server goes on serving.
#[test]
fn every_malformed_request_gets_an_answer_and_the_server_keeps_serving() {
    let env = Env::new();
    let mut s = Server::start(&env, "raw");
    let parse_error = |m: Value, what: &str| {
        assert_eq!(m["error"]["code"], -32700, "{what}: {m}");
        assert!(m["id"].is_null(), "{what}: {m}");
    };
    s.send_raw(b"{");
    parse_error(s.next(), "{");
    s.send_raw(b"not json");
    parse_error(s.next(), "not json");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    s.send_raw(deep.as_bytes());
    parse_error(s.next(), "nested 100,000 deep");
    // A request whose id can be read is answered with that id.
    let bad = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                     "params": {"name": "new", "arguments": "str"}});
    s.send(&bad);
    let m = s.next();
    assert_eq!(
        (m["id"].clone(), m["error"]["code"].clone()),
        (json!(7), json!(-32602)),
        "{m}"
    );
    // Over the limit for one message: an error, not silence.
    let huge = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                      "params": {"name": "new", "arguments": {"title": "big", "body": "x".repeat(16 << 20)}}});
    s.send(&huge);
    let m = s.next();
    assert_eq!(m["error"]["code"], -32600, "{m}");
    assert!(
        m["error"]["message"].as_str().unwrap().contains("8 MiB"),
        "the message states the limit: {m}"
    );
    // Under the limit but over the body's own: the tool's error.
    let e = s.refused("new", json!({"title": "big", "body": "x".repeat(2 << 20)}));
    assert_eq!(e["kind"], "invalid", "{e}");
    // Still serving, and nothing was created by any of it.
    assert_eq!(s.ok("list", json!({}))["items"], json!([]));
    s.close_and_wait();
}

/// A claim that waits holds up nothing else: a renewal and a ping sent meanwhile are answered
/// first; a cancelled claim stops retrying and never takes the item.
#[test]
fn a_waiting_claim_delays_no_other_call_and_stops_when_cancelled() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "wanted"]);
        env.json(&["new", "mine"]);
        env.json(&["--as", "ana", "claim", "1"]);
        let mut s = Server::start(&env, "agent");
        let token = s.ok("claim", json!({"item": "2", "ttl": "1h"}))["claim"]["token"].clone();
        let waiting = s.call_request("claim", json!({"item": "1", "wait": "1h"}));
        let renew = s.call_request("renew", json!({"item": "2", "token": token}));
        let m = s.answer_to(renew);
        assert_eq!(m["result"]["isError"], false, "{m}");
        let ping = s.request("ping", json!({}));
        s.answer_to(ping);
        s.send(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                       "params": {"requestId": waiting, "reason": "no longer needed"}}),
        );
        // The cancelled claim gets no answer (MCP says none is sent), or at most a refusal had
        // it ended first; a call after the cancellation is answered.
        let ping = s.request("ping", json!({}));
        let m = s.next();
        assert_ne!(
            m["result"]["isError"], false,
            "the cancelled claim succeeded: {m}"
        );
        if m["id"] != ping {
            s.answer_to(ping);
        }
        env.json(&["--as", "ana", "release", "1"]);
        longer_than_a_retry();
        assert!(
            env.json(&["show", "1"])["claim"].is_null(),
            "a cancelled claim took the item"
        );
        s.close_and_wait();
    }
}

/// Calls sent all at once, more than run side by side, are all made and all answered.
#[test]
fn a_burst_of_calls_sent_at_once_is_answered_in_full() {
    let env = Env::new();
    let mut s = Server::start(&env, "agent");
    let mut ids: Vec<u64> = (0..50)
        .map(|i| s.call_request("new", json!({"title": format!("t{i}")})))
        .collect();
    ids.extend((0..200).map(|_| s.call_request("list", json!({"status": "all"}))));
    let mut answered: Vec<u64> = (0..ids.len())
        .map(|_| {
            let m = s.next();
            assert_eq!(m["result"]["isError"], false, "{m}");
            m["id"].as_u64().unwrap()
        })
        .collect();
    answered.sort_unstable();
    ids.sort_unstable();
    assert_eq!(answered, ids);
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 50);
    s.close_and_wait();
}

/// When its input closes the server exits at once, even with a claim waiting, and never claims
/// anything afterwards.
#[test]
fn a_server_whose_input_closes_exits_at_once_and_claims_nothing_later() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "wanted"]);
        env.json(&["--as", "ana", "claim", "1"]);
        let mut s = Server::start(&env, "agent");
        s.call_request("claim", json!({"item": "1", "wait": "366d"}));
        let ping = s.request("ping", json!({}));
        s.answer_to(ping);
        // A call sent just before the input closes is still made and answered (a client may
        // write its requests, close its end, then read).
        let last = s.call_request("new", json!({"title": "sent last"}));
        let rest = s.close_and_read_the_rest();
        let answer = rest.iter().find(|m| m["id"] == last);
        assert!(
            answer.is_some_and(|m| m["result"]["isError"] == false),
            "{rest:?}"
        );
        env.json(&["--as", "ana", "release", "1"]);
        longer_than_a_retry();
        assert!(
            env.json(&["show", "1"])["claim"].is_null(),
            "a server whose client had gone claimed the item"
        );
    }
}

/// The durations the command line refuses are refused over MCP too, with the same message
/// (naming the field the way each transport spells it) and the same kind and code.
#[test]
fn durations_get_the_same_answer_over_mcp_as_on_the_command_line() {
    let env = Env::new();
    env.json(&["new", "x"]);
    let mut s = Server::start(&env, "agent");
    for bad in ["0s", "9999999y", "soon"] {
        for (tool, field, args, cli) in [
            (
                "claim",
                "wait",
                json!({"item": "1", "wait": bad}),
                vec!["claim", "1", "--wait", bad],
            ),
            (
                "claim_next",
                "wait",
                json!({"wait": bad}),
                vec!["claim", "--next", "--wait", bad],
            ),
            (
                "claim",
                "ttl",
                json!({"item": "1", "ttl": bad}),
                vec!["claim", "1", "--ttl", bad],
            ),
            (
                "status",
                "since",
                json!({"since": bad}),
                vec!["status", "--since", bad],
            ),
        ] {
            let e = s.refused(tool, args);
            assert_eq!(
                (e["kind"].as_str(), e["code"].as_i64()),
                (Some("invalid"), Some(2)),
                "{e}"
            );
            let message = e["message"].as_str().unwrap();
            let said = message
                .strip_prefix(&format!("{field}: "))
                .unwrap_or_else(|| {
                    panic!("{tool} {field} {bad}: the message names the field: {message}")
                });
            let out = env.run(&cli);
            assert_eq!(out.status.code(), Some(2), "{cli:?}");
            let err = text(&out.stderr);
            assert!(err.contains(&format!("--{field}")), "{cli:?}: {err}");
            assert!(
                err.contains(said),
                "{cli:?} says {err:?}, MCP says {said:?}"
            );
        }
    }
    assert!(
        env.json(&["show", "1"])["claim"].is_null(),
        "nothing was claimed"
    );
    s.close_and_wait();
}

/// A keyed `new` repeated through a fresh server, after the first was killed, returns the first
/// item and creates nothing: the holder name does not change with the process.
#[test]
fn an_idempotency_key_survives_a_restart_of_the_server() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        let args = json!({"title": "once", "idempotency_key": "k-1"});
        let mut first = Server::start(&env, "agent");
        let made = first.ok("new", args.clone());
        let _ = first.child.kill();
        drop(first);
        let mut again = Server::start(&env, "agent");
        let repeat = again.ok("new", args);
        assert_eq!(repeat["id"], made["id"], "{repeat}");
        assert_eq!(
            env.json(&["list", "--status", "all"])
                .as_array()
                .unwrap()
                .len(),
            1
        );
        again.close_and_wait();
    }
}

/// An item carries at most 100 labels, however they are given.
#[test]
fn labels_per_item_are_capped_on_every_way_in() {
    let env = Env::new();
    let mut s = Server::start(&env, "agent");
    let many: Vec<String> = (0..100_000).map(|i| format!("l{i}")).collect();
    let e = s.refused("new", json!({"title": "x", "labels": many}));
    assert_eq!(
        (e["kind"].as_str(), e["code"].as_i64()),
        (Some("invalid"), Some(2)),
        "{e}"
    );
    assert!(
        e["message"].as_str().unwrap().contains("at most 100"),
        "{e}"
    );
    s.close_and_wait();
    let labels = |n: usize, from: usize| -> Vec<String> {
        (from..from + n)
            .flat_map(|i| ["-l".to_string(), format!("l{i}")])
            .collect()
    };
    let new = |ls: Vec<String>| {
        let mut a = vec!["new".to_string(), "x".to_string()];
        a.extend(ls);
        env.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert_eq!(new(labels(101, 0)).status.code(), Some(2));
    // Repeats count once.
    let mut repeated = labels(100, 0);
    repeated.extend(labels(5, 0));
    assert_eq!(new(repeated).status.code(), Some(0));
    let add = |from: usize, n: usize| {
        let mut a = vec!["update".to_string(), "1".to_string()];
        a.extend((from..from + n).flat_map(|i| ["--add-label".to_string(), format!("l{i}")]));
        env.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = add(100, 1);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("at most 100"),
        "{}",
        text(&out.stderr)
    );
    // Labels it already has add nothing, so they are allowed.
    assert_eq!(add(0, 3).status.code(), Some(0));
    assert_eq!(
        env.json(&["show", "1"])["labels"].as_array().unwrap().len(),
        100
    );
    // An import of an item with too many labels is refused whole.
    let mut export = env.json(&["export"]);
    let item = &mut export["items"][0];
    item["labels"] = json!((0..101).map(|i| format!("m{i}")).collect::<Vec<_>>());
    let file = env.path("too-many.json");
    std::fs::write(&file, export.to_string()).unwrap();
    let other = Env::new();
    let out = other.run(&["import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("at most 100"),
        "{}",
        text(&out.stderr)
    );
}

/// How the messages of one refusal compare between the two transports.
#[derive(Clone, Copy, Debug)]
enum Wording {
    /// One template, naming the field each transport's way: the CLI's message starts with the
    /// first name, MCP's with the second, and the rest is the same.
    Field(&'static str, &'static str),
    /// The same message (the library's, naming no field).
    Same,
    /// Only the kind and code agree (a value of the wrong JSON type is refused by the schema's
    /// decoder, which has no command-line twin).
    KindOnly,
}

/// Issue 21: the same invalid and edge inputs, sent through the command line (`--json`) and
/// through `tracker mcp`, get the same kind and code, and the same message from one template in
/// which only the field's name is written the transport's way. Before: a missing argument was
/// "the following required arguments were not provided:" on the command line (naming nothing)
/// and "...do not fit its input schema: missing field `item`" over MCP; a bad duration was
/// "invalid value '0s' for '--wait <DUR>': ..." against "wait: ..."; priority 7 was clap's
/// "7 is not in 0..=4" against the library's "priority 7 is out of range"; "nothing to update"
/// listed the flags on one side and nothing on the other.
#[test]
fn the_same_bad_input_gets_the_same_refusal_from_the_cli_and_mcp() {
    use Wording::*;
    let env = Env::new();
    env.json(&["new", "x"]);
    let cases: Vec<(Vec<&str>, &str, Value, i64, Wording)> = vec![
        // Durations.
        (
            vec!["claim", "1", "--wait", "0s"],
            "claim",
            json!({"item": "1", "wait": "0s"}),
            2,
            Field("--wait", "wait"),
        ),
        (
            vec!["claim", "1", "--ttl", "soon"],
            "claim",
            json!({"item": "1", "ttl": "soon"}),
            2,
            Field("--ttl", "ttl"),
        ),
        (
            vec!["claim", "1", "--ttl", "500ms"],
            "claim",
            json!({"item": "1", "ttl": "500ms"}),
            2,
            Field("--ttl", "ttl"),
        ),
        (
            vec!["claim", "--next", "--wait", "367d"],
            "claim_next",
            json!({"wait": "367d"}),
            2,
            Field("--wait", "wait"),
        ),
        (
            vec!["status", "--since", "9999999y"],
            "status",
            json!({"since": "9999999y"}),
            2,
            Field("--since", "since"),
        ),
        // Item references.
        (vec!["show", "99"], "show", json!({"item": "99"}), 4, Same),
        (vec!["show", "#x!"], "show", json!({"item": "#x!"}), 2, Same),
        (vec!["show", ""], "show", json!({"item": ""}), 2, Same),
        // Priorities.
        (
            vec!["update", "1", "--priority", "7"],
            "update",
            json!({"item": "1", "priority": 7}),
            2,
            Field("--priority", "priority"),
        ),
        (
            vec!["new", "y", "--priority", "5"],
            "new",
            json!({"title": "y", "priority": 5}),
            2,
            Field("--priority", "priority"),
        ),
        (
            vec!["update", "1", "--priority", "high"],
            "update",
            json!({"item": "1", "priority": "high"}),
            2,
            KindOnly,
        ),
        // Labels and status.
        (
            vec!["update", "1", "--add-label", "a,b"],
            "update",
            json!({"item": "1", "add_labels": ["a,b"]}),
            2,
            Same,
        ),
        (
            vec!["new", "y", "--label", " "],
            "new",
            json!({"title": "y", "labels": [" "]}),
            2,
            Same,
        ),
        (
            vec!["update", "1", "--status", "bogus"],
            "update",
            json!({"item": "1", "status": "bogus"}),
            2,
            Field("--status", "status"),
        ),
        // Missing fields, unknown fields, nothing to do.
        (
            vec!["update"],
            "update",
            json!({}),
            2,
            Field("<ITEM>", "item"),
        ),
        (vec!["new"], "new", json!({}), 2, Field("<TITLE>", "title")),
        (
            vec!["dep", "add", "1"],
            "dep_add",
            json!({"item": "1"}),
            2,
            Field("<BLOCKER>", "blocker"),
        ),
        (
            vec!["list", "--frobnicate"],
            "list",
            json!({"frobnicate": true}),
            2,
            Field("--frobnicate", "frobnicate"),
        ),
        (
            vec!["show", "1", "--if-versio", "1"],
            "show",
            json!({"item": "1", "if_versio": 1}),
            2,
            Field("--if-versio", "if_versio"),
        ),
    ];
    let mut s = Server::start(&env, "agent");
    for (cli, tool, args, code, wording) in cases {
        let mcp = s.refused(tool, args.clone());
        let mut argv = vec!["--json"];
        argv.extend(&cli);
        let out = env.run(&argv);
        let stderr = text(&out.stderr);
        let line = stderr.lines().last().unwrap_or_default();
        let cli_json: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{cli:?}: stderr is not one JSON error ({e}): {stderr}"));
        let cli_err = &cli_json["error"];
        let case = format!("{cli:?} / {tool} {args}");
        assert_eq!(
            out.status.code(),
            Some(i32::try_from(code).unwrap()),
            "{case}: {stderr}"
        );
        for e in [cli_err, &mcp] {
            assert_eq!(e["code"].as_i64(), Some(code), "{case}: {e}");
        }
        assert_eq!(cli_err["kind"], mcp["kind"], "{case}");
        let (cm, mm) = (
            cli_err["message"].as_str().unwrap(),
            mcp["message"].as_str().unwrap(),
        );
        match wording {
            Field(cli_name, mcp_name) => {
                let rest = |m: &str, name: &str| {
                    m.strip_prefix(name)
                        .map(str::to_string)
                        .unwrap_or_else(|| panic!("{case}: {m:?} does not start with {name:?}"))
                };
                assert_eq!(rest(cm, cli_name), rest(mm, mcp_name), "{case}");
            }
            Same => assert_eq!(cm, mm, "{case}"),
            KindOnly => {}
        }
    }
    // Nothing to update: the one template lists what would change, each transport's way.
    let mcp = s.refused("update", json!({"item": "1"}));
    let (code, err) = env.code(&["--json", "update", "1"]);
    assert_eq!((code, mcp["code"].as_i64()), (2, Some(2)));
    let cli: Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(
        cli["error"]["message"],
        "nothing to update: give --title, --body, --priority, --status, --add-label, --remove-label, \
         --type, --parent or --no-parent"
    );
    assert_eq!(
        mcp["message"],
        "nothing to update: give title, body, priority, status, add_labels, remove_labels, type, \
         parent or no_parent"
    );
    assert_eq!(env.json(&["show", "1"])["version"], 1, "nothing changed");
    s.close_and_wait();
}

#[test]
fn work_structure_over_mcp_types_parents_reasons_and_comments() {
    for env in Env::each() {
        let b = env.backend;
        let mut s = Server::start(&env, "agent");
        let epic = s.ok("new", json!({"title": "Epic", "type": "epic"}));
        assert_eq!(epic["type"], "epic", "{b}");
        let part = s.ok("new", json!({"title": "Part", "parent": "1"}));
        assert_eq!(part["parent"], 1, "{b}");
        let e = s.refused("update", json!({"item": "1", "parent": "2"}));
        assert_eq!(e["code"], 3, "{b}: {e}");
        let moved = s.ok(
            "update",
            json!({"item": "2", "no_parent": true, "type": "bug"}),
        );
        assert_eq!(
            (moved["parent"].clone(), moved["type"].clone()),
            (Value::Null, "bug".into())
        );
        let noted = s.ok("comment", json!({"item": "2", "text": "left a note"}));
        assert_eq!(
            noted["version"], moved["version"],
            "{b}: a comment keeps the version"
        );
        let e = s.refused("comment", json!({"item": "2", "text": ""}));
        assert_eq!(e["code"], 2, "{b}: {e}");
        let done = s.ok("done", json!({"item": "2", "reason": "fixed"}));
        assert_eq!(done["close_reason"], "fixed", "{b}");
        let cancelled = s.ok(
            "update",
            json!({"item": "1", "status": "cancelled", "reason": "not needed"}),
        );
        assert_eq!(cancelled["close_reason"], "not needed", "{b}");
        let shown = s.ok("show", json!({"item": "2"}));
        assert_eq!(shown["comments"][0]["author"], "agent", "{b}: {shown}");
        assert_eq!(shown["comments"][0]["text"], "left a note", "{b}");
        s.close_and_wait();
        let (code, err) = env.code(&["verify"]);
        assert_eq!(code, 0, "{b}: {err}");
    }
}

#[test]
fn a_plan_over_mcp_makes_a_tree_refuses_bad_entries_and_repeats_by_key() {
    for env in Env::each() {
        let b = env.backend;
        let mut s = Server::start(&env, "planner");
        s.ok("new", json!({"title": "Already here"}));
        let items = json!([
            {"key": "epic", "title": "Epic", "type": "epic"},
            {"key": "a", "title": "A", "parent": "epic", "blocked_by": ["#1"]},
            {"key": "b", "title": "B", "parent": "epic", "blocked_by": ["a"]},
        ]);
        let args = json!({"items": items, "idempotency_key": "tree-1"});
        let made = s.ok("plan", args.clone());
        let nums: Vec<u64> = made["created"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["num"].as_u64().unwrap())
            .collect();
        assert_eq!(nums, [2, 3, 4], "{b}: {made}");
        let shown = s.ok("show", json!({"item": "4"}));
        assert_eq!(shown["parent"], 2, "{b}: {shown}");
        assert_eq!(shown["blocked_by"], json!([3]), "{b}: {shown}");
        assert_eq!(
            s.ok("plan", args),
            made,
            "{b}: a repeat returns the first tree"
        );
        let e = s.refused(
            "plan",
            json!({"items": [{"key": "x", "title": "X", "blocked_by": ["y"]},
                             {"key": "y", "title": "Y", "blocked_by": ["x"]}]}),
        );
        assert_eq!(e["code"], 2, "{b}: {e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("items[0] (key \"x\")"),
            "{b}: {e}"
        );
        let e = s.refused(
            "plan",
            json!({"items": [{"key": "x", "title": "X", "size": 3}]}),
        );
        assert_eq!(e["code"], 2, "{b}: {e}");
        let e = s.refused(
            "plan",
            json!({"items": [{"key": "x", "title": "X"}], "idempotency_key": "tree-1"}),
        );
        assert_eq!(e["code"], 3, "{b}: {e}");
        assert_eq!(
            s.ok("list", json!({"status": "all"}))["items"]
                .as_array()
                .unwrap()
                .len(),
            4,
            "{b}"
        );
        s.close_and_wait();
        let (code, err) = env.code(&["verify"]);
        assert_eq!(code, 0, "{b}: {err}");
    }
}
