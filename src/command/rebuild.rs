//! `rebuild`: recompute the tables and indexes from the ops log.

use crate::audit::VerifyReport;
use crate::error::Result;
use crate::store::Storage;
use crate::tracker::Tracker;

/// A rebuild; it takes no arguments.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request;

/// Rebuilds; the report counts the ops replayed and the items and leases written.
///
/// # Errors
///
/// As [`Tracker::rebuild`].
pub fn exec<S: Storage>(t: &Tracker<S>, _: Request) -> Result<VerifyReport> {
    t.rebuild()
}
