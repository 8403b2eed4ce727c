//! Test harness: runs the built `tracker` binary as separate processes against a temp file.
#![allow(dead_code)]

pub mod http;
pub mod pg_server;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub struct Env {
    pub dir: tempfile::TempDir,
    /// The tracker as `--db` takes it: a file path, or a PostgreSQL URL.
    pub db: PathBuf,
    /// "redb" or "postgres", for messages.
    pub backend: &'static str,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tracker")
}

/// What the tracker reads from its environment that the shell running the tests may have set
/// (its own variables, libpq's, the editor's, `NO_COLOR`): no test inherits any of them; a test
/// sets the ones it means. `TRACKER_ALLOW_NETWORK_FS` is inherited, for a temp dir on NFS.
pub const INHERITED: &[&str] = &[
    "TRACKER_AS",
    "TRACKER_DB",
    "TRACKER_TTL",
    "TRACKER_TOKEN",
    "TRACKER_SERVE_TOKEN",
    "TRACKER_ITEM",
    "TRACKER_NUM",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "EDITOR",
    "VISUAL",
    "NO_COLOR",
];

/// The one way a test starts the tracker, directly (`program` is [`bin`]) or under a program
/// that runs it (`unshare`, `faketime`, `sh`, the Python MCP client): none of [`INHERITED`],
/// `NO_COLOR=1`, stdin from /dev/null. The caller adds what it means on top.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    for var in INHERITED {
        c.env_remove(var);
    }
    c.env("NO_COLOR", "1").stdin(Stdio::null());
    c
}

/// `tracker` (the binary under test), as [`command`] builds it.
pub fn tracker() -> Command {
    command(bin())
}

/// `tracker --db DB ARGS`, as [`command`] builds it.
pub fn tracker_on(db: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
    let mut c = tracker();
    c.arg("--db").arg(db).args(args);
    c
}

impl Env {
    /// A fresh, initialised tracker.
    pub fn new() -> Env {
        let env = Env::empty();
        let out = env.run(&["init"]);
        assert_eq!(out.status.code(), Some(0), "init: {}", text(&out.stderr));
        env
    }

    /// A temp dir with no tracker file in it yet.
    pub fn empty() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.redb");
        Env {
            dir,
            db,
            backend: "redb",
        }
    }

    /// A fresh, initialised tracker in a schema of its own on the test PostgreSQL server
    /// (`TRACKER_TEST_PG`); `None`, with a loud message, when there is none outside CI.
    pub fn postgres() -> Option<Env> {
        let url = tracker::store::pg::test_schema_url()?;
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
            db: PathBuf::from(url),
            backend: "postgres",
        };
        let out = env.run(&["init"]);
        assert_eq!(out.status.code(), Some(0), "init: {}", text(&out.stderr));
        Some(env)
    }

    /// One fresh tracker on every backend: a redb file, and PostgreSQL when a test server is
    /// there (always in CI).
    pub fn each() -> Vec<Env> {
        let mut all = vec![Env::new()];
        all.extend(Env::postgres());
        all
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = tracker_on(&self.db, args);
        c.current_dir(self.dir.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs and expects exit 0; returns stdout parsed as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} failed: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: bad JSON ({e}): {}", text(&out.stdout)))
    }

    /// Runs and returns the exit code with stderr.
    pub fn code(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        (out.status.code().unwrap_or(-1), text(&out.stderr))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// JSON Lines output parsed line by line.
pub fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    text(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn file_bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// Runs `f` in one write transaction on the tracker file, behind the tracker's back: how tests
/// forge a damaged table or an extreme counter.
pub fn forge(db: &Path, f: impl FnMut(&mut dyn tracker::store::WriteTxn) -> tracker::Result<()>) {
    use tracker::store::Storage;
    let store = tracker::RedbStore::open(
        db,
        tracker::Access::ReadWrite,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    store.write(f).unwrap();
}

/// Changes item `num` in the items table (and its indexes) without an op: a table that no
/// longer agrees with the log.
pub fn forge_item(db: &Path, num: u64, change: impl Fn(&mut tracker::Item)) {
    forge(db, |t| {
        let id = t.id_by_num(num)?.unwrap();
        let old = t.item(id)?.unwrap();
        let mut forged = old.clone();
        change(&mut forged);
        t.put_item(Some(&old), &forged, true)
    });
}

/// Another process's writer, played by a thread: holds the file's write lock until `release`.
pub struct WriteLockHolder {
    release: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl WriteLockHolder {
    /// Returns once the lock is held.
    pub fn hold(db: &Path) -> WriteLockHolder {
        use tracker::store::{Storage, WriteTxn};
        let db = db.to_path_buf();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let store = tracker::RedbStore::open(
                &db,
                tracker::Access::ReadWrite,
                std::time::Duration::from_secs(5),
            )
            .unwrap();
            store
                .write(|_t: &mut dyn WriteTxn| {
                    ready_tx.send(()).unwrap();
                    let _ = held.recv_timeout(std::time::Duration::from_secs(10));
                    Ok(())
                })
                .unwrap();
        });
        ready.recv().unwrap();
        WriteLockHolder { release, thread }
    }

    pub fn release(self) {
        self.release.send(()).unwrap();
        self.thread.join().unwrap();
    }
}

/// Runs with a deadline: a hang is a failure, not a stuck test.
pub fn run_bounded(mut cmd: Command, limit: std::time::Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} hung for {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
