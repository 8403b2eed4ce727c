//! Where the tracker file is when neither `--db` nor `TRACKER_DB` names one: the nearest
//! `.tracker/tracker.redb` here or in a parent, except that every git worktree of a repository
//! shares the main worktree's. Agents working in parallel usually sit in `git worktree add`
//! checkouts; a tracker of their own there would silently end coordination.
//!
//! Git's files are read directly (a linked worktree's `.git` file, its `commondir`, the
//! `core.bare` setting): spawning `git` would cost every command milliseconds.

use std::path::{Path, PathBuf};

/// The tracker file's place inside a tracker directory.
const TRACKER_FILE: &str = ".tracker/tracker.redb";

/// The search for the tracker file from one directory.
pub struct Search {
    /// Where the search starts: the current directory, or in a linked worktree the directory of
    /// the main worktree that corresponds to it.
    pub start: PathBuf,
    /// The linked worktree the current directory is in, if it is in one.
    pub linked: Option<Linked>,
    /// The tracker file the plain search would have used, inside the linked worktree itself (most
    /// likely a committed copy). It is not used; the caller warns about it.
    pub shadowed: Option<PathBuf>,
    /// In a plain directory: the tracker file found on the way up.
    found: Option<PathBuf>,
}

/// A linked git worktree (`git worktree add`) and the repository's home for the shared tracker.
pub struct Linked {
    /// The linked worktree's top directory (where its `.git` file is).
    pub root: PathBuf,
    /// The main worktree's top directory; for a bare repository, the git common directory.
    /// `init` creates the shared tracker here when there is none.
    pub home: PathBuf,
    /// The repository is bare: `home` is its common directory, not a worktree.
    pub bare: bool,
}

impl Search {
    /// Walks up from `cwd` to the first `.git` (as git does), noting the nearest tracker file on
    /// the way. Two `stat`s per level at most, and no `git` process.
    pub fn from(cwd: &Path) -> Search {
        let mut nearest: Option<PathBuf> = None;
        let mut levels = cwd.ancestors();
        for dir in levels.by_ref() {
            if nearest.is_none() {
                let candidate = dir.join(TRACKER_FILE);
                if candidate.exists() {
                    nearest = Some(candidate);
                }
            }
            let Some(kind) = git_entry(dir) else {
                continue;
            };
            if let GitEntry::Linked(linked) = kind {
                return Search::in_linked(cwd, linked, nearest);
            }
            // A repository of its own (or a submodule): the plain search, which goes on above it.
            break;
        }
        let found = nearest.or_else(|| {
            levels
                .map(|d| d.join(TRACKER_FILE))
                .find(|candidate| candidate.exists())
        });
        Search {
            start: cwd.to_path_buf(),
            linked: None,
            shadowed: None,
            found,
        }
    }

    fn in_linked(cwd: &Path, linked: Linked, shadowed: Option<PathBuf>) -> Search {
        // The same place in the main worktree (it may not exist there: the search just goes up).
        // A bare repository has no worktree to correspond to: its common directory stands in.
        let start = match cwd.strip_prefix(&linked.root) {
            Ok(rel) if !linked.bare => linked.home.join(rel),
            _ => linked.home.clone(),
        };
        Search {
            start,
            linked: Some(linked),
            shadowed,
            found: None,
        }
    }

    /// The tracker file, if there is one.
    pub fn find(&self) -> Option<PathBuf> {
        if self.linked.is_none() {
            return self.found.clone();
        }
        self.start
            .ancestors()
            .map(|d| d.join(TRACKER_FILE))
            .find(|candidate| candidate.exists())
    }

    /// The warning for a tracker file inside a linked worktree, which is not used.
    pub fn shadow_warning(&self, using: Option<&Path>) -> Option<String> {
        let (shadowed, linked) = (self.shadowed.as_ref()?, self.linked.as_ref()?);
        let instead = match using {
            Some(p) => format!(
                "using {}, which every worktree of the repository shares",
                p.display()
            ),
            None => format!(
                "the repository's tracker belongs in {}",
                linked.home.join(TRACKER_FILE).display()
            ),
        };
        Some(format!(
            "{} is inside the linked git worktree {} and is not used (a committed copy? \
             `git rm -r --cached .tracker` takes it out of git); {instead}",
            shadowed.display(),
            linked.root.display()
        ))
    }
}

