//! Human output: tables that fit the terminal, items in words, colours only on a terminal.
//! Everything printed from the file is stripped of control characters first, so a title cannot
//! drive the terminal.

use std::fmt::Write as _;
use std::io::IsTerminal;

use tracker::audit::VerifyReport;
use tracker::board::Board;
use tracker::clock::{format_duration_short, format_rfc3339};
use tracker::rules::LeaseState;
use tracker::{describe_changes, describe_lease, ItemDetail, ItemView, Lease, Now, Op, Status};

use super::args::ColorWhen;
use super::columns::{cut, pad, width};

#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
    /// Terminal width to fit tables to; `None` when not a terminal (nothing is cut).
    pub width: Option<usize>,
}

impl Style {
    pub fn detect(when: ColorWhen) -> Style {
        let tty = std::io::stdout().is_terminal();
        let color = match when {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        };
        Style {
            color,
            width: if tty { terminal_width() } else { None },
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    pub fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }
    pub fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }
    pub fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }
    pub fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }
}

fn terminal_width() -> Option<usize> {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(c);
    }
    // SAFETY: TIOCGWINSZ fills a winsize struct; we pass a valid one.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

/// Text from the file or from another user, made safe to print: every character that could
/// drive the terminal or disguise the text is replaced by a visible `\u{..}` escape (tabs and,
/// where `multiline`, newlines survive). The one place human output is cleaned; `--json` prints
/// the exact text.
pub fn safe(s: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' if multiline => out.push(c),
            c if unsafe_to_show(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// What coordination cost: lease events overall and per holder, refusals, and the time from
/// `new` to the first claim and from claim to done (median and p95).
pub fn metrics(m: &tracker::metrics::Metrics, style: &Style) -> String {
    let mut s = String::new();
    let window = match m.since_ms {
        Some(_) => "in the window".to_string(),
        None if m.first_seq <= 1 => "over the whole log".to_string(),
        None => format!(
            "over the latest {} ops (--since DUR reaches further back)",
            m.ops_counted
        ),
    };
    let counts = |c: &tracker::metrics::Counts| {
        format!(
            "{} acquired, {} renewed, {} released, {} done, {} stolen, {} evicted, {} expired",
            c.acquisitions,
            c.renewals,
            c.releases,
            c.done,
            c.stale_steals,
            c.forced_evictions,
            c.expirations
        )
    };
    let _ = writeln!(s, "\ncoordination {window}");
    let _ = writeln!(s, "{}", fit(&format!("  {}", counts(&m.overall)), style));
    let _ = writeln!(
        s,
        "  {} claims refused, {} --wait retries (running totals)",
        m.refused_claims_total, m.wait_retries_total
    );
    let spread = |x: &tracker::metrics::Spread| match (x.median_ms, x.p95_ms) {
        (Some(med), Some(p95)) => format!(
            "median {}, p95 {} ({} items)",
            format_duration_short(med),
            format_duration_short(p95),
            x.count
        ),
        _ => "none yet".to_string(),
    };
    let _ = writeln!(s, "  new to first claim: {}", spread(&m.new_to_first_claim));
    let _ = writeln!(s, "  claim to done: {}", spread(&m.claim_to_done));
    for (holder, c) in &m.by_holder {
        if c.acquisitions + c.renewals + c.releases + c.done > 0 {
            let line = format!("  {}: {}", safe(holder, false), counts(c));
            let _ = writeln!(s, "{}", fit(&line, style));
        }
    }
    s
}

/// A JSON text with every character `safe` would escape written as a JSON `\u` escape instead:
/// the same string once parsed, harmless on a terminal.
pub fn escape_json_for_terminal(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if unsafe_to_show(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{u:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Control characters (C0, DEL, C1) drive the terminal; bidi controls reorder what is shown, so
/// a name can pass for another; line and paragraph separators break lines the reader cannot see;
/// and the other invisible format characters (Unicode category Cf: soft hyphen, zero-width
/// joiners and spaces, word joiner, BOM, interlinear annotation, tags) make one name look like
/// another.
fn unsafe_to_show(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// A lease in words, as the library tells it, cleaned: it carries the holder's name and host.
fn lease_in_words(l: &Lease, now: &Now) -> String {
    safe(&describe_lease(l, now), false)
}

/// One word for where an item stands.
pub fn state_word(v: &ItemView) -> String {
    match (&v.claim, v.item.status) {
        (_, Status::Done) => "done".into(),
        (_, Status::Cancelled) => "cancelled".into(),
        (Some(c), _) => format!("claimed by {}", safe(&c.holder, false)),
        (None, _) if v.blocked || v.waits_for_children => "blocked".into(),
        (None, _) => "ready".into(),
    }
}

/// The deepest level `list --tree` indents; deeper items show their depth as a number.
pub const MAX_INDENT: usize = 16;

/// `list` as aligned columns; titles are cut to the terminal width unless `wide`, and indented
/// by `depths` (`list --tree`; empty for none), at most [`MAX_INDENT`] levels deep.
pub fn list(items: &[ItemView], depths: &[usize], now: &Now, style: &Style, wide: bool) -> String {
    let rows: Vec<[String; 4]> = items
        .iter()
        .map(|v| {
            let age = format_duration_short(now.wall_ms - v.item.updated_at);
            [
                format!("#{}", v.item.num),
                format!("P{}", v.item.priority),
                state_word(v),
                age,
            ]
        })
        .collect();
    // Headers count too: "PRI" is wider than "P1".
    let mut widths = [3usize, 3, 5, 3];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(width(cell));
        }
    }
    widths[2] = widths[2].min(32);
    const GAPS: usize = 4 * 2;
    const MIN_TITLE: usize = 12;
    if let (Some(w), false) = (style.width, wide) {
        // On a narrow terminal the state column gives way before the title does.
        let others = widths[0] + widths[1] + widths[3] + GAPS + MIN_TITLE;
        widths[2] = widths[2].min(w.saturating_sub(others).max(5));
    }
    let fixed: usize = widths.iter().sum::<usize>() + GAPS;
    let title_room = match (style.width, wide) {
        (Some(w), false) => Some(w.saturating_sub(fixed).max(1)),
        _ => None,
    };
    let mut out = String::new();
    let header = format!(
        "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  TITLE",
        "NUM",
        "PRI",
        "STATE",
        "AGE",
        w0 = widths[0],
        w1 = widths[1],
        w2 = widths[2],
        w3 = widths[3]
    );
    let line_style = Style {
        width: if wide { None } else { style.width },
        ..*style
    };
    let _ = writeln!(out, "{}", fit(&style.bold(&header), &line_style));
    for (i, (v, r)) in items.iter().zip(&rows).enumerate() {
        let title = match depths.get(i).copied().unwrap_or(0) {
            0 => safe(&v.item.title, false),
            d if d <= MAX_INDENT => {
                format!("{}└ {}", "  ".repeat(d - 1), safe(&v.item.title, false))
            }
            // Deeper, the indent would be most of the line (20,000 levels: 400 MB of spaces):
            // the depth is given as a number instead.
            d => format!(
                "{}└[{d}] {}",
                "  ".repeat(MAX_INDENT - 1),
                safe(&v.item.title, false)
            ),
        };
        let title = match title_room {
            Some(room) => cut(&title, room),
            None => title,
        };
        let state = cut(&r[2], widths[2]);
        let padded = pad(&state, widths[2]);
        let state_painted = match state.as_str() {
            "ready" => style.green(&padded),
            "blocked" => style.yellow(&padded),
            "done" | "cancelled" => style.dim(&padded),
            _ => padded,
        };
        let line = format!(
            "{}  {}  {}  {}  {}",
            pad(&r[0], widths[0]),
            pad(&r[1], widths[1]),
            state_painted,
            pad(&r[3], widths[3]),
            title,
        );
        let _ = writeln!(out, "{}", fit(&line, &line_style));
    }
    if items.is_empty() {
        out = "no items match\n".into();
    }
    out
}

/// `new --plan`: a line per item made, in plan order, with the plan's key and title.
pub fn planned(made: &[tracker::PlannedItem], titles: &[String]) -> String {
    let mut s = String::new();
    for (p, title) in made.iter().zip(titles) {
        let _ = writeln!(
            s,
            "created #{} ({}): {}",
            p.num,
            safe(&p.key, false),
            safe(title, false)
        );
    }
    s
}

/// The one-line summary commands print after a change.
pub fn changed(v: &ItemView, verb: &str, now: &Now) -> String {
    let mut s = format!(
        "{verb} #{} (v{}): {}",
        v.item.num,
        v.item.version,
        safe(&v.item.title, false)
    );
    if let Some(c) = &v.claim {
        let _ = write!(s, "\n  {}", lease_in_words(c, now));
    }
    s
}

pub fn show(d: &ItemDetail, now: &Now, style: &Style) -> String {
    let i = &d.view.item;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {}",
        style.bold(&format!("#{}", i.num)),
        style.bold(&safe(&i.title, false))
    );
    let _ = writeln!(s, "  id:       {}", i.id);
    let _ = match i.status {
        Status::Open => writeln!(s, "  state:    open ({})", state_word(&d.view)),
        closed => writeln!(s, "  state:    {}", closed.as_str()),
    };
    let _ = writeln!(s, "  priority: P{}", i.priority);
    show_structure(&mut s, d);
    if !i.labels.is_empty() {
        let labels: Vec<String> = i.labels.iter().map(|l| safe(l, false)).collect();
        let _ = writeln!(s, "  labels:   {}", labels.join(", "));
    }
    let _ = writeln!(s, "  version:  {}", i.version);
    let _ = writeln!(
        s,
        "  created:  {} ({} ago), updated {} ago",
        format_rfc3339(i.created_at),
        format_duration_short(now.wall_ms - i.created_at),
        format_duration_short(now.wall_ms - i.updated_at)
    );
    if !d.view.blocked_by_nums.is_empty() {
        let b: Vec<String> = d
            .view
            .blocked_by_nums
            .iter()
            .map(|n| format!("#{n}"))
            .collect();
        let _ = writeln!(s, "  waits for: {}", b.join(", "));
    }
    if !d.blocks.is_empty() {
        let b: Vec<String> = d.blocks.iter().map(|(n, _)| format!("#{n}")).collect();
        let _ = writeln!(s, "  blocks:   {}", b.join(", "));
    }
    match &d.lease {
        Some((l, LeaseState::Live)) => {
            let _ = writeln!(s, "  claim:    {}", lease_in_words(l, now));
        }
        Some((l, LeaseState::Expired)) => {
            let _ = writeln!(s, "  claim:    none ({} — stale)", lease_in_words(l, now));
        }
        Some((l, LeaseState::HolderGone)) => {
            let _ = writeln!(
                s,
                "  claim:    stale, its process is gone ({})",
                lease_in_words(l, now)
            );
        }
        None => {
            let _ = writeln!(s, "  claim:    none");
        }
    }
    if !i.body.is_empty() {
        let _ = writeln!(s, "\n{}\n", safe(&i.body, true).trim_end());
    }
    show_comments(&mut s, d, now);
    if !d.recent_ops.is_empty() {
        let _ = writeln!(s, "  recent ops:");
        for op in &d.recent_ops {
            let line = format!(
                "    {:>5}  {:>5} ago  v{:<3} {}  by {}",
                op.seq,
                format_duration_short(now.wall_ms - op.at),
                op.version_after,
                safe(&describe_changes(op), false),
                safe(&op.actor, false)
            );
            let _ = writeln!(s, "{}", fit(&line, style));
        }
    }
    s
}

/// `show`'s format-2 lines: type (unless a task), parent, close reason.
fn show_structure(s: &mut String, d: &ItemDetail) {
    let i = &d.view.item;
    if i.item_type != tracker::ItemType::Task {
        let _ = writeln!(s, "  type:     {}", i.item_type.as_str());
    }
    if let Some(n) = d.view.parent_num {
        let _ = writeln!(s, "  part of:  #{n}");
    }
    if let Some(r) = &i.close_reason {
        let _ = writeln!(s, "  reason:   {}", safe(r, false));
    }
    if !d.children.is_empty() {
        let (done, cancelled, total) = d.progress();
        let nums: Vec<String> = d.children.iter().map(|c| format!("#{}", c.0)).collect();
        let _ = writeln!(
            s,
            "  children: {} ({done} of {total} done{})",
            nums.join(", "),
            if cancelled > 0 {
                format!(", {cancelled} cancelled")
            } else {
                String::new()
            }
        );
    }
    if d.view.item.status == tracker::Status::Open {
        let ready = if d.ready() {
            "yes".to_string()
        } else {
            format!("no: {}", safe(&d.not_ready.join("; "), false))
        };
        let _ = writeln!(s, "  ready:    {ready}");
    }
}

/// `show`'s comments, oldest first, each with its author and age.
fn show_comments(s: &mut String, d: &ItemDetail, now: &Now) {
    if d.comments.is_empty() {
        return;
    }
    let _ = writeln!(s, "  comments:");
    for c in &d.comments {
        let _ = writeln!(
            s,
            "    {} ago, {}:",
            format_duration_short(now.wall_ms - c.at),
            safe(&c.author, false)
        );
        for line in safe(&c.text, true).lines() {
            let _ = writeln!(s, "      {line}");
        }
    }
}

pub fn log_line(op: &Op, num: Option<u64>, now: &Now) -> String {
    let item = num
        .map(|n| format!("#{n}"))
        .unwrap_or_else(|| op.item.to_string());
    format!(
        "{:>6}  {}  {:>5} ago  {}  {:<5}  v{}  {}",
        op.seq,
        format_rfc3339(op.at),
        format_duration_short(now.wall_ms - op.at),
        pad(&safe(&op.actor, false), 24),
        item,
        op.version_after,
        safe(&describe_changes(op), false)
    )
}

pub fn board(b: &Board, now: &Now, style: &Style) -> String {
    let mut s = String::new();
    let claimed = b.live.len();
    let _ = writeln!(
        s,
        "{}  ready {}  claimed {}  blocked {}  done {}  cancelled {}",
        style.bold(&format!("open {}", b.open)),
        style.green(&b.ready.to_string()),
        claimed,
        style.yellow(&b.blocked.to_string()),
        b.done,
        b.cancelled
    );
    if !b.live.is_empty() {
        let _ = writeln!(s, "\n{}", style.bold("live claims"));
        for (item, l) in &b.live {
            let since_renew = now.wall_ms - l.renewed_at;
            let heartbeat = format!("renewed {} ago", format_duration_short(since_renew));
            let left = tracker::rules::lease_remaining_ms(l, now);
            let ttl = i64::try_from(l.ttl_ms).unwrap_or(i64::MAX);
            let painted = if since_renew <= ttl / 3 {
                style.green(&heartbeat)
            } else if left > ttl / 6 {
                style.yellow(&heartbeat)
            } else {
                style.red(&heartbeat)
            };
            let line = format!(
                "  #{:<5} {} {} expires in {}  {}",
                item.num,
                pad(&cut(&safe(&l.holder, false), 28), 28),
                painted,
                format_duration_short(left.max(0)),
                safe(&item.title, false)
            );
            let _ = writeln!(s, "{}", fit(&line, style));
        }
    }
    if !b.stale.is_empty() {
        let _ = writeln!(s, "\n{}", style.bold("stale claims"));
        for (item, l, st) in &b.stale {
            let why = match st {
                LeaseState::HolderGone => "process gone".to_string(),
                _ => format!(
                    "expired {} ago",
                    format_duration_short(-tracker::rules::lease_remaining_ms(l, now))
                ),
            };
            let line = format!(
                "  #{:<5} {} {}  {}",
                item.num,
                pad(&cut(&safe(&l.holder, false), 28), 28),
                style.red(&why),
                safe(&item.title, false)
            );
            let _ = writeln!(s, "{}", fit(&line, style));
        }
    }
    s
}

/// Cuts a line (which may hold colour codes) to the terminal width, counting columns.
fn fit(line: &str, style: &Style) -> String {
    match style.width {
        Some(w) => super::columns::fit(line, w, style.color),
        None => line.to_string(),
    }
}

pub fn verify(r: &VerifyReport) -> String {
    if r.problems.is_empty() {
        format!(
            "ok: {} ops replayed, {} items, {} leases, last token {}; tables and indexes match the log",
            r.ops, r.items, r.leases, r.last_token
        )
    } else {
        // Problems quote what the file holds, titles included.
        let mut s = format!("MISMATCH: {}", safe(&r.problems[0], false));
        for p in &r.problems[1..] {
            let _ = write!(s, "\n  also: {}", safe(p, false));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    //! Snapshots of human output at a fixed width and clock.
    use super::*;
    use std::sync::Arc;
    use tracker::{Item, Lease, OpKind};
    use ulid::Ulid;

    const T0: i64 = 1_795_000_000_000;

    fn now() -> Now {
        Now {
            wall_ms: T0 + 600_000,
            mono_ms: Some(5_600_000),
            boot_id: Some(Arc::from("boot")),
        }
    }

    fn item(num: u64, title: &str, status: Status, priority: u8) -> Item {
        Item {
            id: Ulid(0x0193_0000_0000_0000_0000_0000_0000_0000 + num as u128),
            num,
            title: title.into(),
            body: String::new(),
            status,
            priority,
            labels: vec![],
            blocked_by: vec![],
            version: 3,
            created_at: T0,
            updated_at: T0 + 540_000,
            item_type: tracker::ItemType::Task,
            parent: None,
            close_reason: None,
        }
    }

    fn lease(holder: &str) -> Lease {
        Lease {
            holder: holder.into(),
            token: 17,
            acquired_at: T0 + 360_000,
            renewed_at: T0 + 580_000,
            expires_at: T0 + 1_260_000,
            ttl_ms: 900_000,
            host: "box".into(),
            pid: Some(4242),
            pid_start: None,
            boot_id: Some("boot".into()),
            deadline_mono_ms: Some(6_260_000),
            pgid: None,
            pid_ns: None,
        }
    }

    fn view(i: Item, claim: Option<Lease>, blocked: bool) -> ItemView {
        ItemView {
            item: i,
            claim,
            blocked_by_nums: if blocked { vec![1] } else { vec![] },
            blocked,
            parent_num: None,
            waits_for_children: false,
        }
    }

    const PLAIN_80: Style = Style {
        color: false,
        width: Some(80),
    };

    #[test]
    fn list_at_80_columns() {
        let items = vec![
            view(item(1, "Set up the database schema", Status::Open, 1), None, false),
            view(
                item(2, "Write the migration that moves every legacy record into the new tables and checks them", Status::Open, 2),
                Some(lease("ana@box/pts/3")),
                false,
            ),
            view(item(3, "Ship it", Status::Open, 0), None, true),
            view(item(4, "Old work", Status::Done, 3), None, false),
        ];
        let out = list(&items, &[], &now(), &PLAIN_80, false);
        let expected = "\
NUM  PRI  STATE                     AGE  TITLE
#1   P1   ready                     1m   Set up the database schema
#2   P2   claimed by ana@box/pts/3  1m   Write the migration that moves every l…
#3   P0   blocked                   1m   Ship it
#4   P3   done                      1m   Old work
";
        assert_eq!(out, expected);
    }

    #[test]
    fn list_lines_fit_the_width() {
        let items = vec![view(
            item(1, &"long title ".repeat(30), Status::Open, 1),
            Some(lease("someone@a-very-long-hostname.example.org/pts/12")),
            false,
        )];
        for w in [40usize, 80, 120] {
            let style = Style {
                color: false,
                width: Some(w),
            };
            for line in list(&items, &[], &now(), &style, false).lines() {
                assert!(width(line) <= w, "{} > {w}: {line}", width(line));
            }
        }
    }

    /// Issue 21: widths counted characters, so a CJK holder pushed AGE and TITLE three columns
    /// right of the header's, and a CJK title ran past the terminal's edge.
    #[test]
    fn list_aligns_and_fits_wide_characters() {
        let items = vec![
            view(
                item(1, &"数据库迁移把旧记录搬到新表".repeat(4), Status::Open, 1),
                Some(lease("用户甲")),
                false,
            ),
            view(item(2, "Ship it", Status::Open, 0), None, false),
        ];
        let out = list(&items, &[], &now(), &PLAIN_80, false);
        let expected = "\
NUM  PRI  STATE              AGE  TITLE
#1   P1   claimed by 用户甲  1m   数据库迁移把旧记录搬到新表数据库迁移把旧记录…
#2   P0   ready              1m   Ship it
";
        assert_eq!(out, expected);
        for line in out.lines() {
            assert!(width(line) <= 80, "{} > 80: {line}", width(line));
        }
    }

    #[test]
    fn status_pads_wide_holders_to_their_column() {
        let b = Board {
            live: vec![
                (item(1, "任务", Status::Open, 1), lease("用户甲")),
                (item(2, "task", Status::Open, 1), lease("ana")),
            ],
            ..Board::default()
        };
        let out = board(&b, &now(), &PLAIN_80);
        let starts: Vec<usize> = out
            .lines()
            .filter(|l| l.contains("renewed"))
            .map(|l| width(&l[..l.find("renewed").unwrap()]))
            .collect();
        assert_eq!(starts.len(), 2, "{out}");
        assert_eq!(starts[0], starts[1], "misaligned:\n{out}");
    }

    #[test]
    fn show_tells_the_claim_in_words() {
        let mut i = item(2, "Write the migration", Status::Open, 2);
        i.labels = vec!["db".into()];
        i.body = "Details here.\nSecond line.".into();
        let detail = ItemDetail {
            view: view(i.clone(), Some(lease("ana@box/pts/3")), false),
            blocks: vec![(5, Ulid(5))],
            lease: Some((lease("ana@box/pts/3"), LeaseState::Live)),
            comments: vec![],
            children: vec![(7, Ulid(7), Status::Done), (8, Ulid(8), Status::Open)],
            not_ready: vec!["ana@box/pts/3 holds it".into()],
            recent_ops: vec![Op {
                seq: 9,
                at: T0 + 360_000,
                actor: "ana@box/pts/3".into(),
                kind: OpKind::Claim,
                item: i.id,
                version_before: 2,
                version_after: 3,
                changes: vec![tracker::Change::LeaseSet {
                    old: None,
                    new: lease("ana@box/pts/3"),
                }],
            }],
        };
        let out = show(&detail, &now(), &PLAIN_80);
        assert!(out.contains("claimed by ana@box/pts/3 (host box, pid 4242) 4m ago, renewed 20s ago, expires in 11m, token 17"), "{out}");
        assert!(out.contains("blocks:   #5"), "{out}");
        assert!(out.contains("children: #7, #8 (1 of 2 done)"), "{out}");
        assert!(
            out.contains("ready:    no: ana@box/pts/3 holds it"),
            "{out}"
        );
        assert!(out.contains("labels:   db"), "{out}");
        assert!(out.contains("Details here.\nSecond line."), "{out}");
        assert!(out.contains("claim: lease ana@box/pts/3 token 17"), "{out}");
    }

    /// After the wall clock steps an hour ahead, the monotonic deadline still says 11 minutes.
    #[test]
    fn status_board_expiry_follows_the_monotonic_deadline_after_a_wall_clock_step() {
        let b = Board {
            open: 1,
            live: vec![(item(1, "a", Status::Open, 1), lease("ana"))],
            ..Board::default()
        };
        let mut stepped = now();
        stepped.wall_ms += 3_600_000;
        let text = board(&b, &stepped, &PLAIN_80);
        assert!(text.contains("expires in 11m"), "{text}");
    }

    #[test]
    fn status_board_colours_heartbeats_by_age() {
        let fresh = lease("fresh");
        let mut late = lease("late");
        late.renewed_at = T0 - 240_000; // 14m ago of a 15m lease
        late.expires_at = T0 + 660_000; // expires in 1m
        late.deadline_mono_ms = Some(5_660_000);
        let b = Board {
            open: 3,
            done: 1,
            cancelled: 0,
            ready: 1,
            blocked: 0,
            live: vec![
                (item(1, "a", Status::Open, 1), fresh),
                (item(2, "b", Status::Open, 1), late.clone()),
            ],
            stale: vec![(item(3, "c", Status::Open, 1), late, LeaseState::HolderGone)],
        };
        let plain = board(&b, &now(), &PLAIN_80);
        assert_eq!(
            plain,
            "\
open 3  ready 1  claimed 2  blocked 0  done 1  cancelled 0

live claims
  #1     fresh                        renewed 20s ago expires in 11m  a
  #2     late                         renewed 14m ago expires in 1m  b

stale claims
  #3     late                         process gone  c
"
        );
        let coloured = board(
            &b,
            &now(),
            &Style {
                color: true,
                width: Some(80),
            },
        );
        assert!(
            coloured.contains("\x1b[32mrenewed 20s ago"),
            "fresh heartbeat is green"
        );
        assert!(
            coloured.contains("\x1b[31mrenewed 14m ago"),
            "a lease about to expire is red"
        );
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(safe("a\x1b[31mb\x07", false), "a\\u{1b}[31mb\\u{7}");
        assert_eq!(safe("line\nnext\t\x1b", true), "line\nnext\t\\u{1b}");
        assert_eq!(safe("line\nnext\t", false), "line\\u{a}next\\u{9}");
        assert_eq!(safe("\u{9b}\u{7f}", false), "\\u{9b}\\u{7f}");
    }

    #[test]
    fn bidi_controls_and_line_separators_are_shown_as_escapes() {
        assert_eq!(safe("abc\u{202e}fed", false), "abc\\u{202e}fed");
        for c in [
            '\u{202a}', '\u{2066}', '\u{2069}', '\u{200e}', '\u{200f}', '\u{61c}',
        ] {
            assert!(!safe(&format!("x{c}y"), true).contains(c), "{c:?}");
        }
        assert_eq!(safe("a\u{2028}b\u{2029}c", true), "a\\u{2028}b\\u{2029}c");
        assert_eq!(safe("plain ünï 名前", false), "plain ünï 名前");
    }

    #[test]
    fn conflict_message_names_holder_and_times() {
        let text = describe_lease(&lease("ana@box/pts/3"), &now());
        assert_eq!(text, "claimed by ana@box/pts/3 (host box, pid 4242) 4m ago, renewed 20s ago, expires in 11m, token 17");
    }
}
