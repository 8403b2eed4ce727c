//! Standard output, where every failed write is an error the user hears about (exit 1): a full
//! disk or a closed descriptor must not pass for success, and after a change it must not pass
//! for a failed change either. A closed pipe (`tracker list | head -1`) still ends the process
//! quietly, by SIGPIPE, as for cat or grep (see main.rs).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use tracker::{Error, Result};

/// Set when the process started with descriptor 1 closed (`tracker export >&-`).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Notes whether descriptor 1 is closed, at load time: Rust's start-up then fills a closed
/// standard descriptor with /dev/null (so no file we open can take its number), after which a
/// closed stdout looks like one that works and output would vanish with exit 0. An `.init_array`
/// entry runs before that start-up code, as std's own argument capture does on glibc.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static NOTE_CLOSED_STDOUT: extern "C" fn() = {
    extern "C" fn note() {
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
            STDOUT_CLOSED.store(true, Ordering::SeqCst);
        }
    }
    note
};

/// Standard output as a writer that reports a closed descriptor; unbuffered beyond std's own
/// line buffer, so wrap it in a BufWriter for long output and flush at the end.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        closed_check()?;
        std::io::stdout().lock().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        closed_check()?;
        std::io::stdout().lock().flush()
    }
}

fn closed_check() -> std::io::Result<()> {
    if STDOUT_CLOSED.load(Ordering::SeqCst) {
        return Err(std::io::Error::other("standard output is closed"));
    }
    Ok(())
}

/// The error for a failed write to standard output.
pub fn failed(e: std::io::Error) -> Error {
    Error::io("cannot write to standard output", e)
}

/// Writes `text` in full and flushes it.
pub fn text(text: &str) -> Result<()> {
    let mut out = Stdout;
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(failed)
}

/// One JSON document on one line.
pub fn json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut line = serde_json::to_vec(v).map_err(|e| Error::Internal(e.to_string()))?;
    line.push(b'\n');
    let mut out = Stdout;
    out.write_all(&line)
        .and_then(|()| out.flush())
        .map_err(failed)
}

/// A failure to print what a committed change did must not read as a failed change: the error
/// says the change was made (`what`, e.g. "created #3") and only its output was lost.
pub fn after_change(what: &str, printed: Result<()>) -> Result<()> {
    printed.map_err(|e| match e {
        Error::Io { source, .. } => Error::io(
            format!("{what}, but could not write the result to standard output"),
            source,
        ),
        other => other,
    })
}
