//! Command-level benchmark: whole `tracker` processes, side by side with `/bin/true`, a Rust
//! program that does nothing (`benches/programs/noop.rs`), a bare redb program that makes one
//! durable write the way every tracker write must (`benches/programs/bare_redb.rs`), and the
//! sqlite3 peer script (`benches/peer-sqlite.sh`), interleaved round by round so that the ratios
//! hold on a noisy machine. Also calls per second through one `tracker mcp` server against whole
//! processes doing the same work. Prints the README's Performance tables.
//!
//!     cargo bench --bench cli                     # 1,000,000 items (a few minutes)
//!     BENCH_ITEMS=100000 cargo bench --bench cli  # quicker
//!
//! Medians are reported; absolute times on shared machines are noisy, ratios less so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

const TRACKER: &str = env!("CARGO_BIN_EXE_tracker");
const ROUNDS: usize = 60;

/// One of the floor programs in benches/programs, built as an example with the same profile as
/// `tracker` (`cargo test` builds them; so does this benchmark when they are missing).
fn floor_program(name: &str) -> PathBuf {
    let dir = Path::new(TRACKER).parent().unwrap().join("examples");
    let path = dir.join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--example",
                "noop",
                "--example",
                "bare-redb",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo");
        assert!(status.success(), "building the floor programs failed");
    }
    path
}

fn peer_script() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer-sqlite.sh");
    let has_sqlite = Command::new("sqlite3").arg("-version").output().is_ok();
    (p.exists() && has_sqlite).then_some(p)
}

