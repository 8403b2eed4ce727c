//! PostgreSQL under faults: a server that restarts under a long-lived handle, one that accepts
//! connections and never answers, one that is stopped. Each test that disturbs a server runs
//! one of its own (`common/pg_server.rs`), so the shared test server is left alone.

use crate::common;
use crate::common::pg_server;

use std::process::Command;
use std::time::Duration;

use crate::common::{run_bounded, text};
use pg_server::Server;
use serde_json::Value;
use tracker::store::pg::PgStore;
use tracker::{Actor, ClaimOptions, Guard, ItemRef, ListQuery, NewItem, Tracker};

/// Far beyond any bound under test: a command still running then is hung.
const HUNG: Duration = Duration::from_secs(40);

fn tracker_cmd(db: &str, args: &[&str]) -> Command {
    let mut c = common::tracker();
    c.arg("--db").arg(db).args(args);
    c
}

fn all_text(o: &std::process::Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

fn new_item(t: &Tracker<PgStore>, title: &str) -> u64 {
    t.new_item(
        NewItem {
            title: title.into(),
            ..Default::default()
        },
        &[],
        &Guard::default(),
    )
    .unwrap()
    .item
    .num
}

#[test]
fn a_library_tracker_keeps_working_and_renewing_after_the_server_restarts() {
    let Some(server) = Server::start() else {
        return;
    };
    let (store, _) = PgStore::init(&server.url(), Duration::from_secs(10)).unwrap();
    let t = Tracker::with_store(store).with_actor(Actor::named("agent"));
    let num = new_item(&t, "held across a restart");
    let claimed = t
        .claim(
            &ItemRef::Num(num),
            &ClaimOptions {
                ttl: Duration::from_secs(600),
                ..Default::default()
            },
        )
        .unwrap();
    let token = claimed.claim.as_ref().map(|l| l.token);
    server.restart();
    // The lease is renewed on a new connection: the agent keeps its item.
    let renewed = t
        .renew(
            &ItemRef::Num(num),
            None,
            &Guard {
                token,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("renew after the restart: {} ({e})", e.kind()));
    assert_eq!(renewed.claim.map(|l| l.token), token);
    // Reads and writes go on.
    new_item(&t, "made after the restart");
    assert_eq!(t.list(&ListQuery::default()).unwrap().len(), 2);
    // And again: every restart is survived, not only the first.
    server.restart();
    assert_eq!(t.list(&ListQuery::default()).unwrap().len(), 2);
}

#[test]
fn an_mcp_server_keeps_working_after_the_database_server_restarts() {
    if Command::new("python3")
        .args(["-c", "import mcp"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        assert!(std::env::var_os("CI").is_none(), "CI must have the MCP SDK");
        eprintln!("SKIPPED: the MCP Python SDK is not installed");
        return;
    }
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    let init = tracker_cmd(&url, &["init"]).output().unwrap();
    assert_eq!(init.status.code(), Some(0), "{}", all_text(&init));
    let mut client = common::command("python3");
    client
        .arg(format!(
            "{}/tests/mcp/client.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(common::bin())
        .arg(&url)
        .arg("restart")
        .env("TRACKER_TEST_RESTART", server.restart_command())
        .env("TRACKER_AS", "agent");
    let out = run_bounded(client, HUNG);
    assert!(out.status.success(), "client failed: {}", all_text(&out));
    let steps: std::collections::BTreeMap<String, Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["step"].as_str().unwrap().to_string(), v))
        .collect();
    for step in ["before", "claim", "renew", "after", "list"] {
        assert_eq!(steps[step]["is_error"], false, "{step}: {}", steps[step]);
    }
    assert_eq!(steps["after"]["structured"]["num"], 2);
    assert_eq!(
        steps["renew"]["structured"]["claim"]["token"],
        steps["claim"]["structured"]["claim"]["token"]
    );
}

#[test]
fn claim_wait_keeps_waiting_through_a_server_restart() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    for args in [
        &["init"][..],
        &["new", "wanted"],
        &["--as", "ana", "claim", "1", "--ttl", "3s"],
    ] {
        let out = tracker_cmd(&url, args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", all_text(&out));
    }
    let waiter = tracker_cmd(
        &url,
        &["--json", "--as", "bob", "claim", "1", "--wait", "30s"],
    )
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // bob is waiting for ana's lease to end (its first try was refused) when the server restarts.
    std::thread::sleep(Duration::from_millis(500));
    server.restart();
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["claim"]["holder"], "bob");
}

/// A TCP listener that accepts connections and never says a word: a black-holed proxy.
fn black_hole() -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        // Holds what it accepts (so nothing is closed) until the test process ends.
        for s in listener.incoming().flatten() {
            open.push(s);
        }
    });
    (port, held)
}

#[test]
fn a_server_that_accepts_and_never_answers_gives_exit_5_at_the_lock_timeout() {
    let (port, _held) = black_hole();
    for mode in ["disable", "prefer"] {
        let url = format!("postgres://tracker@127.0.0.1:{port}/work?sslmode={mode}");
        for args in [
            &["--lock-timeout", "2s", "list"][..],
            &["--json", "--lock-timeout", "2s", "init"],
        ] {
            let out = run_bounded(tracker_cmd(&url, args), HUNG);
            assert_eq!(
                out.status.code(),
                Some(5),
                "{mode} {args:?}: {}",
                all_text(&out)
            );
            assert!(
                all_text(&out).contains("did not answer"),
                "{}",
                all_text(&out)
            );
        }
    }
}

#[test]
fn a_stopped_server_gives_exit_5_at_the_lock_timeout_and_works_once_continued() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    let out = tracker_cmd(&url, &["init"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_text(&out));
    server.signal(libc::SIGSTOP);
    // Continued on the way out, even if an assertion fails (Drop continues it too).
    struct Cont<'a>(&'a Server);
    impl Drop for Cont<'_> {
        fn drop(&mut self) {
            self.0.signal(libc::SIGCONT);
        }
    }
    let cont = Cont(&server);
    let out = run_bounded(tracker_cmd(&url, &["--lock-timeout", "2s", "list"]), HUNG);
    assert_eq!(out.status.code(), Some(5), "{}", all_text(&out));
    let out = run_bounded(
        tracker_cmd(&url, &["--lock-timeout", "2s", "new", "x"]),
        HUNG,
    );
    assert_eq!(out.status.code(), Some(5), "{}", all_text(&out));
    drop(cont);
    let out = run_bounded(tracker_cmd(&url, &["--json", "list"]), HUNG);
    assert_eq!(out.status.code(), Some(0), "{}", all_text(&out));
    assert_eq!(
        text(&out.stdout).trim(),
        "[]",
        "the refused new made nothing"
    );
}
