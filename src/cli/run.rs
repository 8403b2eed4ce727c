//! `tracker run`: claim, run a command while renewing the lease, then finish or release.
//! The lease is tied to this process, so if it dies (even by SIGKILL) another worker on this host
//! may take the item at once.

use std::process::{Child, Command as Process, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use tracker::{Access, ClaimOptions, Error, Guard, ItemRef, Result};

use super::args::RunArgs;
use super::{item_ref, ttl_for, Ctx};

/// The last SIGINT/SIGTERM received, to pass on to the child.
static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember_signal(sig: libc::c_int) {
    PENDING_SIGNAL.store(sig, Ordering::SeqCst);
}

const GRACE: Duration = Duration::from_secs(5);

pub fn run(ctx: &Ctx, a: RunArgs) -> Result<i32> {
    let (view, ttl) = {
        let t = ctx.open(Access::ReadWrite)?;
        let ttl = ttl_for(&t, a.target.ttl)?;
        let opts = ClaimOptions {
            ttl,
            pid: Some(std::process::id()),
            ..ClaimOptions::default()
        };
        let view = match a.target.item.as_deref().map(item_ref).transpose()? {
            Some(r) => t.claim(&r, &opts)?,
            None => t.claim_next(a.target.label.as_deref(), &opts)?,
        };
        (view, ttl)
    };
    let item = ItemRef::Num(view.item.num);
    let token = view.claim.as_ref().map(|c| c.token).unwrap_or(0);
    if !ctx.json {
        eprintln!(
            "tracker: claimed #{} (token {token}): {}",
            view.item.num,
            super::render::safe(&view.item.title, false)
        );
    }
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
    let mut command = Process::new(&a.command[0]);
    command
        .args(&a.command[1..])
        .env("TRACKER_ITEM", view.item.id.to_string())
        .env("TRACKER_NUM", view.item.num.to_string())
        .env("TRACKER_TOKEN", token.to_string());
    stop_with_parent(&mut command);
    let mut child = command.spawn().map_err(|e| {
        let _ = finish(ctx, &item, token, false);
        Error::Invalid(format!(
            "cannot start {:?}: {e}; the claim was released",
            a.command[0]
        ))
    })?;

    let guard = Guard {
        token: Some(token),
        ..Guard::default()
    };
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
            // SAFETY: sending a signal to our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        }
        if Instant::now() >= next_renewal {
            match ctx
                .open(Access::ReadWrite)
                .and_then(|t| t.renew(&item, Some(ttl), &guard))
            {
                Ok(_) => next_renewal = Instant::now() + every,
                Err(e @ Error::Conflict { .. }) => {
                    stop(&mut child);
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
    let code = exit_code(status);
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

fn finish(ctx: &Ctx, item: &ItemRef, token: u64, success: bool) -> Result<tracker::ItemView> {
    let t = ctx.open(Access::ReadWrite)?;
    let g = Guard {
        token: Some(token),
        ..Guard::default()
    };
    if success {
        t.done(item, &g, false)
    } else {
        t.release(item, &g)
    }
}

/// If `run` dies, even by SIGKILL, its lease is free for others at once (the holder is provably
/// gone), so the command must not keep working on the item: the kernel sends it SIGTERM.
#[cfg(target_os = "linux")]
fn stop_with_parent(command: &mut Process) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: between fork and exec only async-signal-safe calls: prctl, getppid, kill.
    unsafe {
        command.pre_exec(move || {
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
fn stop_with_parent(_command: &mut Process) {}

/// SIGTERM, then SIGKILL after the grace period.
fn stop(child: &mut Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
