//! Hostile use of the command line: absurd arguments, hostile names and titles, planted
//! symlinks, broken standard output, and processes that refuse to die.

use crate::common;

use crate::common::{text, Env};

/// Every duration the command line takes, at values that would overflow a deadline.
#[test]
fn huge_durations_are_refused_at_parse_time_with_exit_2() {
    let env = Env::new();
    env.json(&["new", "x"]);
    for huge in ["500000000000y", "367d", "5000000000000000y"] {
        for args in [
            &["claim", "1", "--wait", huge][..],
            &["claim", "1", "--ttl", huge],
            &["claim", "--next", "--ttl", huge],
            &["renew", "1", "--ttl", huge],
            &["run", "1", "--ttl", huge, "--", "true"],
            &["--lock-timeout", huge, "list"],
            &["config", "default-ttl", huge],
        ] {
            let out = env.run(args);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(!err.contains("internal error"), "{args:?}: {err}");
            assert!(
                err.contains(huge),
                "{args:?}: the message names the value: {err}"
            );
        }
        let out = common::tracker()
            .args(["--db", env.path("other.redb").to_str().unwrap()])
            .args(["init", "--default-ttl", huge])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let out = env
            .cmd(&["claim", "1"])
            .env("TRACKER_TTL", huge)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "TRACKER_TTL={huge}: {err}");
        assert!(err.contains("TRACKER_TTL"), "{err}");
    }
    assert!(
        !env.path("other.redb").exists(),
        "init with a bad --default-ttl made a file"
    );
    // Nothing was claimed or changed by any of them.
    assert!(env.json(&["show", "1"])["claim"].is_null());
    assert_eq!(env.json(&["show", "1"])["version"], 1);
}

/// An executable script at `name` in the test's directory.
fn script(env: &Env, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = env.path(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

/// The pid the next process started here will most likely get (pids are handed out in order).
fn next_pid() -> u32 {
    let mut probe = std::process::Command::new("true").spawn().unwrap();
    let pid = probe.id();
    probe.wait().unwrap();
    pid + 1
}

#[test]
fn edit_drafts_are_private_files_that_never_follow_a_planted_link() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    env.json(&["new", "secret plans"]);
    // The shared temp directory, where another user plants links at the names `edit` used to
    // choose (tracker-edit-NUM-PID.txt) for the pids it is about to get.
    let tmp = env.path("shared-tmp");
    std::fs::create_dir(&tmp).unwrap();
    let victim = env.path("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let first = next_pid();
    for pid in first..first + 400 {
        let link = tmp.join(format!("tracker-edit-1-{pid}.txt"));
        std::os::unix::fs::symlink(&victim, link).unwrap();
    }
    let seen = env.path("seen.txt");
    let editor = script(
        &env,
        "ed.sh",
        &format!(
            "stat -c '%a %F' \"$1\" > {seen}\nsed -i 's/^title: .*/title: revised plans/' \"$1\"",
            seen = seen.display()
        ),
    );
    let out = env
        .cmd(&["edit", "1"])
        .env("TMPDIR", &tmp)
        .env("EDITOR", &editor)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o777, 0o644);
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(seen.trim(), "600 regular file", "the editor saw {seen:?}");
    assert_eq!(env.json(&["show", "1"])["title"], "revised plans");
    // Saved, so the draft is gone: only the planted links are left.
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_type().unwrap().is_symlink())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "drafts left behind: {left:?}");
}

/// Characters that must never reach a terminal from human output: controls other than the
/// newline, bidi controls, and line/paragraph separators.
fn terminal_hazards(s: &str) -> Vec<char> {
    s.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(
                    c,
                    '\u{202A}'..='\u{202E}'
                        | '\u{2066}'..='\u{2069}'
                        | '\u{200E}'
                        | '\u{200F}'
                        | '\u{061C}'
                        | '\u{2028}'
                        | '\u{2029}'
                )
        })
        .collect()
}

