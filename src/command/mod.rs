//! The command layer: one file per command, under every transport (`init`, `edit`, `run`,
//! `completions`, `man` and `mcp` are the command line's own: a file, an editor, a process
//! group or the command line itself is what they work on). The command line
//! (`src/cli`), the MCP server (`src/mcp.rs`) and the coming HTTP server parse what they were
//! sent and render what comes back; everything between is here, so the same input gets the same
//! answer on every one of them. Each command file defines:
//!
//! - `Request`: what the command means, validated once (durations in their range, item
//!   references parsed, priorities in 0..=4, statuses known, guards gathered);
//! - `Args`, for the commands an agent can call: the JSON arguments as they arrive (an MCP
//!   tool's arguments, an HTTP body), with the JSON Schema the MCP tool list shows, and
//!   `Args::lower` into the `Request`. The command line lowers its clap arguments into the same
//!   `Request` with the same functions of this module ([`item_ref`], [`guard`], [`status`], ...);
//!   its durations and priorities are checked by clap with the library's own parsers;
//! - `exec(&Tracker, Request)`, which returns the command's response (an item, a list, a
//!   report) for the transport to render.
//!
//! The doc comment of an `Args` field is the description of the argument in the tool's input
//! schema, kept on one line (schemars keeps line breaks).
//!
//! The `Args` types keep the names the MCP server gave them before they moved here
//! (`#[serde(rename)]`): the name is the title of a tool's input schema and appears in
//! messages about arguments that do not fit it.
//!
//! Messages that name a field name it the transport's way ([`Spelling`]): `--wait` on the
//! command line, `wait` in JSON.
//!
//! [`COMMANDS`] is the table of every command: its name, what it is for, and which transports
//! offer it. The command line's help and man pages and the MCP tool list take their names and
//! summaries from it.

pub mod claim;
pub mod comment;
pub mod config;
pub mod dep;
pub mod done;
pub mod export;
pub mod import;
pub mod list;
pub mod log;
pub mod new_item;
pub mod plan;
pub mod rebuild;
pub mod release;
pub mod renew;
pub mod show;
pub mod status;
mod table;
pub mod update;
pub mod upgrade;
pub mod verify;

use std::time::Duration;

pub use table::{find, summary, tool_description, Command, Tool, Transports, COMMANDS};

use crate::durations::{self, Use};
use crate::error::{Error, Result};
use crate::host::Actor;
use crate::model::{ItemType, Status};
use crate::store::Storage;
use crate::tracker::{Guard, ItemRef, Tracker};

pub use crate::error::Spelling;

/// An item reference (`42`, `#42`, a ULID or a unique ULID prefix), the one parse every
/// transport uses. The message quotes the value and names no field: it reads the same on all.
///
/// # Errors
///
/// [`Error::Invalid`] for anything that is not a reference ([`ItemRef::parse`]).
pub fn item_ref(s: &str) -> Result<ItemRef> {
    ItemRef::parse(s).map_err(Error::Invalid)
}

/// The actor a caller names (`--as`, `TRACKER_AS`, an MCP client's name), given as `field`:
/// distinct, as a name of the caller's choosing is ([`Actor::named`]).
///
/// # Errors
///
/// [`Error::Invalid`] for a name [`rules::validate_actor_name`](crate::rules::validate_actor_name)
/// refuses.
pub fn named_actor(field: &str, name: &str) -> Result<Actor> {
    crate::rules::validate_actor_name(name)
        .map(Actor::named)
        .map_err(|why| Error::bad_field(field, why))
}

/// The actor an HTTP request names in `X-Tracker-As` (`bytes`, the header's value). A header
/// names but proves nothing, so the actor is not distinct: its leases are recognised by their
/// fencing tokens only. Bytes that are not UTF-8 are refused, not replaced: two different names
/// must never become one.
///
/// # Errors
///
/// [`Error::Invalid`] for bytes that are not UTF-8, control characters, or a name that
/// [`named_actor`] refuses.
pub fn header_actor(bytes: &[u8]) -> Result<Actor> {
    let field = "X-Tracker-As";
    let name = std::str::from_utf8(bytes).map_err(|_| Error::bad_field(field, "not UTF-8"))?;
    // The one control character a header can carry is a tab: refused since the API was built.
    if name.chars().any(char::is_control) {
        return Err(Error::bad_field(
            field,
            "control characters are not allowed in a name",
        ));
    }
    Ok(Actor {
        distinct: false,
        ..named_actor(field, name)?
    })
}

/// `T` (a command's JSON arguments) from the JSON object a transport received, checked first
/// against `schema`, `T`'s JSON Schema: an unknown or missing field is refused by name, worded
/// as on every transport; what still does not fit is refused as `mismatch` says.
///
/// # Errors
///
/// [`Error::Invalid`] for an unknown field, a missing one, or a value that does not fit.
pub fn from_object<T: serde::de::DeserializeOwned>(
    obj: serde_json::Map<String, serde_json::Value>,
    schema: &serde_json::Map<String, serde_json::Value>,
    mismatch: &str,
) -> Result<T> {
    use serde_json::Value;
    if let Some(known) = schema.get("properties").and_then(Value::as_object) {
        if let Some(k) = obj.keys().find(|k| !known.contains_key(*k)) {
            return Err(Error::unknown_field(k));
        }
    }
    let required = schema.get("required").and_then(Value::as_array);
    for field in required.into_iter().flatten().filter_map(Value::as_str) {
        if !obj.contains_key(field) {
            return Err(Error::missing_field(field));
        }
    }
    serde_json::from_value(Value::Object(obj))
        .map_err(|e| Error::Invalid(format!("{mismatch}: {e}")))
}

