//! Human output: tables that fit the terminal, items in words, colours only on a terminal.
//! Everything printed from the file is stripped of control characters first, so a title cannot
//! drive the terminal.

use std::fmt::Write as _;
use std::io::IsTerminal;

use tracker::audit::{Board, VerifyReport};
use tracker::clock::{format_duration_short, format_rfc3339};
use tracker::rules::LeaseState;
use tracker::{describe_changes, describe_lease, ItemDetail, ItemView, Now, Op, Status};

use super::args::ColorWhen;

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

/// Text from the file, made safe to print: control characters become `?` (tabs and, where
/// `multiline`, newlines survive).
pub fn safe(s: &str, multiline: bool) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\t' if multiline => c,
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One word for where an item stands.
pub fn state_word(v: &ItemView) -> String {
    match (&v.claim, v.item.status) {
        (_, Status::Done) => "done".into(),
        (_, Status::Cancelled) => "cancelled".into(),
        (Some(c), _) => format!("claimed by {}", safe(&c.holder, false)),
        (None, _) if v.blocked => "blocked".into(),
        (None, _) => "ready".into(),
    }
}

/// `list` as aligned columns; titles are cut to the terminal width unless `wide`.
pub fn list(items: &[ItemView], now: &Now, style: &Style, wide: bool) -> String {
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
    let mut widths = [3usize, 2, 5, 3];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths[2] = widths[2].min(32);
    let fixed: usize = widths.iter().sum::<usize>() + 4 * 2;
    let title_room = match (style.width, wide) {
        (Some(w), false) => Some(w.saturating_sub(fixed).max(10)),
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
    let _ = writeln!(out, "{}", style.bold(&header));
    for (v, r) in items.iter().zip(&rows) {
        let title = safe(&v.item.title, false);
        let title = match title_room {
            Some(room) => cut(&title, room),
            None => title,
        };
        let state = cut(&r[2], widths[2]);
        let state_painted = match state.as_str() {
            "ready" => style.green(&format!("{state:<w$}", w = widths[2])),
            "blocked" => style.yellow(&format!("{state:<w$}", w = widths[2])),
            "done" | "cancelled" => style.dim(&format!("{state:<w$}", w = widths[2])),
            _ => format!("{state:<w$}", w = widths[2]),
        };
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {}  {:<w3$}  {}",
            r[0],
            r[1],
            state_painted,
            r[3],
            title,
            w0 = widths[0],
            w1 = widths[1],
            w3 = widths[3]
        );
    }
    if items.is_empty() {
        out = "no items match\n".into();
    }
    out
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
        let _ = write!(s, "\n  {}", describe_lease(c, now));
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
    let _ = writeln!(
        s,
        "  state:    {} ({})",
        i.status.as_str(),
        state_word(&d.view)
    );
    let _ = writeln!(s, "  priority: P{}", i.priority);
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
            let _ = writeln!(s, "  claim:    {}", describe_lease(l, now));
        }
        Some((l, LeaseState::Expired)) => {
            let _ = writeln!(s, "  claim:    none ({} — stale)", describe_lease(l, now));
        }
        Some((l, LeaseState::HolderGone)) => {
            let _ = writeln!(
                s,
                "  claim:    stale, its process is gone ({})",
                describe_lease(l, now)
            );
        }
        None => {
            let _ = writeln!(s, "  claim:    none");
        }
    }
    if !i.body.is_empty() {
        let _ = writeln!(s, "\n{}\n", safe(&i.body, true).trim_end());
    }
    if !d.recent_ops.is_empty() {
        let _ = writeln!(s, "  recent ops:");
        for op in &d.recent_ops {
            let _ = writeln!(s, "    {}", log_line(op, Some(i.num), now));
        }
    }
    s
}

pub fn log_line(op: &Op, num: Option<u64>, now: &Now) -> String {
    let item = num
        .map(|n| format!("#{n}"))
        .unwrap_or_else(|| op.item.to_string());
    format!(
        "{:>6}  {}  {:>5} ago  {:<24}  {:<5}  v{}  {}",
        op.seq,
        format_rfc3339(op.at),
        format_duration_short(now.wall_ms - op.at),
        safe(&op.actor, false),
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
            let left = l.expires_at - now.wall_ms;
            let painted = if since_renew <= l.ttl_ms as i64 / 3 {
                style.green(&heartbeat)
            } else if left > l.ttl_ms as i64 / 6 {
                style.yellow(&heartbeat)
            } else {
                style.red(&heartbeat)
            };
            let line = format!(
                "  #{:<5} {:<28} {} expires in {}  {}",
                item.num,
                cut(&safe(&l.holder, false), 28),
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
                    format_duration_short(now.wall_ms - l.expires_at)
                ),
            };
            let line = format!(
                "  #{:<5} {:<28} {}  {}",
                item.num,
                cut(&safe(&l.holder, false), 28),
                style.red(&why),
                safe(&item.title, false)
            );
            let _ = writeln!(s, "{}", fit(&line, style));
        }
    }
    s
}

/// Cuts a line (which may hold colour codes) to the terminal width, counting visible characters.
fn fit(line: &str, style: &Style) -> String {
    let Some(w) = style.width else {
        return line.to_string();
    };
    let mut out = String::new();
    let mut visible = 0;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            out.push(c);
            for e in chars.by_ref() {
                out.push(e);
                if e == 'm' {
                    break;
                }
            }
            continue;
        }
        if visible + 1 >= w && chars.peek().is_some() {
            out.push('…');
            if style.color {
                out.push_str("\x1b[0m");
            }
            return out;
        }
        out.push(c);
        visible += 1;
    }
    out
}

pub fn verify(r: &VerifyReport) -> String {
    if r.problems.is_empty() {
        format!(
            "ok: {} ops replayed, {} items, {} leases, last token {}; tables and indexes match the log",
            r.ops, r.items, r.leases, r.last_token
        )
    } else {
        let mut s = format!("MISMATCH: {}", r.problems[0]);
        for p in &r.problems[1..] {
            let _ = write!(s, "\n  also: {p}");
        }
        s
    }
}
