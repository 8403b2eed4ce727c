//! `import`: merges an export into this tracker by ULID, as one write transaction that either
//! takes the whole snapshot or changes nothing.
//!
//! The file is read as a stream (either export form: one JSON document with its keys in any
//! order and any layout, or JSON Lines), so memory stays flat in the size of the bodies; only a
//! few bytes per item are kept for the checks that need the whole file (duplicates, blockers,
//! counts). Every item goes through the same checks as the commands that make items, and the
//! snapshot as a whole must be complete and consistent: `item_count` matches, blockers exist, no
//! item blocks itself or forms a cycle.
//!
//! Merge, per item already here (same ULID):
//! - same content: unchanged;
//! - the file's copy equals a state this item had before: the file has nothing new, keep ours;
//! - ours is unchanged since it was last imported: take theirs (a fast-forward);
//! - otherwise both sides changed it: a conflict. Conflicts are reported and nothing is imported,
//!   unless the caller chose a side (`Prefer::Ours` keeps ours, `Prefer::Theirs` takes theirs).
//!
//! Numbers are local: new items get the next local number. Versions travel with new items
//! (bounded, so they can still grow); a replaced item's version grows by one here, since versions
//! of two trackers mean nothing to each other. Leases are not imported, but the export's last
//! fencing token raises this tracker's token floor, so tokens keep growing across trackers.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{Read, Seek, SeekFrom};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use ulid::Ulid;

use crate::clock::{parse_rfc3339, Now};
use crate::error::{Error, Result};
use crate::json::{ItemJson, EXPORT_FORMAT};
use crate::model::{Change, Comment, Item, OpKind, Status};
use crate::mutate::depends_on;
use crate::rules;
use crate::store::{Counter, Storage, WriteTxn, FORMAT_VERSION};
use crate::tracker::Tracker;
use crate::txn::{is_ready, next};

mod structure;
use structure::parse_structure;

/// The largest version an imported item may carry: room for it to keep growing, and exact in
/// every JSON reader (2^53).
pub const MAX_IMPORTED_VERSION: u64 = 1 << 53;

/// The largest fencing token an import may carry (in its header or an exported claim): tokens
/// must be able to keep growing after it.
pub const MAX_IMPORTED_TOKEN: u64 = 1 << 53;

/// Which side wins when an item was changed both here and in the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Prefer {
    /// Report the conflicts and import nothing.
    #[default]
    Neither,
    /// Keep this tracker's item.
    Ours,
    /// Replace it with the file's.
    Theirs,
}

/// An item changed on both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportConflict {
    /// The item's ULID, the same in both trackers.
    pub id: Ulid,
    /// The item's number here.
    pub num: u64,
    /// The fields whose values differ.
    pub fields: Vec<&'static str>,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Items new to this tracker, created with the next local numbers.
    pub created: u64,
    /// Items replaced by the file's newer copy (their version grows by one here).
    pub replaced: u64,
    /// Items already as the file has them, or newer here.
    pub unchanged: u64,
    /// Changed on both sides and kept as it is here (`Prefer::Ours`).
    pub kept: u64,
    /// Changed on both sides; with `Prefer::Neither` the import was refused because of them.
    pub conflicts: Vec<ImportConflict>,
}

/// Reads an export and checks it as `import` would, item by item and as a whole, without a
/// tracker: a malformed, incomplete or inconsistent-within-itself file is refused as it is read,
/// so a caller can refuse a stream before spooling all of it. (Conflicts and blockers that exist
/// only in the tracker are checked by `import`.)
pub fn check(input: &mut dyn Read) -> Result<()> {
    let mut seen = HashSet::new();
    let header = read_export(input, &mut |index, json| {
        let incoming = parse_item(json, index)?;
        if !seen.insert(incoming.item.id) {
            return Err(invalid(format!(
                "item {index}: id {} appears twice",
                incoming.item.id
            )));
        }
        Ok(())
    })?;
    header.check_complete()
}

