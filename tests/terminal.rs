//! Issue 8: human output in a real pseudo-terminal (tmux at 80 columns) fits the width and has
//! colour; the same commands through a pipe print no escape codes at all.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{text, Env};

/// Terminal columns a captured line takes: colour escapes take none, CJK characters two.
fn visible_width(line: &str) -> usize {
    use unicode_width::UnicodeWidthChar;
    let mut n = 0;
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, c) if c.is_ascii_alphabetic() => in_escape = false,
            (true, _) => {}
            (false, c) => n += c.width().unwrap_or(0),
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

/// The screen (with colour escapes) after `commands` ran in a real tmux terminal of `columns`
/// columns, over-long lines joined back into one (`-J`), so one that wrapped shows as wider.
fn screen_after(env: &Env, commands: &[&str], columns: u16) -> String {
    // One tmux server per call: the tests run side by side in one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let socket = format!("tracker-test-{}-{call}", std::process::id());
    let done_marker = env.path("done");
    let bin = common::bin();
    let db = env.db.display();
    let commands: Vec<String> = commands
        .iter()
        .map(|c| format!("{bin} --db {db} {c}"))
        .collect();
    let script = format!(
        "unset NO_COLOR COLUMNS; {}; touch {done}; sleep 60",
        commands.join("; "),
        done = done_marker.display()
    );
    // -u: the pane is UTF-8 whatever the locale, so wide characters reach the screen as such.
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-u", "-L", &socket])
            .args(args)
            .output()
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-x",
        &columns.to_string(),
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
    let screen = tmux(&["capture-pane", "-p", "-e", "-J", "-t", "t"]).unwrap();
    let _ = tmux(&["kill-server"]);
    text(&screen.stdout)
}

fn assert_fits(screen: &str, columns: usize) {
    for line in screen.lines() {
        assert!(
            visible_width(line) <= columns,
            "{} columns: {line:?}",
            visible_width(line)
        );
    }
}

#[test]
fn list_and_status_in_an_80_column_terminal_fit_and_have_colour() {
    let env = populated();
    let screen = screen_after(&env, &["list", "status"], 80);
    assert!(
        screen.contains("NUM") && screen.contains("live claims"),
        "{screen}"
    );
    assert!(
        screen.contains("\x1b["),
        "no colour on a terminal:\n{screen}"
    );
    assert_fits(&screen, 80);
    assert!(
        screen.contains('…'),
        "the long title should be cut with an ellipsis:\n{screen}"
    );
}

/// Issue 21: column widths counted characters, so a holder named 用户甲 pushed AGE and TITLE
/// three columns right of the header's, and a Chinese title was cut at 80 characters: 160
/// columns, wrapped.
#[test]
fn wide_characters_line_up_and_fit_in_an_80_column_terminal() {
    let env = Env::new();
    env.json(&["new", &"数据库迁移把所有旧记录搬到新表里".repeat(4)]);
    env.json(&["new", "Short ascii task"]);
    env.json(&["new", "Ready one"]);
    env.json(&["--as", "用户甲", "claim", "1"]);
    env.json(&["--as", "ana", "claim", "2"]);
    let screen = screen_after(&env, &["list", "status"], 80);
    assert_fits(&screen, 80);
    // Where a text starts, in columns from the line's start.
    let column_of = |line: &str, text: &str| {
        let at = line.find(text)?;
        Some(visible_width(&line[..at]))
    };
    let lines: Vec<&str> = screen.lines().collect();
    let title_column = lines
        .iter()
        .find_map(|l| column_of(l, "TITLE"))
        .unwrap_or_else(|| panic!("no list header:\n{screen}"));
    for title in ["数据库迁移", "Short ascii", "Ready one"] {
        let at = lines.iter().find_map(|l| column_of(l, title));
        assert_eq!(at, Some(title_column), "{title} misaligned:\n{screen}");
    }
    let heartbeats: Vec<usize> = lines
        .iter()
        .filter(|l| l.contains("expires in"))
        .filter_map(|l| column_of(l, "renewed"))
        .collect();
    assert_eq!(heartbeats.len(), 2, "two live claims:\n{screen}");
    assert_eq!(
        heartbeats[0], heartbeats[1],
        "status columns misaligned:\n{screen}"
    );
    assert!(screen.contains('…'), "the long title is cut:\n{screen}");
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
        let out = common::tracker()
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
    let out = common::tracker()
        .arg("--db")
        .arg(&env.db)
        .args(["--color", "always", "list"])
        .env_remove("NO_COLOR")
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
