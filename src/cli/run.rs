//! `tracker run`: claim, run a command while renewing the lease, then finish or release.
//! The command runs in a process group of its own, and the lease is tied to this process and to
//! that group: if `run` dies (even by SIGKILL), another worker on this host may take the item
//! as soon as the last process of the group is gone too (nobody renews, so at the latest when
//! the TTL runs out). Nothing `run` started can go on working an item someone else holds.

use std::process::{Child, Command as Process, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use tracker::command::{self, claim, done, release, renew};
use tracker::{Access, Error, ItemRef, ItemView, Result};

use super::args::{LeaseTarget, RunArgs};
use super::{lower, Ctx};

/// The last SIGINT/SIGTERM received, to pass on to the child.
static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember_signal(sig: libc::c_int) {
    PENDING_SIGNAL.store(sig, Ordering::SeqCst);
}

const GRACE: Duration = Duration::from_secs(5);

/// How much longer than the lock wait the lease lasts before `run` has tied it to its command.
const FIRST_LEASE_MARGIN: Duration = Duration::from_secs(10);

/// The claim `run` works under, and its TTL; the tracker is closed again before the command
/// starts.
fn claim(ctx: &Ctx, target: &LeaseTarget) -> Result<(ItemView, Duration)> {
    let which = lower::which(target)?;
    let t = ctx.open(Access::ReadWrite)?;
    let ttl = command::lease_ttl(&t, target.ttl)?;
    // Tied to this process at once, so no other process (under any name) can claim it
    // between this claim and the command's start. The command's group is not known yet:
    // group 0 stands for it, and counts as alive, so a `run` killed in between cannot free
    // the item while the command may already be running. That first lease is short (the
    // lock wait of the tie that follows, plus a margin), so a `run` killed before its
    // command started keeps the item for seconds, not for its TTL.
    let r = claim::Request {
        ttl: Some(ttl.min(ctx.lock_timeout.saturating_add(FIRST_LEASE_MARGIN))),
        pid: Some(std::process::id()),
        pgid: Some(tracker::GROUP_NOT_YET_KNOWN),
        ..claim::Request::of(which)
    };
    Ok((claim::exec(&t, r, &|| false)?, ttl))
}

/// SIGINT and SIGTERM are remembered, to be passed on to the command's group.
fn catch_interrupts() {
    // Raw libc::signal, not signal-hook (issue 21 asked): the handler is one atomic store,
    // which signal-hook's flag::register_usize would do too, but signal-hook is not in the
    // dependency tree, and the other dispositions here (SIGTTOU around tcsetpgrp, in the child
    // between fork and exec) must stay raw anyway: only async-signal-safe calls are allowed
    // there, and signal-hook's registration allocates and locks. glibc's signal() installs a
    // BSD-style handler (it stays installed; interrupted calls restart).
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            remember_signal as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            remember_signal as *const () as libc::sighandler_t,
        );
    }
}

