//! The redb backend. This file owns the handle: creating and opening tracker files, bounded lock
//! waits, and turning redb's errors into ours; `tables` owns every table, key and value encoding
//! (and data-format.md mirrors it).
//!
//! Every process opens the file in redb's `MultiWriter` mode, read-only commands included, since
//! an exclusive opener and a multi-writer opener refuse each other. Waits for the file are
//! bounded by the lock timeout.

mod group;
mod tables;

use std::cell::Cell;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

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
    /// Reads only, through redb's read-only open: works on files this user may not write, and
    /// never changes the file. A write through it fails with [`Error::Internal`].
    ReadOnly,
    /// Reads and writes; opening writes to the file (redb marks it as having a live writer).
    ReadWrite,
}

enum Handle {
    Rw(Arc<Database>),
    Ro(ReadOnlyDatabase),
}

/// A tracker file opened in redb's multi-process mode.
pub struct RedbStore {
    path: PathBuf,
    /// Always `Some` until drop, which either closes it or, once `sealed`, forgets it.
    handle: Option<Handle>,
    lock_timeout: Duration,
    /// Set once redb met damage, or anything panicked, in this handle. From then on redb must
    /// write nothing more: its close would record an allocator state and a clean header derived
    /// from pages it could not read, which can overwrite live pages of a damaged file. A sealed
    /// handle is forgotten instead of closed, and the header bit its open set is put back.
    sealed: AtomicBool,
    /// What the read-write open did to the header, so that a sealed handle can undo it.
    header_undo: Option<HeaderUndo>,
    /// Set while `upgrade` runs: its write may change a file of an older format.
    upgrading: AtomicBool,
    /// Set by [`RedbStore::share_commits`]: writers from several threads share transactions.
    group: std::sync::OnceLock<group::Group>,
}

/// redb's database header: what a multi-writer open rewrites, and the range its header lock covers.
const HEADER_LEN: usize = 320;
/// The header byte holding redb's flags, and the flag an open sets while it may write.
const GOD_BYTE: usize = 9;
const RECOVERY_REQUIRED: u8 = 2;
/// Where redb's header holds the file's layout, which a transaction that grows the file rewrites
/// before it commits; the two commit slots follow it.
const LAYOUT: std::ops::Range<usize> = 10..64;
/// The lock byte a multi-writer write transaction holds from its start to its end (redb's
/// `WRITER_BYTE`, far past any data, so it locks nothing but itself).
const WRITER_LOCK_BYTE: i64 = 1 << 62;

/// The header and length before and right after a read-write open. redb's open marks the file as
/// having a live writer (a flag in the header, written and flushed) before the tracker has read a
/// single value; a command that then meets damage would leave that flag behind, and every later
/// command would have to recover the file, which on a damaged file fails: reads that worked
/// before the command would fail after it. Kept only when the open changed nothing but the flag.
struct HeaderUndo {
    before: [u8; HEADER_LEN],
    after: [u8; HEADER_LEN],
    len: u64,
}

impl HeaderUndo {
    fn capture(before: Option<([u8; HEADER_LEN], u64)>, path: &Path) -> Option<HeaderUndo> {
        let (before, len) = before?;
        let (after, len_after) = read_header(path)?;
        let mut expected = before;
        expected[GOD_BYTE] |= RECOVERY_REQUIRED;
        ((after == expected || after == before) && len == len_after).then_some(HeaderUndo {
            before,
            after,
            len,
        })
    }

    /// Puts the header (and length) back as they were before the open, if no commit has happened
    /// since. Done holding the writer lock, so no peer is inside a transaction, and the header
    /// range, so no peer reads it half written; the commit slots must read exactly as the open
    /// left them, so a peer's commit is never undone. What may differ is the flag and the layout:
    /// a transaction of ours that grew the file and then met damage rewrote the layout, and the
    /// pages it added past the old end are dropped with it.
    fn undo(&self, path: &Path) {
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        else {
            return;
        };
        let (Ok(now_len), true, true) = (
            f.metadata().map(|m| m.len()),
            lock_range(&f, WRITER_LOCK_BYTE, 1),
            lock_range(&f, 0, i64::try_from(HEADER_LEN).unwrap_or(i64::MAX)),
        ) else {
            return;
        };
        let mut now = [0u8; HEADER_LEN];
        if f.read_exact_at(&mut now, 0).is_err() {
            return;
        }
        let flags = |h: &[u8; HEADER_LEN]| h[GOD_BYTE] & !RECOVERY_REQUIRED;
        let unchanged_but_layout = now[..GOD_BYTE] == self.after[..GOD_BYTE]
            && flags(&now) == flags(&self.after)
            && now[LAYOUT.end..] == self.after[LAYOUT.end..];
        if !unchanged_but_layout || (now == self.before && now_len == self.len) {
            return;
        }
        let _ = f.write_all_at(&self.before, 0).and_then(|()| {
            if now_len > self.len {
                f.set_len(self.len)?;
            }
            f.sync_data()
        });
        // Closing `f` releases both locks.
    }
}