#[test]
fn hostile_holder_names_titles_and_labels_never_reach_the_terminal_raw() {
    let env = Env::new();
    let evil_holder = "mallory\x1b[2J\x1b]0;pwn\x07\u{9b}31m";
    let evil_title = "invoice \u{202e}fdp.exe\u{2028}line two";
    let evil_label = "lab\u{202e}el\u{2066}";
    let made = env.json(&["new", evil_title, "--label", evil_label]);
    // JSON keeps the exact text.
    assert_eq!(made["title"], evil_title);
    assert_eq!(made["labels"][0], evil_label);
    env.json(&[
        "new",
        "second",
        "--body",
        "body \u{202e}txt\u{2029} \x1b[31m end",
    ]);
    let mut seen = Vec::new();
    let mut check = |what: &str, out: std::process::Output, code: i32| {
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "{what}: {stderr}");
        // `--json` stdout keeps the exact text, by contract; stderr is for people either way.
        let json = what.ends_with("--json");
        for (stream, s) in [("stdout", &stdout), ("stderr", &stderr)] {
            if json && stream == "stdout" {
                continue;
            }
            let bad = terminal_hazards(s);
            assert!(bad.is_empty(), "{what} {stream} carries {bad:?}: {s:?}");
        }
        seen.push(format!("{stdout}{stderr}"));
    };
    check("claim", env.run(&["--as", evil_holder, "claim", "1"]), 0);
    check("renew", env.run(&["--as", evil_holder, "renew", "1"]), 0);
    check("show", env.run(&["show", "1"]), 0);
    check("show body", env.run(&["show", "2"]), 0);
    check("list", env.run(&["list"]), 0);
    check(
        "list --wide",
        env.run(&["list", "--wide", "--status", "all"]),
        0,
    );
    check("log", env.run(&["log"]), 0);
    check("status", env.run(&["status"]), 0);
    check("conflict", env.run(&["--as", "bob", "claim", "1"]), 3);
    check(
        "conflict --json",
        env.run(&["--json", "--as", "bob", "claim", "1"]),
        3,
    );
    check(
        "release conflict",
        env.run(&["--as", "bob", "release", "1"]),
        3,
    );
    check(
        "run",
        env.run(&["--as", evil_holder, "run", "2", "--", "true"]),
        0,
    );
    // Shown, visibly: the reader can tell something odd is in the name.
    let all = seen.concat();
    assert!(all.contains("mallory"), "{all}");
    assert!(all.contains("\\u{202e}"), "{all}");
    assert!(all.contains("\\u{1b}"), "{all}");
    // The exact text is still there for programs.
    let v = env.json(&["show", "1"]);
    assert_eq!(v["claim"]["holder"], evil_holder);
    assert_eq!(v["title"], evil_title);
}

/// Runs `args` with standard output on /dev/full, where every write fails with ENOSPC.
fn with_full_stdout(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = env.cmd(args).stdout(full).output().unwrap();
    (out.status.code(), text(&out.stderr))
}

/// Runs `args` with descriptor 1 closed, as `tracker ... >&-` does.
fn with_closed_stdout(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let mut c = env.cmd(args);
    // SAFETY: close is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    let out = c.stderr(std::process::Stdio::piped()).output().unwrap();
    (out.status.code(), text(&out.stderr))
}

#[test]
fn a_change_whose_output_fails_says_it_was_made_and_exits_1() {
    let env = Env::new();
    type Run = fn(&Env, &[&str]) -> (Option<i32>, String);
    for (how, run) in [
        ("/dev/full", with_full_stdout as Run),
        ("closed stdout", with_closed_stdout as Run),
    ] {
        let (code, err) = run(&env, &["new", "written anyway"]);
        assert_eq!(code, Some(1), "{how}: {err}");
        assert!(!err.contains("internal error"), "{how}: {err}");
        let num = env
            .json(&["list", "--status", "all"])
            .as_array()
            .unwrap()
            .len();
        assert!(
            err.contains(&format!(
                "created #{num}, but could not write the result to standard output"
            )),
            "{how}: {err}"
        );
        let (code, err) = run(&env, &["--json", "claim", &num.to_string()]);
        assert_eq!(code, Some(1), "{how}: {err}");
        assert!(
            err.contains(&format!("claimed #{num}, but")),
            "{how}: {err}"
        );
        assert!(!env.json(&["show", &num.to_string()])["claim"].is_null());
    }
    assert_eq!(env.code(&["verify"]).0, 0);
}

