//! Snapshots as JSON: `export` streams one consistent read transaction, item by item, so memory
//! stays flat; `import` merges a snapshot by ULID in one write transaction.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use ulid::Ulid;

use crate::clock::{format_rfc3339, parse_rfc3339};
use crate::error::{Error, Result};
use crate::json::{ExportHeader, ItemJson, EXPORT_FORMAT};
use crate::model::{Change, Item, OpKind, Status};
use crate::rules;
use crate::store::{Counter, Storage, WriteTxn, FORMAT_VERSION};
use crate::tracker::Tracker;

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub created: u64,
    pub replaced: u64,
    pub unchanged: u64,
}

#[derive(serde::Deserialize)]
struct ExportDoc {
    format: String,
    format_version: u64,
    items: Vec<ItemJson>,
}

impl<S: Storage> Tracker<S> {
    /// Writes the whole tracker as one JSON document (or JSON Lines: a header line, then one item
    /// per line), in ULID order, from one snapshot. `progress` is called after each item.
    pub fn export(
        &self,
        out: &mut dyn Write,
        jsonl: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64> {
        let now = self.now();
        let io = |e: std::io::Error| Error::io("cannot write the export", e);
        self.store.read(|t| {
            let header = ExportHeader {
                format: EXPORT_FORMAT.into(),
                format_version: FORMAT_VERSION,
                exported_at: format_rfc3339(now.wall_ms),
                last_op_seq: t.counter(Counter::LastSeq)?,
                item_count: t.item_count()?,
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
            // By ULID: stable across trackers (ids travel, numbers do not), and one table scan.
            t.visit_items_by_id(&mut |item| {
                let lease = leases.remove(&item.id);
                let view = self.view_of(t, item, lease, &now)?;
                let json = ItemJson::from(&view);
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
        // Followed through symlinks, and compared by device and inode, so no path, symlink or
        // hard link to the tracker can make the export replace it.
        let existing = std::fs::metadata(path).ok();
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

    /// Merges an export by ULID. New items get a local number; an item already here is replaced
    /// only by a higher version with different content; anything else is left alone, so importing
    /// the same file twice changes nothing. A malformed file changes nothing either.
    pub fn import(&self, text: &str) -> Result<ImportReport> {
        let items = parse_export(text)?;
        let incoming = items
            .iter()
            .enumerate()
            .map(|(i, j)| item_from_json(j, i + 1))
            .collect::<Result<Vec<_>>>()?;
        drop(items);
        let by_num: HashMap<u64, Ulid> = incoming.iter().map(|(i, _)| (i.num, i.id)).collect();
        let now = self.now();
        self.store.write(|t| {
            let mut report = ImportReport::default();
            let mut touched = Vec::new();
            for (mut item, blocker_nums) in incoming {
                if item.blocked_by.is_empty() {
                    item.blocked_by = blocker_nums
                        .iter()
                        .filter_map(|n| by_num.get(n).copied())
                        .collect();
                }
                match t.item(item.id)? {
                    None => {
                        let num = t.counter(Counter::LastNum)? + 1;
                        t.set_counter(Counter::LastNum, num)?;
                        item.num = num;
                        let id = item.id;
                        let created = vec![Change::Created { item }];
                        self.commit(t, &now, OpKind::Import, None, None, created)?;
                        touched.push(id);
                        report.created += 1;
                    }
                    Some(local) if item.version > local.version && !same_content(&local, &item) => {
                        let new = Item {
                            num: local.num,
                            version: local.version + 1,
                            created_at: local.created_at,
                            ..item
                        };
                        let id = local.id;
                        let lease = t.lease(id)?;
                        let change = Change::Replaced {
                            old: Box::new(local.clone()),
                            new: Box::new(new),
                        };
                        self.commit(t, &now, OpKind::Import, Some(&local), lease, vec![change])?;
                        touched.push(id);
                        report.replaced += 1;
                    }
                    Some(_) => report.unchanged += 1,
                }
            }
            refresh_readiness(t, &touched)?;
            Ok(report)
        })
    }
}

/// Items imported in one go may be blocked by items imported after them: settle readiness once
/// all are in.
fn refresh_readiness(t: &mut dyn WriteTxn, ids: &[Ulid]) -> Result<()> {
    let mut all = ids.to_vec();
    for id in ids {
        all.extend(t.dependents(*id)?);
    }
    for id in all {
        if let Some(item) = t.item(id)? {
            let mut statuses = HashMap::new();
            for b in &item.blocked_by {
                statuses.insert(*b, t.item(*b)?.map(|i| i.status));
            }
            let ready = rules::is_unblocked_open(&item, |b| statuses.get(b).copied().flatten());
            t.put_item(Some(&item), &item, ready)?;
        }
    }
    Ok(())
}

fn same_content(a: &Item, b: &Item) -> bool {
    a.title == b.title
        && a.body == b.body
        && a.status == b.status
        && a.priority == b.priority
        && a.labels == b.labels
        && a.blocked_by == b.blocked_by
}

fn json_error(e: serde_json::Error, line_offset: usize) -> Error {
    Error::Invalid(format!(
        "the import file is not a tracker export: {} at line {}, column {}; nothing was imported",
        e.to_string().split(" at line").next().unwrap_or_default(),
        e.line() + line_offset,
        e.column()
    ))
}

/// Accepts both export forms: one JSON document, or JSON Lines (header line, then items).
fn parse_export(text: &str) -> Result<Vec<ItemJson>> {
    let first_line = text.lines().next().unwrap_or_default();
    let is_jsonl = serde_json::from_str::<ExportHeader>(first_line).is_ok();
    let (format, version, items) = if is_jsonl {
        let header: ExportHeader =
            serde_json::from_str(first_line).map_err(|e| json_error(e, 0))?;
        let mut items = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            items.push(serde_json::from_str(line).map_err(|e| json_error(e, i))?);
        }
        (header.format, header.format_version, items)
    } else {
        let doc: ExportDoc = serde_json::from_str(text).map_err(|e| json_error(e, 0))?;
        (doc.format, doc.format_version, doc.items)
    };
    if format != EXPORT_FORMAT {
        return Err(Error::Invalid(format!(
            "the import file has format {format:?}, not {EXPORT_FORMAT:?}; nothing was imported"
        )));
    }
    if version > FORMAT_VERSION {
        return Err(Error::Data(format!(
            "the import file has format version {version}, newer than this tracker's {FORMAT_VERSION}; upgrade tracker"
        )));
    }
    Ok(items)
}

/// An imported item, checked like a new one, with the numbers of its blockers in the source file.
fn item_from_json(j: &ItemJson, index: usize) -> Result<(Item, Vec<u64>)> {
    let bad = |what: String| {
        Error::Invalid(format!(
            "item {index} of the import file: {what}; nothing was imported"
        ))
    };
    let id =
        Ulid::from_string(&j.id).map_err(|e| bad(format!("id {:?} is not a ULID ({e})", j.id)))?;
    let title = rules::validate_title(&j.title).map_err(&bad)?;
    rules::validate_body(&j.body).map_err(&bad)?;
    let priority = rules::validate_priority(j.priority).map_err(&bad)?;
    let status = Status::parse(&j.status).ok_or_else(|| {
        bad(format!(
            "status {:?} is not open, done or cancelled",
            j.status
        ))
    })?;
    let labels = j
        .labels
        .iter()
        .map(|l| rules::validate_label(l))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(&bad)?;
    let blocked_by = j
        .blocked_by_ids
        .iter()
        .map(|b| {
            Ulid::from_string(b).map_err(|e| bad(format!("blocker {b:?} is not a ULID ({e})")))
        })
        .collect::<Result<Vec<_>>>()?;
    let time = |s: &str| parse_rfc3339(s).ok_or_else(|| bad(format!("time {s:?} is not RFC 3339")));
    let item = Item {
        id,
        num: j.num,
        title,
        body: j.body.clone(),
        status,
        priority,
        labels,
        blocked_by,
        version: j.version.max(1),
        created_at: time(&j.created_at)?,
        updated_at: time(&j.updated_at)?,
    };
    Ok((item, j.blocked_by.clone()))
}