impl<S: Storage> Tracker<S> {
    /// Merges the export read from `input` (see the module documentation). A malformed,
    /// incomplete or inconsistent file changes nothing (exit 2); so do unresolved conflicts
    /// (exit 3, naming them).
    ///
    /// The stream is first copied to a private temporary file, so that the write can be run
    /// again when the store asks for it (a serialization failure, a lost connection): a file
    /// already at hand goes to [`import_seekable`](Self::import_seekable) without the copy.
    pub fn import(&self, input: &mut dyn Read, prefer: Prefer) -> Result<ImportReport> {
        let mut spool =
            tempfile::tempfile().map_err(|e| Error::io("cannot create a temporary file", e))?;
        std::io::copy(input, &mut spool).map_err(|e| Error::io("cannot read the import", e))?;
        spool
            .rewind()
            .map_err(|e| Error::io("cannot read the temporary file", e))?;
        self.import_seekable(&mut spool, prefer)
    }

    /// [`import`](Self::import) from something that can be read again from where it is now:
    /// every run of the write (the store may run it more than once) reads it from there.
    pub fn import_seekable<R: Read + Seek>(
        &self,
        input: &mut R,
        prefer: Prefer,
    ) -> Result<ImportReport> {
        let start = input
            .stream_position()
            .map_err(|e| Error::io("cannot read the import file", e))?;
        self.store.write(|t| {
            input
                .seek(SeekFrom::Start(start))
                .map_err(|e| Error::io("cannot read the import file again", e))?;
            let now = self.now_in(t)?;
            let mut merge = Merge {
                tracker: self,
                t,
                now: &now,
                prefer,
                report: ImportReport::default(),
                seen: HashSet::new(),
                file_nums: HashMap::new(),
                with_blockers: Vec::new(),
                touched: Vec::new(),
                max_claim_token: 0,
                batch: Vec::new(),
                batch_bytes: 0,
                structured: Vec::new(),
            };
            let header = read_export(&mut *input, &mut |index, json| merge.item(index, json))?;
            merge.finish(&header)
        })
    }
}

/// The export's header fields, gathered wherever they appear in the document.
#[derive(Debug, Default)]
struct Header {
    format: Option<String>,
    format_version: Option<u64>,
    item_count: Option<u64>,
    last_token: u64,
    /// How many items the file held.
    items: u64,
}

impl Header {
    /// Checks the whole header once every item has been read.
    fn check_complete(&self) -> Result<()> {
        self.check_format()?;
        if self.format.is_none() || self.format_version.is_none() {
            return Err(invalid(
                "the file has no \"format\"/\"format_version\"; it is not a tracker export".into(),
            ));
        }
        let Some(count) = self.item_count else {
            return Err(invalid("the file has no \"item_count\"".into()));
        };
        if count != self.items {
            return Err(invalid(format!(
                "the file says it holds {count} items but {} were found; it is incomplete \
                 (truncated?) or was edited",
                self.items
            )));
        }
        Ok(())
    }

    /// Checks what is known so far; called as soon as both fields are read and again at the end.
    fn check_format(&self) -> Result<()> {
        if let Some(f) = &self.format {
            if f != EXPORT_FORMAT {
                return Err(invalid(format!(
                    "the file has format {f:?}, not {EXPORT_FORMAT:?}"
                )));
            }
        }
        match self.format_version {
            Some(0) => Err(invalid(
                "format_version 0 does not exist; exports start at 1".into(),
            )),
            Some(v) if v > FORMAT_VERSION => Err(Error::Data(format!(
                "the import file has format version {v}, newer than this tracker's \
                 {FORMAT_VERSION}; upgrade tracker; nothing was imported"
            ))),
            _ => Ok(()),
        }
    }
}

fn invalid(what: String) -> Error {
    Error::Invalid(format!("cannot import: {what}; nothing was imported"))
}

/// One item of the file, checked like a new item and parsed into our model.
struct Incoming {
    item: Item,
    /// Blockers given only by their numbers in the file (`blocked_by` without `blocked_by_ids`).
    blocker_nums: Vec<u64>,
    claim_token: Option<u64>,
    /// Its comments (format 2), merged by identity.
    comments: Vec<Comment>,
}