#[test]
fn reads_whose_output_fails_exit_1_instead_of_passing_for_success() {
    let env = Env::new();
    env.json(&["new", "a", "--label", "x"]);
    env.json(&["claim", "1"]);
    for args in [
        &["list"][..],
        &["--json", "list"],
        &["show", "1"],
        &["--json", "show", "1"],
        &["log"],
        &["--json", "log"],
        &["status"],
        &["--json", "status"],
        &["export"],
        &["export", "--jsonl"],
        &["verify"],
        &["config", "default-ttl"],
        &["completions", "bash"],
        &["man"],
    ] {
        for (how, (code, err)) in [
            ("/dev/full", with_full_stdout(&env, args)),
            ("closed stdout", with_closed_stdout(&env, args)),
        ] {
            assert_eq!(code, Some(1), "{args:?} with {how}: {err}");
            assert!(
                !err.contains("internal error"),
                "{args:?} with {how}: {err}"
            );
            assert!(
                err.contains("standard output") || err.contains("export"),
                "{args:?} with {how}: {err}"
            );
        }
    }
}

#[test]
fn a_closed_pipe_still_ends_output_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new();
    env.json(&["new", "a"]);
    for args in [&["list"][..], &["--json", "list"], &["export"], &["log"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env.cmd(args).stdout(writer).output().unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
}

fn wait_until(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// The pid a test command wrote to `file`, once it is there in full.
fn pid_in(file: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Whether `pid` runs (a zombie has exited and only waits to be reaped).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                != Some("Z")
        }
        Err(_) => false,
    }
}

/// A command that ignores SIGTERM (as do the processes it starts) and leaves a grandchild
/// working in the background; their pids go to `child.pid` and `grandchild.pid`.
fn stubborn_command(env: &Env) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let (child, grandchild) = (env.path("child.pid"), env.path("grandchild.pid"));
    let script = format!(
        "exec >/dev/null 2>&1; trap '' TERM; sleep 60 & echo $! > {g}.tmp; mv {g}.tmp {g}; echo $$ > {c}.tmp; mv {c}.tmp {c}; exec sleep 60",
        g = grandchild.display(),
        c = child.display()
    );
    (script, child, grandchild)
}

/// Waits for the stubborn command and its grandchild to write their pids, and returns them.
fn started_pids(child_file: &std::path::Path, grandchild_file: &std::path::Path) -> (i32, i32) {
    wait_until(
        "the command and its grandchild to start",
        std::time::Duration::from_secs(10),
        || pid_in(child_file).is_some() && pid_in(grandchild_file).is_some(),
    );
    (
        pid_in(child_file).unwrap(),
        pid_in(grandchild_file).unwrap(),
    )
}

