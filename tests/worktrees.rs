//! Issue 19, item 2: every git worktree of a repository shares one tracker. Parallel agents sit
//! in `git worktree add` checkouts; a tracker of their own there would silently end
//! coordination. Real `git` commands in temp directories.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::text;
use serde_json::Value;

/// Whether `git` is installed; the tests skip loudly without it.
fn have_git(test: &str) -> bool {
    let ok = Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED {test}: `git` is not installed here");
    }
    ok
}

/// `git ARGS` in `dir`, which must succeed; untouched by the user's git configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `tracker ARGS` in `dir`, finding the tracker itself (no --db, no TRACKER_DB).
fn tracker(dir: &Path, args: &[&str]) -> Output {
    Command::new(common::bin())
        .args(args)
        .current_dir(dir)
        .env_remove("TRACKER_DB")
        .env_remove("TRACKER_AS")
        .env_remove("TRACKER_TTL")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `tracker --json ARGS` in `dir`, which must succeed; its output parsed.
fn json(dir: &Path, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = tracker(dir, &full);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?} in {}: {}",
        dir.display(),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn titles(dir: &Path) -> Vec<String> {
    json(dir, &["list", "--status", "all"])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["title"].as_str().unwrap().to_string())
        .collect()
}

/// A temp directory (canonical, as the tracker reports paths) with a repository `main` in it
/// that has one commit.
fn repo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().canonicalize().unwrap().join("main");
    std::fs::create_dir(&main).unwrap();
    git(&main, &["init", "-q"]);
    std::fs::write(main.join("README"), "hello\n").unwrap();
    git(&main, &["add", "README"]);
    git(&main, &["commit", "-q", "-m", "first"]);
    (dir, main)
}

