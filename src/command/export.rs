//! `export`: a consistent JSON snapshot of the whole tracker.

use std::io::Write;
use std::path::PathBuf;

use crate::error::Result;
use crate::store::Storage;
use crate::tracker::Tracker;

/// An export, validated.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// JSON Lines (a header line, then one item per line) instead of one JSON document.
    pub jsonl: bool,
    /// Written to this file atomically (temporary file, fsync, rename); `None`: to the
    /// transport's output.
    pub output: Option<PathBuf>,
}

/// Writes the export to `r.output`, else to `out`; `progress` is told (items written, items in
/// all) as it goes. Returns how many items were written.
///
/// # Errors
///
/// As [`Tracker::export`] and [`Tracker::export_to_path`].
pub fn exec<S: Storage>(
    t: &Tracker<S>,
    r: &Request,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64> {
    match &r.output {
        Some(path) => t.export_to_path(path, r.jsonl, progress),
        None => t.export(out, r.jsonl, progress),
    }
}