fn parse_item(j: ItemJson, index: u64) -> Result<Incoming> {
    let bad = |what: String| invalid(format!("item {index} of the file: {what}"));
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
    if j.num == 0 {
        return Err(bad("number 0: numbers start at 1".into()));
    }
    if !(1..=MAX_IMPORTED_VERSION).contains(&j.version) {
        return Err(bad(format!(
            "version {} is out of range (1 to {MAX_IMPORTED_VERSION})",
            j.version
        )));
    }
    let labels = rules::validate_labels(&j.labels).map_err(&bad)?;
    let mut blocked_by = Vec::with_capacity(j.blocked_by_ids.len());
    for b in &j.blocked_by_ids {
        let b =
            Ulid::from_string(b).map_err(|e| bad(format!("blocker {b:?} is not a ULID ({e})")))?;
        if !blocked_by.contains(&b) {
            blocked_by.push(b);
        }
    }
    if !j.blocked_by_ids.is_empty() && j.blocked_by.len() != j.blocked_by_ids.len() {
        return Err(bad(format!(
            "blocked_by lists {} items but blocked_by_ids {}",
            j.blocked_by.len(),
            j.blocked_by_ids.len()
        )));
    }
    if blocked_by.contains(&id) {
        return Err(bad("it blocks itself".into()));
    }
    let time = |s: &str| {
        parse_rfc3339(s).ok_or_else(|| bad(format!("time {s:?} is not an RFC 3339 timestamp")))
    };
    let claim_token = j.claim.as_ref().map(|c| c.token);
    if claim_token.is_some_and(|t| t > MAX_IMPORTED_TOKEN) {
        return Err(bad(format!(
            "its claim's token is out of range (at most {MAX_IMPORTED_TOKEN})"
        )));
    }
    let (item_type, parent, close_reason, comments) = parse_structure(&j, id).map_err(&bad)?;
    let item = Item {
        item_type,
        parent,
        close_reason,
        id,
        num: j.num,
        title,
        body: j.body,
        status,
        priority,
        labels,
        blocked_by,
        version: j.version,
        created_at: time(&j.created_at)?,
        updated_at: time(&j.updated_at)?,
    };
    let blocker_nums = if j.blocked_by_ids.is_empty() {
        j.blocked_by
    } else {
        Vec::new()
    };
    Ok(Incoming {
        item,
        blocker_nums,
        claim_token,
        comments,
    })
}

/// The fields in which two copies of an item differ.
fn differing_fields(a: &Item, b: &Item) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |same: bool, name| {
        if !same {
            out.push(name);
        }
    };
    check(a.title == b.title, "title");
    check(a.body == b.body, "body");
    check(a.status == b.status, "status");
    check(a.priority == b.priority, "priority");
    check(a.labels == b.labels, "labels");
    check(a.blocked_by == b.blocked_by, "blocked_by");
    check(a.item_type == b.item_type, "type");
    check(a.parent == b.parent, "parent");
    check(a.close_reason == b.close_reason, "close_reason");
    out
}

struct Merge<'a, S: Storage> {
    tracker: &'a Tracker<S>,
    t: &'a mut dyn WriteTxn,
    now: &'a Now,
    prefer: Prefer,
    report: ImportReport,
    /// Identities met in the file, to refuse duplicates.
    seen: HashSet<Ulid>,
    /// The file's numbers, for blockers given by number.
    file_nums: HashMap<u64, Ulid>,
    /// Items of the file with blockers: (identity, blockers by file number).
    with_blockers: Vec<(Ulid, Vec<u64>)>,
    /// Items whose readiness is settled again at the end, with their dependents: those with
    /// blockers (which may have come later in the file) and those replaced. A new item without
    /// blockers is ready as it was made, and its dependents all have blockers.
    touched: Vec<Ulid>,
    max_claim_token: u64,
    /// Items read from the file and not yet merged (at most `BATCH`).
    batch: Vec<Item>,
    /// The bytes of their titles and bodies.
    batch_bytes: usize,
    /// Items of the file with a parent or comments, settled at the end.
    structured: Vec<(Ulid, Vec<Comment>)>,
}

/// Items settled together: their rows (with their blockers') are fetched in one round trip
/// first, which is most of an import's time on a database across a network.
const BATCH: usize = 500;

