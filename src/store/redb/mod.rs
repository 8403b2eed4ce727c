//! The redb backend. This file owns the handle: creating and opening tracker files, bounded lock
//! waits, and turning redb's errors into ours; `tables` owns every table, key and value encoding
//! (and data-format.md mirrors it).
//!
//! Every process opens the file in redb's `MultiWriter` mode, read-only commands included, since
//! an exclusive opener and a multi-writer opener refuse each other. Waits for the file are
//! bounded by the lock timeout.

mod tables;

use std::fs::File;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use redb::{
    ConcurrencyMode, Database, DatabaseError, ReadOnlyDatabase, ReadableDatabase, TransactionError,
    WriteTransaction,
};

use super::{Counter, ReadTxn, Storage, WriteTxn};
use crate::error::{Error, Result};
use tables::Txn;

/// redb's file signature: a file that does not start with it is not ours to open.
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
/// Page cache per process; commands touch few pages, and a large cache costs start-up time.
const CACHE_BYTES: usize = 16 << 20;

/// Whether a handle may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

enum Handle {
    Rw(Arc<Database>),
    Ro(ReadOnlyDatabase),
}

/// A tracker file opened in redb's multi-process mode.
pub struct RedbStore {
    path: PathBuf,
    handle: Handle,
    lock_timeout: Duration,
}

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_concurrency_mode(ConcurrencyMode::MultiWriter)
        .set_cache_size(CACHE_BYTES);
    b
}

/// Runs `f` on a helper thread and waits at most `timeout` for it. A blocked lock wait is left
/// behind on timeout; the process (or the handle's drop) ends it.
fn within<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<Option<T>, String> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(v)) => Ok(Some(v)),
        Ok(Err(panic)) => Err(panic_text(&panic)),
        Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("worker thread vanished".into()),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn damaged(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Data(format!(
        "{}: the tracker file is damaged ({what}); restore it from a backup or an export",
        path.display()
    ))
}

fn busy(path: &Path, timeout: Duration) -> Error {
    Error::Busy(format!(
        "{}: the tracker file stayed locked by other processes for {:.1}s; try again, or raise --lock-timeout",
        path.display(),
        timeout.as_secs_f64()
    ))
}

/// Refuses paths that are not redb files before redb sees them, so a foreign file is never written.
fn check_is_redb_file(path: &Path) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NoTracker {
                looked_for: path.display().to_string(),
            })
        }
        Err(e) => return Err(Error::io(format!("{}: cannot read", path.display()), e)),
    };
    if meta.is_dir() {
        return Err(Error::Data(format!(
            "{}: is a directory, not a tracker file",
            path.display()
        )));
    }
    let mut head = [0u8; REDB_MAGIC.len()];
    let mut f = File::open(path)
        .map_err(|e| Error::io(format!("{}: cannot open for reading", path.display()), e))?;
    let n = read_up_to(&mut f, &mut head)
        .map_err(|e| Error::io(format!("{}: cannot read", path.display()), e))?;
    if n < head.len() || head != REDB_MAGIC {
        return Err(Error::Data(format!(
            "{}: not a tracker file ({}); refusing to touch it",
            path.display(),
            if meta.len() == 0 {
                "it is empty".to_string()
            } else {
                "it has no redb header".to_string()
            }
        )));
    }
    Ok(())
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn refuse_network_fs(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let probe = dir.unwrap_or(Path::new("."));
    if let Some(fs) = crate::host::network_filesystem(probe) {
        if std::env::var_os("TRACKER_ALLOW_NETWORK_FS").is_none() {
            return Err(Error::Internal(format!(
                "{}: the file is on {fs}, a network filesystem whose locks are not reliable; \
                 two writers could both believe they own an item. Put the tracker on a local disk \
                 (or set TRACKER_ALLOW_NETWORK_FS=1 to accept the risk)",
                path.display()
            )));
        }
    }
    Ok(())
}

