//! `import`: merge an export into this tracker by ULID, all of it or nothing.

use std::io::{Read, Seek};

use crate::error::Result;
use crate::import::{ImportReport, Prefer};
use crate::store::Storage;
use crate::tracker::Tracker;

/// An import, validated.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// Which copy wins for items changed both here and in the export (neither: such
    /// conflicts refuse the whole import).
    pub prefer: Prefer,
}

/// Imports from `input`, which can be read again from where it is now (the write may have to
/// run again); the transport spools input that cannot.
///
/// # Errors
///
/// As [`Tracker::import_seekable`].
pub fn exec<S: Storage, R: Read + Seek>(
    t: &Tracker<S>,
    r: Request,
    input: &mut R,
) -> Result<ImportReport> {
    t.import_seekable(input, r.prefer)
}