enum GitEntry {
    /// A `.git` directory, or a `.git` file of a repository that is not a linked worktree
    /// (a submodule, `git init --separate-git-dir`).
    Repository,
    Linked(Linked),
}

/// What `dir/.git` is, if it is there.
fn git_entry(dir: &Path) -> Option<GitEntry> {
    let dot_git = dir.join(".git");
    let meta = std::fs::metadata(&dot_git).ok()?;
    if meta.is_dir() {
        return Some(GitEntry::Repository);
    }
    Some(match linked_worktree(dir, &dot_git) {
        Some(linked) => GitEntry::Linked(linked),
        None => GitEntry::Repository,
    })
}

/// Reads a `.git` file (`gitdir: PATH`); it is a linked worktree's when that git directory has a
/// `commondir`. Relative paths are relative to the file's directory and to the git directory,
/// as git writes them with `worktree.useRelativePaths`.
fn linked_worktree(root: &Path, dot_git: &Path) -> Option<Linked> {
    let text = std::fs::read_to_string(dot_git).ok()?;
    let gitdir = root.join(text.strip_prefix("gitdir:")?.trim());
    let common = std::fs::read_to_string(gitdir.join("commondir")).ok()?;
    let common = std::fs::canonicalize(gitdir.join(common.trim())).ok()?;
    // As git's get_main_worktree: the common directory without its `/.git`, unless the
    // repository is bare (or its common directory is not a `.git` inside a worktree).
    let (home, bare) = match common.parent() {
        Some(parent) if common.ends_with(".git") && !is_bare(&common) => {
            (parent.to_path_buf(), false)
        }
        _ => (common.clone(), true),
    };
    Some(Linked {
        root: root.to_path_buf(),
        home,
        bare,
    })
}

/// Whether the repository's config says `core.bare = true`.
fn is_bare(common: &Path) -> bool {
    let Ok(config) = std::fs::read_to_string(common.join("config")) else {
        return false;
    };
    let mut in_core = false;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_core = line
                .trim_start_matches('[')
                .split([']', ' ', '"'])
                .next()
                .is_some_and(|s| s.eq_ignore_ascii_case("core"));
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if in_core && key.trim().eq_ignore_ascii_case("bare") {
            let value = value.split(['#', ';']).next().unwrap_or_default().trim();
            return ["true", "yes", "on", "1"]
                .iter()
                .any(|t| value.eq_ignore_ascii_case(t));
        }
    }
    false
}

/// Writes `.gitignore` into a tracker's `.tracker` directory unless one is there, so that
/// `git add -A` never stages the database. Returns whether it wrote one. A file elsewhere
/// (`--db notes/t.redb`) gets none: ignoring its whole directory would hide the user's files.
pub fn write_gitignore(tracker_file: &Path) -> tracker::Result<bool> {
    let Some(dir) = tracker_file
        .parent()
        .filter(|d| d.file_name().is_some_and(|n| n == ".tracker"))
    else {
        return Ok(false);
    };
    let path = dir.join(".gitignore");
    let contents = "# Written by `tracker init`: the tracker database never enters git.\n\
                    # `git clean -x` (and -X) deletes ignored files, this tracker with them.\n*\n";
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            std::io::Write::write_all(&mut f, contents.as_bytes())
                .map_err(|e| tracker::Error::io(format!("{}: cannot write", path.display()), e))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(tracker::Error::io(
            format!("{}: cannot create", path.display()),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_bare_is_read_as_git_reads_booleans() {
        let dir = tempfile::tempdir().unwrap();
        for (config, bare) in [
            ("[core]\n\tbare = true\n", true),
            ("[core]\n\tBare=yes ; set by clone\n", true),
            ("[core]\n\tbare = false\n", false),
            (
                "[remote \"origin\"]\n\tbare = true\n[core]\n\tfilemode = true\n",
                false,
            ),
            ("", false),
        ] {
            std::fs::write(dir.path().join("config"), config).unwrap();
            assert_eq!(is_bare(dir.path()), bare, "{config:?}");
        }
    }
}
