//! Facts about this host and its processes: who is acting, which boot this is, whether a process
//! still lives, and whether a file sits on a network filesystem.
//!
//! Hidden from the documentation: only `Actor` (re-exported at the crate root) is meant for
//! embedders; `group_alive` is public for the `tracker` binary and carries no stability promise.

use std::path::{Path, PathBuf};

/// The inode of the initial time namespace: the kernel's constant `PROC_TIME_INIT_INO`.
const INITIAL_TIME_NAMESPACE: u64 = 0xEFFF_FFFA;

/// The identity of the CLOCK_BOOTTIME readings this process takes: the boot
/// (`/proc/sys/kernel/random/boot_id`), and the time namespace when it is not the initial one.
///
/// A time namespace (`unshare --time --boottime N`) shifts CLOCK_BOOTTIME, and the process start
/// times in /proc, by its own offset: a reading from inside means nothing outside. In the initial
/// namespace the identity is the plain boot id, as it always was, so existing leases still
/// compare equal; in any other it is `<boot id>/timens:<inode>`, followed by `/boottime:<offset>`
/// because the kernel reuses a dead namespace's inode for the next one, which may have another
/// offset. The format stays as it was: it is the same string field, with more in it.
pub(crate) fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    if id.is_empty() {
        return None;
    }
    Some(match time_namespace() {
        Some(ns) if ns != INITIAL_TIME_NAMESPACE => match boottime_offset() {
            Some(offset) => format!("{id}/timens:{ns}/boottime:{offset}"),
            None => format!("{id}/timens:{ns}"),
        },
        // The initial namespace, or a kernel without time namespaces (before Linux 5.6).
        _ => id.to_string(),
    })
}

/// This process's time namespace: the inode of /proc/self/ns/time.
fn time_namespace() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/time")
        .ok()
        .map(|m| m.ino())
}

/// The CLOCK_BOOTTIME offset of this process's time namespace, as `<seconds>.<nanoseconds>`
/// (the `boottime` line of /proc/self/timens_offsets).
fn boottime_offset() -> Option<String> {
    let offsets = std::fs::read_to_string("/proc/self/timens_offsets").ok()?;
    let line = offsets.lines().find(|l| l.starts_with("boottime"))?;
    let mut fields = line.split_whitespace().skip(1);
    let secs: i64 = fields.next()?.parse().ok()?;
    let nanos: u32 = fields.next()?.parse().ok()?;
    Some(format!("{secs}.{nanos:09}"))
}

/// This host's name, read once per process (holder names and leases both need it).
pub(crate) fn hostname() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_string())
    })
    .clone()
}

fn user_name() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var) {
            if !u.is_empty() {
                return u;
            }
        }
    }
    // SAFETY: getuid has no preconditions.
    format!("uid{}", unsafe { libc::getuid() })
}

/// The terminal this process talks to, as `pts/3`, if any of stdin, stdout or stderr is one.
pub(crate) fn terminal() -> Option<String> {
    for fd in [0, 1, 2] {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
        let path = link.to_string_lossy();
        if let Some(rest) = path.strip_prefix("/dev/") {
            if rest.starts_with("pts/") || rest.starts_with("tty") {
                // SAFETY: isatty only inspects the descriptor.
                if unsafe { libc::isatty(fd) } == 1 {
                    return Some(rest.to_string());
                }
            }
        }
    }
    None
}

/// Who is acting, and how sure we are that the name tells this actor apart from others.
///
/// The name is the holder of the leases a [`Tracker`](crate::Tracker) takes and the author of
/// its ops. Without a fencing token, a lease is recognised as the actor's own by name, and only
/// if the name is `distinct`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The name leases and ops carry, e.g. `ana` or `ana@box/pts/3`.
    pub name: String,
    /// True when the name was given (`--as`, `TRACKER_AS`) or includes a terminal. Two unnamed
    /// agents without a terminal get the same default name, so such a name proves nothing.
    pub distinct: bool,
}

impl Actor {
    /// An actor with a name of the caller's choosing (`--as`, `TRACKER_AS`): distinct, so the
    /// caller must make sure no other agent uses the same name.
    pub fn named(name: impl Into<String>) -> Actor {
        Actor {
            name: name.into(),
            distinct: true,
        }
    }

    /// `user@host/tty`, or `user@host` without a terminal (then not distinct).
    pub fn default_for_this_process() -> Actor {
        let base = format!("{}@{}", user_name(), hostname());
        match terminal() {
            Some(tty) => Actor {
                name: format!("{base}/{tty}"),
                distinct: true,
            },
            None => Actor {
                name: base,
                distinct: false,
            },
        }
    }
}

/// Start time of a process in clock ticks since boot (field 22 of `/proc/PID/stat`).
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    read_start(pid).ok().flatten()
}

/// The start time of `pid`, `Ok(None)` for a zombie (it has exited: it holds nothing any more),
/// or the error reading `/proc` gave.
fn read_start(pid: u32) -> std::io::Result<Option<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unreadable stat");
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')').ok_or_else(bad)? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field 22 is index 19.
    let start = fields
        .get(19)
        .and_then(|f| f.parse().ok())
        .ok_or_else(bad)?;
    Ok((fields.first() != Some(&"Z")).then_some(start))
}

/// Whether the process `pid` that started at `start` is still running on this host. A process
/// that /proc hides from us (`hidepid=1` refuses to read it, `hidepid=2` does not list it) is
/// asked with signal 0: only "no such process" counts as gone, and one that exists but cannot be
/// checked further is alive.
pub(crate) fn process_alive(pid: u32, start: Option<u64>) -> bool {
    match read_start(pid) {
        Ok(None) => false,
        Ok(Some(now)) => start.is_none_or(|then| now == then),
        Err(_) => signal_reaches(pid),
    }
}

