//! PostgreSQL benchmark (issue 20): whole `tracker` processes and `tracker mcp` servers on a
//! PostgreSQL server, every figure beside its anchors from the same run: the file backend doing
//! the same work, pgbench running the same design in raw SQL (benches/pgbench-same-design.sql
//! through benches/peer-pgbench.sh), and `psql` starting and connecting. Prints the README's
//! PostgreSQL table. Runs only when `TRACKER_BENCH_PG` names a server:
//!
//!     TRACKER_BENCH_PG=postgres://postgres@localhost:5432/postgres cargo bench --bench pg
//!
//! Each part works in a schema of its own (`?options=-csearch_path%3D...`), dropped at the end,
//! so the role needs CREATE on the database. Sizes (defaults take about four minutes on main of
//! 2026-12-01, most of it the PostgreSQL import): `BENCH_PG_IMPORT` items imported (20000),
//! `BENCH_PG_DRAIN` items drained by 8 CLI workers and again by 8 MCP servers (1000),
//! `BENCH_PG_ROUNDS` samples of each command's latency (30), `BENCH_PG_SECONDS` for each pgbench
//! run (10). Needs `psql` and `pgbench` (PostgreSQL's client tools).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

const TRACKER: &str = env!("CARGO_BIN_EXE_tracker");
const WORKERS: usize = 8;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The server, and the schemas this run made on it (dropped when it ends, even by a panic).
struct Server {
    base: String,
    schemas: std::cell::RefCell<Vec<String>>,
}

