//! `tracker serve` over real HTTP: the server run as a process, requests sent over sockets.
//! Its refusals (token, Host, Origin, read-only, the actor of a write), every error kind with
//! its status, leases by token, racing claims, events from other processes, the OpenAPI
//! document; on a file and on PostgreSQL.

use serde_json::{json, Value};

use crate::common::http::{Served, TOKEN};
use crate::common::{text, Env, WriteLockHolder};

fn new_item(s: &Served, title: &str) -> Value {
    let r = s.post("/api/v1/items", "ana", json!({"title": title}));
    assert_eq!(r.status, 201, "{}", crate::common::text(&r.body));
    r.json()
}

#[test]
fn no_token_or_a_wrong_one_is_401_with_the_error_object_and_no_data() {
    let env = Env::new();
    let s = Served::start(&env.db, &[]);
    new_item(&s, "secret plans");
    for r in [
        s.req("GET", "/api/v1/items")
            .without("Authorization")
            .send(),
        s.req("GET", "/api/v1/items")
            .header("Authorization", "Bearer wrong-token-0123456789")
            .send(),
        s.req("GET", "/api/v1/items")
            .header("Authorization", TOKEN)
            .send(),
        s.req("GET", "/api/v1/events")
            .without("Authorization")
            .send(),
        s.req("POST", "/mcp").without("Authorization").send(),
    ] {
        assert_eq!(r.error_kind(401), "unauthorized");
        assert!(!crate::common::text(&r.body).contains("secret"));
    }
    assert_eq!(s.get("/api/v1/items").status, 200);
}

