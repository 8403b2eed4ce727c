//! The redb backend: every table, key and value encoding of the tracker file lives here, and
//! data-format.md mirrors this module line by line.
//!
//! Every process opens the file in redb's `MultiWriter` mode, read-only commands included, since
//! an exclusive opener and a multi-writer opener refuse each other. Waits for the file are
//! bounded by the lock timeout.

use std::fs::File;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use redb::{
    ConcurrencyMode, Database, DatabaseError, Key, ReadOnlyDatabase, ReadTransaction,
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TransactionError,
    Value, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use ulid::Ulid;

use super::{Counter, IdempotencyRecord, ReadTxn, Setting, Storage, Visit, WriteTxn};
use crate::error::{Error, Result};
use crate::model::{Item, Lease, Op, Status};

/// Format version, the counters of `Counter`, and the settings of `Setting`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// ULID -> Item (MessagePack, named fields).
const ITEMS: TableDefinition<u128, &[u8]> = TableDefinition::new("items");
/// Number -> ULID.
const NUMS: TableDefinition<u64, u128> = TableDefinition::new("nums");
/// ULID -> Lease (MessagePack). At most one per item; it may have expired.
const CLAIMS: TableDefinition<u128, &[u8]> = TableDefinition::new("claims");
/// Sequence -> Op (MessagePack). Gapless from 1.
const OPS: TableDefinition<u64, &[u8]> = TableDefinition::new("ops");
/// (ULID, sequence) -> (): the ops of each item.
const ITEM_OPS: TableDefinition<(u128, u64), ()> = TableDefinition::new("item_ops");
/// (priority, number) -> ULID: open items not blocked by an open item.
const READY: TableDefinition<(u8, u64), u128> = TableDefinition::new("ready");
/// (status code, number) -> ULID.
const BY_STATUS: TableDefinition<(u8, u64), u128> = TableDefinition::new("by_status");
/// (label, number) -> ULID.
const BY_LABEL: TableDefinition<(&str, u64), u128> = TableDefinition::new("by_label");
/// (blocker ULID, blocked ULID) -> (): the reverse of `blocked_by`.
const BLOCKS: TableDefinition<(u128, u128), ()> = TableDefinition::new("blocks");
/// Idempotency key -> IdempotencyRecord (MessagePack).
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");

const FORMAT_KEY: &str = "format_version";
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
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!(".{name}.init-{}-{nanos}", std::process::id()));
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

    fn write<T>(&self, f: impl FnOnce(&mut dyn WriteTxn) -> Result<T>) -> Result<T> {
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

/// Opens tables the same way from read and write transactions.
trait OpenTables {
    type Table<'a, K: Key + 'static, V: Value + 'static>: ReadableTable<K, V>
    where
        Self: 'a;
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> std::result::Result<Self::Table<'_, K, V>, redb::TableError>;
}

impl OpenTables for ReadTransaction {
    type Table<'a, K: Key + 'static, V: Value + 'static> = redb::ReadOnlyTable<K, V>;
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> std::result::Result<redb::ReadOnlyTable<K, V>, redb::TableError> {
        self.open_table(def)
    }
}

impl OpenTables for WriteTransaction {
    type Table<'a, K: Key + 'static, V: Value + 'static> = redb::Table<'a, K, V>;
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> std::result::Result<redb::Table<'_, K, V>, redb::TableError> {
        self.open_table(def)
    }
}

struct Txn<'p, T> {
    txn: T,
    path: &'p Path,
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    // Positional (an array in field order): half the size of named maps, which keeps the file
    // within twice its JSON export. Fields are only ever appended, each with a serde default, so
    // older, shorter arrays still decode (see data-format.md and the round-trip tests).
    rmp_serde::to_vec(v).map_err(|e| Error::Internal(format!("cannot encode a value: {e}")))
}

