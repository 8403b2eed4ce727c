//! `status`: the board and what coordination cost.

use std::time::Duration;

use serde::Deserialize;

use super::{duration, Spelling};
use crate::board::Board;
use crate::clock::Now;
use crate::durations::Use;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::store::Storage;
use crate::tracker::Tracker;

/// Which stretch of the log the metrics count.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The last stretch of this length; `None`: the latest ops
    /// ([`RECENT_OPS`](crate::metrics::RECENT_OPS)).
    pub since: Option<Duration>,
}

/// The board and the metrics, with the time they were read at.
#[derive(Clone, Debug)]
pub struct Response {
    /// Counts by state, live and stale claims.
    pub board: Board,
    /// Lease events, refusals and times over the stretch asked for.
    pub metrics: Metrics,
    /// When the board was read.
    pub now: Now,
}

/// The JSON arguments of `status`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "StatusArgs")]
pub struct Args {
    /// Count lease events of this last stretch only, like "24h" (default: the latest 10,000 ops).
    since: Option<String>,
}

impl Args {
    /// The request these arguments make.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for a duration out of range.
    pub fn lower(self) -> Result<Request> {
        Ok(Request {
            since: duration(Spelling::Json, "since", self.since.as_deref(), Use::Window)?,
        })
    }
}

/// The board and the metrics.
///
/// # Errors
///
/// As [`Tracker::board`] and [`Tracker::metrics_over`].
pub fn exec<S: Storage>(t: &Tracker<S>, r: Request) -> Result<Response> {
    let board = t.board()?;
    let metrics = t.metrics_over(r.since)?;
    Ok(Response {
        board,
        metrics,
        now: t.now(),
    })
}