fn tracker(db: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(TRACKER);
    c.arg("--db")
        .arg(db)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("TRACKER_AS");
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn peer(script: &Path, db: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("bash");
    c.arg(script).arg(db).args(args);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs a command, checks it exited as expected, returns its stdout and wall time.
fn timed(mut c: Command, ok: &[i32]) -> (String, Duration) {
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

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn json_field(s: &str, path: &[&str]) -> u64 {
    let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
    for p in path {
        v = v[*p].take();
    }
    v.as_u64().unwrap_or_else(|| panic!("{path:?} in {s}"))
}

/// A JSON Lines export of `n` open items, as `tracker import` takes it.
fn write_items(path: &Path, n: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    common::write_seed(&mut f, n).unwrap();
    f.flush().unwrap();
}

fn init_with(db: &Path, dir: &Path, n: u64) -> Duration {
    timed(tracker(db, &["init"]), &[0]);
    if n == 0 {
        return Duration::ZERO;
    }
    let file = dir.join(format!("items-{n}.jsonl"));
    write_items(&file, n);
    let (_, took) = timed(tracker(db, &["import", file.to_str().unwrap()]), &[0]);
    std::fs::remove_file(file).unwrap();
    took
}

#[derive(Default)]
struct Samples {
    truth: Vec<Duration>,
    noop: Vec<Duration>,
    bare_write: Vec<Duration>,
    status: Vec<Duration>,
    new: Vec<Duration>,
    claim: Vec<Duration>,
    next: Vec<Duration>,
    done: Vec<Duration>,
    show: Vec<Duration>,
    ready20: Vec<Duration>,
    peer_new: Vec<Duration>,
    peer_next: Vec<Duration>,
    peer_done: Vec<Duration>,
}

/// Every tracker command once on `db`; `existing` items are spread over for `claim ITEM`.
fn tracker_round(db: &Path, existing: u64, round: u64, s: &mut Samples) {
    let (out, t) = timed(tracker(db, &["--json", "new", "benchmark item"]), &[0]);
    s.new.push(t);
    let fresh = json_field(&out, &["num"]).to_string();
    // `claim ITEM` on an existing item spread over the file, then done with its token. Seeded
    // items have priority num % 5; those at 4 come last for `claim --next`, so never collide.
    let target = if existing >= 500 {
        (round * 7919) % (existing / 5) * 5 + 4
    } else {
        fresh.parse().unwrap()
    };
    let target = target.to_string();
    let (out, t) = timed(
        tracker(db, &["--json", "--as", "bench", "claim", &target]),
        &[0],
    );
    s.claim.push(t);
    let token = json_field(&out, &["claim", "token"]).to_string();
    let (_, t) = timed(
        tracker(db, &["--as", "bench", "done", &target, "--token", &token]),
        &[0],
    );
    s.done.push(t);
    let (_, t) = timed(tracker(db, &["--as", "nexter", "claim", "--next"]), &[0]);
    s.next.push(t);
    let (_, t) = timed(tracker(db, &["show", &fresh]), &[0]);
    s.show.push(t);
    let (_, t) = timed(tracker(db, &["list", "--ready", "--limit", "20"]), &[0]);
    s.ready20.push(t);
    let (_, t) = timed(tracker(db, &["status"]), &[0]);
    s.status.push(t);
}

/// The sqlite3 peer's commands once.
fn peer_round(script: &Path, pdb: &Path, s: &mut Samples) {
    s.peer_new
        .push(timed(peer(script, pdb, &["new", "benchmark item"]), &[0]).1);
    s.peer_new
        .push(timed(peer(script, pdb, &["new", "benchmark item"]), &[0]).1);
    let (out, t) = timed(peer(script, pdb, &["claim-next", "w"]), &[0]);
    s.peer_next.push(t);
    let mut parts = out.trim().split('|');
    let (num, tok) = (
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
    );
    s.peer_done
        .push(timed(peer(script, pdb, &["done", &num, &tok]), &[0]).1);
}

/// Rounds in which `/bin/true`, the empty file, the big file and the peer each take a turn, so
/// every ratio compares runs that saw the same machine weather.
fn measure(
    small_db: &Path,
    big_db: &Path,
    big: u64,
    peer_db: Option<(&Path, &Path)>,
    bare_db: &Path,
) -> (Samples, Samples) {
    let (mut small, mut large) = (Samples::default(), Samples::default());
    let (noop, bare) = (floor_program("noop"), floor_program("bare-redb"));
    for round in 0..ROUNDS as u64 {
        small.truth.push(timed(Command::new("/bin/true"), &[0]).1);
        small.noop.push(timed(Command::new(&noop), &[0]).1);
        let mut write = Command::new(&bare);
        write.arg(bare_db);
        small.bare_write.push(timed(write, &[0]).1);
        tracker_round(small_db, 0, round, &mut small);
        tracker_round(big_db, big, round, &mut large);
        if let Some((script, pdb)) = peer_db {
            peer_round(script, pdb, &mut small);
        }
    }
    (small, large)
}

/// Claims the next item for worker `w`: its number and token, or `None` when nothing is left.
type ClaimNext = Arc<dyn Fn(usize) -> Option<(String, String)> + Send + Sync>;
/// Finishes item `num` with `token` for worker `w`.
type Finish = Arc<dyn Fn(&str, &str, usize) + Send + Sync>;

/// 8 workers drain `n` items with claim --next + done --token; returns commands per second.
fn drain(n: u64, workers: usize, run: ClaimNext, finish: Finish) -> f64 {
    let commands = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (run, finish, commands, done) =
                (run.clone(), finish.clone(), commands.clone(), done.clone());
            std::thread::spawn(move || loop {
                let claimed = run(w);
                commands.fetch_add(1, Ordering::Relaxed);
                let Some((num, token)) = claimed else { break };
                finish(&num, &token, w);
                commands.fetch_add(1, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(
        done.load(Ordering::Relaxed),
        n,
        "every item done exactly once"
    );
    commands.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The same work, `new` + `claim_next` + `done` for `n` items, through one `tracker mcp` server
/// (newline-delimited JSON-RPC on its stdin and stdout, as MCP's stdio transport is) and as
/// whole `tracker` processes, each on a file of its own. Returns calls per second of each.
fn mcp_against_cli(dir: &Path, n: usize) -> (f64, f64) {
    use serde_json::{json, Value};
    use std::io::{BufRead, BufReader};
    let db = dir.join("mcp.redb");
    init_with(&db, dir, 0);
    let mut server = Command::new(TRACKER)
        .arg("--db")
        .arg(&db)
        .args(["--as", "bench", "mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tracker mcp");
    let mut to = server.stdin.take().unwrap();
    let mut from = BufReader::new(server.stdout.take().unwrap());
    let mut id = 0u64;
    let mut rpc = |method: &str, params: Value| -> Value {
        id += 1;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(to, "{request}").unwrap();
        to.flush().unwrap();
        loop {
            let mut line = String::new();
            assert!(from.read_line(&mut line).unwrap() > 0, "the server closed");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v["result"].clone();
            }
        }
    };
    rpc(
        "initialize",
        json!({"protocolVersion": "2025-03-26", "capabilities": {},
               "clientInfo": {"name": "bench", "version": "1"}}),
    );
    let mut call = |name: &str, args: Value| -> Value {
        let r = rpc("tools/call", json!({"name": name, "arguments": args}));
        assert_ne!(r["isError"], true, "{name}: {r}");
        r["structuredContent"].clone()
    };
    let start = Instant::now();
    for i in 0..n {
        call("new", json!({"title": format!("job {i}")}));
        let item = call("claim_next", json!({}));
        call(
            "done",
            json!({"item": item["num"].to_string(), "token": item["claim"]["token"]}),
        );
    }
    let mcp_rate = (3 * n) as f64 / start.elapsed().as_secs_f64();
    drop(to);
    server.wait().unwrap();

    let db = dir.join("cli-same-work.redb");
    init_with(&db, dir, 0);
    let start = Instant::now();
    for i in 0..n {
        timed(
            tracker(&db, &["--as", "bench", "new", &format!("job {i}")]),
            &[0],
        );
        let (out, _) = timed(
            tracker(&db, &["--json", "--as", "bench", "claim", "--next"]),
            &[0],
        );
        let (num, token) = (
            json_field(&out, &["num"]).to_string(),
            json_field(&out, &["claim", "token"]).to_string(),
        );
        timed(
            tracker(&db, &["--as", "bench", "done", &num, "--token", &token]),
            &[0],
        );
    }
    let cli_rate = (3 * n) as f64 / start.elapsed().as_secs_f64();
    (mcp_rate, cli_rate)
}

fn peak_rss_of(mut c: Command) -> (Duration, u64) {
    c.stdout(Stdio::null());
    let start = Instant::now();
    let child = c.spawn().unwrap();
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // Reaped by wait4 below (for its rusage), so the handle must not wait again.
    std::mem::forget(child);
    let mut status = 0;
    // SAFETY: wait4 on our own child with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    (
        start.elapsed(),
        u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes; the benchmark only runs under `cargo bench`.
    }
    let big: u64 = std::env::var("BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let script = peer_script();
    eprintln!(
        "benchmarking in {} with {big} items; {ROUNDS} rounds",
        dir.path().display()
    );

    let small_db = dir.path().join("small.redb");
    init_with(&small_db, dir.path(), 0);
    for _ in 0..ROUNDS * 2 {
        timed(tracker(&small_db, &["new", "ready for --next"]), &[0]);
    }
    let peer_db = dir.path().join("peer.db");
    if let Some(s) = &script {
        timed(peer(s, &peer_db, &["init"]), &[0]);
    }
    let big_db = dir.path().join("big.redb");
    let import_time = init_with(&big_db, dir.path(), big);
    let bare_db = dir.path().join("bare.redb");
    let (mut small, mut large) = measure(
        &small_db,
        &big_db,
        big,
        script.as_deref().map(|s| (s, peer_db.as_path())),
        &bare_db,
    );
    let (mcp_rate, cli_rate) = mcp_against_cli(dir.path(), 300);

    // Export of the big file: throughput and peak memory.
    let export_path = dir.path().join("export.json");
    let (export_time, export_rss) = peak_rss_of({
        let mut c = tracker(&big_db, &["export", "-o", export_path.to_str().unwrap()]);
        c.stderr(Stdio::null());
        c
    });
    let file_size = std::fs::metadata(&big_db).unwrap().len();
    let json_size = std::fs::metadata(&export_path).unwrap().len();

    // Contention: 1, 2, 4 and 8 workers drain 2,000 items each time, tracker and sqlite3 peer.
    let drain_n = 2000;
    let mut drains: Vec<(usize, f64, Option<f64>)> = Vec::new();
    for workers in [1usize, 2, 4, 8] {
        let db = Arc::new(dir.path().join(format!("drain-{workers}.redb")));
        init_with(&db, dir.path(), drain_n);
        let (d1, d2) = (db.clone(), db.clone());
        let tracker_rate = drain(
            drain_n,
            workers,
            Arc::new(move |w| {
                let who = format!("w{w}");
                let (out, _) = timed(
                    tracker(&d1, &["--json", "--as", &who, "claim", "--next"]),
                    &[0, 4],
                );
                (!out.is_empty()).then(|| {
                    (
                        json_field(&out, &["num"]).to_string(),
                        json_field(&out, &["claim", "token"]).to_string(),
                    )
                })
            }),
            Arc::new(move |num, token, w| {
                let who = format!("w{w}");
                timed(
                    tracker(&d2, &["--as", &who, "done", num, "--token", token]),
                    &[0],
                );
            }),
        );
        let peer_rate = script.as_ref().map(|s| {
            let pdb = Arc::new(dir.path().join(format!("peer-drain-{workers}.db")));
            let s = Arc::new(s.clone());
            timed(peer(&s, &pdb, &["init"]), &[0]);
            let mut c = Command::new("sqlite3");
            c.arg(&*pdb).arg(format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<{drain_n}) INSERT INTO items(title) SELECT 'job '||i FROM n;"
            ));
            timed(c, &[0]);
            let (s1, s2, p1, p2) = (s.clone(), s.clone(), pdb.clone(), pdb.clone());
            drain(
                drain_n,
                workers,
                Arc::new(move |w| {
                    let (out, _) = timed(peer(&s1, &p1, &["claim-next", &format!("w{w}")]), &[0, 4]);
                    let mut parts = out.trim().split('|');
                    match (parts.next(), parts.next()) {
                        (Some(n), Some(t)) if !n.is_empty() => Some((n.to_string(), t.to_string())),
                        _ => None,
                    }
                }),
                Arc::new(move |num, token, _| {
                    timed(peer(&s2, &p2, &["done", num, token]), &[0]);
                }),
            )
        });
        drains.push((workers, tracker_rate, peer_rate));
    }

    let truth = median(&mut small.truth);
    let bare = median(&mut small.bare_write);
    println!("\n| command (empty file) | median | / `/bin/true` | / bare redb write |");
    println!("|---|---|---|---|");
    let floor_row = |name: &str, d: Duration| {
        println!(
            "| {name} | {:.2} ms | {:.2}x | {:.2}x |",
            ms(d),
            ms(d) / ms(truth),
            ms(d) / ms(bare)
        );
    };
    floor_row("`/bin/true`", truth);
    floor_row("Rust no-op", median(&mut small.noop));
    floor_row("bare redb write (open, commit, close)", bare);
    for (name, samples) in [
        ("`show`", &mut small.show),
        ("`list --ready --limit 20`", &mut small.ready20),
        ("`status`", &mut small.status),
        ("`new`", &mut small.new),
        ("`claim --next`", &mut small.next),
        ("`done --token`", &mut small.done),
    ] {
        floor_row(name, median(&mut samples.clone()));
    }
    println!();
    println!(
        "- one `tracker mcp` server: {mcp_rate:.0} calls/s; whole processes: {cli_rate:.0} \
         commands/s ({:.1}x), the same 900 calls (new, claim_next, done, 300 times)",
        mcp_rate / cli_rate
    );
    let row = |name: &str,
               e: &mut Vec<Duration>,
               b: &mut Vec<Duration>,
               peer: Option<&mut Vec<Duration>>| {
        let (e, b) = (median(e), median(b));
        let peer = peer
            .filter(|p| !p.is_empty())
            .map(|p| format!("{:.2} ms", ms(median(p))))
            .unwrap_or_else(|| "–".into());
        println!(
            "| `{name}` | {:.2} ms | {:.1}x | {:.2} ms | {:.2}x | {peer} |",
            ms(e),
            ms(e) / ms(truth),
            ms(b),
            ms(b) / ms(e)
        );
    };
    println!(
        "\n| command | empty file | / `/bin/true` | {big} items | big / empty | sqlite3 peer |"
    );
    println!("|---|---|---|---|---|---|");
    println!("| `/bin/true` | {:.2} ms | 1.0x | | | |", ms(truth));
    row(
        "new",
        &mut small.new,
        &mut large.new,
        Some(&mut small.peer_new),
    );
    row("claim ITEM", &mut small.claim, &mut large.claim, None);
    row(
        "claim --next",
        &mut small.next,
        &mut large.next,
        Some(&mut small.peer_next),
    );
    row(
        "done --token",
        &mut small.done,
        &mut large.done,
        Some(&mut small.peer_done),
    );
    row("show", &mut small.show, &mut large.show, None);
    row(
        "list --ready --limit 20",
        &mut small.ready20,
        &mut large.ready20,
        None,
    );
    row("status", &mut small.status, &mut large.status, None);
    println!();
    println!("| workers draining {drain_n} items (claim --next + done --token) | tracker commands/s | sqlite3 peer commands/s | ratio |");
    println!("|---|---|---|---|");
    for (workers, rate, peer_rate) in &drains {
        let (p, r) = match peer_rate {
            Some(p) => (format!("{p:.0}"), format!("{:.2}x", rate / p)),
            None => ("–".into(), "–".into()),
        };
        println!("| {workers} | {rate:.0} | {p} | {r} |");
    }
    println!();
    println!(
        "- export of {big} items: {:.1} s, {:.0} items/s, peak memory {:.0} MB",
        export_time.as_secs_f64(),
        big as f64 / export_time.as_secs_f64(),
        export_rss as f64 / 1e6
    );
    println!(
        "- file size with {big} items: {:.0} MB, JSON export {:.0} MB ({:.2}x); import took {:.1} s",
        file_size as f64 / 1e6,
        json_size as f64 / 1e6,
        file_size as f64 / json_size as f64,
        import_time.as_secs_f64()
    );
}
