//! `upgrade`: migrate a tracker of an older format to this binary's, in one transaction.

use crate::error::Result;
use crate::store::{Storage, FORMAT_VERSION};
use crate::tracker::Tracker;

/// An upgrade; it takes no arguments.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request;

/// What an upgrade did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upgraded {
    /// The format before (the same as `to` when there was nothing to do).
    pub from: u64,
    /// The format now: this binary's.
    pub to: u64,
}

impl Upgraded {
    /// Whether anything was migrated.
    pub fn upgraded(self) -> bool {
        self.from != self.to
    }
}

/// Migrates the tracker, or does nothing when it is already of this format.
///
/// # Errors
///
/// As [`Tracker::upgrade`].
pub fn exec<S: Storage>(t: &Tracker<S>, _: Request) -> Result<Upgraded> {
    let from = t.upgrade()?;
    Ok(Upgraded {
        from: from.unwrap_or(FORMAT_VERSION),
        to: FORMAT_VERSION,
    })
}
