//! A lock wait that timed out is over: nothing is left behind to take the write lock later.

use crate::common;

use std::time::Duration;

use crate::common::{text, Env};
use tracker::store::{Storage, WriteTxn};

/// redb's `WRITER_BYTE`: held by a multi-writer write transaction from its start to its end.
const WRITER_LOCK_BYTE: i64 = 1 << 62;

fn lock_writer_byte(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: zeroed flock is valid; the fields that matter are set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::c_short::try_from(libc::F_WRLCK).unwrap();
    lock.l_whence = libc::c_short::try_from(libc::SEEK_SET).unwrap();
    lock.l_start = WRITER_LOCK_BYTE;
    lock.l_len = 1;
    // SAFETY: `f` is open and `lock` is a valid flock.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &lock) == 0 }
}

/// The threads this test started: a thread is born with its creator's name, and libtest names
/// each test's thread after the test, so threads of tests running beside this one (in the one
/// integration binary) are not counted.
fn threads() -> usize {
    let ours = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| *name == ours)
        .count()
}

#[test]
fn a_timed_out_lock_wait_leaves_nothing_behind_to_take_the_lock_later() {
    let env = Env::new();
    env.json(&["new", "before"]);
    // Opened first: a read-write open waits for the writer lock too.
    let waiter = tracker::RedbStore::open(
        &env.db,
        tracker::Access::ReadWrite,
        Duration::from_millis(300),
    )
    .unwrap();
    // Another holder of redb's writer lock: an open-file-description lock on its lock byte,
    // which a second handle in this process (unlike a second `Database`, which may share redb's
    // own description of the file) conflicts with as another process would.
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&env.db)
        .unwrap();
    assert!(
        lock_writer_byte(&holder),
        "the writer lock is free at first"
    );

    // In this process: the waiter gives up, and no thread stays queued on the lock. (The helper
    // threads of the opens above end just after handing their result over: let them go first.)
    std::thread::sleep(Duration::from_millis(100));
    let threads_before = threads();
    let e = waiter
        .write(|_t: &mut dyn WriteTxn| Ok(()))
        .expect_err("the lock is held");
    assert_eq!(e.exit_code(), 5, "{e}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        threads(),
        threads_before,
        "a timed-out lock wait left a thread behind, which would take the lock once it is free"
    );

    // Through the binary: exit 5, and nothing written by it after the holder lets go.
    let out = env
        .cmd(&["--lock-timeout", "300ms", "new", "too late"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    drop(holder);
    drop(waiter);
    std::thread::sleep(Duration::from_millis(300));
    let log = common::json_lines(&env.run(&["--json", "log"]).stdout);
    assert_eq!(
        log.len(),
        1,
        "an op appeared after the waiters gave up: {log:?}"
    );
    assert_eq!(env.code(&["verify"]).0, 0);
}