/// ... or fewer, when their bodies are large: memory stays flat in the size of the bodies.
const BATCH_BYTES: usize = 4 << 20;

impl<S: Storage> Merge<'_, S> {
    /// Checks one item of the file against the file (as it is read, so errors name the first
    /// bad item) and queues it to be merged.
    fn item(&mut self, index: u64, json: ItemJson) -> Result<()> {
        let Incoming {
            item,
            blocker_nums,
            claim_token,
            comments,
        } = parse_item(json, index)?;
        if item.parent.is_some() || !comments.is_empty() {
            self.structured.push((item.id, comments));
        }
        let id = item.id;
        if !self.seen.insert(id) {
            return Err(invalid(format!("item {index}: id {id} appears twice")));
        }
        if self.file_nums.insert(item.num, id).is_some() {
            return Err(invalid(format!(
                "item {index}: number {} appears twice",
                item.num
            )));
        }
        if !item.blocked_by.is_empty() || !blocker_nums.is_empty() {
            self.with_blockers.push((id, blocker_nums));
        }
        self.max_claim_token = self.max_claim_token.max(claim_token.unwrap_or(0));
        self.batch_bytes += item.body.len() + item.title.len();
        self.batch.push(item);
        if self.batch.len() >= BATCH || self.batch_bytes >= BATCH_BYTES {
            self.merge_batch()?;
        }
        Ok(())
    }

    /// Merges the queued items into the tracker.
    fn merge_batch(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let ids: Vec<Ulid> = batch
            .iter()
            .flat_map(|i| std::iter::once(i.id).chain(i.blocked_by.iter().copied()))
            .collect();
        self.t.prefetch(&ids)?;
        for item in batch {
            self.merge(item)?;
        }
        Ok(())
    }

    fn merge(&mut self, mut item: Item) -> Result<()> {
        let id = item.id;
        let Some(local) = self.t.item(id)? else {
            item.num = next(self.t, Counter::LastNum)?;
            let created = vec![Change::Created { item }];
            self.tracker
                .commit(self.t, self.now, OpKind::Import, None, None, created)?;
            self.report.created += 1;
            return Ok(());
        };
        let fields = differing_fields(&local, &item);
        if fields.is_empty() {
            self.report.unchanged += 1;
            return Ok(());
        }
        let (nothing_new, ours_changed) = self.history(&local, &item)?;
        if nothing_new {
            self.report.unchanged += 1;
            return Ok(());
        }
        if !ours_changed {
            return self.replace(local, item);
        }
        match self.prefer {
            Prefer::Theirs => self.replace(local, item),
            Prefer::Ours => {
                self.report.kept += 1;
                Ok(())
            }
            Prefer::Neither => {
                self.report.conflicts.push(ImportConflict {
                    id,
                    num: local.num,
                    fields,
                });
                Ok(())
            }
        }
    }

    /// Replaces our copy with theirs: one op, which also ends a lease if the item is closed.
    fn replace(&mut self, local: Item, theirs: Item) -> Result<()> {
        let new = Item {
            num: local.num,
            version: local.version,
            created_at: local.created_at,
            ..theirs
        };
        let lease = self.t.lease(local.id)?;
        let ends_lease = rules::closing_ends_lease(lease.as_ref(), new.status);
        let mut changes = vec![Change::Replaced {
            old: Box::new(local.clone()),
            new: Box::new(new),
        }];
        changes.extend(ends_lease);
        self.tracker.commit(
            self.t,
            self.now,
            OpKind::Import,
            Some(&local),
            lease,
            changes,
        )?;
        self.touched.push(local.id);
        self.report.replaced += 1;
        Ok(())
    }

    /// Reads our item's history: whether the file's copy equals a state it had before (then
    /// the file has nothing new), and whether its content changed after the last import that
    /// brought or replaced it (an item that never came by import counts as changed: nothing
    /// says which of its states the file knew). Leases and versions are not content.
    fn history(&self, local: &Item, theirs: &Item) -> Result<(bool, bool)> {
        let mut state: Option<Item> = None;
        let mut lease = None;
        let mut after_import: Option<Item> = None;
        for seq in self.t.op_seqs_of(local.id)? {
            let Some(op) = self.t.op(seq)? else { continue };
            let mut item = state.take().unwrap_or_else(|| local.clone());
            rules::apply_op_to(&mut item, &mut lease, &op);
            if differing_fields(&item, theirs).is_empty() {
                return Ok((true, false));
            }
            if op.kind == OpKind::Import {
                after_import = Some(item.clone());
            }
            state = Some(item);
        }
        let changed = after_import.is_none_or(|a| !differing_fields(&a, local).is_empty());
        Ok((false, changed))
    }

    fn finish(mut self, header: &Header) -> Result<ImportReport> {
        self.merge_batch()?;
        header.check_complete()?;
        self.touched
            .extend(self.with_blockers.iter().map(|(id, _)| *id));
        self.settle_blockers()?;
        self.settle_structure()?;
        if !self.report.conflicts.is_empty() {
            return Err(conflicts_error(&self.report.conflicts));
        }
        for chunk in std::mem::take(&mut self.touched).chunks(BATCH) {
            self.t.prefetch(chunk)?;
            for id in chunk {
                self.refresh_ready(*id)?;
                for d in self.t.dependents(*id)? {
                    self.refresh_ready(d)?;
                }
            }
        }
        let floor = header.last_token.max(self.max_claim_token);
        if floor > self.t.counter(Counter::TokenFloor)? {
            self.t.set_counter(Counter::TokenFloor, floor)?;
        }
        Ok(self.report)
    }

    /// Blockers must exist (in the file or here); blockers given by number are resolved within
    /// the file and added by one more op; no cycle may result.
    fn settle_blockers(&mut self) -> Result<()> {
        let with_blockers = std::mem::take(&mut self.with_blockers);
        for chunk in with_blockers.chunks(BATCH) {
            let ids: Vec<Ulid> = chunk.iter().map(|(id, _)| *id).collect();
            self.t.prefetch(&ids)?;
            self.settle_blockers_of(chunk)?;
        }
        Ok(())
    }

    fn settle_blockers_of(&mut self, chunk: &[(Ulid, Vec<u64>)]) -> Result<()> {
        for (id, nums) in chunk {
            let id = *id;
            let Some(item) = self.t.item(id)? else {
                continue;
            };
            let mut add = Vec::new();
            for n in nums {
                let b = self.file_nums.get(n).copied().ok_or_else(|| {
                    invalid(format!(
                        "item {id} is blocked by #{n}, which is not in the file"
                    ))
                })?;
                if b == id {
                    return Err(invalid(format!("item {id} blocks itself")));
                }
                if !item.blocked_by.contains(&b) && !add.contains(&b) {
                    add.push(b);
                }
            }
            for b in item.blocked_by.iter().chain(&add) {
                if self.t.item(*b)?.is_none() {
                    return Err(invalid(format!(
                        "item {id} is blocked by {b}, which is neither in the file nor here"
                    )));
                }
                if depends_on(&*self.t, *b, id)? {
                    return Err(invalid(format!(
                        "item {id} and its blocker {b} wait for each other (a cycle)"
                    )));
                }
            }
            if !add.is_empty() {
                let changes = add
                    .into_iter()
                    .map(|blocker| Change::BlockerAdded { blocker })
                    .collect();
                let lease = self.t.lease(id)?;
                self.tracker.commit(
                    self.t,
                    self.now,
                    OpKind::Import,
                    Some(&item),
                    lease,
                    changes,
                )?;
            }
        }
        Ok(())
    }

    fn refresh_ready(&mut self, id: Ulid) -> Result<()> {
        if let Some(item) = self.t.item(id)? {
            let ready = is_ready(&*self.t, &item)?;
            self.t.put_item(Some(&item), &item, ready)?;
        }
        Ok(())
    }
}

