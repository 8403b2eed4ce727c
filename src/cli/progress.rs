//! Progress on stderr for long work, shown only when stderr is a terminal, so pipes, logs and
//! `--json` consumers never see it.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar for work with a known total (set on the first tick).
pub fn bar(what: &str) -> Option<ProgressBar> {
    on_terminal().then(|| {
        let b = ProgressBar::new(0);
        let style =
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        b.set_style(style);
        b.set_message(what.to_string());
        b
    })
}

/// A spinner for work whose size is not known up front.
pub fn spinner(what: &str) -> Option<ProgressBar> {
    on_terminal().then(|| {
        let s = ProgressBar::new_spinner();
        s.set_message(what.to_string());
        s.enable_steady_tick(Duration::from_millis(120));
        s
    })
}

pub fn set(bar: &Option<ProgressBar>, n: u64, total: u64) {
    if let Some(b) = bar {
        if b.length() != Some(total) {
            b.set_length(total);
        }
        // Updating every item would cost more than the export itself.
        if n.is_multiple_of(4096) || n == total {
            b.set_position(n);
        }
    }
}

pub fn finish(bar: Option<ProgressBar>) {
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}
