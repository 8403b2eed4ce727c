//! Issue 6: what was acknowledged is kept, and what is refused changes nothing: crashes, a full
//! disk, permissions, damaged and foreign files, newer formats, hostile input.

use crate::common;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{text, Env};

/// A cheap deterministic sequence, so failures reproduce.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn a_hundred_rounds_of_writers_with_one_killed_keep_every_acknowledged_change() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        let mut rng = Lcg(7);
        let mut acknowledged: Vec<String> = Vec::new();
        for round in 0..100 {
            let victim = (rng.next() % 4) as usize;
            let mut children = Vec::new();
            for w in 0..4 {
                let title = format!("r{round}w{w}");
                let args: Vec<String> = match (round + w) % 4 {
                    0 | 1 => vec!["new".into(), title.clone()],
                    2 => vec![
                        "--as".into(),
                        format!("w{w}"),
                        "claim".into(),
                        "--next".into(),
                    ],
                    _ => vec!["new".into(), title.clone(), "--priority".into(), "1".into()],
                };
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                children.push((title, args[0] == "new", env.spawn(&argv)));
            }
            std::thread::sleep(Duration::from_micros(rng.next() % 4000));
            let _ = children[victim].2.kill();
            for (title, is_new, child) in children {
                let out = child.wait_with_output().unwrap();
                if is_new && out.status.code() == Some(0) {
                    acknowledged.push(title);
                }
            }
            if round % 10 == 9 {
                // Some rounds also finish claimed work, so `done` and `update` race too.
                for v in env
                    .json(&["list", "--claimed"])
                    .as_array()
                    .unwrap()
                    .iter()
                    .take(2)
                {
                    let num = v["num"].to_string();
                    let holder = v["claim"]["holder"].as_str().unwrap().to_string();
                    let _ = env.run(&["--as", &holder, "update", &num, "--priority", "3"]);
                    let _ = env.run(&["--as", &holder, "done", &num]);
                }
            }
        }
        let verify = common::run_bounded(env.cmd(&["verify"]), Duration::from_secs(30));
        assert_eq!(
            verify.status.code(),
            Some(0),
            "{}{}",
            text(&verify.stdout),
            text(&verify.stderr)
        );
        let titles: Vec<String> = env
            .json(&["list", "--status", "all"])
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["title"].as_str().unwrap().to_string())
            .collect();
        for t in &acknowledged {
            assert!(titles.contains(t), "{t} was acknowledged but is gone");
        }
        assert!(
            acknowledged.len() > 150,
            "too few writes succeeded to mean anything: {}",
            acknowledged.len()
        );
    }
}

#[test]
fn a_process_killed_inside_a_write_does_not_block_the_next_command() {
    let env = Env::new();
    for _ in 0..10 {
        let mut c = env.spawn(&["new", "victim"]);
        std::thread::sleep(Duration::from_millis(2));
        let _ = c.kill();
        let _ = c.wait();
        let started = Instant::now();
        let out = common::run_bounded(
            env.cmd(&["--lock-timeout", "5s", "new", "after"]),
            Duration::from_secs(15),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(env.code(&["verify"]).0, 0);
}

#[test]
fn a_full_disk_fails_the_write_cleanly_and_keeps_the_previous_state() {
    let env = Env::new();
    env.json(&["new", "before the disk filled"]);
    let before = text(&env.run(&["export"]).stdout);
    let size = std::fs::metadata(&env.db).unwrap().len();
    let body = env.path("body.txt");
    std::fs::write(&body, "b".repeat(900_000)).unwrap();
    let mut cmd = env.cmd(&["new", "too big", "--body-file", body.to_str().unwrap()]);
    // SAFETY: pre_exec runs between fork and exec; setrlimit and signal are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            // Without this the kernel kills the process with SIGXFSZ instead of failing the write.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: size + 4096,
                rlim_max: size + 4096,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            Ok(())
        });
    }
    let out = common::run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(&env.db.display().to_string()),
        "names the file: {err}"
    );
    assert!(
        err.to_lowercase().contains("too large") || err.contains("full"),
        "says why: {err}"
    );
    assert_eq!(env.code(&["verify"]).0, 0);
    let after = text(&env.run(&["export"]).stdout);
    assert_eq!(
        before.lines().skip(1).collect::<Vec<_>>(),
        after.lines().skip(1).collect::<Vec<_>>()
    );
    // And the tracker still works once there is room again.
    env.json(&["new", "after the disk was freed"]);
}

