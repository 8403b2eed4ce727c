//! `tracker`: a work tracker for people and coding agents who share one backlog from many
//! terminals at once. The whole state lives in one redb file that many short-lived processes
//! open together (or in a PostgreSQL database, for agents on many machines).
//!
//! - Items are versioned: every change bumps `version` by one, and any change can be made
//!   conditional on the version (compare-and-swap), so a stale writer gets a conflict.
//! - Leases (claims) have a TTL, renewals, a fencing token per acquisition, and survive wall-clock
//!   steps; two workers never both own an item.
//! - Every change appends an op with a gapless sequence number in the same transaction, so the
//!   log can rebuild and verify the state.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracker::{ClaimOptions, Guard, ItemRef, NewItem, Tracker};
//!
//! let t = Tracker::init("demo.redb".as_ref(), Duration::from_secs(10))?;
//! let item = t.new_item(NewItem { title: "Write docs".into(), ..Default::default() }, &[], &Guard::default())?;
//! let r = ItemRef::Num(item.item.num);
//! let claimed = t.claim(&r, &ClaimOptions::default())?;
//! let token = claimed.claim.unwrap().token;
//! t.done(&r, &Guard { token: Some(token), ..Default::default() }, false)?;
//! # Ok::<(), tracker::Error>(())
//! ```
//!
//! Layering: transports (the `tracker` binary's command line and MCP server) -> [`command`] (one
//! request type and `exec` per command) -> `Tracker` (this API) -> `rules` (pure) and `store`
//! (the storage seam) -> `model` (plain data). README.md's "Architecture" section draws it.
//!
//! What an embedding program uses:
//!
//! - [`command`], the commands as the transports run them: a validated request each, and its
//!   `exec`;
//! - [`Tracker`], one call per command, with its options ([`ItemRef`], [`Guard`],
//!   [`ClaimOptions`], [`ListQuery`]) and results ([`ItemView`], [`ItemDetail`],
//!   [`board::Board`], [`metrics::Metrics`], [`audit::VerifyReport`], [`import::ImportReport`]);
//! - [`model`], the plain data items, leases and ops are made of;
//! - [`store`], the storage seam: [`RedbStore`] (a file), [`store::pg::PgStore`] (PostgreSQL),
//!   [`store::mem::MemStore`] (memory), or [`Backend`] to choose one at run time;
//! - [`clock`], [`durations`] (durations as people type them), [`rules`] (pure functions over the model), [`json`] (the JSON shapes the CLI and
//!   the MCP server print) and [`Error`].
//!
//! Items marked `#[doc(hidden)]` serve the `tracker` binary or this crate's tests and carry no
//! stability promise.

// Lints (missing docs, lossy casts, reading the wall clock) are set for every target in
// Cargo.toml's `[lints]` table and clippy.toml.

pub mod audit;
pub mod board;
pub mod clock;
pub mod command;
mod conflict;
pub mod durations;
pub mod error;
mod export;
// Internal to the `tracker` binary (its `run` command waits on a process group): no stability
// promise. `Actor`, the one type of it an embedder needs, is re-exported below.
#[doc(hidden)]
pub mod host;
pub mod import;
pub mod json;
#[cfg(test)]
mod layering;
mod leasing;
pub mod metrics;
pub mod model;
mod mutate;
mod plan;
pub mod rules;
pub mod store;
mod tracker;
mod txn;

pub use clock::{Clock, FakeClock, Now, SystemClock};
// Internal to the `tracker` binary (its human-readable `show` and `log`): no stability promise.
#[doc(hidden)]
pub use conflict::{describe_changes, describe_lease};
pub use error::{Error, Result};
pub use host::Actor;
pub use model::{
    Change, Comment, Item, ItemType, ItemView, Lease, NewItem, Op, OpKind, Patch, Status,
};
pub use plan::plan_ref;
pub use rules::plan::{PlanEntry, PlanRef};
pub use store::backend::{Backend, Target};
pub use store::redb::{Access, RedbStore};
pub use store::PlannedItem;
pub use tracker::{
    resolve, ClaimOptions, Guard, ItemDetail, ItemRef, ListQuery, Tracker, DEFAULT_TTL,
    GROUP_NOT_YET_KNOWN,
};
pub use txn::{IDEMPOTENCY_KEY_LIFETIME_MS, IDEMPOTENCY_KEY_MAX};