#[test]
fn a_killed_run_keeps_its_item_until_the_last_process_it_started_is_gone() {
    let env = Env::new();
    env.json(&["new", "long job"]);
    let (script, child_file, grandchild_file) = stubborn_command(&env);
    let mut run = env.spawn(&[
        "--as", "runner", "run", "1", "--ttl", "10m", "--", "sh", "-c", &script,
    ]);
    let secs = std::time::Duration::from_secs;
    let (child, grandchild) = started_pids(&child_file, &grandchild_file);
    // Killed before it tied the lease to the command's group, `run` would leave a lease that
    // counts the group as alive until its short first TTL: the item would be free seconds
    // later, not at once. So the kill waits for the tie (the TTL asked for, 10m, in place).
    wait_until("run to tie its lease to the command", secs(10), || {
        let claim = &env.json(&["show", "1"])["claim"];
        let at = |f: &str| tracker::clock::parse_rfc3339(claim[f].as_str().unwrap()).unwrap();
        at("expires_at") - at("acquired_at") > 60_000
    });
    run.kill().unwrap();
    run.wait().unwrap();
    // The command ignored the SIGTERM the kernel sent it when `run` died; both still work.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(running(child) && running(grandchild));
    let (code, err) = env.code(&["--as", "rescuer", "claim", "1"]);
    assert_eq!(code, 3, "taken while the command still runs: {err}");
    let (code, err) = env.code(&["--as", "rescuer", "claim", "1", "--steal-stale"]);
    assert_eq!(code, 3, "stolen while the command still runs: {err}");
    let (code, err) = env.code(&["--as", "rescuer", "claim", "--next"]);
    assert_eq!(
        code, 4,
        "offered as ready while the command still runs: {err}"
    );
    // The command ends, but the grandchild it left still works on the item.
    // SAFETY: killing processes this test started (through run).
    unsafe { libc::kill(child, libc::SIGKILL) };
    wait_until("the command to end", secs(5), || !running(child));
    let (code, err) = env.code(&["--as", "rescuer", "claim", "1"]);
    assert_eq!(code, 3, "taken while the grandchild still runs: {err}");
    unsafe { libc::kill(grandchild, libc::SIGKILL) };
    wait_until("the grandchild to end", secs(5), || !running(grandchild));
    // The last of them is gone: the item is free at once, ten minutes before the TTL.
    let v = env.json(&["--as", "rescuer", "claim", "--next", "--wait", "5s"]);
    assert_eq!(v["num"], 1);
    assert_eq!(v["claim"]["holder"], "rescuer");
}

#[test]
fn a_run_that_loses_its_lease_stops_everything_it_started() {
    let env = Env::new();
    env.json(&["new", "contested"]);
    let (script, child_file, grandchild_file) = stubborn_command(&env);
    // TTL 3s: the run renews every second, and so learns of the loss quickly.
    let run = env.spawn(&[
        "--as", "runner", "run", "1", "--ttl", "3s", "--", "sh", "-c", &script,
    ]);
    let secs = std::time::Duration::from_secs;
    let (child, grandchild) = started_pids(&child_file, &grandchild_file);
    assert_eq!(
        env.json(&["--as", "boss", "claim", "1", "--force"])["claim"]["holder"],
        "boss"
    );
    let started = std::time::Instant::now();
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        started.elapsed() < secs(20),
        "run took {:?} to stop",
        started.elapsed()
    );
    wait_until(
        "the command and its grandchild to be stopped",
        secs(5),
        || !running(child) && !running(grandchild),
    );
}