#[test]
fn a_foreign_host_or_a_cross_origin_request_is_403_and_no_cors_header_is_sent() {
    let env = Env::new();
    let s = Served::start(&env.db, &["--allow-host", "tracker.example"]);
    let port = s.port;
    for host in [
        "evil.example",
        "evil.example:{port}",
        "127.0.0.1:1",
        "localhost.evil.example",
    ] {
        let host = host.replace("{port}", &port.to_string());
        let r = s.req("GET", "/api/v1/items").header("Host", &host).send();
        assert_eq!(r.error_kind(403), "forbidden", "Host {host}");
        // The board too: a rebound name gets nothing from this server.
        let r = s.req("GET", "/").header("Host", &host).send();
        assert_eq!(r.status, 403, "Host {host}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("tracker.example:{port}"),
        format!("TRACKER.example:{port}"),
    ] {
        let r = s.req("GET", "/api/v1/items").header("Host", &host).send();
        assert_eq!(r.status, 200, "Host {host}");
    }
    for origin in [
        "http://evil.example".to_string(),
        format!("http://evil.example:{port}"),
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        "null".to_string(),
    ] {
        let r = s
            .req("POST", "/api/v1/items")
            .header("Origin", &origin)
            .header("X-Tracker-As", "ana")
            .json(json!({"title": "from another site"}))
            .send();
        assert_eq!(r.error_kind(403), "forbidden", "Origin {origin}");
    }
    let same = format!("http://127.0.0.1:{port}");
    let r = s
        .req("POST", "/api/v1/items")
        .header("Origin", &same)
        .header("X-Tracker-As", "ana")
        .json(json!({"title": "from the board"}))
        .send();
    assert_eq!(r.status, 201);
    // Only the board's item was made.
    let items = s.get("/api/v1/items").json();
    assert_eq!(items["items"].as_array().unwrap().len(), 1, "{items}");
    // Two Origin headers, ours first: refused, not judged by the first alone.
    let r = s
        .req("POST", "/api/v1/items")
        .header("Origin", &same)
        .raw_header("Origin", b"http://evil.example")
        .header("X-Tracker-As", "ana")
        .json(json!({"title": "two origins"}))
        .send();
    assert_eq!(r.error_kind(403), "forbidden");
    // A preflight gets no CORS header (so a browser sends nothing cross-site), nor does anything.
    let pre = s
        .req("OPTIONS", "/api/v1/items")
        .header("Origin", "http://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send();
    for r in [&pre, &s.get("/api/v1/items"), &s.get("/")] {
        let cors: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| k.to_ascii_lowercase().starts_with("access-control-"))
            .collect();
        assert!(cors.is_empty(), "{cors:?}");
    }
}

#[test]
fn a_read_only_server_refuses_every_write_with_403_and_serves_reads() {
    let env = Env::new();
    env.json(&["new", "already here"]);
    let s = Served::start(&env.db, &["--read-only"]);
    for (method, path) in [
        ("POST", "/api/v1/items"),
        ("PATCH", "/api/v1/items/1"),
        ("POST", "/api/v1/items/1/claim"),
        ("POST", "/api/v1/items/1/done"),
        ("POST", "/api/v1/claim-next"),
        ("DELETE", "/api/v1/items/1/deps/2"),
    ] {
        let r = s
            .req(method, path)
            .header("X-Tracker-As", "ana")
            .json(json!({"title": "x"}))
            .send();
        assert_eq!(r.error_kind(403), "forbidden", "{method} {path}");
    }
    assert_eq!(s.get("/api/v1/items/1").json()["title"], "already here");
    assert_eq!(env.json(&["show", "1"])["version"], 1);
}

#[test]
fn a_write_without_x_tracker_as_is_400_and_the_actor_is_recorded() {
    let env = Env::new();
    let s = Served::start(&env.db, &[]);
    let r = s
        .req("POST", "/api/v1/items")
        .json(json!({"title": "anonymous"}))
        .send();
    assert_eq!(r.error_kind(400), "invalid");
    assert!(crate::common::text(&r.body).contains("X-Tracker-As"));
    let r = s
        .req("POST", "/api/v1/items")
        .header("X-Tracker-As", "  ")
        .json(json!({"title": "blank"}))
        .send();
    assert_eq!(r.error_kind(400), "invalid");
    // Found by a hostile test: bytes that are not UTF-8 were replaced, so two clients
    // (\xe9ve and \xfcve) became one actor, "\u{fffd}ve", and shared idempotency keys; and a
    // name had no length limit (each op stores it).
    for name in [&b"\xe9ve"[..], b"\xfcve"] {
        let r = s
            .req("POST", "/api/v1/items")
            .raw_header("X-Tracker-As", name)
            .json(json!({"title": "latin-1", "idempotency_key": "k1"}))
            .send();
        assert_eq!(r.error_kind(400), "invalid");
        assert!(crate::common::text(&r.body).contains("UTF-8"));
    }
    let long = "n".repeat(201);
    let r = s.post("/api/v1/items", &long, json!({"title": "long name"}));
    assert_eq!(r.error_kind(400), "invalid");
    new_item(&s, "named");
    let ops = s.get("/api/v1/log").json();
    assert_eq!(ops["ops"][0]["actor"], "ana", "{ops}");
    assert_eq!(ops["ops"].as_array().unwrap().len(), 1);
    let r = s.post(
        "/api/v1/items",
        &"n".repeat(200),
        json!({"title": "longest name"}),
    );
    assert_eq!(r.status, 201, "200 bytes is allowed");
}

/// The limit of a name is the same on the command line: at most 200 bytes, exit 2 naming where
/// it came from.
#[test]
fn a_name_given_by_as_or_tracker_as_is_checked_like_a_header() {
    let env = Env::new();
    let (code, err) = env.code(&["--as", &"n".repeat(201), "new", "x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--as") && err.contains("200 bytes"), "{err}");
    let out = env
        .cmd(&["new", "x"])
        .env("TRACKER_AS", "é".repeat(101))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("TRACKER_AS"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.json(&["list", "--status", "all"]), json!([]));
    assert_eq!(env.json(&["--as", " ana ", "new", "x"])["num"], 1);
}

/// Over HTTP the actor is a name that proves nothing: a lease-guarded write without the lease's
/// token is a conflict, even from the holder's own name; with it, it is done.
#[test]
fn leases_over_http_live_by_ttl_and_every_guarded_write_needs_the_token() {
    for env in Env::each() {
        let s = Served::start(&env.db, &[]);
        new_item(&s, "guarded");
        let claimed = s.post("/api/v1/items/1/claim", "bob", json!({"ttl": "10m"}));
        assert_eq!(claimed.status, 200, "{}", env.backend);
        let claim = &claimed.json()["claim"];
        assert_eq!(claim["holder"], "bob");
        assert_eq!(
            claim["pid"],
            Value::Null,
            "an HTTP lease is tied to no process"
        );
        let token = claim["token"].as_u64().unwrap();
        for path in ["renew", "release", "done", "claim"] {
            let r = s.post(&format!("/api/v1/items/1/{path}"), "bob", json!({}));
            assert_eq!(
                r.error_kind(409),
                "conflict",
                "{path} without a token ({})",
                env.backend
            );
            // The advice is one an HTTP client can follow (it was "name yourself with --as").
            let message = r.json()["error"]["message"].as_str().unwrap().to_string();
            assert!(message.contains("`token`"), "{path}: {message}");
        }
        let r = s
            .req("PATCH", "/api/v1/items/1")
            .header("X-Tracker-As", "bob")
            .json(json!({"status": "done"}))
            .send();
        assert_eq!(r.error_kind(409), "conflict", "{}", env.backend);
        let wrong = s.post("/api/v1/items/1/done", "bob", json!({"token": token + 100}));
        assert_eq!(wrong.error_kind(409), "conflict");
        let renewed = s.post(
            "/api/v1/items/1/renew",
            "bob",
            json!({"token": token, "ttl": "20m"}),
        );
        assert_eq!(
            renewed.status,
            200,
            "{}",
            crate::common::text(&renewed.body)
        );
        let done = s.post("/api/v1/items/1/done", "bob", json!({"token": token}));
        assert_eq!(done.status, 200, "{}", crate::common::text(&done.body));
        assert_eq!(done.json()["status"], "done");
        assert_eq!(
            env.json(&["show", "1"])["status"],
            "done",
            "{}",
            env.backend
        );
    }
}

#[test]
fn every_error_kind_has_its_status_code() {
    for env in Env::each() {
        let s = Served::start(&env.db, &["--lock-timeout", "1s"]);
        new_item(&s, "one");
        let b = env.backend;
        // invalid: 400, for a bad value, an unknown field, a body that is not JSON, a bad query.
        for r in [
            s.post("/api/v1/items", "ana", json!({"title": "x", "priority": 9})),
            s.post(
                "/api/v1/items",
                "ana",
                json!({"title": "x", "colour": "red"}),
            ),
            s.post("/api/v1/items", "ana", json!({"body": "no title"})),
            s.post("/api/v1/items", "ana", json!({"title": ""})),
            s.req("POST", "/api/v1/items")
                .header("X-Tracker-As", "ana")
                .raw_body(b"{not json".to_vec())
                .send(),
            s.post("/api/v1/items/1/claim", "ana", json!({"ttl": "forever"})),
            s.post("/api/v1/items/1/claim", "ana", json!({"item": "2"})),
            s.get("/api/v1/items?status=bogus"),
            s.get("/api/v1/items?limit=many"),
            s.get("/api/v1/items/not-a-ref!"),
        ] {
            assert_eq!(
                r.error_kind(400),
                "invalid",
                "{b}: {}",
                crate::common::text(&r.body)
            );
        }
        // not found: 404, for an item, for nothing ready, and for a route.
        assert_eq!(s.get("/api/v1/items/99").error_kind(404), "not_found");
        assert_eq!(s.get("/api/v1/nothing-here").error_kind(404), "not_found");
        let claimed = s.post("/api/v1/claim-next", "ana", json!({}));
        assert_eq!(claimed.status, 200, "{b}");
        let r = s.post("/api/v1/claim-next", "bob", json!({}));
        assert_eq!(r.error_kind(404), "not_found", "{b}");
        // conflict: 409, carrying the item as it is now.
        let r = s.post("/api/v1/items/1/claim", "bob", json!({}));
        assert_eq!(r.error_kind(409), "conflict");
        assert_eq!(r.json()["error"]["current"]["claim"]["holder"], "ana");
        // Its advice names the body's fields, not command-line flags.
        let advice = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            advice.contains("`wait`") && advice.contains("`force`") && !advice.contains("--"),
            "{advice}"
        );
        let r = s
            .req("PATCH", "/api/v1/items/1")
            .header("X-Tracker-As", "ana")
            .json(json!({"title": "stale", "if_version": 1}))
            .send();
        assert_eq!(r.error_kind(409), "conflict");
        // busy: 503, a wait that runs out.
        let r = s.post("/api/v1/items/1/claim", "bob", json!({"wait": "1s"}));
        assert_eq!(r.error_kind(503), "busy", "{b}");
        // A body past the limit: refused before it is read in full.
        let big = json!({"title": "big", "body": "x".repeat(3 << 20)});
        let r = s
            .req("POST", "/api/v1/items")
            .header("X-Tracker-As", "ana")
            .json(big)
            .send();
        assert_eq!(r.error_kind(413), "invalid", "{b}");
        // A method a route does not take.
        assert_eq!(
            s.req("PUT", "/api/v1/items").send().error_kind(405),
            "invalid"
        );
    }
}

