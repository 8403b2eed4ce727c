//! Where the tracker file is when neither `--db` nor `TRACKER_DB` names one: the nearest
//! `.tracker/tracker.redb` here or in a parent, except that every git worktree of a repository
//! shares the main worktree's. Agents working in parallel usually sit in `git worktree add`
//! checkouts; a tracker of their own there would silently end coordination.
//!
//! Git's files are read directly (a `.git` file, its git directory's `commondir`, `core.bare`
//! and `core.worktree`): spawning `git` would cost every command milliseconds. Only regular
//! files are opened, and only their first bytes read: a FIFO named `.git` would block the open
//! of every command below it forever.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The tracker file's place inside a tracker directory.
const TRACKER_FILE: &str = ".tracker/tracker.redb";

/// The most of one of git's small files that is read (a `.git` file, `commondir`, `config`).
const GIT_FILE_CAP: u64 = 256 * 1024;

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

/// A checkout whose repository's shared tracker is elsewhere: a linked worktree (`git worktree
/// add`), or the main checkout of a repository whose git directory git cannot name it from
/// (`git init --separate-git-dir`).
pub struct Linked {
    /// The checkout's top directory (where its `.git` file is).
    pub root: PathBuf,
    /// The main worktree's top directory; for a bare repository, or a separate git directory
    /// without `core.worktree`, the git common directory. `init` creates the shared tracker here
    /// when there is none.
    pub home: PathBuf,
    /// `home` is the git common directory, not a worktree: no directory there corresponds to
    /// the current one.
    pub in_git_dir: bool,
}

impl Search {
    /// Walks up from `cwd` to the first `.git` that decides (as git finds `.git`), noting the
    /// nearest tracker file on the way. A repository of its own (a submodule, a nested clone)
    /// with a tracker at or below its top uses it; without one the walk goes on above it, so a
    /// repository nested in a linked worktree shares that worktree's tracker. Two `stat`s per
    /// level at most, and no `git` process.
    pub fn from(cwd: &Path) -> Search {
        let mut nearest: Option<PathBuf> = None;
        for dir in cwd.ancestors() {
            if nearest.is_none() {
                let candidate = dir.join(TRACKER_FILE);
                if candidate.exists() {
                    nearest = Some(candidate);
                }
            }
            match git_entry(dir) {
                Some(GitEntry::Linked(linked)) => return Search::in_linked(cwd, linked, nearest),
                Some(GitEntry::Repository) if nearest.is_some() => break,
                Some(GitEntry::Repository) | None => {}
            }
        }
        Search {
            start: cwd.to_path_buf(),
            linked: None,
            shadowed: None,
            found: nearest,
        }
    }

    fn in_linked(cwd: &Path, linked: Linked, shadowed: Option<PathBuf>) -> Search {
        // The same place in the main worktree (it may not exist there: the search just goes up).
        // A git directory has no worktree to correspond to: it stands in itself.
        let start = match cwd.strip_prefix(&linked.root) {
            Ok(rel) if !linked.in_git_dir => linked.home.join(rel),
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
                "the repository's tracker belongs in {} (to keep the items of this one, move its \
                 .tracker directory there)",
                linked.home.join(TRACKER_FILE).display()
            ),
        };
        Some(format!(
            "{} is inside the git worktree {}, which shares its repository's tracker, and is not \
             used (a committed copy? `git rm -r --cached .tracker` takes it out of git); {instead}",
            shadowed.display(),
            linked.root.display()
        ))
    }
}

enum GitEntry {
    /// A `.git` directory, or a `.git` file of a checkout that is its repository's main
    /// worktree (a submodule's): the plain search applies.
    Repository,
    Linked(Linked),
}

/// What `dir/.git` is, if it is there. Anything but a directory or a regular file (a FIFO, a
/// socket) is not git's and is passed by, as is a `.git` file that leads to no usable
/// repository: the plain search applies.
fn git_entry(dir: &Path) -> Option<GitEntry> {
    let dot_git = dir.join(".git");
    let meta = std::fs::metadata(&dot_git).ok()?;
    if meta.is_dir() {
        return Some(GitEntry::Repository);
    }
    if !meta.is_file() {
        return None;
    }
    Some(match shared_home(dir, &dot_git) {
        Some(linked) => GitEntry::Linked(linked),
        None => GitEntry::Repository,
    })
}

