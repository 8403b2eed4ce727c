//! Text measured in terminal columns, not in characters: a CJK character or a wide emoji takes
//! two columns, a combining mark none. `format!("{:<w$}")` pads by characters, so a holder named
//! `用户甲` or a Chinese title pushed every later column (and the line's end) out of place; the
//! tables pad, cut and fit through here instead.

use unicode_width::UnicodeWidthChar;

/// Columns one character takes; control characters (escaped before printing anyway) take none.
fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Columns `s` takes on a terminal (no escape sequences in it).
pub fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// `s` followed by spaces up to `w` columns (nothing added when it is already as wide).
pub fn pad(s: &str, w: usize) -> String {
    let mut out = s.to_string();
    out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(s))));
    out
}

/// `s` cut to at most `max` columns, the cut marked with `…`.
pub fn cut(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    let room = max.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        if used + w > room {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// Columns a line takes, not counting the colour codes (`ESC [ … m`) in it.
pub fn visible_width(line: &str) -> usize {
    let mut n = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&e| e == 'm');
        } else {
            n += char_width(c);
        }
    }
    n
}

/// A line (which may hold colour codes) cut to `w` columns, the cut marked with `…`; `reset`
/// ends a colour the cut may have left open.
pub fn fit(line: &str, w: usize, reset: bool) -> String {
    if visible_width(line) <= w {
        return line.to_string();
    }
    let room = w.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    let mut chars = line.chars();
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
        let cw = char_width(c);
        if used + cw > room {
            break;
        }
        out.push(c);
        used += cw;
    }
    out.push('…');
    if reset {
        out.push_str("\x1b[0m");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_characters_take_two_columns() {
        assert_eq!(width("用户甲"), 6);
        assert_eq!(width("ana"), 3);
        // A combining acute accent takes none.
        assert_eq!(width("e\u{301}"), 1);
        assert_eq!(pad("用户甲", 8), "用户甲  ");
        assert_eq!(pad("用户甲", 4), "用户甲");
    }

    #[test]
    fn cuts_never_split_a_wide_character_past_the_limit() {
        assert_eq!(cut("用户甲乙", 8), "用户甲乙");
        assert_eq!(cut("用户甲乙", 7), "用户甲…");
        assert_eq!(cut("用户甲乙", 6), "用户…");
        assert!(width(&cut("用户甲乙", 6)) <= 6);
        assert_eq!(cut("abcdef", 4), "abc…");
    }

    #[test]
    fn fit_skips_colour_codes_and_counts_columns() {
        let line = "\x1b[32mready\x1b[0m  用户甲的任务标题";
        assert_eq!(visible_width(line), 7 + 16);
        assert_eq!(fit(line, 40, true), line);
        let cut = fit(line, 12, true);
        assert!(visible_width(&cut) <= 12, "{cut:?}");
        assert!(cut.ends_with("…\x1b[0m"), "{cut:?}");
        assert_eq!(visible_width(&fit("用户甲乙丙", 5, false)), 5);
    }
}