#[test]
fn a_tracker_locked_past_the_lock_timeout_is_503_busy() {
    let env = Env::new();
    let s = Served::start(&env.db, &["--lock-timeout", "1s"]);
    let lock = WriteLockHolder::hold(&env.db);
    let r = s.post(
        "/api/v1/items",
        "ana",
        json!({"title": "waits for the lock"}),
    );
    lock.release();
    assert_eq!(r.error_kind(503), "busy");
    new_item(&s, "after the lock");
}

/// The `data` kind over HTTP: a write to a tracker of format 1 (the committed fixture, made by
/// the format-1 binary) is 500 with the error object saying to run `tracker upgrade`, as the
/// command line's exit 6 does; reads are served, and nothing was written.
#[test]
fn a_write_to_a_tracker_of_an_older_format_is_500_data_and_reads_are_served() {
    let env = Env::empty();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1.redb");
    std::fs::copy(fixture, &env.db).unwrap();
    let s = Served::start(&env.db, &[]);
    let before = s.get("/api/v1/log").json()["ops"].as_array().unwrap().len();
    assert!(before > 0);
    let r = s.post("/api/v1/items", "ana", json!({"title": "too new"}));
    assert_eq!(
        r.error_kind(500),
        "data",
        "{}",
        crate::common::text(&r.body)
    );
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("tracker upgrade"), "{message}");
    assert_eq!(r.json()["error"]["code"], 6);
    assert_eq!(s.get("/api/v1/items/1").status, 200);
    let after = s.get("/api/v1/log").json()["ops"].as_array().unwrap().len();
    assert_eq!(after, before, "a refused write left an op");
}