fn open_error(path: &Path, e: DatabaseError) -> Error {
    match e {
        DatabaseError::DatabaseAlreadyOpen => Error::Busy(format!(
            "{}: another program holds the file exclusively (an older tracker, or a tool not in \
             multi-process mode); close it and try again",
            path.display()
        )),
        DatabaseError::LockProtocolMismatch => Error::Busy(format!(
            "{}: a process built with an incompatible redb version has the file open; \
             close it and try again",
            path.display()
        )),
        DatabaseError::UpgradeRequired(v) => Error::Data(format!(
            "{}: the redb file format {v} is too old for this tracker",
            path.display()
        )),
        DatabaseError::RepairAborted => damaged(path, "it needs a repair that could not be done"),
        DatabaseError::Storage(s) => storage_error(path, s),
        other => Error::storage(path, other),
    }
}

fn storage_error(path: &Path, e: redb::StorageError) -> Error {
    match e {
        redb::StorageError::Corrupted(what) => damaged(path, what),
        redb::StorageError::Io(io) => match io.kind() {
            std::io::ErrorKind::PermissionDenied => Error::io(
                format!("{}: permission denied; nothing was changed", path.display()),
                io,
            ),
            std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::FileTooLarge
            | std::io::ErrorKind::QuotaExceeded => Error::io(
                format!(
                    "{}: the file cannot grow (disk full or a size limit); nothing was changed. \
                     Free some space and try again",
                    path.display()
                ),
                io,
            ),
            std::io::ErrorKind::UnexpectedEof => damaged(path, "it is truncated"),
            _ => Error::io(format!("{}", path.display()), io),
        },
        other => Error::storage(path, other),
    }
}