/// Reads a `.git` file (`gitdir: PATH`) and finds where its repository's shared tracker lives,
/// if not in this checkout. Relative paths are relative to the file's directory and to the git
/// directory, as git writes them with `worktree.useRelativePaths`.
fn shared_home(root: &Path, dot_git: &Path) -> Option<Linked> {
    let text = read_git_file(dot_git)?;
    let gitdir = root.join(text.lines().next()?.strip_prefix("gitdir:")?.trim());
    // A linked worktree's git directory has a `commondir`; a repository's own has none.
    let commondir = gitdir.join("commondir");
    let common = if std::fs::symlink_metadata(&commondir).is_ok() {
        gitdir.join(read_git_file(&commondir)?.trim())
    } else {
        gitdir
    };
    let common = std::fs::canonicalize(common).ok()?;
    let (home, in_git_dir) = main_worktree(&common)?;
    // A submodule's (or any repository's) own checkout: its main worktree is itself.
    if home == root {
        return None;
    }
    Some(Linked {
        root: root.to_path_buf(),
        home,
        in_git_dir,
    })
}

/// The main worktree of the repository whose (canonical) common directory is `common`, as git's
/// `get_main_worktree` names it, and whether that is the common directory itself: a bare
/// repository's, or a separate git directory's (`git init --separate-git-dir`), whose checkout
/// git cannot name from a linked worktree either (`git worktree list` shows the git directory).
/// `core.worktree` (set in a submodule's) names it when present. None for a directory that is
/// not a git directory (no `HEAD`, no `objects`: a crafted `.git` file) or a main worktree at
/// `/`, whose tracker every directory without one would find.
fn main_worktree(common: &Path) -> Option<(PathBuf, bool)> {
    if !common.join("HEAD").is_file() || !common.join("objects").is_dir() {
        return None;
    }
    let core = read_git_file(&common.join("config"))
        .map(|config| core_settings(&config))
        .unwrap_or_default();
    let (home, in_git_dir) = if core.bare {
        (common.to_path_buf(), true)
    } else if let Some(worktree) = core.worktree {
        (std::fs::canonicalize(common.join(worktree)).ok()?, false)
    } else if common.ends_with(".git") {
        (common.parent()?.to_path_buf(), false)
    } else {
        (common.to_path_buf(), true)
    };
    home.parent()?;
    Some((home, in_git_dir))
}

/// The first bytes of one of git's small files, if it is a regular file. Anything else is never
/// opened: opening a FIFO for reading waits for a writer. The open is non-blocking as well, for
/// a file swapped for a FIFO after the check, and what was opened is checked again.
fn read_git_file(path: &Path) -> Option<String> {
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(GIT_FILE_CAP).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The settings of a repository's `[core]` section that decide where its main worktree is.
#[derive(Default)]
struct Core {
    /// `core.bare`, read as git reads booleans.
    bare: bool,
    /// `core.worktree`, relative to the git directory unless absolute.
    worktree: Option<String>,
}

fn core_settings(config: &str) -> Core {
    let mut core = Core::default();
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
        if !in_core {
            continue;
        }
        let value = value.split(['#', ';']).next().unwrap_or_default().trim();
        let value = value.trim_matches('"');
        let key = key.trim();
        // The last setting wins, as in git.
        if key.eq_ignore_ascii_case("bare") {
            core.bare = ["true", "yes", "on", "1"]
                .iter()
                .any(|t| value.eq_ignore_ascii_case(t));
        } else if key.eq_ignore_ascii_case("worktree") && !value.is_empty() {
            core.worktree = Some(value.to_string());
        }
    }
    core
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
            assert_eq!(core_settings(config).bare, bare, "{config:?}");
        }
    }

    #[test]
    fn core_worktree_is_read_only_from_the_core_section() {
        for (config, worktree) in [
            ("[core]\n\tworktree = ../../../sm\n", Some("../../../sm")),
            ("[core]\n\tworktree = \"/a b\" # moved\n", Some("/a b")),
            ("[submodule \"x\"]\n\tworktree = /x\n", None),
            ("[core]\n\tbare = false\n", None),
        ] {
            assert_eq!(
                core_settings(config).worktree.as_deref(),
                worktree,
                "{config:?}"
            );
        }
    }

    #[test]
    fn a_main_worktree_at_the_root_is_refused() {
        // `/.git` as a common directory would put the shared tracker at `/.tracker`.
        let dir = tempfile::tempdir().unwrap();
        let common = dir.path().join(".git");
        std::fs::create_dir_all(common.join("objects")).unwrap();
        std::fs::write(common.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        assert!(main_worktree(&common).is_some_and(|(home, _)| home == dir.path()));
        assert!(main_worktree(Path::new("/")).is_none());
        std::fs::write(common.join("config"), "[core]\n\tworktree = /\n").unwrap();
        assert!(main_worktree(&common).is_none(), "core.worktree = /");
    }
}