impl<T: OpenTables> Txn<'_, T> {
    fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<T::Table<'_, K, V>> {
        self.txn.table(def).map_err(|e| self.table_error(e))
    }

    fn table_error(&self, e: redb::TableError) -> Error {
        match e {
            redb::TableError::TableDoesNotExist(name) => Error::Data(format!(
                "{}: a redb file, but not a tracker (no table {name:?})",
                self.path.display()
            )),
            redb::TableError::Storage(s) => storage_error(self.path, s),
            other => Error::Data(format!(
                "{}: not a tracker file of this format ({other})",
                self.path.display()
            )),
        }
    }

    fn se(&self, e: redb::StorageError) -> Error {
        storage_error(self.path, e)
    }

    fn decode<V: DeserializeOwned>(
        &self,
        table: &str,
        key: impl std::fmt::Display,
        bytes: &[u8],
    ) -> Result<V> {
        rmp_serde::from_slice(bytes).map_err(|e| {
            damaged(
                self.path,
                format!("the value of {key} in table {table} cannot be decoded: {e}"),
            )
        })
    }

    fn visit_pairs(
        &self,
        def: TableDefinition<(u8, u64), u128>,
        lo: (u8, u64),
        hi: (u8, u64),
        f: Visit<Ulid>,
    ) -> Result<()> {
        let table = self.open(def)?;
        for entry in table.range(lo..=hi).map_err(|e| self.se(e))? {
            let (_, v) = entry.map_err(|e| self.se(e))?;
            if !f(Ulid(v.value()))? {
                break;
            }
        }
        Ok(())
    }
}

impl<T: OpenTables> ReadTxn for Txn<'_, T> {
    fn format_version(&self) -> Result<Option<u64>> {
        let meta = match self.txn.table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.table_error(e)),
        };
        let v = meta.get(FORMAT_KEY).map_err(|e| self.se(e))?;
        Ok(v.map(|g| g.value()))
    }

    fn counter(&self, counter: Counter) -> Result<u64> {
        let meta = self.open(META)?;
        let v = meta.get(counter.key()).map_err(|e| self.se(e))?;
        Ok(v.map(|g| g.value()).unwrap_or(0))
    }

    fn setting(&self, setting: Setting) -> Result<Option<u64>> {
        let meta = self.open(META)?;
        let v = meta.get(setting.key()).map_err(|e| self.se(e))?;
        Ok(v.map(|g| g.value()))
    }

    fn item(&self, id: Ulid) -> Result<Option<Item>> {
        let items = self.open(ITEMS)?;
        let v = items.get(id.0).map_err(|e| self.se(e))?;
        v.map(|g| self.decode("items", id, g.value())).transpose()
    }

    fn id_by_num(&self, num: u64) -> Result<Option<Ulid>> {
        let nums = self.open(NUMS)?;
        let v = nums.get(num).map_err(|e| self.se(e))?;
        Ok(v.map(|g| Ulid(g.value())))
    }

    fn ids_between(&self, lo: Ulid, hi: Ulid, limit: usize) -> Result<Vec<Ulid>> {
        let items = self.open(ITEMS)?;
        let mut out = Vec::new();
        for entry in items.range(lo.0..=hi.0).map_err(|e| self.se(e))? {
            if out.len() >= limit {
                break;
            }
            let (k, _) = entry.map_err(|e| self.se(e))?;
            out.push(Ulid(k.value()));
        }
        Ok(out)
    }

    fn lease(&self, id: Ulid) -> Result<Option<Lease>> {
        let claims = self.open(CLAIMS)?;
        let v = claims.get(id.0).map_err(|e| self.se(e))?;
        v.map(|g| self.decode("claims", id, g.value())).transpose()
    }

    fn leases(&self) -> Result<Vec<(Ulid, Lease)>> {
        let claims = self.open(CLAIMS)?;
        let mut out = Vec::new();
        for entry in claims.iter().map_err(|e| self.se(e))? {
            let (k, v) = entry.map_err(|e| self.se(e))?;
            let id = Ulid(k.value());
            out.push((id, self.decode("claims", id, v.value())?));
        }
        Ok(out)
    }

    fn visit_ready(&self, f: Visit<Ulid>) -> Result<()> {
        self.visit_pairs(READY, (0, 0), (u8::MAX, u64::MAX), f)
    }

    fn visit_status(&self, status: Status, f: Visit<Ulid>) -> Result<()> {
        let c = status.code();
        self.visit_pairs(BY_STATUS, (c, 0), (c, u64::MAX), f)
    }

    fn visit_label(&self, label: &str, f: Visit<Ulid>) -> Result<()> {
        let table = self.open(BY_LABEL)?;
        for entry in table
            .range((label, 0u64)..=(label, u64::MAX))
            .map_err(|e| self.se(e))?
        {
            let (_, v) = entry.map_err(|e| self.se(e))?;
            if !f(Ulid(v.value()))? {
                break;
            }
        }
        Ok(())
    }

    fn visit_items(&self, f: Visit<Item>) -> Result<()> {
        let nums = self.open(NUMS)?;
        let items = self.open(ITEMS)?;
        for entry in nums.iter().map_err(|e| self.se(e))? {
            let (num, id) = entry.map_err(|e| self.se(e))?;
            let id = Ulid(id.value());
            let Some(bytes) = items.get(id.0).map_err(|e| self.se(e))? else {
                return Err(damaged(
                    self.path,
                    format!("number {} points at a missing item {id}", num.value()),
                ));
            };
            if !f(self.decode("items", id, bytes.value())?)? {
                break;
            }
        }
        Ok(())
    }

    fn visit_items_by_id(&self, f: Visit<Item>) -> Result<()> {
        let items = self.open(ITEMS)?;
        for entry in items.iter().map_err(|e| self.se(e))? {
            let (id, bytes) = entry.map_err(|e| self.se(e))?;
            if !f(self.decode("items", Ulid(id.value()), bytes.value())?)? {
                break;
            }
        }
        Ok(())
    }

    fn dependents(&self, id: Ulid) -> Result<Vec<Ulid>> {
        let blocks = self.open(BLOCKS)?;
        let mut out = Vec::new();
        for entry in blocks
            .range((id.0, 0u128)..=(id.0, u128::MAX))
            .map_err(|e| self.se(e))?
        {
            let (k, _) = entry.map_err(|e| self.se(e))?;
            out.push(Ulid(k.value().1));
        }
        Ok(out)
    }

    fn visit_ops(&self, from: u64, f: Visit<Op>) -> Result<()> {
        let ops = self.open(OPS)?;
        for entry in ops.range(from..).map_err(|e| self.se(e))? {
            let (k, v) = entry.map_err(|e| self.se(e))?;
            let op = self.decode("ops", k.value(), v.value())?;
            if !f(op)? {
                break;
            }
        }
        Ok(())
    }

    fn op_seqs_of(&self, id: Ulid) -> Result<Vec<u64>> {
        let t = self.open(ITEM_OPS)?;
        let mut out = Vec::new();
        for entry in t
            .range((id.0, 0u64)..=(id.0, u64::MAX))
            .map_err(|e| self.se(e))?
        {
            let (k, _) = entry.map_err(|e| self.se(e))?;
            out.push(k.value().1);
        }
        Ok(out)
    }

    fn op(&self, seq: u64) -> Result<Option<Op>> {
        let ops = self.open(OPS)?;
        let v = ops.get(seq).map_err(|e| self.se(e))?;
        v.map(|g| self.decode("ops", seq, g.value())).transpose()
    }

    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        let t = self.open(IDEMPOTENCY)?;
        let v = t.get(key).map_err(|e| self.se(e))?;
        v.map(|g| self.decode("idempotency", key, g.value()))
            .transpose()
    }

    fn item_count(&self) -> Result<u64> {
        self.open(ITEMS)?.len().map_err(|e| self.se(e))
    }
}