impl RedbStore {
    /// Creates a new tracker file at `path` (which must not exist yet) and initialises its tables.
    pub fn create(path: &Path, lock_timeout: Duration) -> Result<RedbStore> {
        refuse_network_fs(path)?;
        let already = || {
            Error::conflict(format!(
                "{}: a file is already there; not overwriting it",
                path.display()
            ))
        };
        if path.exists() {
            return Err(already());
        }
        // Built complete under a temporary name, then linked into place, which fails rather than
        // overwrite: the path only ever holds nothing or a whole tracker, even with concurrent
        // inits or a crash halfway.
        let tmp = crate::host::temp_sibling(path, "init");
        let built = Self::build(&tmp, lock_timeout).map_err(|e| match e {
            // Name the file the user asked for, not the temporary one.
            Error::Io { source, .. } => {
                Error::io(format!("{}: cannot create", path.display()), source)
            }
            other => other,
        });
        let linked = built.and_then(|()| match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(already()),
            Err(e) => Err(Error::io(format!("{}: cannot create", path.display()), e)),
        });
        let _ = std::fs::remove_file(&tmp);
        linked?;
        RedbStore::open(path, Access::ReadWrite, lock_timeout)
    }

    /// Writes a complete, empty tracker at `path`, which nobody else knows of yet.
    fn build(path: &Path, lock_timeout: Duration) -> Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(format!("{}: cannot create", path.display()), e))?;
        let p = path.to_path_buf();
        let db = within(lock_timeout, move || builder().create(&p))
            .map_err(|panic| damaged(path, panic))?
            .ok_or_else(|| busy(path, lock_timeout))?
            .map_err(|e| open_error(path, e))?;
        let store = RedbStore {
            path: path.to_path_buf(),
            handle: Handle::Rw(Arc::new(db)),
            lock_timeout,
        };
        store.write(|t| {
            t.set_format_version(super::FORMAT_VERSION)?;
            for c in [Counter::LastNum, Counter::LastSeq, Counter::LastToken] {
                t.set_counter(c, 0)?;
            }
            Ok(())
        })
    }

    /// Opens an existing tracker file, checking that it is one and that its format is ours.
    pub fn open(path: &Path, access: Access, lock_timeout: Duration) -> Result<RedbStore> {
        check_is_redb_file(path)?;
        refuse_network_fs(path)?;
        let p = path.to_path_buf();
        let handle = match access {
            Access::ReadWrite => {
                let db = within(lock_timeout, move || builder().open(&p))
                    .map_err(|panic| damaged(path, panic))?
                    .ok_or_else(|| busy(path, lock_timeout))?
                    .map_err(|e| open_error(path, e))?;
                Handle::Rw(Arc::new(db))
            }
            Access::ReadOnly => {
                let p2 = p.clone();
                let ro = within(lock_timeout, move || builder().open_read_only(&p2))
                    .map_err(|panic| damaged(path, panic))?
                    .ok_or_else(|| busy(path, lock_timeout))?;
                match ro {
                    Ok(db) => Handle::Ro(db),
                    // A writer that closed while another was writing leaves the recovery flag
                    // set, and a reader may not recover a file. A read-write open does, under
                    // the writer lock; only a file we may not write stays unreadable.
                    Err(DatabaseError::RepairAborted) => {
                        let db = within(lock_timeout, move || builder().open(&p))
                            .map_err(|panic| damaged(path, panic))?
                            .ok_or_else(|| busy(path, lock_timeout))?
                            .map_err(|e| match e {
                                DatabaseError::Storage(redb::StorageError::Io(io))
                                    if io.kind() == std::io::ErrorKind::PermissionDenied =>
                                {
                                    Error::Data(format!(
                                        "{}: the file needs a recovery that only a process \
                                         allowed to write it can make; run any command as a \
                                         user who may write it",
                                        path.display()
                                    ))
                                }
                                e => open_error(path, e),
                            })?;
                        Handle::Rw(Arc::new(db))
                    }
                    Err(e) => return Err(open_error(path, e)),
                }
            }
        };
        let store = RedbStore {
            path: path.to_path_buf(),
            handle,
            lock_timeout,
        };
        store.check_format()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_format(&self) -> Result<()> {
        let version = self.read(|t| t.format_version())?;
        match version {
            Some(v) if v == super::FORMAT_VERSION => Ok(()),
            Some(v) if v > super::FORMAT_VERSION => Err(Error::Data(format!(
                "{}: the file has format version {v}, newer than this tracker's {}; \
                 upgrade tracker to use it",
                self.path.display(),
                super::FORMAT_VERSION
            ))),
            Some(v) => Err(Error::Data(format!(
                "{}: the file has format version {v}, older than this tracker's {} and no \
                 migration exists for it; export it with the tracker that wrote it",
                self.path.display(),
                super::FORMAT_VERSION
            ))),
            None => Err(Error::Data(format!(
                "{}: a redb file, but not a tracker (no format version)",
                self.path.display()
            ))),
        }
    }

    fn begin_write(&self) -> Result<WriteTransaction> {
        let Handle::Rw(db) = &self.handle else {
            return Err(Error::Internal(format!(
                "{}: opened read-only, cannot write",
                self.path.display()
            )));
        };
        match db.try_begin_write() {
            Ok(t) => return Ok(t),
            Err(TransactionError::WouldBlock) => {}
            Err(e) => return Err(self.txn_error(e)),
        }
        // Another process is writing: queue on the kernel lock, but only for so long.
        let db = Arc::clone(db);
        within(self.lock_timeout, move || db.begin_write())
            .map_err(|panic| damaged(&self.path, panic))?
            .ok_or_else(|| busy(&self.path, self.lock_timeout))?
            .map_err(|e| self.txn_error(e))
    }

    fn txn_error(&self, e: TransactionError) -> Error {
        match e {
            TransactionError::Storage(s) => storage_error(&self.path, s),
            other => Error::storage(&self.path, other),
        }
    }

    fn guarded<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        catch_unwind(AssertUnwindSafe(f))
            .unwrap_or_else(|p| Err(damaged(&self.path, panic_text(&*p))))
    }
}

impl Storage for RedbStore {
    fn read<T>(&self, f: impl FnOnce(&dyn ReadTxn) -> Result<T>) -> Result<T> {
        self.guarded(|| {
            let txn = match &self.handle {
                Handle::Rw(db) => db.begin_read(),
                Handle::Ro(db) => db.begin_read(),
            }
            .map_err(|e| self.txn_error(e))?;
            f(&Txn {
                txn,
                path: &self.path,
            })
        })
    }

    fn write<T>(&self, mut f: impl FnMut(&mut dyn WriteTxn) -> Result<T>) -> Result<T> {
        self.guarded(|| {
            let txn = self.begin_write()?;
            let mut t = Txn {
                txn,
                path: &self.path,
            };
            let out = f(&mut t)?;
            t.txn.commit().map_err(|e| match e {
                redb::CommitError::Storage(s) => storage_error(&self.path, s),
                other => Error::storage(&self.path, other),
            })?;
            Ok(out)
        })
    }
}

#[cfg(test)]
pub(crate) fn temp_store(dir: &Path) -> RedbStore {
    RedbStore::create(&dir.join("t.redb"), Duration::from_secs(10)).unwrap()
}