fn read_header(path: &Path) -> Option<([u8; HEADER_LEN], u64)> {
    let f = File::open(path).ok()?;
    let mut h = [0u8; HEADER_LEN];
    f.read_exact_at(&mut h, 0).ok()?;
    Some((h, f.metadata().ok()?.len()))
}

/// Takes an open-file-description write lock on `len` bytes at `start` (the kind of lock redb
/// takes), waiting up to a second for a peer to let go.
fn lock_range(f: &File, start: i64, len: i64) -> bool {
    use std::os::fd::AsRawFd;
    let end = Instant::now() + Duration::from_secs(1);
    loop {
        // SAFETY: zeroed flock is a valid value; the fields that matter are set below.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        // Both constants are small (1 and 0); the struct fields are shorts.
        #[allow(clippy::cast_possible_truncation)]
        {
            lock.l_type = libc::F_WRLCK as libc::c_short;
            lock.l_whence = libc::SEEK_SET as libc::c_short;
        }
        lock.l_start = start as libc::off_t;
        lock.l_len = len as libc::off_t;
        // SAFETY: `f` is an open file and `lock` a valid flock for F_OFD_SETLK.
        if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &lock) } == 0 {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_concurrency_mode(ConcurrencyMode::MultiWriter)
        .set_cache_size(CACHE_BYTES);
    b
}

thread_local! {
    /// Whether the last panic on this thread was raised in redb's own source. Set by the hook
    /// `install_panic_probe` adds, read where the panic is caught.
    static PANIC_IN_REDB: Cell<bool> = const { Cell::new(false) };
}

/// Adds, once per process, a panic hook that notes where a panic was raised, then runs the hook
/// that was there before (the binary's quiet one, or the default).
fn install_panic_probe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_redb = info.location().is_some_and(|l| is_redb_source(l.file()));
            PANIC_IN_REDB.with(|c| c.set(in_redb));
            previous(info);
        }));
    });
}

/// Whether `file` (a panic location's path) is one of redb's own sources, which live in a
/// directory named after the crate and its version (`redb-4.6.0/src/..`); ours live under
/// `src/store/redb/`, which this does not match.
///
/// Internal to the `tracker` binary (its panic handler tells damage from bugs with it): no
/// stability promise.
#[doc(hidden)]
pub fn is_redb_source(file: &str) -> bool {
    file.split(['/', '\\']).any(|part| {
        part.starts_with("redb-") && part[5..].starts_with(|c: char| c.is_ascii_digit())
    })
}

/// A panic caught at the storage boundary.
struct Caught {
    text: String,
    in_redb: bool,
}

/// Runs `f`, turning a panic into `Caught`.
fn catch<T>(f: impl FnOnce() -> T) -> std::result::Result<T, Caught> {
    PANIC_IN_REDB.with(|c| c.set(false));
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| Caught {
        text: panic_text(&*p),
        in_redb: PANIC_IN_REDB.with(|c| c.get()),
    })
}

/// The judgement: a panic raised inside redb while it works on a file is taken as evidence that
/// the file is damaged, since redb panics where a page it parses breaks an invariant (an index out
/// of range, an unreachable branch) and the campaign in tests/corruption.rs reaches such panics
/// only through damaged bytes. A panic raised anywhere else is a bug in tracker, whatever the file.
fn panic_error(path: &Path, caught: Caught) -> Error {
    if caught.in_redb {
        damaged(
            path,
            // `unreachable!()` says "internal error: entered unreachable code", which here is
            // not ours to report as a bug.
            format!(
                "redb could not parse its pages: {}",
                caught.text.trim_start_matches("internal error: ")
            ),
        )
    } else {
        Error::Internal(format!(
            "internal error: a bug in tracker ({}) while working on {}; nothing was \
             changed; please report it",
            caught.text,
            path.display()
        ))
    }
}

