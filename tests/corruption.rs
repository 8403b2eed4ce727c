//! A corruption campaign: a real tracker file, damaged in many seeded ways, and the commands a
//! user would run on it.
//!
//! The promise this file proves, copy by copy:
//!
//! 1. Every command ends with exit 0 or 6, in bounded time: never a panic (exit 101, or "panicked
//!    at" on stderr), never "internal error", never a hang, never a signal.
//! 2. A command that fails leaves the file byte-for-byte as it found it: a refusal writes
//!    nothing, so running more commands on a damaged file cannot destroy what is still readable.
//! 3. A write that succeeds does not make the file worse: if `verify` accepted the copy before the
//!    write, it accepts it after, and every read that worked before still works.
//!
//! (2) is stronger than "no panic": redb writes its header when it opens a file for writing and
//! records its allocator state when it closes one, so a command that meets damage must stop redb
//! from writing anything more, not only report the damage.
//!
//! Damage is seeded by a small deterministic PRNG, so a failing seed reproduces with
//! `CORRUPTION_SEEDS=<seed> cargo test --release --test integration corruption::`. Seeds that
//! once failed are kept in `REGRESSIONS` and run every time.

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{text, Env};

/// Seeds that once broke a promise above; each runs on every test run.
/// 35..1322 wrote to the file when `new` or `claim` met damage (redb's open had set its recovery
/// flag); 364 also grew the file before meeting it.
const REGRESSIONS: &[u64] = &[
    35, 36, 37, 48, 50, 56, 70, 88, 99, 119, 126, 262, 364, 812, 1157, 1322,
];

/// How many random seeds a run tries beside the regressions: about 30 s alone on 2 cores in release.
const SEEDS: u64 = 400;