fn conflicts_error(conflicts: &[ImportConflict]) -> Error {
    let shown: Vec<String> = conflicts
        .iter()
        .take(10)
        .map(|c| format!("#{} ({})", c.num, c.fields.join(", ")))
        .collect();
    let more = conflicts.len().saturating_sub(shown.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Error::conflict(format!(
        "{} items were changed both here and in the file: {}{more}. Nothing was imported; \
         choose a side with --prefer theirs (take the file's) or --prefer ours (keep these)",
        conflicts.len(),
        shown.join(", ")
    ))
}

// ---- reading the stream ------------------------------------------------------------------------

type OnItem<'a> = &'a mut dyn FnMut(u64, ItemJson) -> Result<()>;

/// Reads either export form from `input`, handing each item to `on_item` as it is parsed.
fn read_export(input: &mut dyn Read, on_item: OnItem) -> Result<Header> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, input);
    // A UTF-8 byte order mark, as some editors write: JSON parsers may ignore it (RFC 8259 §8.1).
    let head = reader
        .fill_buf()
        .map_err(|e| Error::io("cannot read the import file", e))?;
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        reader.consume(3);
    }
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut failure: Option<Error> = None;
    let mut header = Header::default();
    let json_err = |e: serde_json::Error, failure: &mut Option<Error>| -> Error {
        if let Some(f) = failure.take() {
            return f;
        }
        if e.is_io() {
            return Error::io("cannot read the import file", e.into());
        }
        if e.is_eof() && e.line() <= 1 && e.column() == 0 {
            return invalid("the file is empty".into());
        }
        invalid(format!(
            "the file is not a tracker export: {} at line {}, column {}",
            e.to_string().split(" at line").next().unwrap_or_default(),
            e.line(),
            e.column()
        ))
    };
    let had_items = {
        let seed = TopSeed {
            header: &mut header,
            on_item: &mut *on_item,
            failure: &mut failure,
        };
        seed.deserialize(&mut de)
            .map_err(|e| json_err(e, &mut failure))?
    };
    if had_items {
        de.end().map_err(|e| {
            invalid(format!(
                "unexpected data after the export document at line {}, column {}",
                e.line(),
                e.column()
            ))
        })?;
        return Ok(header);
    }
    // JSON Lines: that was the header; every further value is an item.
    header.check_format()?;
    while de.end().is_err() {
        let item = ItemJson::deserialize(&mut de).map_err(|e| json_err(e, &mut failure))?;
        header.items += 1;
        on_item(header.items, item)?;
    }
    Ok(header)
}

