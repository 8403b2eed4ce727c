//! `config default-ttl`: show or set the tracker's default lease length.

use std::time::Duration;

use crate::error::Result;
use crate::store::redb::Access;
use crate::store::Storage;
use crate::tracker::Tracker;

/// Show the default lease length, or set it first.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request {
    /// The new default (already in the TTL range); `None` only shows it.
    pub set: Option<Duration>,
}

impl Request {
    /// How the tracker must be opened for this request.
    pub fn access(&self) -> Access {
        match self.set {
            Some(_) => Access::ReadWrite,
            None => Access::ReadOnly,
        }
    }
}

/// Sets the default if asked, and returns it as it now is.
///
/// # Errors
///
/// As [`Tracker::set_default_ttl`] and [`Tracker::default_ttl`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: Request) -> Result<Duration> {
    if let Some(ttl) = r.set {
        t.set_default_ttl(ttl)?;
    }
    t.default_ttl()
}