/// Past `--max-connections`, a connection gets 503 with the error object (busy) instead of a bare
/// reset (found by a hostile test: 600 silent connections left every client a "connection reset
/// by peer" and no word why); once connections close, requests are served again.
#[test]
fn a_connection_past_the_limit_is_answered_503_busy() {
    let env = Env::new();
    let s = Served::start(&env.db, &["--max-connections", "2"]);
    let silent: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    // The two are accepted before the third arrives.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let r = s.get("/api/v1/status");
    assert_eq!(r.error_kind(503), "busy");
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("--max-connections"), "{message}");
    drop(silent);
    let mut served = false;
    for _ in 0..50 {
        if s.get("/api/v1/status").status == 200 {
            served = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(served, "still refused after the connections closed");
    let out = env.run(&["serve", "--max-connections", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn of_racing_claims_over_http_exactly_one_wins() {
    for env in Env::each() {
        let s = Served::start(&env.db, &[]);
        new_item(&s, "contested");
        let port = s.port;
        let racers: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    let s = Served::at(port);
                    s.post("/api/v1/items/1/claim", &format!("worker-{i}"), json!({}))
                })
            })
            .collect();
        let replies: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let won: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
        assert_eq!(won.len(), 1, "{}: {replies:?}", env.backend);
        for r in replies.iter().filter(|r| r.status != 200) {
            assert_eq!(r.error_kind(409), "conflict");
        }
        let holder = won[0].json()["claim"]["holder"].clone();
        assert_eq!(env.json(&["show", "1"])["claim"]["holder"], holder);
        assert!(env.run(&["verify"]).status.success());
    }
}

#[test]
fn a_change_made_by_another_process_arrives_on_an_open_event_stream() {
    for env in Env::each() {
        let s = Served::start(&env.db, &[]);
        let mut events = s.req("GET", "/api/v1/events").stream();
        assert_eq!(events.status, 200);
        assert!(events
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-type")
                && v.starts_with("text/event-stream")));
        env.json(&["--as", "cli", "new", "made on the command line"]);
        env.json(&["--as", "cli", "update", "1", "--priority", "0"]);
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let (name, data) = events.next().expect("the stream ended");
            assert_eq!(name, "op");
            seen.push(serde_json::from_str::<Value>(&data).unwrap());
        }
        assert_eq!(seen[0]["op"], "new", "{}: {seen:?}", env.backend);
        assert_eq!(seen[0]["actor"], "cli");
        assert_eq!(seen[1]["num"], 1);
        assert_eq!(
            seen[1]["seq"].as_u64(),
            Some(seen[0]["seq"].as_u64().unwrap() + 1)
        );
    }
}

/// A client that reconnects with `Last-Event-ID` (or starts with `?since=`) gets every op after
/// the last one it saw, then the live ones, with no gap and no repeat; a bad position is 400.
#[test]
fn an_event_stream_resumes_after_last_event_id_or_from_since_and_misses_nothing() {
    for env in Env::each() {
        let s = Served::start(&env.db, &[]);
        for title in ["one", "two", "three"] {
            env.json(&["--as", "cli", "new", title]);
        }
        let seqs = |events: &mut crate::common::http::Events, n: usize| -> Vec<u64> {
            (0..n)
                .map(|_| {
                    let (name, data) = events.next().expect("the stream ended");
                    assert_eq!(name, "op", "{data}");
                    serde_json::from_str::<Value>(&data).unwrap()["seq"]
                        .as_u64()
                        .unwrap()
                })
                .collect()
        };
        let mut resumed = s
            .req("GET", "/api/v1/events")
            .header("Last-Event-ID", "1")
            .stream();
        assert_eq!(resumed.status, 200);
        assert_eq!(seqs(&mut resumed, 2), [2, 3], "{}", env.backend);
        let mut from = s.req("GET", "/api/v1/events?since=2").stream();
        assert_eq!(seqs(&mut from, 2), [2, 3], "{}", env.backend);
        // The header wins over the query: a browser reconnecting sends both.
        let mut both = s
            .req("GET", "/api/v1/events?since=1")
            .header("Last-Event-ID", "2")
            .stream();
        assert_eq!(seqs(&mut both, 1), [3], "{}", env.backend);
        env.json(&["--as", "cli", "new", "four"]);
        for events in [&mut resumed, &mut from, &mut both] {
            assert_eq!(seqs(events, 1), [4], "{}", env.backend);
        }
        for (path, last) in [
            ("/api/v1/events?since=0", None),
            ("/api/v1/events?since=soon", None),
            ("/api/v1/events?from=1", None),
            ("/api/v1/events", Some("yesterday")),
            // u64::MAX: seq + 1 overflowed (a dropped connection; from op 1 in a release build).
            ("/api/v1/events", Some("18446744073709551615")),
        ] {
            let mut r = s.req("GET", path);
            if let Some(last) = last {
                r = r.header("Last-Event-ID", last);
            }
            let r = r.send();
            assert_eq!(r.status, 400, "{path} {last:?}");
            assert_eq!(r.json()["error"]["kind"], "invalid");
        }
    }
}