/// Whether a process with this pid exists, by signal 0 (EPERM means it does, someone else's).
fn signal_reaches(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks whether the process exists and may be signalled.
    if unsafe { libc::kill(p, 0) } == 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Whether the process `pid` that started at `start` is this process or one of its ancestors
/// (its parent, its parent's parent, ... up to init). Read from /proc, on this host only.
pub(crate) fn is_self_or_ancestor(pid: u32, start: Option<u64>) -> bool {
    let mut current = std::process::id();
    // A chain longer than this is a loop in a changing process table, not a real ancestry.
    for _ in 0..4096 {
        let Some((ppid, started)) = parent_and_start(current) else {
            return false;
        };
        if current == pid {
            return start.is_none_or(|s| s == started);
        }
        if ppid == 0 || ppid == current {
            return false;
        }
        current = ppid;
    }
    false
}

/// The parent and the start time of `pid` (fields 4 and 22 of `/proc/PID/stat`).
fn parent_and_start(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// This process's pid namespace: the inode of /proc/self/ns/pid. `None` when /proc belongs to
/// another pid namespace than ours (then it would answer for other processes than our pids name).
pub(crate) fn pid_namespace() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::read_link("/proc/self").ok()?;
    if me.to_str()? != std::process::id().to_string() {
        return None;
    }
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

/// Whether any process of group `pgid` may still run. Conservative: only "no such group", or a
/// group whose every member has exited (zombies not yet reaped), counts as gone.
pub fn group_alive(pgid: u32) -> bool {
    // 0 and 1 would address our own group or every process; no command's group has them.
    let Ok(group) = libc::pid_t::try_from(pgid) else {
        return true;
    };
    if group < 2 {
        return true;
    }
    // SAFETY: signal 0 only checks whether the group has members we could signal.
    if unsafe { libc::kill(-group, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    }
    group_has_running_member(pgid).unwrap_or(true)
}

/// Whether /proc lists a member of group `pgid` that has not exited; `None` if it lists none.
fn group_has_running_member(pgid: u32) -> Option<bool> {
    let mut seen = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Some((state, group)) = state_and_group(pid) else {
            continue;
        };
        if group == pgid {
            if state != "Z" {
                return Some(true);
            }
            seen = true;
        }
    }
    seen.then_some(false)
}

/// State and process group of `pid` (fields 3 and 5 of `/proc/PID/stat`).
fn state_and_group(pid: u32) -> Option<(String, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.first()?.to_string(), fields.get(2)?.parse().ok()?))
}

/// A fresh temporary name beside `path`, in the same directory, so that renaming or linking it
/// into place is atomic. `purpose` shows in the name, for whoever finds one left by a crash.
pub(crate) fn temp_sibling(path: &Path, purpose: &str) -> PathBuf {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Not a reading of time: only a few varying digits, so two processes' names differ.
    #[allow(clippy::disallowed_methods)]
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!(".{name}.{purpose}-{}-{nanos}", std::process::id()))
}

/// Names the network filesystem `path` lives on, if it does. Their byte-range locks are not
/// reliable, and redb's multi-process mode depends on them.
#[cfg(target_os = "linux")]
pub(crate) fn network_filesystem(path: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: zeroed statfs is a valid out-parameter; `c` is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // Filesystem magic numbers are 32-bit; f_type is a wider signed integer on some targets.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let magic = st.f_type as u32;
    match magic {
        0x6969 => Some("NFS"),
        0x517B => Some("SMB"),
        0xFF53_4D42 => Some("CIFS"),
        0xFE53_4D42 => Some("SMB2"),
        0x0102_1997 => Some("9P"),
        0x00C3_6400 => Some("CephFS"),
        0x5346_414F => Some("AFS"),
        0x0BD0_0BD0 => Some("Lustre"),
        0x4750_4653 => Some("GPFS"),
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn network_filesystem(_path: &Path) -> Option<&'static str> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_bogus_one_is_not() {
        let me = std::process::id();
        let start = process_start(me);
        assert!(start.is_some());
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start.map(|s| s + 1)));
        assert!(!process_alive(u32::MAX - 1, None));
    }

    #[test]
    fn this_process_and_its_parent_are_ancestors_and_a_stranger_is_not() {
        let me = std::process::id();
        assert!(is_self_or_ancestor(me, process_start(me)));
        assert!(!is_self_or_ancestor(me, process_start(me).map(|s| s + 1)));
        // SAFETY: getppid has no preconditions.
        let parent = u32::try_from(unsafe { libc::getppid() }).unwrap();
        assert!(is_self_or_ancestor(parent, process_start(parent)));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(!is_self_or_ancestor(pid, process_start(pid)));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn our_pid_namespace_and_group_are_seen() {
        assert!(pid_namespace().is_some());
        // SAFETY: getpgrp has no preconditions.
        let ours = u32::try_from(unsafe { libc::getpgrp() }).unwrap();
        assert!(group_alive(ours));
        assert!(!group_alive(u32::MAX / 2 - 7));
    }

    #[test]
    fn the_initial_time_namespace_keeps_the_plain_boot_id() {
        // The kernel constant, checked against this machine (which runs in the initial time
        // namespace, like almost every process); elsewhere the id must at least carry it.
        let id = boot_id().expect("this test needs /proc");
        if time_namespace() == Some(INITIAL_TIME_NAMESPACE) {
            assert!(!id.contains('/'), "{id}");
        } else {
            assert!(id.contains("/timens:"), "{id}");
        }
    }

    #[test]
    fn local_temp_dir_is_not_network() {
        assert_eq!(network_filesystem(&std::env::temp_dir()), None);
    }
}