impl Server {
    /// A URL whose search_path is a new, empty schema of its own.
    fn schema(&self, part: &str) -> String {
        let name = format!("bench_{}_{part}", std::process::id());
        psql(
            &self.base,
            &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"),
        );
        self.schemas.borrow_mut().push(name.clone());
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{name}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for name in self.schemas.borrow().iter() {
            psql(&self.base, &format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        }
    }
}

fn psql(url: &str, sql: &str) -> String {
    let mut c = Command::new("psql");
    c.args([
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
        url,
    ]);
    timed(c, &[0]).0.trim().to_string()
}

fn tracker(db: impl AsRef<OsStr>, args: &[&str]) -> Command {
    let mut c = Command::new(TRACKER);
    c.arg("--db")
        .arg(db)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("TRACKER_AS");
    c
}

/// Runs a command, checks it exited as expected, returns its stdout and wall time.
fn timed(mut c: Command, ok: &[i32]) -> (String, Duration) {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = c.output().expect("spawn");
    let took = start.elapsed();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        ok.contains(&code),
        "{c:?} exited {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), took)
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn num_and_token(out: &str) -> (String, String) {
    let v: Value = serde_json::from_str(out).unwrap();
    (v["num"].to_string(), v["claim"]["token"].to_string())
}

/// A JSON Lines export of `n` open items (benches/common), as `tracker import` takes it.
fn write_items(path: &Path, n: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    common::write_seed(&mut f, n).unwrap();
    f.flush().unwrap();
}

/// `init`, then `import` of the export `file`; returns how long the import took.
fn import(db: &str, file: &Path) -> Duration {
    timed(tracker(db, &["init"]), &[0]);
    timed(tracker(db, &["import", file.to_str().unwrap()]), &[0]).1
}

/// `WORKERS` threads, each running `claim --next` + `done --token` as whole processes until the
/// queue is empty; checks every one of `n` items was done once; returns commands per second.
fn cli_drain(db: &str, n: u64) -> f64 {
    let (commands, done) = (AtomicU64::new(0), AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let (commands, done) = (&commands, &done);
            s.spawn(move || {
                let who = format!("w{w}");
                loop {
                    let next = tracker(db, &["--json", "--as", &who, "claim", "--next"]);
                    let (out, _) = timed(next, &[0, 4]);
                    commands.fetch_add(1, Ordering::Relaxed);
                    if out.is_empty() {
                        break;
                    }
                    let (num, token) = num_and_token(&out);
                    let args = ["--as", &who, "done", &num, "--token", &token];
                    timed(tracker(db, &args), &[0]);
                    commands.fetch_add(1, Ordering::Relaxed);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(done.into_inner(), n, "every item done exactly once");
    commands.into_inner() as f64 / start.elapsed().as_secs_f64()
}

/// One `tracker mcp` server, driven as its client over stdio (newline-delimited JSON-RPC).
struct Mcp {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    id: u64,
}

impl Mcp {
    fn start(db: &str, who: &str) -> Mcp {
        let mut child = tracker(db, &["--as", who, "mcp"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tracker mcp");
        let to = child.stdin.take().unwrap();
        let from = BufReader::new(child.stdout.take().unwrap());
        let mut m = Mcp {
            child,
            to,
            from,
            id: 0,
        };
        m.rpc(
            "initialize",
            json!({"protocolVersion": "2025-03-26", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "1"}}),
        );
        m
    }

    fn rpc(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let request = json!({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params});
        writeln!(self.to, "{request}").unwrap();
        self.to.flush().unwrap();
        loop {
            let mut line = String::new();
            assert!(
                self.from.read_line(&mut line).unwrap() > 0,
                "the server closed"
            );
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == self.id {
                return v["result"].clone();
            }
        }
    }

    /// A tool's structured result, or its error's JSON.
    fn call(&mut self, name: &str, args: Value) -> Result<Value, Value> {
        let r = self.rpc("tools/call", json!({"name": name, "arguments": args}));
        let content = r["structuredContent"].clone();
        if r["isError"] == true {
            Err(content)
        } else {
            Ok(content)
        }
    }

    fn stop(mut self) {
        drop(self.to);
        self.child.wait().unwrap();
    }
}

/// `WORKERS` MCP servers (started before the clock), each driven by a thread through
/// `claim_next` + `done` until the queue is empty; returns calls per second.
fn mcp_drain(db: &str, n: u64) -> f64 {
    let servers: Vec<Mcp> = (0..WORKERS)
        .map(|w| Mcp::start(db, &format!("m{w}")))
        .collect();
    let (calls, done) = (AtomicU64::new(0), AtomicU64::new(0));
    let start = Instant::now();
    let servers: Vec<Mcp> = std::thread::scope(|s| {
        let handles: Vec<_> = servers
            .into_iter()
            .map(|mut m| {
                let (calls, done) = (&calls, &done);
                s.spawn(move || {
                    loop {
                        let claimed = m.call("claim_next", json!({}));
                        calls.fetch_add(1, Ordering::Relaxed);
                        let item = match claimed {
                            Ok(item) => item,
                            Err(e) if e["error"]["code"] == 4 => break,
                            Err(e) => panic!("claim_next: {e}"),
                        };
                        let args = json!({"item": item["num"].to_string(),
                                          "token": item["claim"]["token"]});
                        m.call("done", args).unwrap_or_else(|e| panic!("done: {e}"));
                        calls.fetch_add(1, Ordering::Relaxed);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    m
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let rate = calls.into_inner() as f64 / start.elapsed().as_secs_f64();
    assert_eq!(done.into_inner(), n, "every item done exactly once");
    servers.into_iter().for_each(Mcp::stop);
    rate
}

/// pgbench's rate in transactions per second for the same-design script, 8 clients, in a
/// schema of its own; `reconnect` opens a new connection for every transaction (`-C`).
fn pgbench(url: &str, seconds: u64, reconnect: bool) -> f64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer-pgbench.sh");
    // More open items than any run claims, so no client finds the queue empty.
    let mut init = Command::new(&script);
    init.args([url, "init", "300000"]);
    timed(init, &[0]);
    let mut c = Command::new(&script);
    c.args([url, "run", &WORKERS.to_string(), &seconds.to_string()]);
    if reconnect {
        c.arg("-C");
    }
    let (out, _) = timed(c, &[0]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("pgbench printed {out:?}"))
}

/// Per-command medians in milliseconds: `new`, `show`, `claim --next` + `done`.
#[derive(Default)]
struct Latency {
    new: Vec<Duration>,
    show: Vec<Duration>,
    claim_done: Vec<Duration>,
}

impl Latency {
    fn round(&mut self, db: &str) {
        let (out, t) = timed(tracker(db, &["--json", "new", "benchmark item"]), &[0]);
        self.new.push(t);
        let v: Value = serde_json::from_str(&out).unwrap();
        let num = v["num"].to_string();
        self.show.push(timed(tracker(db, &["show", &num]), &[0]).1);
        let next = tracker(db, &["--json", "--as", "lat", "claim", "--next"]);
        let (out, claim) = timed(next, &[0]);
        let (num, token) = num_and_token(&out);
        let args = ["--as", "lat", "done", &num, "--token", &token];
        let (_, done) = timed(tracker(db, &args), &[0]);
        self.claim_done.push(claim + done);
    }
}

/// Rounds in which PostgreSQL, the file and `psql -c 'select 1'` each take a turn, so the
/// figures compare runs that saw the same machine weather.
fn latencies(pg: &str, file: &str, base: &str, rounds: u64) -> (Latency, Latency, Vec<Duration>) {
    let (mut on_pg, mut on_file, mut psql_1) = (Latency::default(), Latency::default(), vec![]);
    timed(tracker(pg, &["init"]), &[0]);
    timed(tracker(file, &["init"]), &[0]);
    for _ in 0..rounds {
        let mut c = Command::new("psql");
        c.args(["-X", "-q", "-c", "select 1", base]);
        psql_1.push(timed(c, &[0]).1);
        on_pg.round(pg);
        on_file.round(file);
    }
    (on_pg, on_file, psql_1)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "not met"
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes; the benchmark only runs under `cargo bench`.
    }
    let Some(base) = std::env::var("TRACKER_BENCH_PG")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        eprintln!("SKIPPED: set TRACKER_BENCH_PG=postgres://... to run the PostgreSQL benchmark");
        return;
    };
    let (n_import, n_drain) = (
        knob("BENCH_PG_IMPORT", 20_000),
        knob("BENCH_PG_DRAIN", 1000),
    );
    let (rounds, seconds) = (knob("BENCH_PG_ROUNDS", 30), knob("BENCH_PG_SECONDS", 10));
    let server = Server {
        base: base.clone(),
        schemas: Default::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    let file_db = |name: &str| dir.path().join(name).to_str().unwrap().to_string();

    eprintln!("import of {n_import} items: file, then PostgreSQL");
    let export = dir.path().join("import.jsonl");
    write_items(&export, n_import);
    let file_import = import(&file_db("import.redb"), &export);
    let pg_import = import(&server.schema("import"), &export);
    let rate = |d: Duration| n_import as f64 / d.as_secs_f64();

    eprintln!("8-worker CLI drains of {n_drain} items: file, then PostgreSQL");
    let seed = dir.path().join("drain.jsonl");
    write_items(&seed, n_drain);
    let file = file_db("drain.redb");
    import(&file, &seed);
    let file_drain = cli_drain(&file, n_drain);
    let pg = server.schema("drain");
    import(&pg, &seed);
    let pg_drain = cli_drain(&pg, n_drain);

    eprintln!("pgbench, 8 clients, {seconds} s with -C and {seconds} s persistent");
    let pgb_url = server.schema("pgbench");
    let pgb_connect = pgbench(&pgb_url, seconds, true);
    let pgb_persistent = pgbench(&pgb_url, seconds, false);

    eprintln!("MCP drains of {n_drain} items, 8 servers: file, then PostgreSQL");
    let file = file_db("mcp.redb");
    import(&file, &seed);
    let file_mcp = mcp_drain(&file, n_drain);
    let pg = server.schema("mcp");
    import(&pg, &seed);
    let pg_mcp = mcp_drain(&pg, n_drain);

    eprintln!("{rounds} rounds of single commands");
    let (on_pg, on_file, psql_1) = latencies(
        &server.schema("latency"),
        &file_db("latency.redb"),
        &base,
        rounds,
    );
    let psql_1 = median_ms(psql_1);

    println!("\n| measure | PostgreSQL | file backend | pgbench, psql | goal (issue 20) |");
    println!("|---|---|---|---|---|");
    println!(
        "| `import` of {n_import} items | {:.0} items/s ({:.1} s) | {:.0} items/s | | ≥ 10,000 items/s: {} |",
        rate(pg_import),
        pg_import.as_secs_f64(),
        rate(file_import),
        verdict(rate(pg_import) >= 10_000.0)
    );
    println!(
        "| 8-worker CLI drain of {n_drain} items (`claim --next` + `done`) | {pg_drain:.0} commands/s | {file_drain:.0} commands/s | -C: {pgb_connect:.0} tx/s; persistent: {pgb_persistent:.0} tx/s | ≥ pgbench -C: {}; ≥ half the file's: {} |",
        verdict(pg_drain >= pgb_connect),
        verdict(pg_drain * 2.0 >= file_drain)
    );
    println!(
        "| 8 `tracker mcp` servers draining {n_drain} items | {pg_mcp:.0} calls/s | {file_mcp:.0} calls/s | persistent: {pgb_persistent:.0} tx/s | ≥ half pgbench persistent: {} |",
        verdict(pg_mcp * 2.0 >= pgb_persistent)
    );
    for (name, pg, file) in [
        ("`new`", on_pg.new, on_file.new),
        ("`show`", on_pg.show, on_file.show),
        (
            "`claim --next` + `done`",
            on_pg.claim_done,
            on_file.claim_done,
        ),
    ] {
        println!(
            "| {name}, median of {rounds} | {:.1} ms | {:.1} ms | `psql -c 'select 1'`: {psql_1:.1} ms | |",
            median_ms(pg),
            median_ms(file)
        );
    }
    let show = |name: &str| psql(&base, &format!("SHOW {name}"));
    println!(
        "\nserver: {}, PostgreSQL {}, fsync {}, synchronous_commit {}",
        redact(&base),
        show("server_version"),
        show("fsync"),
        show("synchronous_commit")
    );
}

/// The URL without a password, for the record.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if url[s + 3..at].contains(':') => {
            let colon = s + 3 + url[s + 3..at].find(':').unwrap();
            format!("{}:***{}", &url[..colon], &url[at..])
        }
        _ => url.to_string(),
    }
}