impl WriteTxn for Txn<'_, WriteTransaction> {
    fn set_format_version(&mut self, version: u64) -> Result<()> {
        let mut meta = self.open(META)?;
        meta.insert(FORMAT_KEY, version).map_err(|e| self.se(e))?;
        drop(meta);
        // Create every table, so a reader never meets a missing one in a tracker file.
        self.open(ITEMS)?;
        self.open(NUMS)?;
        self.open(CLAIMS)?;
        self.open(OPS)?;
        self.open(ITEM_OPS)?;
        self.open(READY)?;
        self.open(BY_STATUS)?;
        self.open(BY_LABEL)?;
        self.open(BLOCKS)?;
        self.open(IDEMPOTENCY)?;
        Ok(())
    }

    fn set_counter(&mut self, counter: Counter, value: u64) -> Result<()> {
        let mut meta = self.open(META)?;
        meta.insert(counter.key(), value).map_err(|e| self.se(e))?;
        Ok(())
    }

    fn set_setting(&mut self, setting: Setting, value: u64) -> Result<()> {
        let mut meta = self.open(META)?;
        meta.insert(setting.key(), value).map_err(|e| self.se(e))?;
        Ok(())
    }

    fn put_item(&mut self, old: Option<&Item>, new: &Item, ready: bool) -> Result<()> {
        let bytes = encode(new)?;
        let id = new.id.0;
        {
            let mut items = self.open(ITEMS)?;
            items.insert(id, bytes.as_slice()).map_err(|e| self.se(e))?;
        }
        if old.is_none_or(|o| o.num != new.num) {
            let mut nums = self.open(NUMS)?;
            if let Some(o) = old {
                nums.remove(o.num).map_err(|e| self.se(e))?;
            }
            nums.insert(new.num, id).map_err(|e| self.se(e))?;
        }
        {
            let mut by_status = self.open(BY_STATUS)?;
            if let Some(o) = old {
                by_status
                    .remove((o.status.code(), o.num))
                    .map_err(|e| self.se(e))?;
            }
            by_status
                .insert((new.status.code(), new.num), id)
                .map_err(|e| self.se(e))?;
        }
        {
            let mut ready_t = self.open(READY)?;
            if let Some(o) = old {
                ready_t
                    .remove((o.priority, o.num))
                    .map_err(|e| self.se(e))?;
            }
            if ready {
                ready_t
                    .insert((new.priority, new.num), id)
                    .map_err(|e| self.se(e))?;
            }
        }
        let old_labels: &[String] = old.map(|o| o.labels.as_slice()).unwrap_or(&[]);
        if old_labels != new.labels.as_slice() || old.is_some_and(|o| o.num != new.num) {
            let mut by_label = self.open(BY_LABEL)?;
            if let Some(o) = old {
                for l in &o.labels {
                    by_label
                        .remove((l.as_str(), o.num))
                        .map_err(|e| self.se(e))?;
                }
            }
            for l in &new.labels {
                by_label
                    .insert((l.as_str(), new.num), id)
                    .map_err(|e| self.se(e))?;
            }
        }
        let old_blockers: &[Ulid] = old.map(|o| o.blocked_by.as_slice()).unwrap_or(&[]);
        if old_blockers != new.blocked_by.as_slice() {
            let mut blocks = self.open(BLOCKS)?;
            for b in old_blockers {
                blocks.remove((b.0, id)).map_err(|e| self.se(e))?;
            }
            for b in &new.blocked_by {
                blocks.insert((b.0, id), ()).map_err(|e| self.se(e))?;
            }
        }
        Ok(())
    }

    fn put_lease(&mut self, id: Ulid, lease: &Lease) -> Result<()> {
        let bytes = encode(lease)?;
        let mut claims = self.open(CLAIMS)?;
        claims
            .insert(id.0, bytes.as_slice())
            .map_err(|e| self.se(e))?;
        Ok(())
    }

    fn remove_lease(&mut self, id: Ulid) -> Result<()> {
        let mut claims = self.open(CLAIMS)?;
        claims.remove(id.0).map_err(|e| self.se(e))?;
        Ok(())
    }

    fn append_op(&mut self, op: &Op) -> Result<()> {
        let bytes = encode(op)?;
        {
            let mut ops = self.open(OPS)?;
            ops.insert(op.seq, bytes.as_slice())
                .map_err(|e| self.se(e))?;
        }
        let mut item_ops = self.open(ITEM_OPS)?;
        item_ops
            .insert((op.item.0, op.seq), ())
            .map_err(|e| self.se(e))?;
        Ok(())
    }

    fn put_idempotency(&mut self, key: &str, record: &IdempotencyRecord) -> Result<()> {
        let bytes = encode(record)?;
        let mut t = self.open(IDEMPOTENCY)?;
        t.insert(key, bytes.as_slice()).map_err(|e| self.se(e))?;
        Ok(())
    }

    fn clear_derived(&mut self) -> Result<()> {
        macro_rules! clear {
            ($($def:expr),*) => {$(
                self.txn.delete_table($def).map_err(|e| self.table_error(e))?;
                self.open($def)?;
            )*};
        }
        clear!(ITEMS, NUMS, CLAIMS, ITEM_OPS, READY, BY_STATUS, BY_LABEL, BLOCKS);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) fn temp_store(dir: &Path) -> RedbStore {
    RedbStore::create(&dir.join("t.redb"), Duration::from_secs(10)).unwrap()
}