/// Root ignores file modes, so permission tests run their commands as `nobody` when we are root.
fn as_unprivileged(cmd: &mut Command) {
    // SAFETY: geteuid is always safe.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
}

#[test]
fn a_read_only_file_serves_reads_and_refuses_writes_cleanly() {
    let env = Env::new();
    env.json(&["new", "readable"]);
    let dir = env.dir.path();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&env.db, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let before = std::fs::read(&env.db).unwrap();
    for args in [
        &["show", "1"][..],
        &["list"][..],
        &["export"][..],
        &["log"][..],
    ] {
        let mut c = env.cmd(args);
        as_unprivileged(&mut c);
        let out = common::run_bounded(c, Duration::from_secs(20));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} on a read-only file: {}",
            text(&out.stderr)
        );
    }
    let mut c = env.cmd(&["new", "refused"]);
    as_unprivileged(&mut c);
    let out = common::run_bounded(c, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("permission denied") && err.contains(&env.db.display().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&env.db).unwrap(),
        before,
        "a refused write changed the file"
    );

    std::fs::set_permissions(&env.db, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let mut c = env.cmd(&["list"]);
    as_unprivileged(&mut c);
    let out = common::run_bounded(c, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot"),
        "{}",
        text(&out.stderr)
    );
    std::fs::set_permissions(&env.db, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
}

#[test]
fn damaged_copies_never_panic_or_hang() {
    let env = Env::new();
    for i in 0..40 {
        env.json(&[
            "new",
            &format!("item {i}"),
            "--label",
            "l",
            "--body",
            &"body ".repeat(i),
        ]);
    }
    env.json(&["--as", "a", "claim", "--next"]);
    env.json(&["done", "2"]);
    let original = std::fs::read(&env.db).unwrap();
    let len = original.len();
    let mut rng = Lcg(42);
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for k in 0..40 {
        let mut b = original.clone();
        let at = if k < 10 {
            k * 13 % 512
        } else {
            usize::try_from(rng.next()).unwrap() % len
        };
        b[at] ^= 0xFF;
        cases.push((format!("flip@{at}"), b));
    }
    for k in 0..15 {
        let cut = if k == 0 {
            100
        } else {
            usize::try_from(rng.next()).unwrap() % len
        };
        cases.push((format!("cut@{cut}"), original[..cut].to_vec()));
    }
    let mut outcomes = std::collections::BTreeMap::new();
    for (name, bytes) in cases {
        let copy = env.path("damaged.redb");
        std::fs::write(&copy, &bytes).unwrap();
        for args in [
            &["verify"][..],
            &["list", "--status", "all"][..],
            &["new", "x"][..],
        ] {
            let mut c = common::tracker();
            c.arg("--db").arg(&copy).args(args);
            let out = common::run_bounded(c, Duration::from_secs(20));
            let code = out.status.code();
            let err = text(&out.stderr);
            assert!(
                !err.contains("internal error") && !err.contains("panicked"),
                "{name} {args:?}: {err}"
            );
            assert!(
                matches!(code, Some(0) | Some(6)),
                "{name} {args:?}: exit {code:?}: {err}"
            );
            if args[0] == "verify" && code == Some(0) {
                assert!(text(&out.stdout).starts_with("ok"), "{name}");
            }
            *outcomes
                .entry(format!("{} exit {code:?}", args[0]))
                .or_insert(0) += 1;
        }
    }
    eprintln!("{outcomes:?}");
}

#[test]
fn a_file_of_a_newer_format_is_refused_naming_both_versions() {
    let env = Env::new();
    {
        use tracker::store::{Storage, WriteTxn};
        let store =
            tracker::RedbStore::open(&env.db, tracker::Access::ReadWrite, Duration::from_secs(5))
                .unwrap();
        store
            .write(|t: &mut dyn WriteTxn| t.set_format_version(99))
            .unwrap();
    }
    for args in [&["list"][..], &["new", "x"][..]] {
        let (code, err) = env.code(args);
        assert_eq!(code, 6, "{err}");
        assert!(
            err.contains("99") && err.contains(&tracker::store::FORMAT_VERSION.to_string()),
            "{err}"
        );
    }
}

#[test]
fn verify_finds_a_table_that_disagrees_with_the_log() {
    let env = Env::new();
    env.json(&["new", "honest"]);
    common::forge_item(&env.db, 1, |i| i.title = "forged without an op".into());
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        text(&out.stdout).contains("MISMATCH") && text(&out.stdout).contains("#1"),
        "{}",
        text(&out.stdout)
    );
    // The log is the source of truth: rebuild restores the item from it.
    assert_eq!(env.code(&["rebuild"]).0, 0);
    assert_eq!(env.json(&["show", "1"])["title"], "honest");
    assert_eq!(env.code(&["verify"]).0, 0);
}