/// Runs `f` on a helper thread and waits at most `timeout` for it. Only for opens, which redb
/// offers only as a blocking wait for the writer lock; transactions poll instead (`begin_write_by`).
/// A wait left behind on timeout ends with the process, which exits at once with exit 5.
fn within<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<Option<T>, Caught> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let _ = tx.send(catch(f));
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(v)) => Ok(Some(v)),
        Ok(Err(caught)) => Err(caught),
        Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Caught {
            text: "the thread opening the file vanished".into(),
            in_redb: false,
        }),
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

/// A file as the filesystem knows it: device and inode.
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// Refuses paths that are not redb files before redb sees them, so a foreign file is never written.
/// Returns the identity (device, inode) of the file it checked.
fn check_is_redb_file(path: &Path) -> Result<(u64, u64)> {
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
    // A FIFO would block the read below (and redb's) until a writer appears, a character device
    // such as /dev/zero never ends: refused from the metadata alone, before anything opens them.
    if !meta.is_file() {
        return Err(not_regular(path, &meta.file_type()));
    }
    let mut head = [0u8; REDB_MAGIC.len()];
    // Non-blocking, in case the path was replaced by a FIFO since the check above; what was
    // opened is checked again.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(format!("{}: cannot open for reading", path.display()), e))?;
    let opened = f
        .metadata()
        .map_err(|e| Error::io(format!("{}: cannot read", path.display()), e))?;
    if !opened.is_file() {
        return Err(not_regular(path, &opened.file_type()));
    }
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
    Ok(identity(&opened))
}

fn not_regular(path: &Path, kind: &std::fs::FileType) -> Error {
    let what = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "a special file"
    };
    Error::Data(format!(
        "{}: not a regular file ({what}), so not a tracker file; refusing to open it. Pass \
         --db with the path of a tracker file",
        path.display()
    ))
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

/// `TRACKER_ALLOW_NETWORK_FS`: set, and neither empty nor `0`.
fn network_fs_allowed(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0")
}

