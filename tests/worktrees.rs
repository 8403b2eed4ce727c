//! Issue 19, item 2: every git worktree of a repository shares one tracker. Parallel agents sit
//! in `git worktree add` checkouts; a tracker of their own there would silently end
//! coordination. Real `git` commands in temp directories.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::text;
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

/// The command `tracker ARGS` in `dir`, finding the tracker itself (no --db, no TRACKER_DB).
fn tracker_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = common::tracker();
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    cmd
}

/// `tracker ARGS` in `dir`, finding the tracker itself (no --db, no TRACKER_DB).
fn tracker(dir: &Path, args: &[&str]) -> Output {
    tracker_cmd(dir, args).output().unwrap()
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

/// `git ARGS` in `dir` with file-protocol submodules allowed (git refuses them by default).
fn git_sub(dir: &Path, args: &[&str]) -> String {
    let mut full = vec!["-c", "protocol.file.allow=always"];
    full.extend_from_slice(args);
    git(dir, &full)
}

#[test]
fn a_submodule_of_a_linked_worktree_shares_the_main_worktrees_tracker() {
    if !have_git("a_submodule_of_a_linked_worktree_shares_the_main_worktrees_tracker") {
        return;
    }
    let (dir, main) = repo();
    let top = dir.path().canonicalize().unwrap();
    let (lib, _) = (top.join("lib"), std::fs::create_dir(top.join("lib")));
    git(&lib, &["init", "-q"]);
    git(&lib, &["commit", "-q", "--allow-empty", "-m", "lib"]);
    git_sub(&main, &["submodule", "add", "-q", "../lib", "sm"]);
    git(&main, &["commit", "-q", "-m", "with sm"]);
    json(&main, &["init"]);
    json(&main, &["new", "from main"]);
    let feat = top.join("feat");
    git(&main, &["worktree", "add", "-q", feat.to_str().unwrap()]);
    git_sub(&feat, &["submodule", "update", "--init", "-q"]);
    // The submodule's git directory is inside the main repository's, with no commondir: before,
    // the search stopped there and went up from feat/sm in feat, finding nothing (exit 4).
    assert!(std::fs::metadata(feat.join("sm/.git")).unwrap().is_file());
    let in_feat_sm = subdir(&feat, "sm/src");
    json(&in_feat_sm, &["new", "from feat/sm"]);
    let all = ["from main", "from feat/sm"];
    for at in [&main.join("sm"), &feat.join("sm"), &in_feat_sm, &feat] {
        assert_eq!(titles(at), all, "seen from {}", at.display());
    }
    let v = json(&feat.join("sm"), &["init"]);
    assert_eq!(
        v["path"],
        main.join(".tracker/tracker.redb").to_str().unwrap()
    );
    assert!(!feat.join("sm/.tracker").exists() && !feat.join(".tracker").exists());
}

#[test]
fn a_repository_nested_in_a_linked_worktree_does_not_use_its_committed_copy() {
    if !have_git("a_repository_nested_in_a_linked_worktree_does_not_use_its_committed_copy") {
        return;
    }
    let (dir, main) = repo();
    json(&main, &["init"]);
    json(&main, &["new", "before the commit"]);
    git(&main, &["add", "-f", ".tracker/tracker.redb"]);
    git(&main, &["commit", "-q", "-m", "oops, the tracker"]);
    json(&main, &["new", "after the commit"]);
    let feat = dir.path().canonicalize().unwrap().join("feat");
    git(&main, &["worktree", "add", "-q", feat.to_str().unwrap()]);
    let copy = feat.join(".tracker/tracker.redb");
    let before = std::fs::read(&copy).unwrap();
    // A vendored clone inside the linked worktree: before, its .git ended the git-aware search
    // and the plain search above it used (and wrote) the committed copy, with no warning.
    let lib = subdir(&feat, "vendor/lib");
    git(&lib, &["init", "-q"]);
    for at in [lib.clone(), subdir(&lib, "src")] {
        let out = tracker(&at, &["--json", "list"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 2, "the copy: {listed}");
        let err = text(&out.stderr);
        assert!(err.contains(&copy.display().to_string()), "{err}");
    }
    json(&lib, &["new", "from vendor/lib"]);
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        before,
        "the copy was written"
    );
    assert_eq!(titles(&main).len(), 3);
    // A nested repository with a tracker of its own, at or below its top, keeps using it.
    let out = tracker(&lib, &["--db", ".tracker/tracker.redb", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(titles(&subdir(&lib, "src")), Vec::<String>::new());
}

#[test]
fn a_separate_git_dir_repository_and_its_worktrees_share_one_tracker() {
    if !have_git("a_separate_git_dir_repository_and_its_worktrees_share_one_tracker") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().canonicalize().unwrap();
    let sepgit = top.join("sepgit");
    git(
        &top,
        &[
            "init",
            "-q",
            "--separate-git-dir",
            sepgit.to_str().unwrap(),
            "sep",
        ],
    );
    let sep = top.join("sep");
    git(&sep, &["commit", "-q", "--allow-empty", "-m", "first"]);
    let wt = top.join("wt");
    git(&sep, &["worktree", "add", "-q", wt.to_str().unwrap()]);
    // git itself cannot name the main checkout from a worktree (no core.worktree): it lists
    // the git directory as the main worktree, so the shared tracker lives there, as for a
    // bare repository. Before, the main checkout used sep/.tracker and wt sepgit/.tracker.
    let listed = git(&wt, &["worktree", "list", "--porcelain"]);
    assert!(
        listed.starts_with(&format!("worktree {}\n", sepgit.display())),
        "{listed}"
    );
    let shared = sepgit.join(".tracker/tracker.redb");
    // A tracker the main checkout used before is named, with where to move it.
    let out = tracker(&sep, &["--db", ".tracker/tracker.redb", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = tracker(&sep, &["list"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("warning") && err.contains("move"), "{err}");
    assert!(err.contains(&shared.display().to_string()), "{err}");
    std::fs::remove_dir_all(sep.join(".tracker")).unwrap();
    let v = json(&subdir(&sep, "src"), &["init"]);
    assert_eq!(v["path"], shared.to_str().unwrap(), "{v}");
    json(&sep, &["new", "from sep"]);
    json(&subdir(&wt, "docs"), &["new", "from wt"]);
    for at in [&sep, &wt] {
        assert_eq!(
            titles(at),
            ["from sep", "from wt"],
            "seen from {}",
            at.display()
        );
    }
    let v = json(&wt, &["init"]);
    assert_eq!(
        (&v["created"], &v["path"]),
        (&Value::Bool(false), &v["path"])
    );
    assert_eq!(v["path"], shared.to_str().unwrap(), "{v}");
    assert!(!sep.join(".tracker").exists() && !wt.join(".tracker").exists());
}

/// A `.git` file naming the git directory `d`, whose `commondir` is `common`.
fn forge_dot_git(at: &Path, common: &str) {
    std::fs::create_dir_all(at.join("d")).unwrap();
    std::fs::write(at.join(".git"), "gitdir: d\n").unwrap();
    std::fs::write(at.join("d/commondir"), common).unwrap();
}

#[test]
fn a_crafted_git_file_never_moves_the_tracker_out_of_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().canonicalize().unwrap();
    // A common directory that is no git directory (no HEAD, no objects): before, init made
    // the "shared" tracker in it.
    let other = subdir(&top, "other");
    let at = subdir(&top, "a/b");
    forge_dot_git(&at, "../../../other");
    let v = json(&at, &["init"]);
    assert_eq!(
        v["path"], ".tracker/tracker.redb",
        "init went elsewhere: {v}"
    );
    assert!(at.join(".tracker/tracker.redb").exists());
    assert!(!other.join(".tracker").exists());
    // A commondir up to `/`: the tracker would be /.tracker, which every directory without a
    // tracker of its own then finds.
    let at = subdir(&top, "c/d");
    forge_dot_git(&at, &"../".repeat(64));
    let v = json(&at, &["init"]);
    assert_eq!(v["path"], ".tracker/tracker.redb", "{v}");
    assert!(at.join(".tracker/tracker.redb").exists());
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "{path:?}");
}

#[test]
fn a_fifo_where_git_keeps_its_files_never_blocks_the_search() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().canonicalize().unwrap();
    // A FIFO `.git`; a `.git` file whose `commondir` is a FIFO; a common directory that looks
    // like git's (HEAD, objects) whose `config` is a FIFO. Opening any of them for reading
    // blocks until a writer comes: before, every command without --db hung.
    let fifo_git = subdir(&top, "fifo-git");
    mkfifo(&fifo_git.join(".git"));
    let fifo_commondir = subdir(&top, "fifo-commondir");
    forge_dot_git(&fifo_commondir, "");
    std::fs::remove_file(fifo_commondir.join("d/commondir")).unwrap();
    mkfifo(&fifo_commondir.join("d/commondir"));
    let fifo_config = subdir(&top, "fifo-config");
    forge_dot_git(&fifo_config, "../common/.git");
    let common = subdir(&fifo_config, "common/.git");
    std::fs::write(common.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::create_dir(common.join("objects")).unwrap();
    mkfifo(&common.join("config"));
    for at in [&fifo_git, &fifo_commondir, &fifo_config] {
        let out = common::run_bounded(
            tracker_cmd(&subdir(at, "sub"), &["list"]),
            std::time::Duration::from_secs(60),
        );
        assert_eq!(out.status.code(), Some(4), "{at:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("tracker init"),
            "{}",
            text(&out.stderr)
        );
    }
}
