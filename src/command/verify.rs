//! `verify`: replay the ops log and check every invariant.

use crate::audit::VerifyReport;
use crate::error::{Error, Result};
use crate::store::Storage;
use crate::tracker::Tracker;

/// A verification; it takes no arguments.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request;

/// The report: what was replayed and every mismatch found.
///
/// # Errors
///
/// As [`Tracker::verify`]; mismatches are in the report (see [`mismatch`]).
pub fn exec<S: Storage>(t: &Tracker<S>, _: Request) -> Result<VerifyReport> {
    t.verify()
}

/// The failure a report with mismatches is (a data error, exit 6), once the report is shown.
pub fn mismatch(r: &VerifyReport) -> Option<Error> {
    let first = r.problems.first()?;
    Some(Error::Data(format!("verify found a mismatch: {first}")))
}