fn refuse_network_fs(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let probe = dir.unwrap_or(Path::new("."));
    if let Some(fs) = crate::host::network_filesystem(probe) {
        if !network_fs_allowed(std::env::var_os("TRACKER_ALLOW_NETWORK_FS").as_deref()) {
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
        // Bad usage, not a conflict over an item (no lease, no version): creating where a file
        // is (`Backend::init` opens an existing tracker instead).
        let already = || {
            Error::Invalid(format!(
                "{}: a file is already there; not overwriting it (open it instead, or choose \
                 another path)",
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
        install_panic_probe();
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(format!("{}: cannot create", path.display()), e))?;
        let p = path.to_path_buf();
        let db = within(lock_timeout, move || builder().create(&p))
            .map_err(|caught| panic_error(path, caught))?
            .ok_or_else(|| busy(path, lock_timeout))?
            .map_err(|e| open_error(path, e))?;
        let store = RedbStore::with_handle(path, Handle::Rw(Arc::new(db)), lock_timeout, None);
        store.write(|t| {
            t.set_format_version(super::FORMAT_VERSION)?;
            for c in [Counter::LastNum, Counter::LastSeq, Counter::LastToken] {
                t.set_counter(c, 0)?;
            }
            Ok(())
        })
    }

    fn with_handle(
        path: &Path,
        handle: Handle,
        lock_timeout: Duration,
        header_undo: Option<HeaderUndo>,
    ) -> RedbStore {
        RedbStore {
            path: path.to_path_buf(),
            handle: Some(handle),
            lock_timeout,
            sealed: AtomicBool::new(false),
            header_undo,
            upgrading: AtomicBool::new(false),
            group: std::sync::OnceLock::new(),
        }
    }

    /// Opens an existing tracker file, checking that it is one and that its format is ours.
    ///
    /// A read-write open writes to the file (redb marks it as having a live writer, and records
    /// its allocator state on close), so the format is first checked through a read-only open,
    /// which writes nothing: a file that is not a tracker, or is of a newer format, is refused
    /// byte-for-byte untouched. That costs one extra open of a few hundred microseconds per
    /// writing command.
    pub fn open(path: &Path, access: Access, lock_timeout: Duration) -> Result<RedbStore> {
        install_panic_probe();
        let checked_file = check_is_redb_file(path)?;
        refuse_network_fs(path)?;
        let p = path.to_path_buf();
        // On a helper thread, bounded by the lock timeout like the read-write open: a read-only
        // open waits for the header lock, which a writer holds across a flush while it opens,
        // so a writer stopped there (or a slow disk) would hold a read here for as long.
        let read_only = {
            let p = p.clone();
            within(lock_timeout, move || builder().open_read_only(&p))
                .map_err(|caught| panic_error(path, caught))?
                .ok_or_else(|| busy(path, lock_timeout))?
        };
        let checked = match read_only {
            Ok(db) => {
                let ro = RedbStore::with_handle(path, Handle::Ro(db), lock_timeout, None);
                ro.check_format()?;
                if access == Access::ReadOnly {
                    return Ok(ro);
                }
                true
            }
            // A writer that closed while another was writing leaves the recovery flag set, and a
            // reader may not recover a file. A read-write open does, under the writer lock; only
            // a file we may not write stays unreadable. Its format is checked once recovered.
            Err(DatabaseError::RepairAborted) => false,
            Err(e) => return Err(open_error(path, e)),
        };
        let before = read_header(path);
        let db = within(lock_timeout, move || builder().open(&p))
            .map_err(|caught| panic_error(path, caught))?
            .ok_or_else(|| busy(path, lock_timeout))?
            .map_err(|e| match e {
                DatabaseError::Storage(redb::StorageError::Io(io))
                    if access == Access::ReadOnly
                        && io.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    Error::Data(format!(
                        "{}: the file needs a recovery that only a process allowed to write \
                         it can make; run any command as a user who may write it",
                        path.display()
                    ))
                }
                e => open_error(path, e),
            })?;
        let undo = HeaderUndo::capture(before, path);
        let store = RedbStore::with_handle(path, Handle::Rw(Arc::new(db)), lock_timeout, undo);
        // Checked once: the read-only open above already did, unless the file needed recovery
        // or another file was put in its place between the two opens.
        let same_file = std::fs::metadata(path).is_ok_and(|m| identity(&m) == checked_file);
        if !checked || !same_file {
            store.check_format()?;
        }
        Ok(store)
    }

    /// The file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn handle(&self) -> &Handle {
        self.handle
            .as_ref()
            .expect("the handle is only taken by drop")
    }

    fn check_format(&self) -> Result<()> {
        let version = self.read(|t| t.format_version())?;
        match version {
            // A version alone does not make a tracker: every table must be there too.
            Some(v) if (super::OLDEST_FORMAT_VERSION..=super::FORMAT_VERSION).contains(&v) => {
                Ok(())
            }
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

    /// A write transaction on a file of this format (any format while `upgrade` runs), begun
    /// by `deadline`.
    fn begin_writable(&self, deadline: Instant) -> Result<WriteTransaction> {
        let t = Txn {
            txn: self.begin_write_by(deadline)?,
            path: &self.path,
        };
        if !self.upgrading.load(Ordering::SeqCst) {
            super::check_writable(&t, &self.path.display())?;
        }
        Ok(t.txn)
    }

    /// Takes the write lock, polling until `deadline`. Polling rather than a blocking wait on a
    /// helper thread: a blocked thread left behind on timeout would take the lock whenever the
    /// holder let go, long after this call reported "busy".
    fn begin_write_by(&self, deadline: Instant) -> Result<WriteTransaction> {
        let Handle::Rw(db) = self.handle() else {
            return Err(Error::Internal(format!(
                "{}: opened read-only, cannot write",
                self.path.display()
            )));
        };
        // Short at first, since most writes take a few milliseconds; spread by pid so that
        // waiters do not wake in step.
        let mut pause = Duration::from_micros(200 + u64::from(std::process::id() % 300));
        loop {
            match db.try_begin_write() {
                Ok(t) => return Ok(t),
                Err(TransactionError::WouldBlock) => {}
                Err(e) => return Err(self.txn_error(e)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(busy(&self.path, self.lock_timeout));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(8));
        }
    }

    /// [`Storage::write`] in the group of writers sharing commits: in a batch, or, once a batch
    /// it was in was given up, in one of its own.
    fn write_in_group<T>(
        &self,
        group: &group::Group,
        f: &mut impl FnMut(&mut dyn WriteTxn) -> Result<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + self.lock_timeout;
        for solo in [false, true] {
            let joined = self.guarded(|| {
                group.write(
                    solo,
                    deadline,
                    || busy(&self.path, self.lock_timeout),
                    || self.begin_writable(deadline),
                    |txn| {
                        let mut t = Txn {
                            txn,
                            path: &self.path,
                        };
                        let out = f(&mut t);
                        (t.txn, out)
                    },
                    |txn| self.commit(txn),
                )
            })?;
            if let group::Joined::Done(out) = joined {
                return Ok(out);
            }
        }
        Err(Error::Internal(
            "a write run alone was given up as if it had shared its transaction".into(),
        ))
    }

    fn commit(&self, txn: WriteTransaction) -> Result<()> {
        txn.commit().map_err(|e| match e {
            redb::CommitError::Storage(s) => storage_error(&self.path, s),
            other => Error::storage(&self.path, other),
        })
    }

    /// From now on, writes from several threads of this process that arrive together share
    /// one transaction and one commit (see [`group`]); for a server of many writers.
    pub fn share_commits(&self) {
        let _ = self.group.set(group::Group::new());
    }

    /// Whether writes share commits ([`RedbStore::share_commits`]).
    pub fn shares_commits(&self) -> bool {
        self.group.get().is_some()
    }

    fn txn_error(&self, e: TransactionError) -> Error {
        match e {
            TransactionError::Storage(s) => storage_error(&self.path, s),
            other => Error::storage(&self.path, other),
        }
    }

    /// Runs `f`, turning a panic into an error (see `panic_error`), and seals a writable handle
    /// that met damage or a panic, so that redb writes nothing more to the file.
    fn guarded<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let out = catch(f).unwrap_or_else(|caught| {
            self.sealed.store(true, Ordering::SeqCst);
            Err(panic_error(&self.path, caught))
        });
        if let Err(Error::Data(_)) = &out {
            self.sealed.store(true, Ordering::SeqCst);
        }
        out
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        let Some(handle) = self.handle.take() else {
            return;
        };
        if !self.sealed.load(Ordering::SeqCst) || matches!(handle, Handle::Ro(_)) {
            return drop(handle);
        }
        // Not closed: redb's close would commit an allocator state and a clean header derived
        // from a file it could not read. The file descriptor and its locks go with the process.
        std::mem::forget(handle);
        if let Some(undo) = &self.header_undo {
            undo.undo(&self.path);
        }
    }
}

impl Storage for RedbStore {
    fn read<T>(&self, f: impl FnOnce(&dyn ReadTxn) -> Result<T>) -> Result<T> {
        self.guarded(|| {
            let txn = match self.handle() {
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
        if let Some(group) = self.group.get() {
            return self.write_in_group(group, &mut f);
        }
        self.guarded(|| {
            let mut t = Txn {
                txn: self.begin_writable(Instant::now() + self.lock_timeout)?,
                path: &self.path,
            };
            let out = f(&mut t)?;
            self.commit(t.txn)?;
            Ok(out)
        })
    }

    fn file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn upgrade(&self) -> Result<Option<u64>> {
        self.upgrading.store(true, Ordering::SeqCst);
        let out = self.write(super::upgrade_in);
        self.upgrading.store(false, Ordering::SeqCst);
        out
    }
}

#[cfg(test)]
pub(crate) fn temp_store(dir: &Path) -> RedbStore {
    RedbStore::create(&dir.join("t.redb"), Duration::from_secs(10)).unwrap()
}

#[cfg(test)]
mod network_fs_tests {
    use super::network_fs_allowed;
    use std::ffi::OsStr;

    #[test]
    fn only_a_real_value_allows_a_network_filesystem() {
        assert!(!network_fs_allowed(None));
        assert!(!network_fs_allowed(Some(OsStr::new(""))));
        assert!(!network_fs_allowed(Some(OsStr::new("0"))));
        assert!(network_fs_allowed(Some(OsStr::new("1"))));
        assert!(network_fs_allowed(Some(OsStr::new("yes"))));
    }
}
