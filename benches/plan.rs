//! `new --plan` against `import` of the same items (issue 22: a plan of 10,000 items takes at
//! most twice an import's time), as whole `tracker` processes on a file and, when
//! `TRACKER_BENCH_PG` names a server, on PostgreSQL:
//!
//!     cargo bench --bench plan
//!     TRACKER_BENCH_PG=postgres://postgres@localhost:5432/postgres cargo bench --bench plan
//!
//! Each run makes a fresh tracker (a file, or a schema of its own, dropped at the end). The
//! plan holds the same items as the import's export (benches/common: titles, priorities,
//! labels); a second plan gives them structure (every tenth an epic, its nine parts each
//! blocked by the one before), which an import of plain items has no counterpart for.
//! `BENCH_PLAN_ITEMS` items (10000), `BENCH_PLAN_ROUNDS` runs of each, the median kept (3).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const TRACKER: &str = env!("CARGO_BIN_EXE_tracker");

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `tracker --db DB ARGS`, checks it succeeded, returns its wall time.
fn timed(db: &str, args: &[&str]) -> Duration {
    let mut c = Command::new(TRACKER);
    c.arg("--db").arg(db).args(args);
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = c.output().expect("spawn");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn psql(url: &str, sql: &str) {
    let ok = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "SET client_min_messages = warning",
        ])
        .args(["-c", sql, url])
        .stdout(Stdio::null())
        .status()
        .expect("psql")
        .success();
    assert!(ok, "psql {sql}");
}

/// Where each run's fresh tracker lives.
enum Backend<'a> {
    File(&'a Path),
    Pg(&'a str),
}

impl Backend<'_> {
    /// A fresh, initialised tracker for run `name`.
    fn fresh(&self, name: &str) -> String {
        let db = match self {
            Backend::File(dir) => dir
                .join(format!("{name}.redb"))
                .to_str()
                .unwrap()
                .to_string(),
            Backend::Pg(base) => {
                let schema = format!("bench_plan_{}_{name}", std::process::id());
                psql(
                    base,
                    &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
                );
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}options=-csearch_path%3D{schema}")
            }
        };
        timed(&db, &["init"]);
        db
    }

    fn drop_all(&self, names: &[String]) {
        if let Backend::Pg(base) = self {
            for name in names {
                let schema = format!("bench_plan_{}_{name}", std::process::id());
                psql(base, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The median times of import, plain plan and structured plan on `backend`.
fn measure(backend: &Backend, files: &[(&str, &Path)], rounds: u64) -> Vec<Duration> {
    let mut names = Vec::new();
    let mut out = Vec::new();
    for (what, file) in files {
        let mut runs = Vec::new();
        for r in 0..rounds {
            let name = format!("{what}_{r}");
            let db = backend.fresh(&name);
            names.push(name);
            let file = file.to_str().unwrap();
            let args: &[&str] = if *what == "import" {
                &["import", file]
            } else {
                &["new", "--plan", file]
            };
            runs.push(timed(&db, args));
        }
        out.push(median(runs));
    }
    backend.drop_all(&names);
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes; the benchmark only runs under `cargo bench`.
    }
    let (n, rounds) = (
        knob("BENCH_PLAN_ITEMS", 10_000),
        knob("BENCH_PLAN_ROUNDS", 3),
    );
    let dir = tempfile::tempdir().unwrap();
    let write =
        |name: &str, f: fn(&mut std::io::BufWriter<std::fs::File>, u64) -> std::io::Result<()>| {
            let path = dir.path().join(name);
            let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
            f(&mut w, n).unwrap();
            w.flush().unwrap();
            path
        };
    let export = write("items.jsonl", common::write_seed);
    let plan = write("plan.json", write_plan);
    let tree = write("tree.json", write_structured_plan);
    let files = [
        ("import", export.as_path()),
        ("plan", plan.as_path()),
        ("tree", tree.as_path()),
    ];
    let mut rows = vec![("file", measure(&Backend::File(dir.path()), &files, rounds))];
    match std::env::var("TRACKER_BENCH_PG")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(base) => rows.push(("PostgreSQL", measure(&Backend::Pg(&base), &files, rounds))),
        None => eprintln!("PostgreSQL skipped: set TRACKER_BENCH_PG=postgres://... to include it"),
    }
    println!("\n| backend | `import` of {n} items | `new --plan` of the same {n} | ratio | plan as a tree (epics, parts, chains) | goal: plan ≤ 2x import |");
    println!("|---|---|---|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (backend, t) in rows {
        let ratio = ms(t[1]) / ms(t[0]);
        println!(
            "| {backend} | {:.0} ms | {:.0} ms | {ratio:.2}x | {:.0} ms | {} |",
            ms(t[0]),
            ms(t[1]),
            ms(t[2]),
            if ratio <= 2.0 { "met" } else { "not met" }
        );
    }
    println!("\nmedian of {rounds} runs each, every run on a fresh tracker, as whole processes");
}

/// Writes a plan (`new --plan`) of the same `n` items as [`write_seed`]: same titles,
/// priorities and labels, no structure, so a plan and an import make the same items.
pub fn write_plan(w: &mut impl Write, n: u64) -> std::io::Result<()> {
    writeln!(w, "{{\"items\": [")?;
    for i in 1..=n {
        let sep = if i == n { "" } else { "," };
        writeln!(w, "{{\"key\":\"k{i}\",\"title\":\"item number {i} of the big backlog\",\"priority\":{},\"labels\":[\"l{}\"]}}{sep}", i % 5, i % 10)?;
    }
    writeln!(w, "]}}")
}

/// The same `n` items as a tree: every tenth an epic, the nine after it its parts, each part
/// blocked by the one before it.
pub fn write_structured_plan(w: &mut impl Write, n: u64) -> std::io::Result<()> {
    writeln!(w, "{{\"items\": [")?;
    for i in 1..=n {
        let sep = if i == n { "" } else { "," };
        let epic = i - (i - 1) % 10;
        let structure = if i == epic {
            "\"type\":\"epic\"".to_string()
        } else if i == epic + 1 {
            format!("\"parent\":\"k{epic}\"")
        } else {
            format!("\"parent\":\"k{epic}\",\"blocked_by\":[\"k{}\"]", i - 1)
        };
        writeln!(w, "{{\"key\":\"k{i}\",\"title\":\"item number {i} of the big backlog\",\"priority\":{},\"labels\":[\"l{}\"],{structure}}}{sep}", i % 5, i % 10)?;
    }
    writeln!(w, "]}}")
}
