//! Durations as people type them (`90s`, `15m`, `1h 30m`), with one range per use. The command
//! line and the MCP server both parse through here, so the same text gets the same answer on
//! every transport; each names the field its own way (`--wait`, `wait`).

use std::time::Duration;

use crate::error::Error;
use crate::rules::{MAX_TTL, MIN_TTL};

/// What a duration is for: each use has its own range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// A lease length (`--ttl`, `ttl`, `default-ttl`, `TRACKER_TTL`): [`MIN_TTL`] to [`MAX_TTL`].
    Ttl,
    /// How long to keep retrying a claim (`--wait`, `wait`): at most [`MAX_TTL`], so no deadline
    /// overflows the clock.
    Wait,
    /// How long to wait for the tracker (`--lock-timeout`): 1ms (a shorter wait cannot even take
    /// a free lock) to [`MAX_TTL`].
    LockTimeout,
    /// How far back `status` looks (`--since`, `since`): at most [`MAX_WINDOW`].
    Window,
}

/// The longest `status --since`: 1000 years (`100y` reaches the start of any real log).
pub const MAX_WINDOW: Duration = Duration::from_secs(1000 * 366 * 86_400);

/// Parses `s` for `what`: longer than zero and in that use's range. The message names the value
/// but not the field, which the caller adds the way its transport spells it.
pub fn parse(s: &str, what: Use) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}); write it like 90s, 15m or 2h"))?;
    if d.is_zero() {
        return Err(format!("{s:?}: a duration must be longer than zero"));
    }
    match what {
        Use::Ttl if d < MIN_TTL || d > MAX_TTL => Err(format!(
            "{s:?}: a lease TTL of {} is out of range: use 1s to 366d",
            humantime::format_duration(d)
        )),
        Use::Wait | Use::LockTimeout if d > MAX_TTL => {
            Err(format!("{s:?} is too long: wait at most 366d"))
        }
        Use::LockTimeout if d < Duration::from_millis(1) => {
            Err(format!("{s:?} is too short: give at least 1ms"))
        }
        Use::Window if d > MAX_WINDOW => Err(format!("{s:?} is too long: look back at most 1000y")),
        _ => Ok(d),
    }
}

/// [`parse`] for a named field, as an [`Error::Invalid`] (exit 2) that names it: how a transport
/// without clap (the MCP server, an environment variable) reports a bad duration.
pub fn parse_field(field: &str, s: &str, what: Use) -> crate::Result<Duration> {
    parse(s, what).map_err(|e| Error::bad_field(field, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_use_has_its_range_and_zero_is_refused_everywhere() {
        for what in [Use::Ttl, Use::Wait, Use::LockTimeout, Use::Window] {
            assert!(parse("0s", what).is_err(), "{what:?}");
            assert!(parse("9999999y", what).is_err(), "{what:?}");
            assert!(parse("soon", what).is_err(), "{what:?}");
            assert_eq!(
                parse(" 15m ", what),
                Ok(Duration::from_secs(900)),
                "{what:?}"
            );
        }
        assert!(parse("500ms", Use::Ttl).is_err());
        assert!(parse("500ms", Use::Wait).is_ok());
        assert!(parse("367d", Use::Wait).is_err());
        assert!(parse("367d", Use::Window).is_ok());
        assert!(parse("500us", Use::LockTimeout).is_err());
        let e = parse_field("wait", "0s", Use::Wait).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("wait: \"0s\""), "{e}");
    }
}
