//! Test harness: runs the built `tracker` binary as separate processes against a temp file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tracker")
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
        Env { dir, db }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--db")
            .arg(&self.db)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("TRACKER_AS")
            .env_remove("TRACKER_DB")
            .env_remove("TRACKER_TTL")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
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
