//! The backend a command line names: a redb file, or a PostgreSQL database for a value that
//! starts with `postgres://` or `postgresql://` (never taken as a path).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::pg::{connect::is_url, PgStore};
use super::redb::{Access, RedbStore};
use super::{ReadTxn, Storage, WriteTxn};
use crate::error::Result;

/// Where a tracker lives, as given by `--db` or `TRACKER_DB`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A redb file.
    File(PathBuf),
    /// A PostgreSQL URL (it may hold a password: show it only through `shown`).
    Postgres(String),
}

impl Target {
    /// A `postgres://` or `postgresql://` URL names a database; anything else is a file path
    /// (so a file can never be mistaken for a URL, nor a URL for a file).
    pub fn parse(s: &str) -> Target {
        if is_url(s) {
            Target::Postgres(s.to_string())
        } else {
            Target::File(PathBuf::from(s))
        }
    }

    /// How to name it in messages: the path, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            Target::File(p) => p.display().to_string(),
            Target::Postgres(url) => super::pg::connect::redact(url),
        }
    }
}

/// A tracker in a file or in a database: the [`Storage`] to use when the backend is chosen at
/// run time, as the `tracker` binary does from `--db`.
pub enum Backend {
    // Boxed: the handles are large and of unequal size; one allocation per command is nothing.
    /// A redb file.
    Redb(Box<RedbStore>),
    /// A PostgreSQL database.
    Postgres(Box<PgStore>),
}

impl Backend {
    /// Opens an existing tracker. `access` matters only for a file (a database connection can
    /// always write); `lock_timeout` bounds every wait for a lock or, for PostgreSQL, for the
    /// server to answer.
    pub fn open(target: &Target, access: Access, lock_timeout: Duration) -> Result<Backend> {
        Ok(match target {
            Target::File(p) => Backend::Redb(Box::new(RedbStore::open(p, access, lock_timeout)?)),
            Target::Postgres(url) => Backend::Postgres(Box::new(PgStore::open(url, lock_timeout)?)),
        })
    }

    /// Creates a tracker, or opens the one already there; the flag is true when this call
    /// created it. A file's directory is created as needed; a file that is not a tracker is
    /// refused and left untouched.
    pub fn init(target: &Target, lock_timeout: Duration) -> Result<(Backend, bool)> {
        match target {
            Target::File(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        crate::Error::io(format!("{}: cannot create directory", dir.display()), e)
                    })?;
                }
                match RedbStore::create(p, lock_timeout) {
                    Ok(s) => Ok((Backend::Redb(Box::new(s)), true)),
                    // Like `git init`, a repeat is harmless: an existing tracker is left as it
                    // is (a file that is not a tracker is still refused, and never written).
                    Err(crate::Error::Invalid(_)) if p.exists() => Ok((
                        Backend::Redb(Box::new(RedbStore::open(
                            p,
                            Access::ReadWrite,
                            lock_timeout,
                        )?)),
                        false,
                    )),
                    Err(e) => Err(e),
                }
            }
            Target::Postgres(url) => {
                let (s, created) = PgStore::init(url, lock_timeout)?;
                Ok((Backend::Postgres(Box::new(s)), created))
            }
        }
    }
}

impl Storage for Backend {
    fn has_shared_clock(&self) -> bool {
        match self {
            Backend::Redb(s) => s.has_shared_clock(),
            Backend::Postgres(s) => s.has_shared_clock(),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&dyn ReadTxn) -> Result<T>) -> Result<T> {
        match self {
            Backend::Redb(s) => s.read(f),
            Backend::Postgres(s) => s.read(f),
        }
    }

    fn write<T>(&self, f: impl FnMut(&mut dyn WriteTxn) -> Result<T>) -> Result<T> {
        match self {
            Backend::Redb(s) => s.write(f),
            Backend::Postgres(s) => s.write(f),
        }
    }

    fn upgrade(&self) -> Result<Option<u64>> {
        match self {
            Backend::Redb(s) => s.upgrade(),
            Backend::Postgres(s) => s.upgrade(),
        }
    }

    fn file(&self) -> Option<&Path> {
        match self {
            Backend::Redb(s) => s.file(),
            Backend::Postgres(s) => s.file(),
        }
    }

    fn setting(&self, setting: super::Setting) -> Result<Option<u64>> {
        match self {
            Backend::Redb(s) => Storage::setting(&**s, setting),
            Backend::Postgres(s) => Storage::setting(&**s, setting),
        }
    }

    fn server_time_ms(&self) -> Result<Option<crate::model::WallMs>> {
        match self {
            Backend::Redb(s) => Storage::server_time_ms(&**s),
            Backend::Postgres(s) => Storage::server_time_ms(&**s),
        }
    }

    fn listen(&self) -> bool {
        match self {
            Backend::Redb(s) => s.listen(),
            Backend::Postgres(s) => s.listen(),
        }
    }

    fn wait_for_change(&self, timeout: Duration) -> bool {
        match self {
            Backend::Redb(s) => s.wait_for_change(timeout),
            Backend::Postgres(s) => s.wait_for_change(timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Creating where a file already is, is bad usage (exit 2), not a conflict over an item
    /// (exit 3, which means a lease, a version or a token); `init` still opens an existing
    /// tracker and leaves anything else untouched.
    #[test]
    fn creating_over_an_existing_file_is_invalid_usage_not_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        drop(RedbStore::create(&path, Duration::from_secs(5)).unwrap());
        let Err(again) = RedbStore::create(&path, Duration::from_secs(5)) else {
            panic!("created over an existing file");
        };
        assert_eq!((again.kind(), again.exit_code()), ("invalid", 2), "{again}");
        let (_, created) = Backend::init(&Target::File(path.clone()), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("init of an existing tracker: {e}"));
        assert!(!created);
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, "not a tracker").unwrap();
        assert!(Backend::init(&Target::File(other.clone()), Duration::from_secs(5)).is_err());
        assert_eq!(std::fs::read(&other).unwrap(), b"not a tracker");
    }
}