pub fn run(ctx: &Ctx, a: RunArgs) -> Result<i32> {
    let (view, ttl) = claim(ctx, &a.target)?;
    let item = ItemRef::Num(view.item.num);
    let token = view.claim.as_ref().map(|c| c.token).unwrap_or(0);
    if !ctx.json {
        eprintln!(
            "tracker: claimed #{} (token {token}): {}",
            view.item.num,
            super::render::safe(&view.item.title, false)
        );
    }
    catch_interrupts();
    let mut command = Process::new(&a.command[0]);
    command
        .args(&a.command[1..])
        .env("TRACKER_ITEM", view.item.id.to_string())
        .env("TRACKER_NUM", view.item.num.to_string())
        .env("TRACKER_TOKEN", token.to_string());
    let terminal = Terminal::foreground();
    start_in_own_group(&mut command, terminal);
    let mut child = command.spawn().map_err(|e| {
        let _ = finish(ctx, &item, token, false);
        Error::Invalid(format!(
            "cannot start {:?}: {e}; the claim was released",
            a.command[0]
        ))
    })?;
    // After exec, so the child is already the leader of its own group.
    let group = child.id();
    if let Err(e) = tie_lease(ctx, &item, token, ttl, group) {
        stop(&mut child, group);
        terminal.take_back();
        let _ = finish(ctx, &item, token, false);
        return Err(e);
    }

    let every = ttl / 3;
    let mut next_renewal = Instant::now() + every;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("cannot wait for the command", e))?
        {
            break status;
        }
        let sig = PENDING_SIGNAL.swap(0, Ordering::SeqCst);
        if sig != 0 {
            signal_group(group, sig);
        }
        if Instant::now() >= next_renewal {
            match renew_lease(ctx, &item, ttl, token) {
                Ok(_) => next_renewal = Instant::now() + every,
                Err(e @ Error::Conflict { .. }) => {
                    stop(&mut child, group);
                    terminal.take_back();
                    return Err(Error::conflict(format!(
                        "the lease on #{} was lost, so the command was stopped: {e}",
                        view.item.num
                    )));
                }
                // A busy file or a passing error: try again soon, the lease still has time.
                Err(e) => {
                    eprintln!(
                        "tracker: could not renew #{} yet: {}",
                        view.item.num,
                        super::render::safe(&e.to_string(), false)
                    );
                    next_renewal = Instant::now() + Duration::from_secs(1).min(every);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    terminal.take_back();
    let code = exit_code(status);
    // The item goes back to the queue: what the command left running must not work on it.
    // (Our child is reaped, so the group id is pinned only while members remain: check first.)
    if code != 0 && tracker::host::group_alive(group) {
        stop(&mut child, group);
    }
    let v = finish(ctx, &item, token, code == 0)?;
    let outcome = if code == 0 { "done" } else { "released" };
    if ctx.json {
        let printed = super::out::json(&tracker::json::ItemJson::from(&v));
        super::out::after_change(&format!("{outcome} #{}", v.item.num), printed)?;
    } else {
        eprintln!("tracker: #{} {outcome} (command exited {code})", v.item.num);
    }
    Ok(code)
}

/// One renewal of the lease `run` works under, for `ttl` from now.
fn renew_lease(ctx: &Ctx, item: &ItemRef, ttl: Duration, token: u64) -> Result<ItemView> {
    let r = renew::Request {
        item: item.clone(),
        ttl: Some(ttl),
        guard: command::guard(None, Some(token), None),
    };
    renew::exec(&ctx.open(Access::ReadWrite)?, r)
}

fn finish(ctx: &Ctx, item: &ItemRef, token: u64, success: bool) -> Result<ItemView> {
    let t = ctx.open(Access::ReadWrite)?;
    let (item, guard) = (item.clone(), command::guard(None, Some(token), None));
    if success {
        let done = done::exec(
            &t,
            done::Request {
                item: item.clone(),
                force: false,
                reason: None,
                guard: guard.clone(),
            },
        );
        if let Err(e @ tracker::Error::Conflict { .. }) = done {
            // Not done (it has open children, say): the lease is given back, not left to
            // expire, and the refusal is what `run` reports.
            let _ = release::exec(&t, release::Request { item, guard });
            return Err(e);
        }
        done
    } else {
        release::exec(&t, release::Request { item, guard })
    }
}

/// Ties the lease to this process and to the command's process group (a renewal, same token).
fn tie_lease(ctx: &Ctx, item: &ItemRef, token: u64, ttl: Duration, group: u32) -> Result<()> {
    let r = claim::Request {
        ttl: Some(ttl),
        pid: Some(std::process::id()),
        pgid: Some(group),
        guard: command::guard(None, Some(token), None),
        ..claim::Request::of(claim::Which::Item(item.clone()))
    };
    let t = ctx.open(Access::ReadWrite)?;
    claim::exec(&t, r, &|| false).map(|_| ())
}

/// The command leads a process group of its own, so that it and everything it starts can be
/// signalled together and the lease can wait for the last of them. If `run` dies, the kernel
/// sends the command SIGTERM; whatever ignores it keeps the lease from being taken until it exits.
#[cfg(target_os = "linux")]
fn start_in_own_group(command: &mut Process, terminal: Terminal) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid only reads.
    let parent = unsafe { libc::getpid() };
    // SAFETY: between fork and exec only async-signal-safe calls: setpgid, signal, tcsetpgrp,
    // prctl, getppid, getpid, kill.
    unsafe {
        command.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if terminal.0 {
                // A background group reading the terminal would be stopped (SIGTTIN): the
                // command gets the foreground, as a shell gives it to a job.
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(0, libc::getpid());
                libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), libc::SIGTERM);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn start_in_own_group(command: &mut Process, _terminal: Terminal) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
}

/// Whether `run` is in the foreground of the terminal on its standard input, and so must hand
/// it to the command's group and take it back afterwards.
#[derive(Clone, Copy)]
struct Terminal(bool);

impl Terminal {
    fn foreground() -> Terminal {
        // SAFETY: isatty, tcgetpgrp and getpgrp only inspect.
        Terminal(unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() })
    }

    fn take_back(self) {
        if self.0 {
            // SAFETY: as in the child: SIGTTOU is ignored while a background group takes the
            // foreground back.
            unsafe {
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(0, libc::getpgrp());
                libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            }
        }
    }
}

fn signal_group(group: u32, sig: libc::c_int) {
    // A pid always fits in pid_t; were it not to, negating a wrapped value could name another
    // process, so nothing is sent.
    let Ok(group) = libc::pid_t::try_from(group) else {
        return;
    };
    // SAFETY: signalling the group our child leads (its id is a real pid, never 0 or 1).
    unsafe { libc::kill(-group, sig) };
}

/// SIGTERM to the whole group, then SIGKILL to whatever of it is left after the grace period.
/// The child is reaped only at the end: until then it keeps the group's id from being reused.
fn stop(child: &mut Child, group: u32) {
    signal_group(group, libc::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while tracker::host::group_alive(group) {
        if Instant::now() >= deadline {
            signal_group(group, libc::SIGKILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