/// The top-level object: header fields in any order, and `items` (streamed) if present.
struct TopSeed<'a, 'b> {
    header: &'a mut Header,
    on_item: OnItem<'b>,
    failure: &'a mut Option<Error>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_> {
    /// Whether the object held `items` (the one-document form).
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tracker export object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        use serde::de::Error as _;
        let mut had_items = false;
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            // A key given twice is ambiguous (which count, which floor?): refused, as serde
            // refuses a field twice inside an item.
            if !seen.insert(key.clone()) {
                return Err(A::Error::custom(format!("duplicate field `{key}`")));
            }
            match key.as_str() {
                "format" => self.header.format = Some(map.next_value()?),
                "format_version" => self.header.format_version = Some(map.next_value()?),
                "item_count" => self.header.item_count = Some(map.next_value()?),
                "last_token" => {
                    let t: u64 = map.next_value()?;
                    if t > MAX_IMPORTED_TOKEN {
                        return Err(A::Error::custom(format!(
                            "last_token {t} is out of range (at most {MAX_IMPORTED_TOKEN})"
                        )));
                    }
                    self.header.last_token = t;
                }
                "items" => {
                    // Known header fields so far must already make sense: no point in reading
                    // a million items of a file that will be refused.
                    if let Err(e) = self.header.check_format() {
                        *self.failure = Some(e);
                        return Err(A::Error::custom("refused"));
                    }
                    had_items = true;
                    map.next_value_seed(ItemsSeed {
                        header: &mut *self.header,
                        on_item: &mut *self.on_item,
                        failure: &mut *self.failure,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(had_items)
    }
}

struct ItemsSeed<'a, 'b> {
    header: &'a mut Header,
    on_item: OnItem<'b>,
    failure: &'a mut Option<Error>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        while let Some(item) = seq.next_element::<ItemJson>()? {
            self.header.items += 1;
            if let Err(e) = (self.on_item)(self.header.items, item) {
                *self.failure = Some(e);
                return Err(A::Error::custom("refused"));
            }
        }
        Ok(())
    }
}