/// The OpenAPI document parses, is version 3, lists every route the server answers, and every
/// reference in it resolves.
#[test]
fn the_openapi_document_is_valid_and_lists_every_path() {
    let env = Env::new();
    let s = Served::start(&env.db, &[]);
    let doc = s.get("/api/v1/openapi.json").json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/api/v1/items",
        "/api/v1/items/{ref}",
        "/api/v1/items/{ref}/claim",
        "/api/v1/items/{ref}/renew",
        "/api/v1/items/{ref}/release",
        "/api/v1/items/{ref}/done",
        "/api/v1/items/{ref}/comment",
        "/api/v1/items/{ref}/deps",
        "/api/v1/items/{ref}/deps/{blocker}",
        "/api/v1/claim-next",
        "/api/v1/plan",
        "/api/v1/log",
        "/api/v1/status",
        "/api/v1/events",
        "/api/v1/openapi.json",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 20, "{refs:?}");
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} does not resolve"
        );
    }
    // Each operation's parameters are in the path it names, and each has responses.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["operationId"].is_string(), "{method} {path}");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    let name = p["name"].as_str().unwrap();
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: {name}"
                    );
                }
            }
        }
    }
    // The request bodies are the command layer's arguments: new fields appear by themselves.
    let new = &doc["components"]["schemas"]["NewArgs"]["properties"];
    assert!(
        new.get("title").is_some() && new.get("labels").is_some(),
        "{new}"
    );
    let claim = &doc["components"]["schemas"]["ClaimArgs"]["properties"];
    assert!(
        claim.get("ttl").is_some() && claim.get("item").is_none(),
        "{claim}"
    );
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "$ref" {
                    out.push(x.as_str().unwrap().to_string());
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

#[test]
fn the_api_answers_the_json_shapes_of_the_command_line() {
    for env in Env::each() {
        let s = Served::start(&env.db, &[]);
        let made = s.post(
            "/api/v1/items",
            "ana",
            json!({"title": "shaped", "labels": ["db"], "priority": 1}),
        );
        assert_eq!(made.status, 201);
        let blocker = new_item(&s, "blocker");
        let r = s.post("/api/v1/items/1/deps", "ana", json!({"blocker": "2"}));
        assert_eq!(r.status, 200, "{}", crate::common::text(&r.body));
        assert_eq!(r.json()["blocked_by"], json!([2]));
        let shown = s.get("/api/v1/items/%231").json();
        assert_eq!(shown, env.json(&["show", "1"]), "{}", env.backend);
        let listed = s.get("/api/v1/items?label=db&ready=false").json();
        assert_eq!(listed["items"], env.json(&["list", "--label", "db"]));
        let ready = s.get("/api/v1/items?ready=true").json();
        assert_eq!(ready["items"].as_array().unwrap().len(), 1);
        assert_eq!(ready["items"][0]["num"], blocker["num"]);
        let r = s
            .req("DELETE", "/api/v1/items/1/deps/2")
            .header("X-Tracker-As", "ana")
            .send();
        assert_eq!(r.status, 200, "{}", crate::common::text(&r.body));
        assert_eq!(r.json()["blocked_by"], json!([]));
        let log = s.get("/api/v1/log?item=1&limit=2").json();
        assert_eq!(log["ops"].as_array().unwrap().len(), 2);
        assert_eq!(log["ops"][0]["op"], "new");
        let status = s.get("/api/v1/status").json();
        assert_eq!(status["open"], 2, "{status}");
        assert_eq!(status["ready"], 2);
    }
}

/// Issue 22's fields flow through the command layer's argument types: types, parents, comments,
/// close reasons, and the list filters by parent, type and text.
#[test]
fn work_structure_over_http_types_parents_comments_and_filters() {
    let env = Env::new();
    let s = Served::start(&env.db, &[]);
    let epic = s.post(
        "/api/v1/items",
        "ana",
        json!({"title": "the epic", "type": "epic"}),
    );
    assert_eq!(epic.status, 201, "{}", crate::common::text(&epic.body));
    let child = s.post(
        "/api/v1/items",
        "ana",
        json!({"title": "a child", "parent": "1", "type": "bug"}),
    );
    assert_eq!(child.status, 201, "{}", crate::common::text(&child.body));
    assert_eq!(child.json()["parent"], 1);
    let r = s.post(
        "/api/v1/items/2/comment",
        "bob",
        json!({"text": "found the cause"}),
    );
    assert_eq!(r.status, 200, "{}", crate::common::text(&r.body));
    let shown = s.get("/api/v1/items/2").json();
    assert_eq!(shown["comments"][0]["author"], "bob", "{shown}");
    assert_eq!(shown["comments"][0]["text"], "found the cause");
    assert_eq!(s.get("/api/v1/items/1").json()["children"], json!([2]));
    let kids = s.get("/api/v1/items?parent=1").json();
    assert_eq!(kids["items"].as_array().unwrap().len(), 1, "{kids}");
    let bugs = s.get("/api/v1/items?type=bug").json();
    assert_eq!(bugs["items"][0]["num"], 2, "{bugs}");
    let found = s.get("/api/v1/items?search=CAUSE").json();
    assert_eq!(found["items"][0]["num"], 2, "{found}");
    assert_eq!(s.get("/api/v1/items?type=saga").error_kind(400), "invalid");
    let plan = json!({"items": [
        {"key": "e", "title": "planned epic", "type": "epic"},
        {"key": "a", "title": "planned part", "parent": "e", "blocked_by": ["#2"]},
    ]});
    let r = s.post("/api/v1/plan", "ana", plan.clone());
    assert_eq!(r.status, 201, "{}", crate::common::text(&r.body));
    let created = r.json()["created"].as_array().unwrap().clone();
    assert_eq!(created.len(), 2, "{created:?}");
    assert_eq!(s.get("/api/v1/items/4").json()["parent"], created[0]["num"]);
    let bad = json!({"items": [{"key": "x", "title": "t", "parent": "nowhere"}]});
    assert_eq!(
        s.post("/api/v1/plan", "ana", bad).error_kind(400),
        "invalid"
    );
    // Everything under an item, at any depth; `descendants` alone names no item to be under.
    let r = s.post(
        "/api/v1/items",
        "ana",
        json!({"title": "a grandchild", "parent": "2"}),
    );
    assert_eq!(r.status, 201, "{}", crate::common::text(&r.body));
    let under = s.get("/api/v1/items?parent=1&descendants=true").json();
    let nums: Vec<&Value> = under["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["num"])
        .collect();
    assert_eq!(nums, [2, 5], "{under}");
    assert_eq!(
        kids_of(&s, "1"),
        1,
        "without descendants, the children only"
    );
    assert_eq!(
        s.get("/api/v1/items?descendants=true").error_kind(400),
        "invalid"
    );
    assert_eq!(s.post("/api/v1/items/5/done", "ana", json!({})).status, 200);
    let r = s.post("/api/v1/items/2/done", "ana", json!({"reason": "fixed"}));
    assert_eq!(r.status, 200, "{}", crate::common::text(&r.body));
    assert_eq!(r.json()["close_reason"], "fixed");
}

fn kids_of(s: &Served, parent: &str) -> usize {
    let kids = s.get(&format!("/api/v1/items?parent={parent}")).json();
    kids["items"].as_array().unwrap().len()
}

/// Two agents drain a queue through `/mcp` (MCP over Streamable HTTP) with the official MCP
/// Python SDK: every item done exactly once, each done only with its lease's token, the tools
/// those of `tracker mcp`; and `/mcp` needs the token like the API.
#[test]
fn two_agents_drain_a_queue_through_mcp_over_http_with_the_python_sdk() {
    let sdk = std::process::Command::new("python3")
        .args(["-c", "import mcp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !sdk {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the MCP Python SDK"
        );
        eprintln!("SKIPPED: the MCP Python SDK is not installed (pip install mcp)");
        return;
    }
    for env in Env::each() {
        for i in 0..12 {
            env.json(&["new", &format!("task {i}")]);
        }
        let s = Served::start(&env.db, &[]);
        let url = format!("http://127.0.0.1:{}/mcp", s.port);
        let agents: Vec<_> = ["agent-a", "agent-b"]
            .iter()
            .map(|name| {
                crate::common::command("python3")
                    .arg(format!(
                        "{}/tests/mcp/http_agent.py",
                        env!("CARGO_MANIFEST_DIR")
                    ))
                    .args([&url, TOKEN, name])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut all = Vec::new();
        for a in agents {
            let out = a.wait_with_output().unwrap();
            let text = crate::common::text(&out.stdout);
            assert!(
                out.status.success(),
                "{text}\n{}",
                crate::common::text(&out.stderr)
            );
            let steps: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(steps[0]["server"], "tracker", "{text}");
            let tools = steps[0]["tools"].as_array().unwrap();
            assert!(
                tools.iter().any(|t| t == "claim_next") && tools.iter().any(|t| t == "comment")
            );
            let drained = steps
                .iter()
                .find(|s| s["step"] == "drained")
                .unwrap_or_else(|| panic!("{text}"));
            assert_eq!(drained["kind"], "not_found", "{text}");
            all.extend(
                drained["done"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_u64().unwrap()),
            );
        }
        all.sort_unstable();
        assert_eq!(all, (1..=12).collect::<Vec<u64>>(), "{}", env.backend);
        let done = env.json(&["list", "--status", "done"]);
        assert_eq!(done.as_array().unwrap().len(), 12);
        assert!(env.run(&["verify"]).status.success());
        // The ops name the agents by their X-Tracker-As.
        let log = s.get("/api/v1/log?item=1").json();
        let actor = log["ops"][1]["actor"].as_str().unwrap().to_string();
        assert!(actor == "agent-a" || actor == "agent-b", "{log}");
    }
}

/// A raw MCP session over Streamable HTTP: initialized, with the client's name `client`.
fn mcp_session(s: &Served, client: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {},
        "clientInfo": {"name": client, "version": "0"}}});
    let r = s
        .req("POST", "/mcp")
        .header("Accept", "application/json, text/event-stream")
        .json(init)
        .send();
    assert_eq!(r.status, 200, "{}", crate::common::text(&r.body));
    let session = r.header("mcp-session-id").expect("a session").to_string();
    let notified = s
        .req("POST", "/mcp")
        .header("Accept", "application/json, text/event-stream")
        .header("Mcp-Session-Id", &session)
        .header("Mcp-Protocol-Version", "2025-03-26")
        .json(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send();
    assert!(notified.status < 300, "{notified:?}");
    session
}

/// One tool call in `session`, with `X-Tracker-As: actor` if given; the JSON-RPC result.
fn mcp_call(s: &Served, session: &str, tool: &str, args: Value, actor: Option<&str>) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": tool, "arguments": args}});
    let mut r = s
        .req("POST", "/mcp")
        .header("Accept", "application/json, text/event-stream")
        .header("Mcp-Session-Id", session)
        .header("Mcp-Protocol-Version", "2025-03-26");
    if let Some(actor) = actor {
        r = r.header("X-Tracker-As", actor);
    }
    let r = r.json(body).send();
    let text = crate::common::text(&r.body);
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|l| l.contains("\"result\""))
        .unwrap_or_else(|| panic!("{text}"))
        .to_string();
    serde_json::from_str::<Value>(&data).unwrap()["result"].clone()
}

