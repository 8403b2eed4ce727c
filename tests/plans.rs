//! Plans (`new --plan FILE|-`), on a file and on PostgreSQL: a tree of new items in one
//! transaction, all or none, parents and blockers made first; every refusal exits 2 naming the
//! entry and makes nothing; an idempotent repeat returns what the first call made.

use std::io::Write;
use std::process::Stdio;

use crate::common::{json_lines, text, Env};
use serde_json::{json, Value};

/// `new --plan` of `plan` through standard input: the exit code, stdout and stderr.
fn plan(env: &Env, plan: &Value, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["new", "--plan", "-"];
    args.extend_from_slice(extra);
    let mut child = env
        .cmd(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = serde_json::to_vec(plan).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// `new --json --plan -`, expected to succeed: the `created` list.
fn planned(env: &Env, p: &Value, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = plan(env, p, &args);
    assert_eq!(code, 0, "{}: {err}", env.backend);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["created"].as_array().unwrap().clone()
}

/// How many items and ops the tracker holds.
fn counts(env: &Env) -> (usize, usize) {
    let items = env.json(&["list", "--status", "all"]);
    let ops = json_lines(&env.run(&["--json", "log"]).stdout);
    (items.as_array().unwrap().len(), ops.len())
}

#[test]
fn a_plan_makes_an_epic_its_parts_and_their_dependencies_in_one_go() {
    for env in Env::each() {
        let b = env.backend;
        env.json(&["new", "Already here"]);
        let p = json!({"items": [
            {"key": "api", "title": "The API", "parent": "epic", "blocked_by": ["schema", "#1"],
             "labels": ["backend"], "priority": 1},
            {"key": "epic", "title": "The epic", "type": "epic", "body": "what and why"},
            {"key": "schema", "title": "The schema", "parent": "epic", "type": "chore"},
            {"key": "loose", "title": "Outside the epic", "parent": 1},
        ]});
        let made = planned(&env, &p, &[]);
        let keys: Vec<&str> = made.iter().map(|c| c["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["api", "epic", "schema", "loose"], "{b}: plan order");
        let num = |k: &str| {
            made.iter().find(|c| c["key"] == k).unwrap()["num"]
                .as_u64()
                .unwrap()
        };
        // Parents and blockers are made first.
        assert!(
            num("epic") < num("schema") && num("schema") < num("api"),
            "{b}: {made:?}"
        );
        let api = env.json(&["show", &num("api").to_string()]);
        assert_eq!(api["parent"], num("epic"), "{b}: {api}");
        assert_eq!(api["blocked_by"], json!([num("schema"), 1]), "{b}: {api}");
        assert_eq!(api["labels"], json!(["backend"]), "{b}");
        assert_eq!(api["priority"], 1, "{b}");
        assert_eq!(api["id"], made[0]["id"], "{b}");
        let epic = env.json(&["show", &num("epic").to_string()]);
        assert_eq!(
            (epic["type"].clone(), epic["body"].clone()),
            ("epic".into(), "what and why".into()),
            "{b}"
        );
        assert_eq!(env.json(&["show", "5"])["parent"], 1, "{b}: by number");
        // One `new` op per item.
        let ops = json_lines(&env.run(&["--json", "log"]).stdout);
        assert_eq!(ops.len(), 5, "{b}");
        assert!(ops.iter().all(|o| o["op"] == "new"), "{b}: {ops:?}");
        let ready = env.json(&["list", "--ready"]);
        let ready: Vec<u64> = ready
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["num"].as_u64().unwrap())
            .collect();
        assert!(!ready.contains(&num("api")), "{b}: api waits: {ready:?}");
        for cmd in ["verify", "rebuild", "verify"] {
            let (code, err) = env.code(&[cmd]);
            assert_eq!(code, 0, "{b}: {cmd}: {err}");
        }
        // Text output: one line per item, in plan order.
        let (code, out, err) = plan(
            &env,
            &json!({"items": [{"key": "t1", "title": "Text one"}, {"key": "t2", "title": "Two"}]}),
            &[],
        );
        assert_eq!(code, 0, "{b}: {err}");
        assert_eq!(
            out, "created #6 (t1): Text one\ncreated #7 (t2): Two\n",
            "{b}"
        );
        // From a file, too.
        let file = env.path("plan.json");
        std::fs::write(
            &file,
            r#"{"items": [{"key": "f", "title": "From a file"}]}"#,
        )
        .unwrap();
        let v = env.json(&["new", "--plan", file.to_str().unwrap()]);
        assert_eq!(v["created"][0]["num"], 8, "{b}: {v}");
    }
}

#[test]
fn every_bad_plan_exits_2_naming_the_entry_and_makes_nothing() {
    for env in Env::each() {
        let b = env.backend;
        env.json(&["new", "Already here"]);
        let ok = json!({"key": "ok", "title": "Fine"});
        let cases: Vec<(Value, &str)> = vec![
            (json!({"items": []}), "no items"),
            (
                json!({"items": [ok, {"key": "ok", "title": "Again"}]}),
                "items[1] (key \"ok\")",
            ),
            (
                json!({"items": [ok, {"key": "", "title": "x"}]}),
                "items[1]",
            ),
            (
                json!({"items": [ok, {"title": "no key"}]}),
                "items[1]: missing field `key`",
            ),
            (
                json!({"items": [ok, {"key": "a", "title": " "}]}),
                "items[1] (key \"a\"): the title is empty",
            ),
            (
                json!({"items": [ok, {"key": "a", "title": "x", "type": "story"}]}),
                "items[1] (key \"a\"): type",
            ),
            (
                json!({"items": [ok, {"key": "a", "title": "x", "priority": 7}]}),
                "items[1] (key \"a\"): priority 7",
            ),
            (
                json!({"items": [ok, {"key": "a", "title": "x", "labels": ["a,b"]}]}),
                "items[1] (key \"a\"): invalid label",
            ),
            (
                json!({"items": [ok, {"key": "a", "title": "x", "colour": "red"}]}),
                "items[1] (key \"a\"): unknown field `colour`",
            ),
            (
                json!({"items": [ok, {"key": "a", "title": "x", "parent": "nokey"}]}),
                "items[1] (key \"a\"): \"nokey\" is neither",
            ),
            (
                json!({"items": [ok, {"key": "a", "title": "x", "blocked_by": ["#99"]}]}),
                "items[1] (key \"a\"): blocker #99: no such item",
            ),
            (
                json!({"items": [ok, {"key": "a", "title": "x", "parent": 42}]}),
                "items[1] (key \"a\"): parent #42",
            ),
            (
                json!({"items": [ok, {"key": "a", "title": "x", "blocked_by": ["a"]}]}),
                "the entry itself",
            ),
            (
                json!({"items": [ok, {"key": "a", "title": "x", "blocked_by": ["b"]},
                {"key": "b", "title": "y", "blocked_by": ["a"]}]}),
                "items[1] (key \"a\"): a cycle",
            ),
            (
                json!({"items": [{"key": "e", "title": "Epic"},
                {"key": "p", "title": "Part", "parent": "e", "blocked_by": ["e"]}]}),
                "cycle",
            ),
            (
                json!({"items": [{"key": "e", "title": "Epic", "blocked_by": ["p"]},
                {"key": "p", "title": "Part", "parent": "e"}]}),
                "drop that blocker",
            ),
            (
                json!({"items": [{"key": "a", "title": "A", "parent": "b"},
                {"key": "b", "title": "B", "parent": "a"}]}),
                "cycle",
            ),
            // A part of #1 blocked by #1: #1 would wait for it and it for #1.
            (
                json!({"items": [{"key": "a", "title": "A", "parent": "#1", "blocked_by": ["1"]}]}),
                "cycle",
            ),
            (json!({"items": [ok], "extra": 1}), "unknown field `extra`"),
            (json!({"things": [ok]}), "not a plan document"),
            (
                json!({"items": [{"key": "a", "title": "x".repeat(5000)}]}),
                "items[0] (key \"a\"): the title is",
            ),
        ];
        let before = counts(&env);
        for (p, says) in cases {
            let (code, out, err) = plan(&env, &p, &[]);
            assert_eq!(code, 2, "{b}: {p}: {err}");
            assert!(err.contains(says), "{b}: {p}: expected {says:?} in: {err}");
            assert!(out.is_empty(), "{b}: {out}");
        }
        let (code, _, err) = plan(&env, &Value::from("not an object"), &[]);
        assert_eq!(code, 2, "{b}: {err}");
        assert_eq!(counts(&env), before, "{b}: nothing was made");
        let (code, err) = env.code(&["new", "--plan", "-", "Title too"]);
        assert_eq!(code, 2, "{b}: --plan takes no title: {err}");
        let (code, err) = env.code(&["new", "--plan", "-", "--parent", "1"]);
        assert_eq!(code, 2, "{b}: {err}");
        let (code, err) = env.code(&["new", "--plan", "/nonexistent/plan.json"]);
        assert_ne!(code, 0, "{b}: {err}");
        assert_eq!(counts(&env), before, "{b}: nothing was made");
    }
}

#[test]
fn a_plan_over_the_item_limit_is_refused_and_makes_nothing() {
    let env = Env::new();
    let items: Vec<Value> = (0..50_001)
        .map(|i| json!({"key": format!("k{i}"), "title": "x"}))
        .collect();
    let (code, _, err) = plan(&env, &json!({ "items": items }), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at most 50000"), "{err}");
    assert_eq!(counts(&env), (0, 0));
}

#[test]
fn a_repeated_plan_returns_what_the_first_call_made() {
    for env in Env::each() {
        let b = env.backend;
        let p = json!({"items": [
            {"key": "epic", "title": "Epic", "type": "epic"},
            {"key": "a", "title": "A", "parent": "epic"},
            {"key": "b", "title": "B", "parent": "epic", "blocked_by": ["a"]},
        ]});
        let key = ["--as", "ana", "--idempotency-key", "plan-1"];
        let first = planned(&env, &p, &key);
        let after = counts(&env);
        assert_eq!(after, (3, 3), "{b}");
        // Another item meanwhile: a repeat still returns the first tree, and makes nothing.
        env.json(&["new", "Meanwhile"]);
        let again = planned(&env, &p, &key);
        assert_eq!(again, first, "{b}");
        assert_eq!(counts(&env), (4, 4), "{b}: the repeat made nothing");
        // A different plan under the same key is a conflict; so is another actor's repeat.
        let other = json!({"items": [{"key": "x", "title": "Other"}]});
        let (code, _, err) = plan(&env, &other, &key);
        assert_eq!(code, 3, "{b}: {err}");
        let (code, _, err) = plan(&env, &p, &["--as", "bo", "--idempotency-key", "plan-1"]);
        assert_eq!(code, 3, "{b}: {err}");
        // The key of a plan is not the key of a `new`.
        let (code, err) = env.code(&["--as", "ana", "new", "x", "--idempotency-key", "plan-1"]);
        assert_eq!(code, 3, "{b}: {err}");
        assert_eq!(counts(&env), (4, 4), "{b}");
        let (code, err) = env.code(&["verify"]);
        assert_eq!(code, 0, "{b}: {err}");
    }
}

/// On PostgreSQL a large plan is one transaction whose rows travel in bulk: the whole plan
/// of 10,000 items, with parents and blockers inside it, is made and verified.
#[test]
fn a_plan_of_ten_thousand_items_is_made_on_every_backend() {
    for env in Env::each() {
        let b = env.backend;
        let p = chain_plan(10_000);
        let made = planned(&env, &p, &[]);
        assert_eq!(made.len(), 10_000, "{b}");
        let (code, err) = env.code(&["verify"]);
        assert_eq!(code, 0, "{b}: {err}");
        let ready: Vec<u64> = env
            .json(&["list", "--ready"])
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["num"].as_u64().unwrap())
            .collect();
        let num = |k: usize| made[k]["num"].as_u64().unwrap();
        // An epic's first part waits for nothing; the second waits for the first.
        assert!(ready.contains(&num(9991)), "{b}");
        assert!(!ready.contains(&num(9992)), "{b}");
        let last = env.json(&["show", &num(9999).to_string()]);
        assert_eq!(last["parent"], num(9990), "{b}: {last}");
        assert_eq!(last["blocked_by"], json!([num(9998)]), "{b}: {last}");
    }
}

/// `n` items: every tenth an epic, the nine after it its parts, each blocked by the one before.
pub fn chain_plan(n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let epic = i - i % 10;
            if i == epic {
                json!({"key": format!("k{i}"), "title": format!("Epic {i}"), "type": "epic"})
            } else {
                let mut e = json!({"key": format!("k{i}"), "title": format!("Part {i}"),
                    "parent": format!("k{epic}"), "labels": ["plan"]});
                if i > epic + 1 {
                    e["blocked_by"] = json!([format!("k{}", i - 1)]);
                }
                e
            }
        })
        .collect();
    json!({ "items": items })
}

/// Round trips between `tracker` and PostgreSQL, counted by a proxy in between: one turn each
/// time the client speaks after the server did.
struct CountingProxy {
    port: u16,
    turns: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CountingProxy {
    fn to(server_port: u16) -> CountingProxy {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let turns = Arc::new(AtomicU64::new(0));
        let counted = turns.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    break;
                };
                let client_spoke = Arc::new(AtomicBool::new(false));
                let pipe = |mut from: TcpStream, mut to: TcpStream, up: bool| {
                    let (turns, client_spoke) = (counted.clone(), client_spoke.clone());
                    move || {
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            let n = match std::io::Read::read(&mut from, &mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if up && !client_spoke.swap(true, Ordering::SeqCst) {
                                turns.fetch_add(1, Ordering::SeqCst);
                            } else if !up {
                                client_spoke.store(false, Ordering::SeqCst);
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    }
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(pipe(client, server, true));
                std::thread::spawn(pipe(s2, c2, false));
            }
        });
        CountingProxy { port, turns }
    }

    fn turns(&self) -> u64 {
        self.turns.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// On PostgreSQL a plan of 10,000 items is one transaction whose rows are sent in bulk: a few
/// hundred round trips (111 when written; 8,056 without the prefetch of each chunk), not one per
/// item.
#[test]
fn a_plan_of_ten_thousand_items_takes_few_round_trips_on_postgres() {
    let Some(env) = Env::postgres() else { return };
    let port: u16 = std::env::var("TRACKER_TEST_PG_PORT")
        .unwrap()
        .parse()
        .unwrap();
    let proxy = CountingProxy::to(port);
    // The same schema, over TCP through the proxy instead of the Unix socket.
    let url = env.db.to_str().unwrap().to_string();
    let (base, query) = url.split_once('?').unwrap();
    let options: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("host="))
        .collect();
    let base = base.replace(
        &format!("localhost:{port}"),
        &format!("127.0.0.1:{}", proxy.port),
    );
    let via = format!("{base}?sslmode=disable&{}", options.join("&"));
    let file = env.path("plan.json");
    std::fs::write(&file, serde_json::to_vec(&chain_plan(10_000)).unwrap()).unwrap();
    let out = crate::common::tracker_on(&via, &["--json", "new", "--plan", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["created"].as_array().unwrap().len(), 10_000);
    let turns = proxy.turns();
    assert!(turns > 3, "the proxy saw the conversation: {turns}");
    assert!(turns <= 200, "{turns} round trips for 10,000 items");
    let (code, err) = env.code(&["verify"]);
    assert_eq!(code, 0, "{err}");
}