#[test]
fn a_run_whose_command_fails_stops_what_it_left_running_before_releasing() {
    let env = Env::new();
    env.json(&["new", "flaky"]);
    let grandchild_file = env.path("grandchild.pid");
    let script = format!(
        "sleep 60 & echo $! > {g}.tmp; mv {g}.tmp {g}; exit 7",
        g = grandchild_file.display()
    );
    let out = env.run(&["run", "1", "--", "sh", "-c", &script]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let grandchild = pid_in(&grandchild_file).unwrap();
    wait_until(
        "the leftover to be stopped",
        std::time::Duration::from_secs(5),
        || !running(grandchild),
    );
    assert!(env.json(&["show", "1"])["claim"].is_null());
}

#[test]
fn a_holder_in_another_pid_namespace_is_not_judged_by_our_pids() {
    let can_unshare = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !can_unshare {
        eprintln!(
            "SKIPPED a_holder_in_another_pid_namespace_is_not_judged_by_our_pids: \
             `unshare --pid --fork --mount-proc` is not available here (needs root and util-linux)"
        );
        return;
    }
    let env = Env::new();
    env.json(&["new", "contained"]);
    let ready = env.path("ready");
    // A container sharing this host's name and boot: its holder is pid 1 there, alive, while
    // pid 1 here is another process.
    let script = format!(
        "{bin} --db {db} --as inner claim 1 --pid $$ --ttl 10m >/dev/null && touch {ready}; exec sleep 30",
        bin = common::bin(),
        db = env.db.display(),
        ready = ready.display()
    );
    let mut inner = common::command("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script])
        .spawn()
        .unwrap();
    wait_until(
        "the claim in the other namespace",
        std::time::Duration::from_secs(10),
        || ready.exists(),
    );
    let (code, err) = env.code(&["--as", "outer", "claim", "1", "--steal-stale"]);
    let (next, next_err) = env.code(&["--as", "outer", "claim", "--next"]);
    inner.kill().unwrap();
    inner.wait().unwrap();
    assert_eq!(
        code, 3,
        "a live holder in another pid namespace lost its item: {err}"
    );
    assert_eq!(next, 4, "offered as ready: {next_err}");
    assert_eq!(env.json(&["show", "1"])["claim"]["holder"], "inner");
}

/// Invisible format characters (word joiner, zero-width space, soft hyphen, BOM, tags) would let
/// one holder pass for another: human output shows them escaped.
#[test]
fn invisible_format_characters_are_shown_escaped() {
    let env = Env::new();
    env.json(&["new", "plain"]);
    let sneaky = "alice\u{2060}\u{200B}\u{00AD}\u{FEFF}\u{E0041}";
    assert_eq!(env.code(&["--as", sneaky, "claim", "1"]).0, 0);
    for args in [&["status"][..], &["list"], &["show", "1"], &["log"]] {
        let out = env.run(args);
        let shown = text(&out.stdout);
        for c in ['\u{2060}', '\u{200B}', '\u{00AD}', '\u{FEFF}', '\u{E0041}'] {
            assert!(
                !shown.contains(c),
                "{args:?} showed U+{:04X} raw: {shown}",
                c as u32
            );
        }
        assert!(shown.contains("\\u{2060}"), "{args:?}: {shown}");
    }
    // --json keeps the exact name.
    assert_eq!(env.json(&["show", "1"])["claim"]["holder"], sneaky);
}

/// `--label` only filters `--next`: given with an item it used to be ignored silently.
#[test]
fn a_label_with_a_named_item_is_refused_not_ignored() {
    let env = Env::new();
    env.json(&["new", "x", "-l", "db"]);
    for cmd in ["claim", "run"] {
        let mut args = vec!["--as", "ana", cmd, "1", "--label", "db"];
        if cmd == "run" {
            args.extend(["--", "true"]);
        }
        let (code, err) = env.code(&args);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains("--label"), "{cmd}: {err}");
    }
    assert!(
        env.json(&["show", "1"])["claim"].is_null(),
        "nothing was claimed"
    );
}

/// `init --default-ttl` on an existing tracker says what it changed, not "nothing changed".
#[test]
fn init_on_an_existing_tracker_says_when_it_set_the_default_ttl() {
    let env = Env::new();
    let out = env.run(&["init", "--default-ttl", "45m"]);
    let said = text(&out.stdout);
    assert!(
        said.contains("default-ttl") && !said.contains("nothing changed"),
        "{said}"
    );
    assert_eq!(
        env.json(&["config", "default-ttl"])["default_ttl_ms"],
        45 * 60 * 1000
    );
    let again = text(&env.run(&["init"]).stdout);
    assert!(again.contains("nothing changed"), "{again}");
}

/// A blank `--as` counts as not given: the name comes from TRACKER_AS (it fell through to the
/// default user@host name).
#[test]
fn a_blank_as_falls_back_to_tracker_as() {
    let env = Env::new();
    env.json(&["new", "x"]);
    let out = env
        .cmd(&["--json", "--as", " ", "claim", "1"])
        .env("TRACKER_AS", "ana")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let item: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(item["claim"]["holder"], "ana");
}
