//! Snapshots as JSON: `export` streams one consistent read transaction, item by item, so memory
//! stays flat. `import` (its own module) reads them back.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use ulid::Ulid;

use crate::clock::format_rfc3339;
use crate::error::{Error, Result};
use crate::json::{CommentJson, ExportHeader, ItemJson, EXPORT_FORMAT};
use crate::model::Comment;
use crate::store::ReadTxn;
use crate::store::{Counter, Storage, FORMAT_VERSION};
use crate::tracker::Tracker;

impl<S: Storage> Tracker<S> {
    /// Writes the whole tracker as one JSON document (or JSON Lines: a header line, then one item
    /// per line), in ULID order, from one snapshot. `progress` is called after each item with the
    /// items written so far and the total. Returns how many items were written.
    pub fn export(
        &self,
        out: &mut dyn Write,
        jsonl: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64> {
        let io = |e: std::io::Error| Error::io("cannot write the export", e);
        self.store.read(|t| {
            let now = self.now_in(t)?;
            let header = ExportHeader {
                format: EXPORT_FORMAT.into(),
                format_version: FORMAT_VERSION,
                exported_at: format_rfc3339(now.wall_ms),
                last_op_seq: t.counter(Counter::LastSeq)?,
                item_count: t.item_count()?,
                // Tokens already handed out: a tracker built from this export starts above it.
                last_token: t
                    .counter(Counter::LastToken)?
                    .max(t.counter(Counter::TokenFloor)?),
            };
            let mut w = BufWriter::with_capacity(1 << 16, out);
            let header_json =
                serde_json::to_string(&header).map_err(|e| Error::Internal(e.to_string()))?;
            if jsonl {
                writeln!(w, "{header_json}").map_err(io)?;
            } else {
                // The header's fields, then "items": one item per line, so exports diff cleanly.
                write!(w, "{},\"items\":[", &header_json[..header_json.len() - 1]).map_err(io)?;
            }
            let total = header.item_count;
            let mut n = 0u64;
            // Leases are few: one read of their table beats a lookup per item.
            let mut leases: HashMap<Ulid, _> = t.leases()?.into_iter().collect();
            let mut comments = comments_by_item(t)?;
            // By ULID: stable across trackers (ids travel, numbers do not), and one table scan.
            t.visit_items_by_id(&mut |item| {
                let lease = leases.remove(&item.id);
                let view = self.view_of(t, item, lease, &now)?;
                let mut json = ItemJson::from(&view);
                json.comments = comments
                    .remove(&view.item.id)
                    .map(|cs| cs.iter().map(CommentJson::from).collect());
                if !jsonl {
                    w.write_all(if n == 0 { b"\n" } else { b",\n" })
                        .map_err(io)?;
                }
                serde_json::to_writer(&mut w, &json).map_err(|e| Error::Internal(e.to_string()))?;
                if jsonl {
                    w.write_all(b"\n").map_err(io)?;
                }
                n += 1;
                progress(n, total);
                Ok(true)
            })?;
            if !jsonl {
                w.write_all(b"\n]}\n").map_err(io)?;
            }
            w.flush().map_err(io)?;
            Ok(n)
        })
    }

    /// Exports to `path` through a temporary file that is synced and renamed into place, so a
    /// reader (or a crash) sees the old file or the whole new one, never half of one. A file
    /// being replaced keeps its permission bits; the tracker file itself, under any name, is
    /// refused.
    pub fn export_to_path(
        &self,
        path: &Path,
        jsonl: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64> {
        use std::os::unix::fs::MetadataExt;
        // A symlink is followed to the file it names, which is replaced (not the link).
        let resolved = match std::fs::canonicalize(path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
            Err(e) => return Err(Error::io(format!("{}: cannot resolve", path.display()), e)),
        };
        let path = resolved.as_path();
        // Compared by device and inode, so no path, symlink or hard link to the tracker can make
        // the export replace it.
        let existing = std::fs::metadata(path).ok();
        // A pipe, a device or a socket is not replaced by a file: the output would go nowhere.
        if existing.as_ref().is_some_and(|m| !m.is_file()) {
            return Err(Error::Invalid(format!(
                "{}: not a regular file; `export -o` writes a file (to write to a pipe or a \
                 device, use `tracker export > {}`)",
                path.display(),
                path.display()
            )));
        }
        if let (Some(out), Some(db)) = (&existing, self.store.file()) {
            if let Ok(db_meta) = std::fs::metadata(db) {
                if (out.dev(), out.ino()) == (db_meta.dev(), db_meta.ino()) {
                    return Err(Error::Invalid(format!(
                        "{}: this is the tracker file itself ({}); exporting over it would \
                         replace the tracker, with its ops log and leases, by JSON. Name another \
                         output file",
                        path.display(),
                        db.display()
                    )));
                }
            }
        }
        let tmp = crate::host::temp_sibling(path, "export");
        let io = |what: &str, e| Error::io(format!("{}: {what}", tmp.display()), e);
        let result = (|| {
            let mut f = std::fs::File::create(&tmp).map_err(|e| io("cannot create", e))?;
            // The replacement must not widen access to what the old file had (an export of a
            // private tracker kept 0600); a new file gets the umask's default.
            if let Some(old) = &existing {
                f.set_permissions(old.permissions())
                    .map_err(|e| io("cannot set permissions", e))?;
            }
            let n = self.export(&mut f, jsonl, progress)?;
            f.sync_all().map_err(|e| io("cannot sync", e))?;
            std::fs::rename(&tmp, path).map_err(|e| {
                Error::io(format!("{}: cannot rename into place", path.display()), e)
            })?;
            // The rename itself is durable only once the directory is synced.
            if let Some(d) = tmp.parent().and_then(|d| std::fs::File::open(d).ok()) {
                let _ = d.sync_all();
            }
            Ok(n)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// Every comment, by item, oldest first: one pass over the log (comments live in their ops).
fn comments_by_item(t: &dyn ReadTxn) -> Result<HashMap<Ulid, Vec<Comment>>> {
    let mut out: HashMap<Ulid, Vec<Comment>> = HashMap::new();
    crate::tracker::visit_comments(t, &mut |item, comment| {
        out.entry(item).or_default().push(comment);
    })?;
    // By when they were written, as `show` lists them, whatever order they arrived in.
    for comments in out.values_mut() {
        comments.sort_by_key(|c| (c.at, c.id));
    }
    Ok(out)
}
