//! A PostgreSQL server of one test's own, for the tests that restart or stop it (the shared
//! server of `.ci/postgres.sh` serves every other test at once and must not be disturbed).
//! Started from `PG_BIN` (exported by `.ci/postgres.sh`), else the newest
//! `/usr/lib/postgresql/*/bin`; stopped, and continued first if stopped, when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

fn bin_dir() -> Option<PathBuf> {
    if let Some(b) = std::env::var_os("PG_BIN").filter(|b| !b.is_empty()) {
        return Some(PathBuf::from(b));
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

/// Runs a PostgreSQL program as the `postgres` user when we are root (initdb refuses root).
fn as_postgres(program: &Path) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Server {
    /// A new, running server; `None` (skipped loudly) where PostgreSQL is not installed,
    /// outside CI.
    pub fn start() -> Option<Server> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the PostgreSQL fault tests: install PostgreSQL"
            );
            eprintln!("SKIPPED: PostgreSQL fault test (no PostgreSQL installed)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        if unsafe { libc::geteuid() } == 0 {
            let ok = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let data = dir.path().join("data");
        let out = as_postgres(&bin.join("initdb"))
            .args(["-N", "-U", "postgres", "-A", "trust", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {:?}", out);
        let port = free_port();
        let server = Server { dir, bin, port };
        let opts = format!(
            "-k {} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off",
            server.dir.path().display()
        );
        server.pg_ctl(&["-l", &server.log(), "-o", &opts, "start"]);
        Some(server)
    }

    /// The URL of its `postgres` database as the superuser, over TCP, without TLS.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    fn log(&self) -> String {
        self.dir.path().join("server.log").display().to_string()
    }

    fn pg_ctl(&self, args: &[&str]) {
        let out = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-w")
            .args(args)
            // Not pipes: the server it starts would hold them open, and reading them to their
            // end would wait for the server to exit.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(out.success(), "pg_ctl {args:?} failed; see {}", self.log());
    }

    /// The shell command that restarts it (for a test's helper process to run).
    pub fn restart_command(&self) -> String {
        let pre = if unsafe { libc::geteuid() } == 0 {
            "runuser -u postgres -- "
        } else {
            ""
        };
        format!(
            "{pre}{} -D {} -w -m fast restart >/dev/null 2>&1",
            self.bin.join("pg_ctl").display(),
            self.dir.path().join("data").display()
        )
    }

    /// Restarts it (fast shutdown: every session is ended), and waits until it accepts again.
    pub fn restart(&self) {
        self.pg_ctl(&["-m", "fast", "restart"]);
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> i32 {
        let text = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).unwrap();
        text.lines().next().unwrap().trim().parse().unwrap()
    }

    /// Sends the postmaster a signal (SIGSTOP: it accepts connections into its backlog and
    /// never answers them).
    pub fn signal(&self, sig: i32) {
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A stopped postmaster cannot be shut down: continue it first.
        unsafe { libc::kill(self.pid(), libc::SIGCONT) };
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