#[test]
fn a_read_only_server_refuses_writes_over_mcp_too() {
    let env = Env::new();
    env.json(&["new", "read me"]);
    let s = Served::start(&env.db, &["--read-only"]);
    let session = mcp_session(&s, "raw");
    let shown = mcp_call(&s, &session, "show", json!({"item": "1"}), None);
    assert_eq!(shown["structuredContent"]["title"], "read me", "{shown}");
    let refused = mcp_call(&s, &session, "new", json!({"title": "no"}), None);
    assert_eq!(refused["isError"], true, "{refused}");
    assert_eq!(
        refused["structuredContent"]["error"]["kind"], "forbidden",
        "{refused}"
    );
    assert_eq!(
        env.json(&["list", "--status", "all"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Over `/mcp` each call acts as its own `X-Tracker-As` (it was fixed by a session's first
/// call), a bad one is refused on every call (it was ignored), and a client's name no actor may
/// have is made one (control characters dropped, cut to 200 bytes) rather than failing calls
/// that name their actor in the header anyway.
#[test]
fn over_mcp_each_call_acts_as_its_own_header_and_a_bad_one_is_refused() {
    let env = Env::new();
    let s = Served::start(&env.db, &[]);
    let odd = format!("{}\u{7}", "x".repeat(300));
    let session = mcp_session(&s, &odd);
    let made = |actor: Option<&str>| {
        let r = mcp_call(&s, &session, "new", json!({"title": "t"}), actor);
        assert_eq!(r["isError"], false, "{r}");
    };
    made(Some("alice"));
    made(Some("bob"));
    made(None);
    let refused = mcp_call(&s, &session, "new", json!({"title": "t"}), Some("a\tb"));
    assert_eq!(refused["isError"], true, "{refused}");
    assert_eq!(refused["structuredContent"]["error"]["kind"], "invalid");
    let actors: Vec<String> = s.get("/api/v1/log").json()["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["actor"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actors, ["alice", "bob", &"x".repeat(200)]);
}

/// A soak: clients create, claim and finish items for a bounded time while the server is killed
/// with SIGKILL under load and started again; every acknowledged change is there afterwards,
/// and `verify` passes.
#[test]
fn a_server_killed_under_load_loses_nothing_it_acknowledged() {
    use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
    use std::sync::{Arc, Mutex};
    for env in Env::each() {
        let mut served = Some(Served::start(&env.db, &[]));
        let port = Arc::new(AtomicU16::new(served.as_ref().unwrap().port));
        let stop = Arc::new(AtomicBool::new(false));
        let created = Arc::new(Mutex::new(Vec::new()));
        let finished = Arc::new(Mutex::new(Vec::new()));
        let clients: Vec<_> = (0..6)
            .map(|i| {
                let (port, stop) = (port.clone(), stop.clone());
                let (created, finished) = (created.clone(), finished.clone());
                std::thread::spawn(move || {
                    // Bounded in count as well as in time.
                    for n in 0..400 {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let s = Served::at(port.load(Ordering::SeqCst));
                        let actor = format!("soak-{i}");
                        let Some(r) = s.try_post(
                            "/api/v1/items",
                            &actor,
                            json!({"title": format!("soak {i}.{n}")}),
                        ) else {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            continue;
                        };
                        if r.status == 201 {
                            created
                                .lock()
                                .unwrap()
                                .push(r.json()["id"].as_str().unwrap().to_string());
                        }
                        let Some(c) =
                            s.try_post("/api/v1/claim-next", &actor, json!({"ttl": "1m"}))
                        else {
                            continue;
                        };
                        if c.status != 200 {
                            continue;
                        }
                        let item = c.json();
                        let path = format!("/api/v1/items/{}/done", item["num"]);
                        let body = json!({"token": item["claim"]["token"]});
                        if let Some(d) = s.try_post(&path, &actor, body) {
                            if d.status == 200 {
                                finished
                                    .lock()
                                    .unwrap()
                                    .push(item["id"].as_str().unwrap().to_string());
                            }
                        }
                    }
                })
            })
            .collect();
        for _ in 0..2 {
            // Wait for load, then kill the server in the middle of it.
            let before = created.lock().unwrap().len();
            let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while created.lock().unwrap().len() < before + 30 && std::time::Instant::now() < end {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let mut s = served.take().unwrap();
            s.child.kill().unwrap(); // SIGKILL
            s.child.wait().unwrap();
            drop(s);
            let again = Served::start(&env.db, &[]);
            port.store(again.port, Ordering::SeqCst);
            served = Some(again);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
        drop(served);
        let verify = env.run(&["verify"]);
        assert!(
            verify.status.success(),
            "{}: {}",
            env.backend,
            crate::common::text(&verify.stdout)
        );
        let all = env.json(&["list", "--status", "all"]);
        let status_of = |id: &str| {
            all.as_array()
                .unwrap()
                .iter()
                .find(|i| i["id"] == id)
                .map(|i| i["status"].as_str().unwrap().to_string())
        };
        let created = created.lock().unwrap();
        let finished = finished.lock().unwrap();
        assert!(
            created.len() >= 60 && !finished.is_empty(),
            "{} {}",
            created.len(),
            finished.len()
        );
        for id in created.iter() {
            assert!(
                status_of(id).is_some(),
                "{}: acknowledged {id} is gone",
                env.backend
            );
        }
        for id in finished.iter() {
            assert_eq!(
                status_of(id).as_deref(),
                Some("done"),
                "{}: {id}",
                env.backend
            );
        }
        eprintln!(
            "soak ({}): {} created, {} done, server killed twice",
            env.backend,
            created.len(),
            finished.len()
        );
    }
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// A client that opens the event stream and never reads it makes the server keep a bounded
/// number of ops, each of bounded size: 400 ops of 200 KB bodies (80 MB of op JSON) leave the
/// server's memory far below that, and once the client reads, it gets every op all the same.
#[test]
fn a_client_that_never_reads_its_event_stream_does_not_grow_the_servers_memory() {
    let env = Env::new();
    let s = Served::start(&env.db, &[]);
    let mut idle = s.req("GET", "/api/v1/events").stream();
    assert_eq!(idle.status, 200);
    new_item(&s, "warm up");
    let before = rss(s.child.id());
    let body = "x".repeat(200_000);
    for i in 0..400 {
        let r = s.post(
            "/api/v1/items",
            "ana",
            json!({"title": format!("big {i}"), "body": body}),
        );
        assert_eq!(r.status, 201);
    }
    let grown = rss(s.child.id()).saturating_sub(before);
    assert!(grown < 48 << 20, "the server grew by {} MB", grown >> 20);
    // The stream still works: every op comes, in order, none skipped (those the server did not
    // keep for it are read from the log as the client takes them), a large one without its
    // changes.
    let (mut seqs, mut omitted) = (Vec::new(), 0);
    while seqs.len() < 401 {
        let (name, data) = idle.next().expect("the stream ended");
        assert_eq!(name, "op", "{data}");
        let op: Value = serde_json::from_str(&data).unwrap();
        seqs.push(op["seq"].as_u64().unwrap());
        if op["changes_omitted"] == true {
            assert_eq!(op["changes"], json!([]));
            omitted += 1;
        }
    }
    assert_eq!(seqs, (1..=401).collect::<Vec<u64>>());
    assert!(omitted >= 1, "every 200 KB op was sent whole");
}

/// `--tls-cert`/`--tls-key`: the server speaks HTTPS (a real TLS client checks the certificate
/// and the address it names), announces an https URL, and refuses a file that holds no
/// certificate with exit 2 before it listens.
#[test]
fn with_a_certificate_the_server_speaks_https() {
    let env = Env::new();
    env.json(&["new", "over tls"]);
    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    let Ok(made) = made else {
        assert!(std::env::var_os("CI").is_none(), "CI must have openssl");
        eprintln!("SKIPPED: no openssl to make a certificate");
        return;
    };
    assert!(made.status.success(), "{}", text(&made.stderr));
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    // A key given as the certificate: refused, naming the file.
    let out = env.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        k,
        "--tls-key",
        k,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("key.pem"),
        "{}",
        text(&out.stderr)
    );
    let mut child = env
        .cmd(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            c,
            "--tls-key",
            k,
        ])
        .env("TRACKER_SERVE_TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    let _ = std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    assert!(first.starts_with("https://127.0.0.1:"), "{first:?}");
    let port = first["https://127.0.0.1:".len()..]
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let client = format!(
        "import json, ssl, http.client\n\
         ctx = ssl.create_default_context(cafile={c:?})\n\
         conn = http.client.HTTPSConnection('127.0.0.1', {port}, context=ctx, timeout=10)\n\
         conn.request('GET', '/api/v1/items?status=all', headers={{'Authorization': 'Bearer {TOKEN}'}})\n\
         r = conn.getresponse()\n\
         print(r.status, json.loads(r.read())['items'][0]['title'])\n\
         for origin in ['https://127.0.0.1:{port}', 'http://127.0.0.1:{port}']:\n\
         \x20   conn.request('POST', '/api/v1/items', body=json.dumps({{'title': 'from ' + origin}}), headers={{'Authorization': 'Bearer {TOKEN}', 'X-Tracker-As': 'ana', 'Origin': origin}})\n\
         \x20   r = conn.getresponse(); r.read()\n\
         \x20   print(r.status)\n"
    );
    let got = crate::common::command("python3")
        .args(["-c", &client])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(got.status.success(), "{}", text(&got.stderr));
    // The server's own pages are https: that origin writes, the plain-HTTP one is another's.
    assert_eq!(
        text(&got.stdout).split_whitespace().collect::<Vec<_>>(),
        ["200", "over", "tls", "201", "403"]
    );
}