/// Several item references (`--blocked-by`, `blocked_by`), each as [`item_ref`].
///
/// # Errors
///
/// The first reference that is refused.
pub fn item_refs(refs: &[String]) -> Result<Vec<ItemRef>> {
    refs.iter().map(|r| item_ref(r)).collect()
}

/// A change's preconditions (`--if-version`, `--token`, `--idempotency-key` and the JSON
/// arguments of the same names), the one place they are gathered.
pub fn guard(
    if_version: Option<u64>,
    token: Option<u64>,
    idempotency_key: Option<String>,
) -> Guard {
    Guard {
        if_version,
        token,
        idempotency_key,
    }
}

/// A duration given as text for `field`, in the range of `what`, refused with the field named
/// the transport's way. (The command line checks its duration flags while parsing, with the
/// same [`durations::parse`].)
///
/// # Errors
///
/// [`Error::Invalid`] naming the field.
pub fn duration(
    spelling: Spelling,
    field: &str,
    s: Option<&str>,
    what: Use,
) -> Result<Option<Duration>> {
    s.map(|s| durations::parse_field(&spelling.name(field), s, what))
        .transpose()
}

/// A priority given for `field`: 0 (highest) to 4.
///
/// # Errors
///
/// [`Error::Invalid`] naming the field.
pub fn priority(spelling: Spelling, field: &str, p: Option<u8>) -> Result<Option<u8>> {
    p.map(|p| {
        crate::rules::validate_priority(p).map_err(|r| Error::bad_field(&spelling.name(field), r))
    })
    .transpose()
}

/// A status given for `field`: open, done or cancelled.
///
/// # Errors
///
/// [`Error::Invalid`] naming the field.
pub fn status_value(spelling: Spelling, field: &str, s: &str) -> Result<Status> {
    Status::parse(s).ok_or_else(|| {
        Error::bad_field(
            &spelling.name(field),
            format!("{s:?}: use open, done or cancelled"),
        )
    })
}

/// An item type given for `field`: task, bug, feature, chore or epic.
///
/// # Errors
///
/// [`Error::Invalid`] naming the field.
pub fn item_type(spelling: Spelling, field: &str, s: &str) -> Result<ItemType> {
    ItemType::parse(s).ok_or_else(|| {
        Error::bad_field(
            &spelling.name(field),
            format!("{s:?}: use task, bug, feature, chore or epic"),
        )
    })
}

/// A status filter given for `field`: a status, or `all` (`None`).
///
/// # Errors
///
/// [`Error::Invalid`] naming the field.
pub fn status_filter(spelling: Spelling, field: &str, s: &str) -> Result<Option<Status>> {
    match s {
        "all" => Ok(None),
        s => Status::parse(s).map(Some).ok_or_else(|| {
            Error::bad_field(
                &spelling.name(field),
                format!("{s:?}: use open, done, cancelled or all"),
            )
        }),
    }
}

/// The length of a new lease: `given` (`--ttl`, `ttl`), else `$TRACKER_TTL`, else the tracker's
/// default-ttl (15m unless set). The same on every transport: a server's environment sets the
/// default of the claims made through it.
///
/// # Errors
///
/// [`Error::Invalid`] for a `TRACKER_TTL` that is not a lease length; the store's errors.
pub fn lease_ttl<S: Storage>(t: &Tracker<S>, given: Option<Duration>) -> Result<Duration> {
    if let Some(ttl) = given {
        return Ok(ttl);
    }
    match std::env::var("TRACKER_TTL") {
        Ok(v) if !v.trim().is_empty() => durations::parse_field("TRACKER_TTL", &v, Use::Ttl),
        _ => t.default_ttl(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_spelled_as_each_transport_names_them() {
        for (json, flag) in [
            ("wait", "--wait"),
            ("if_version", "--if-version"),
            ("idempotency_key", "--idempotency-key"),
            ("add_labels", "--add-label"),
            ("remove_labels", "--remove-label"),
            ("labels", "--label"),
            ("blocked_by", "--blocked-by"),
        ] {
            assert_eq!(Spelling::Flags.name(json), flag);
            assert_eq!(Spelling::Json.name(json), json);
        }
    }

    /// A bad status is worded by the one refusal template, as every other bad value is (it was
    /// `--status "bogus": ...`, without the colon after the field's name).
    #[test]
    fn a_bad_status_is_refused_with_the_field_template() {
        let e = status_value(Spelling::Flags, "status", "bogus").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"--status: "bogus": use open, done or cancelled"#
        );
        let e = status_filter(Spelling::Json, "status", "nope").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"status: "nope": use open, done, cancelled or all"#
        );
        assert_eq!(
            status_filter(Spelling::Json, "status", "all").unwrap(),
            None
        );
        assert_eq!(
            status_value(Spelling::Json, "status", "done").unwrap(),
            Status::Done
        );
    }
}
