//! The `tracker` binary: see `tracker --help` and README.md.

mod cli;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

fn main() {
    // `tracker list | head -1`: a closed pipe ends the process quietly, as for cat or grep,
    // instead of failing a print.
    // SAFETY: restoring the default disposition of a signal has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // A panic inside storage code (a damaged file) is turned into an error by the library; any
    // other panic is a bug, reported in one line rather than a backtrace dump.
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut m) = PANIC_MESSAGE.lock() {
            *m = Some(info.to_string());
        }
    }));
    let code = match catch_unwind(AssertUnwindSafe(cli::main)) {
        Ok(code) => code,
        Err(_) => {
            let msg = PANIC_MESSAGE
                .lock()
                .ok()
                .and_then(|m| m.clone())
                .unwrap_or_default();
            eprintln!("tracker: internal error (a bug; please report it): {msg}");
            1
        }
    };
    std::process::exit(code);
}
