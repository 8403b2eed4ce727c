//! Time, as leases need it: a wall clock for people and other hosts, and a monotonic clock
//! (CLOCK_BOOTTIME) tagged with the boot it belongs to, so that a wall-clock step on this host
//! neither frees a live lease early nor keeps a dead one forever.
//!
//! The library takes its clock as a parameter (`Tracker::with_clock`) so tests can move time.

use std::sync::{Arc, Mutex};

use crate::model::WallMs;

/// One reading of the clocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Now {
    /// The wall clock: milliseconds since the Unix epoch, UTC. It can step (NTP, a manual
    /// change), so leases go by `mono_ms` where they can.
    pub wall_ms: WallMs,
    /// Milliseconds since boot, counting suspend; `None` where the platform has no such clock.
    pub mono_ms: Option<u64>,
    /// Identifies the current boot, and the time namespace when it is not the initial one (its
    /// CLOCK_BOOTTIME is shifted), so monotonic readings are compared only within one clock.
    pub boot_id: Option<Arc<str>>,
}

/// A source of time for a [`Tracker`](crate::Tracker): [`SystemClock`] in real use,
/// [`FakeClock`] in tests.
pub trait Clock: Send + Sync {
    /// Reads the clocks. The monotonic reading must not go back within one boot.
    fn now(&self) -> Now;
}

/// The host's clocks.
#[derive(Debug, Default)]
pub struct SystemClock {
    boot_id: std::sync::OnceLock<Option<Arc<str>>>,
}

impl SystemClock {
    /// The host's clocks; the boot id is read once, on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for SystemClock {
    // The one reading of the wall clock (clippy.toml forbids it everywhere else).
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> Now {
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let boot_id = self
            .boot_id
            .get_or_init(|| crate::host::boot_id().map(Arc::from))
            .clone();
        Now {
            wall_ms,
            mono_ms: boottime_ms(),
            boot_id,
        }
    }
}

#[cfg(target_os = "linux")]
fn boottime_ms() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    secs.checked_mul(1000)?.checked_add(nanos / 1_000_000)
}

#[cfg(not(target_os = "linux"))]
fn boottime_ms() -> Option<u64> {
    None
}

/// A clock that moves only when told to; wall and monotonic time move independently, which is
/// exactly what a wall-clock step looks like.
#[derive(Clone, Debug)]
pub struct FakeClock {
    inner: Arc<Mutex<Now>>,
}

impl FakeClock {
    /// Starts at `wall_ms` on a boot called `boot`, with the monotonic clock at 1000 s.
    pub fn new(wall_ms: WallMs, boot: &str) -> Self {
        FakeClock {
            inner: Arc::new(Mutex::new(Now {
                wall_ms,
                mono_ms: Some(1_000_000),
                boot_id: Some(Arc::from(boot)),
            })),
        }
    }

    /// Real time passing: both clocks move forward.
    pub fn advance(&self, ms: u64) {
        let mut now = self.inner.lock().unwrap();
        now.wall_ms += i64::try_from(ms).unwrap_or(i64::MAX);
        now.mono_ms = now.mono_ms.map(|m| m + ms);
    }

    /// A wall-clock step (NTP, a manual change): only the wall clock moves.
    pub fn step_wall(&self, delta_ms: i64) {
        self.inner.lock().unwrap().wall_ms += delta_ms;
    }

    /// A reboot: the monotonic clock restarts and the boot id changes.
    pub fn reboot(&self, boot: &str) {
        let mut now = self.inner.lock().unwrap();
        now.mono_ms = Some(1_000);
        now.boot_id = Some(Arc::from(boot));
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Now {
        self.inner.lock().unwrap().clone()
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-23T14:05:00.123Z`. Written digit by digit:
/// exports format two of these per item, and `format!` was a tenth of an export's time.
// Every cast below is of a value that `rem_euclid` or the calendar arithmetic has already
// bounded (milliseconds < 1000, seconds of the day < 86 400, months and days, a year checked to be
// 0..=9999 before it is cast).
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]
pub fn format_rfc3339(ms: WallMs) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000) as u32;
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        );
    }
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y as u32);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, sod / 3600);
    put(14, 2, sod % 3600 / 60);
    put(17, 2, sod % 60);
    put(20, 3, millis);
    // Only ASCII digits and separators were written.
    String::from_utf8(b.to_vec()).unwrap_or_default()
}

// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar); day and month are
// 1..=31 and 1..=12 by construction.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses an RFC 3339 timestamp (`2026-11-23T14:05:00.123Z`, or with an offset) into
/// milliseconds, rejecting impossible dates such as February 31st. jiff does the parsing: a
/// calendar is not something to hand-write twice.
pub fn parse_rfc3339(s: &str) -> Option<WallMs> {
    let ts: jiff::Timestamp = s.parse().ok()?;
    Some(ts.as_millisecond())
}

/// A short human duration: `45s`, `4m`, `2h5m`, `3d`.
pub fn format_duration_short(ms: i64) -> String {
    let s = ms.unsigned_abs() / 1000;
    let out = match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 if s % 3600 / 60 == 0 => format!("{}h", s / 3600),
        3600..=86_399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d", s / 86_400),
    };
    if ms < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        for ms in [0, 1, 999, 1_795_000_000_123, 951_782_400_000, -1] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms), "{ms}");
        }
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_795_443_900_123),
            "2026-11-23T14:25:00.123Z"
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T14:25:00Z"),
            Some(1_795_357_500_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(
            parse_rfc3339("2026-02-31T00:00:00Z"),
            None,
            "no February 31st"
        );
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(
            parse_rfc3339("2026-11-22T15:25:00+01:00"),
            Some(1_795_357_500_000)
        );
    }

    #[test]
    fn fake_clock_steps_wall_only() {
        let c = FakeClock::new(1_000, "b1");
        c.step_wall(3_600_000);
        let n = c.now();
        assert_eq!(n.wall_ms, 3_601_000);
        assert_eq!(n.mono_ms, Some(1_000_000));
    }

    #[test]
    fn short_durations() {
        assert_eq!(format_duration_short(45_000), "45s");
        assert_eq!(format_duration_short(240_000), "4m");
        assert_eq!(format_duration_short(7_500_000), "2h5m");
        assert_eq!(format_duration_short(-30_000), "-30s");
    }
}