fn subdir(base: &Path, rel: &str) -> PathBuf {
    let d = base.join(rel);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn every_worktree_of_a_repository_shares_the_main_worktrees_tracker() {
    if !have_git("every_worktree_of_a_repository_shares_the_main_worktrees_tracker") {
        return;
    }
    let (dir, main) = repo();
    let shared = main.join(".tracker/tracker.redb");
    assert_eq!(json(&main, &["init"])["created"], true);
    json(&main, &["new", "from main"]);
    // A sibling worktree, and one inside the main worktree (as some agent tools place them).
    let feat = dir.path().canonicalize().unwrap().join("feat");
    git(&main, &["worktree", "add", "-q", feat.to_str().unwrap()]);
    git(&main, &["worktree", "add", "-q", ".worktrees/inner"]);
    let deep = subdir(&feat, "src/deep/er");
    let inner = subdir(&main, ".worktrees/inner/lib");
    for (at, title) in [
        (&feat, "from feat"),
        (&deep, "from deep"),
        (&inner, "from inner"),
    ] {
        json(at, &["new", title]);
    }
    let all = ["from main", "from feat", "from deep", "from inner"];
    for at in [&main, &feat, &deep, &inner, &subdir(&main, "src/deep")] {
        assert_eq!(titles(at), all, "seen from {}", at.display());
    }
    // A claim in one worktree holds for the others.
    json(&deep, &["--as", "agent-1", "claim", "1"]);
    let out = tracker(&inner, &["--as", "agent-2", "claim", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // `init` in a linked worktree, in a subdirectory or at the top, uses the shared tracker.
    for at in [&deep, &feat] {
        let v = json(at, &["init"]);
        assert_eq!(v["created"], false, "{v}");
        assert_eq!(v["path"], shared.to_str().unwrap());
    }
    assert!(!feat.join(".tracker").exists(), "a second tracker in feat");
    assert!(
        !deep.join(".tracker").exists(),
        "a second tracker in feat/src/deep/er"
    );
}

#[test]
fn init_in_a_linked_worktree_makes_the_tracker_in_the_main_worktree() {
    if !have_git("init_in_a_linked_worktree_makes_the_tracker_in_the_main_worktree") {
        return;
    }
    let (dir, main) = repo();
    let feat = dir.path().canonicalize().unwrap().join("feat");
    git(&main, &["worktree", "add", "-q", feat.to_str().unwrap()]);
    let sub = subdir(&feat, "docs");
    // No tracker yet: the message says where it looked, and that init is the way.
    let out = tracker(&sub, &["list"]);
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(err.contains("tracker init"), "{err}");
    assert!(
        err.contains(
            &main
                .join("docs/.tracker/tracker.redb")
                .display()
                .to_string()
        ),
        "{err}"
    );
    let v = json(&sub, &["init"]);
    assert_eq!(v["created"], true);
    let shared = main.join(".tracker/tracker.redb");
    assert_eq!(v["path"], shared.to_str().unwrap());
    assert!(shared.exists());
    assert!(main.join(".tracker/.gitignore").exists());
    assert!(!feat.join(".tracker").exists() && !sub.join(".tracker").exists());
    json(&sub, &["new", "made in feat/docs"]);
    assert_eq!(titles(&main), ["made in feat/docs"]);
}

#[test]
fn a_bare_repositorys_worktrees_share_a_tracker_in_its_git_directory() {
    if !have_git("a_bare_repositorys_worktrees_share_a_tracker_in_its_git_directory") {
        return;
    }
    let (dir, main) = repo();
    let top = dir.path().canonicalize().unwrap();
    let bare = top.join("bare.git");
    git(
        &top,
        &["clone", "-q", "--bare", main.to_str().unwrap(), "bare.git"],
    );
    for name in ["one", "two"] {
        git(
            &bare,
            &["worktree", "add", "-q", top.join(name).to_str().unwrap()],
        );
    }
    let one = subdir(&top, "one/a/b");
    let two = subdir(&top, "two/c");
    let v = json(&one, &["init"]);
    assert_eq!(v["created"], true);
    assert_eq!(
        v["path"],
        bare.join(".tracker/tracker.redb").to_str().unwrap()
    );
    json(&one, &["new", "from one"]);
    json(&two, &["new", "from two"]);
    assert_eq!(titles(&top.join("two")), ["from one", "from two"]);
    assert_eq!(titles(&one), ["from one", "from two"]);
}

#[test]
fn a_committed_tracker_in_a_linked_worktree_is_warned_about_and_not_used() {
    if !have_git("a_committed_tracker_in_a_linked_worktree_is_warned_about_and_not_used") {
        return;
    }
    let (dir, main) = repo();
    json(&main, &["init"]);
    json(&main, &["new", "before the commit"]);
    // Someone forced the database into git; every checkout of the branch gets a stale copy.
    git(&main, &["add", "-f", ".tracker/tracker.redb"]);
    git(&main, &["commit", "-q", "-m", "oops, the tracker"]);
    json(&main, &["new", "after the commit"]);
    let feat = dir.path().canonicalize().unwrap().join("feat");
    git(&main, &["worktree", "add", "-q", feat.to_str().unwrap()]);
    let copy = feat.join(".tracker/tracker.redb");
    assert!(copy.exists(), "the committed copy is checked out");
    let before = std::fs::read(&copy).unwrap();
    for at in [feat.clone(), subdir(&feat, "src")] {
        let out = tracker(&at, &["--json", "list"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            listed.as_array().unwrap().len(),
            2,
            "the copy was used: {listed}"
        );
        let err = text(&out.stderr);
        assert!(err.contains("warning"), "no warning: {err:?}");
        assert!(err.contains(&copy.display().to_string()), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    json(&feat, &["new", "from feat"]);
    let v = json(&feat, &["init"]);
    assert_eq!(
        v["path"],
        main.join(".tracker/tracker.redb").to_str().unwrap()
    );
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        before,
        "the copy was written"
    );
    assert_eq!(titles(&main).len(), 3);
}

#[test]
fn init_keeps_the_tracker_out_of_git() {
    if !have_git("init_keeps_the_tracker_out_of_git") {
        return;
    }
    let (_dir, main) = repo();
    json(&main, &["init"]);
    json(&main, &["new", "kept"]);
    let staged = |main: &Path| {
        git(main, &["add", "-A"]);
        git(main, &["diff", "--cached", "--name-only"])
    };
    assert_eq!(staged(&main), "", "git add -A staged part of the tracker");
    // `git clean -fd` removes untracked files, but not ignored ones: the tracker stays.
    git(&main, &["clean", "-fdq"]);
    assert_eq!(titles(&main), ["kept"]);
    // A tracker made before init wrote .gitignore gets one from a repeat of init.
    std::fs::remove_file(main.join(".tracker/.gitignore")).unwrap();
    let out = tracker(&main, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("added a .gitignore"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(staged(&main), "");
    // A repeat that finds one leaves it alone.
    let out = tracker(&main, &["init"]);
    assert!(
        text(&out.stdout).contains("nothing changed"),
        "{}",
        text(&out.stdout)
    );
    // A file named with --db outside a .tracker directory gets none: it would hide its neighbours.
    let out = tracker(&main, &["--db", "notes/t.redb", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!main.join("notes/.gitignore").exists());
}

#[test]
fn a_linked_worktree_written_with_relative_paths_is_recognised() {
    if !have_git("a_linked_worktree_written_with_relative_paths_is_recognised") {
        return;
    }
    let (dir, main) = repo();
    json(&main, &["init"]);
    json(&main, &["new", "shared"]);
    let feat = dir.path().canonicalize().unwrap().join("feat");
    git(&main, &["worktree", "add", "-q", feat.to_str().unwrap()]);
    // As git writes them with worktree.useRelativePaths (git 2.48): the .git file relative to
    // the worktree, and commondir relative to the worktree's git directory.
    std::fs::write(feat.join(".git"), "gitdir: ../main/.git/worktrees/feat\n").unwrap();
    let commondir = main.join(".git/worktrees/feat/commondir");
    assert_eq!(std::fs::read_to_string(&commondir).unwrap().trim(), "../..");
    assert_eq!(titles(&subdir(&feat, "x/y")), ["shared"]);
}