/// SplitMix64: tiny, and good enough to spread offsets over a file.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One damaged copy of `original`, and a name for it that says what was done.
fn damage(original: &[u8], seed: u64) -> (String, Vec<u8>) {
    let mut rng = Rng(seed);
    let len = original.len() as u64;
    let mut b = original.to_vec();
    match rng.below(4) {
        // Single-bit flips, a quarter of them in the first page, where redb keeps its header.
        0 | 1 => {
            let at = if rng.below(4) == 0 {
                rng.below(4096.min(len))
            } else {
                rng.below(len)
            };
            let bit = rng.below(8);
            b[usize::try_from(at).unwrap()] ^= 1 << bit;
            (format!("seed {seed}: flip bit {bit} at {at}"), b)
        }
        // Truncations, half of them at a page boundary.
        2 => {
            let mut cut = rng.below(len);
            if rng.below(2) == 0 {
                cut &= !4095;
            }
            b.truncate(usize::try_from(cut).unwrap());
            (format!("seed {seed}: truncate to {cut}"), b)
        }
        // A zeroed 4 KiB page.
        _ => {
            let page = rng.below(len.div_ceil(4096));
            let start = usize::try_from(page * 4096).unwrap();
            let end = (start + 4096).min(b.len());
            b[start..end].fill(0);
            (format!("seed {seed}: zero page {page}"), b)
        }
    }
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// How long a command on a damaged copy may take before it counts as hung.
const HANG: Duration = Duration::from_secs(30);

/// Runs one command on `db` with a deadline: a hang is killed and reported.
fn run(db: &Path, args: &[&str]) -> Result<Ran, String> {
    let mut child = common::tracker()
        .arg("--db")
        .arg(db)
        .arg("--lock-timeout")
        .arg("2s")
        .args(args)
        .env("TRACKER_AS", "campaign")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Far beyond a command's lock timeout (2 s): a hang, not a machine loaded by the tests
    // running beside this one (300 processes at once in leases::), is what it catches.
    let end = Instant::now() + HANG;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{args:?} hung for {HANG:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().unwrap();
    Ok(Ran {
        code: out.status.code(),
        stdout: text(&out.stdout),
        stderr: text(&out.stderr),
    })
}

/// A tracker like a real one: 150 items over five labels, dependencies, claims, finished work.
fn build_original(env: &Env) -> Vec<u8> {
    for i in 1..=150u32 {
        let label = format!("area{}", i % 5);
        let title = format!("item {i}");
        let body = "details ".repeat((i % 7) as usize);
        let mut args = vec!["new", &title, "--label", &label, "--body", &body];
        let blocker = i.saturating_sub(3).to_string();
        if i % 10 == 0 {
            args.extend(["--blocked-by", &blocker]);
        }
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    for i in 0..10 {
        let holder = format!("w{i}");
        env.json(&["--as", &holder, "claim", "--next"]);
    }
    for n in ["1", "2", "3"] {
        env.json(&["--as", "w0", "done", n, "--force"]);
    }
    assert_eq!(env.code(&["verify"]).0, 0);
    std::fs::read(&env.db).unwrap()
}

const READS: &[&[&str]] = &[
    &["show", "1"],
    &["list", "--status", "all"],
    &["export"],
    &["verify"],
];
const WRITES: &[&[&str]] = &[&["new", "x"], &["claim", "--next"]];

/// Runs one command on the copy and checks promises 1 and 2.
fn step(
    copy: &Path,
    name: &str,
    args: &[&str],
    tally: &mut Tally,
    broken: &mut Vec<String>,
) -> Option<Ran> {
    let before = std::fs::read(copy).unwrap_or_default();
    let ran = match run(copy, args) {
        Ok(r) => r,
        Err(hang) => {
            broken.push(format!("{name}: {hang}"));
            return None;
        }
    };
    let code = ran.code;
    tally.note(args[0], code);
    if code == Some(101) || ran.stderr.contains("panicked at") {
        tally.panics += 1;
    }
    if ran.stderr.contains("redb could not parse its pages") {
        tally.redb_panics += 1;
    }
    if !matches!(code, Some(0) | Some(6))
        || ran.stderr.contains("panicked at")
        || ran.stderr.contains("a bug")
    {
        broken.push(format!(
            "{name}: {args:?} exit {code:?}: {}",
            ran.stderr.trim()
        ));
    }
    if code != Some(0) && std::fs::read(copy).unwrap_or_default() != before {
        tally.written_on_failure += 1;
        // CORRUPTION_DUMP=DIR keeps both versions for a closer look.
        if let Some(dir) = std::env::var_os("CORRUPTION_DUMP") {
            let dir = Path::new(&dir);
            let _ = std::fs::write(dir.join("before.redb"), &before);
            let _ = std::fs::copy(copy, dir.join("after.redb"));
        }
        broken.push(format!(
            "{name}: {args:?} failed (exit {code:?}) but changed the file: {}",
            ran.stderr.trim()
        ));
    }
    Some(ran)
}

/// Runs the commands on one damaged copy and returns every broken promise.
fn check_copy(copy: &Path, name: &str, bytes: &[u8], tally: &mut Tally) -> Vec<String> {
    std::fs::write(copy, bytes).unwrap();
    let mut broken = Vec::new();
    let mut reads_before = Vec::new();
    for args in READS {
        reads_before.push(step(copy, name, args, tally, &mut broken).and_then(|r| r.code));
    }
    for w in WRITES {
        let Some(ran) = step(copy, name, w, tally, &mut broken) else {
            continue;
        };
        if ran.code != Some(0) {
            continue;
        }
        for (args, before) in READS.iter().zip(&reads_before) {
            let Some(after) = step(copy, name, args, tally, &mut broken) else {
                continue;
            };
            if *before == Some(0) && after.code != Some(0) {
                tally.worsened += 1;
                broken.push(format!(
                    "{name}: {args:?} worked before {w:?} succeeded, and fails after it: {}{}",
                    after.stdout.lines().take(3).collect::<Vec<_>>().join(" | "),
                    after.stderr.trim()
                ));
            }
        }
    }
    broken
}

#[derive(Default)]
struct Tally {
    outcomes: std::collections::BTreeMap<String, u32>,
    panics: u32,
    /// Panics raised inside redb and reported as damage: expected, and counted for the record.
    redb_panics: u32,
    written_on_failure: u32,
    worsened: u32,
}
impl Tally {
    fn note(&mut self, cmd: &str, code: Option<i32>) {
        *self
            .outcomes
            .entry(format!("{cmd} exit {code:?}"))
            .or_insert(0) += 1;
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(list) = std::env::var("CORRUPTION_SEEDS") {
        return list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("CORRUPTION_SEEDS: comma-separated numbers")
            })
            .collect();
    }
    let count = std::env::var("CORRUPTION_COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(SEEDS);
    REGRESSIONS.iter().copied().chain(1..=count).collect()
}

#[test]
fn damaged_copies_exit_0_or_6_and_a_failed_command_never_writes() {
    let env = Env::new();
    let original = build_original(&env);
    let copy = env.path("damaged.redb");
    let mut tally = Tally::default();
    let mut broken = Vec::new();
    let seeds = seeds();
    let started = Instant::now();
    for &seed in &seeds {
        let (name, bytes) = damage(&original, seed);
        broken.extend(check_copy(&copy, &name, &bytes, &mut tally));
    }
    eprintln!(
        "{} copies of a {} byte file in {:.1}s; panics {} (inside redb, reported as damage: {}), failed commands that wrote {}, \
         successful writes that made reads fail {}; outcomes {:?}",
        seeds.len(),
        original.len(),
        started.elapsed().as_secs_f64(),
        tally.panics,
        tally.redb_panics,
        tally.written_on_failure,
        tally.worsened,
        tally.outcomes
    );
    assert!(
        broken.is_empty(),
        "{} broken promises:\n{}",
        broken.len(),
        broken.join("\n")
    );
}