#[test]
fn hostile_arguments_are_refused_or_stored_safely() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let mut c = env.cmd(&["new"]);
    c.arg(OsStr::from_bytes(b"bad \xff utf8"));
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    for args in [
        &["new", "x", "--priority", "-1"][..],
        &["new", "x", "--priority", "300"][..],
        &["show", "99999999999999999999999999"][..],
        &["claim", "1", "--ttl", "-5m"][..],
        &["claim", "1", "--ttl", "0s"][..],
        &["log", "--since", "-3"][..],
        &["new", "x", "--label", ""][..],
    ] {
        let (code, err) = env.code(args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    // One argument can hold at most 128 KiB on Linux; larger text comes through --body-file.
    let long_title = "y".repeat(100_000);
    let (code, err) = env.code(&["new", &long_title]);
    assert_eq!(code, 2, "a 100 KB title is refused: {err}");
    let big = env.path("big.txt");
    std::fs::write(&big, "z".repeat(1 << 20)).unwrap();
    let v = env.json(&["new", "big body", "--body-file", big.to_str().unwrap()]);
    assert_eq!(
        v["body"].as_str().unwrap().len(),
        1 << 20,
        "a 1 MiB body is stored"
    );
    let over = env.path("over.txt");
    std::fs::write(&over, "z".repeat((1 << 20) + 1)).unwrap();
    assert_eq!(
        env.code(&["new", "too big", "--body-file", over.to_str().unwrap()])
            .0,
        2
    );
    let v = env.json(&["new", "labels", "--label", "with space", "--label", "ünï"]);
    assert_eq!(v["labels"], serde_json::json!(["with space", "ünï"]));
}

#[test]
fn a_lock_held_past_the_timeout_exits_5() {
    let env = Env::new();
    // A program in another mode (exclusive) holds the file: our open must not hang.
    let (opened_tx, opened) = std::sync::mpsc::channel();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn({
        let db = env.db.clone();
        move || {
            let d = redb::Database::builder().create(&db).unwrap();
            opened_tx.send(()).unwrap();
            let _ = held.recv_timeout(Duration::from_secs(20));
            drop(d);
        }
    });
    opened.recv().unwrap();
    let started = Instant::now();
    let out = common::run_bounded(
        env.cmd(&["--lock-timeout", "300ms", "new", "x"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("another program"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    release.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(env.code(&["new", "after"]).0, 0);
}

#[test]
fn a_writer_holding_the_file_past_the_timeout_gives_exit_5_not_a_hang() {
    let env = Env::new();
    let holder = common::WriteLockHolder::hold(&env.db);
    let started = Instant::now();
    let out = common::run_bounded(
        env.cmd(&["--lock-timeout", "400ms", "new", "x"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--lock-timeout"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Readers are not blocked by a writer.
    assert_eq!(env.code(&["list"]).0, 0);
    holder.release();
    assert_eq!(env.code(&["new", "after"]).0, 0);
}

/// A read waits for the file's header lock, which a writer holds across a flush while it opens
/// the file; a writer stopped there (or a slow disk) must not hold a read past --lock-timeout.
/// (A read-only open once ran unbounded on the calling thread and hung here.)
#[test]
fn a_read_gives_up_at_the_lock_timeout_while_a_writer_holds_the_header() {
    use std::os::fd::AsRawFd;
    let env = Env::new();
    env.json(&["new", "x"]);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&env.db)
        .unwrap();
    // SAFETY: zeroed flock is valid; the fields that matter are set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::c_short::try_from(libc::F_WRLCK).unwrap();
    lock.l_whence = libc::c_short::try_from(libc::SEEK_SET).unwrap();
    lock.l_start = 0;
    lock.l_len = 320; // redb's header, as a writer locks it while opening the file
                      // SAFETY: `f` is open and `lock` is a valid flock.
    let locked = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    assert_eq!(locked, 0, "the header lock is free at first");
    for args in [&["show", "1"][..], &["list"], &["status"], &["log"]] {
        // Bounded: before, the read waited for as long as the lock was held.
        let cmd = env.cmd(&[&["--lock-timeout", "1s"][..], args].concat());
        let out = common::run_bounded(cmd, Duration::from_secs(20));
        assert_eq!(
            out.status.code(),
            Some(5),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    drop(f);
    assert_eq!(
        env.code(&["show", "1"]).0,
        0,
        "free again once the writer is gone"
    );
}
