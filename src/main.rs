//! The `tracker` binary: see `tracker --help` and README.md.

mod cli;
mod mcp;
mod serve;
mod turns;

/// How `tracker serve` was asked to serve: the command line fills it in, the HTTP server
/// (src/serve) reads it, and neither imports the other.
pub struct HttpOptions {
    /// Where to listen (`--listen`).
    pub listen: std::net::SocketAddr,
    /// Refuse every write (`--read-only`).
    pub read_only: bool,
    /// Further names the `Host` header may carry (`--allow-host`).
    pub allow_hosts: Vec<String>,
    /// Serve HTTPS with this certificate chain and private key, both PEM (`--tls-cert`,
    /// `--tls-key`).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Connections served at once (`--max-connections`).
    pub max_connections: usize,
}

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

/// The last panic: its message, and where it was raised.
static PANIC: Mutex<Option<(String, String)>> = Mutex::new(None);

fn main() {
    // `tracker list | head -1`: a closed pipe ends the process quietly, as for cat or grep,
    // instead of failing a print.
    // SAFETY: restoring the default disposition of a signal has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // Panics are reported in one line of ours, never as Rust's "panicked at" dump. Inside a
    // transaction the library turns them into errors (damage when raised in redb, a bug
    // otherwise); one that escapes, say from redb closing the file, is classified the same way
    // here.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut m) = PANIC.lock() {
            *m = Some((message, place));
        }
    }));
    let code = match catch_unwind(AssertUnwindSafe(|| cli::main(mcp::serve, serve::serve))) {
        Ok(code) => code,
        Err(_) => {
            let (message, place) = PANIC
                .lock()
                .ok()
                .and_then(|m| m.clone())
                .unwrap_or_default();
            if tracker::store::redb::is_redb_source(&place) {
                eprintln!(
                    "tracker: data error: the tracker file is damaged (redb could not parse its \
                     pages: {message}); restore it from a backup or an export"
                );
                6
            } else {
                eprintln!(
                    "tracker: error: internal error: a bug in tracker ({message}, at {place}); \
                     please report it"
                );
                1
            }
        }
    };
    std::process::exit(code);
}
