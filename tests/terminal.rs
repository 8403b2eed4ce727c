//! Issue 8: human output in a real pseudo-terminal (tmux at 80 columns) fits the width and has
//! colour; the same commands through a pipe print no escape codes at all.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{text, Env};

fn visible_width(line: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, c) if c.is_ascii_alphabetic() => in_escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

fn populated() -> Env {
    let env = Env::new();
    env.json(&["new", "Set up the database schema", "--priority", "1"]);
    env.json(&[
        "new",
        &format!(
            "Write the migration {}",
            "that moves every legacy record ".repeat(4)
        ),
    ]);
    env.json(&["new", "Blocked follow-up", "--blocked-by", "1"]);
    env.json(&[
        "--as",
        "ana@a-rather-long-host-name.example.org/pts/7",
        "claim",
        "2",
    ]);
    env
}

#[test]
fn list_and_status_in_an_80_column_terminal_fit_and_have_colour() {
    let env = populated();
    let socket = format!("tracker-test-{}", std::process::id());
    let done_marker = env.path("done");
    let script = format!(
        "unset NO_COLOR COLUMNS; {bin} --db {db} list; {bin} --db {db} status; touch {done}; sleep 60",
        bin = common::bin(),
        db = env.db.display(),
        done = done_marker.display()
    );
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .output()
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-x",
        "80",
        "-y",
        "50",
        "-s",
        "t",
        "sh",
        "-c",
        &script,
    ])
    .expect("tmux is needed for this test (Debian package tmux)");
    assert!(started.status.success(), "{}", text(&started.stderr));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done_marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the commands did not finish in the terminal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // -e keeps colour escapes; -J joins wrapped lines, so an over-long line shows as one.
    let screen = tmux(&["capture-pane", "-p", "-e", "-J", "-t", "t"]).unwrap();
    let _ = tmux(&["kill-server"]);
    let screen = text(&screen.stdout);
    assert!(
        screen.contains("NUM") && screen.contains("live claims"),
        "{screen}"
    );
    assert!(
        screen.contains("\x1b["),
        "no colour on a terminal:\n{screen}"
    );
    for line in screen.lines() {
        assert!(
            visible_width(line) <= 80,
            "{} columns: {line:?}",
            visible_width(line)
        );
    }
    assert!(
        screen.contains('…'),
        "the long title should be cut with an ellipsis:\n{screen}"
    );
}

#[test]
fn through_a_pipe_there_are_no_escape_codes() {
    let env = populated();
    for args in [
        &["list"][..],
        &["status"][..],
        &["show", "2"][..],
        &["log"][..],
        &["--json", "list"][..],
    ] {
        // No NO_COLOR here: a pipe alone must be enough.
        let out = Command::new(common::bin())
            .arg("--db")
            .arg(&env.db)
            .args(args)
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            !out.stdout.contains(&0x1b),
            "{args:?} printed escapes into a pipe"
        );
    }
    // --color always forces them, for people who page through `less -R`.
    let out = Command::new(common::bin())
        .arg("--db")
        .arg(&env.db)
        .args(["--color", "always", "list"])
        .output()
        .unwrap();
    assert!(out.stdout.contains(&0x1b));
}

#[test]
fn completions_and_man_page_are_generated_and_typos_get_suggestions() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = env.run(&["completions", shell]);
        assert!(out.status.success());
        assert!(
            text(&out.stdout).contains("claim"),
            "{shell} completions lack commands"
        );
    }
    let man = env.run(&["man"]);
    assert!(text(&man.stdout).contains(".TH tracker"));
    let (code, err) = env.code(&["cliam", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("claim"), "no suggestion for a typo: {err}");
    let (code, err) = env.code(&["list", "--redy"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--ready"),
        "no suggestion for a flag typo: {err}"
    );
}
