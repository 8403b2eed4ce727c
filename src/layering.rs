//! Checks, over the source itself, of the layering README.md's "Architecture" section describes:
//! nothing outside the command line imports it, the two transports import nothing of each
//! other, the library's modules form no cycle, and no function in src/ is over 100 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every `.rs` file under src/, by path relative to it, with comments cut off each line and
/// `#[cfg(test)] mod tests { .. }` blocks at the end of files dropped.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((rel, text));
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&src, &src, &mut out);
    out.sort();
    out
}

/// `text` without its trailing test module and with `//` comments cut off.
fn code(text: &str) -> String {
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module a file of the library belongs to (`store/pg/mod.rs` is `store`), or `None` for
/// the binary's files and the crate roots.
fn library_module(rel: &str) -> Option<&str> {
    let top = rel.split('/').next()?.trim_end_matches(".rs");
    match top {
        "main" | "lib" | "cli" | "mcp" => None,
        m => Some(m),
    }
}

/// Files that are test-only modules (`#[cfg(test)] mod conformance;`), by relative path stem.
fn test_only(files: &[(String, String)]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (rel, text) in files {
        let dir = Path::new(rel).parent().unwrap().display().to_string();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim() != "#[cfg(test)]" {
                continue;
            }
            let next = lines.next().unwrap_or_default().trim();
            if let Some(name) = next.strip_prefix("mod ").and_then(|n| n.strip_suffix(';')) {
                let stem = if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                };
                out.insert(stem);
            }
        }
    }
    out
}

/// What `crate::Name` stands for, for the names lib.rs re-exports (`crate::Tracker` is in
/// `tracker`).
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let code = code(lib);
    for stmt in code.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = rest.split("::").next().unwrap_or_default().to_string();
        let names = match (rest.find('{'), rest.rfind('}')) {
            (Some(a), Some(b)) => rest[a + 1..b].to_string(),
            _ => rest.rsplit("::").next().unwrap_or_default().to_string(),
        };
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            out.insert(name.to_string(), module.clone());
        }
    }
    out
}

/// The library's module graph: which modules each one names through `crate::`.
fn library_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let tests = test_only(&files);
    let lib = files.iter().find(|(r, _)| r == "lib.rs").unwrap();
    let alias = reexports(&lib.1);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in &files {
        let stem = rel.trim_end_matches(".rs").trim_end_matches("/mod");
        let Some(from) = library_module(rel).filter(|_| !tests.contains(stem)) else {
            continue;
        };
        let code = code(text);
        let mut named = Vec::new();
        for (i, _) in code.match_indices("crate::") {
            let after = &code[i + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                named.extend(
                    group
                        .split(',')
                        .map(|p| p.trim().split("::").next().unwrap_or_default()),
                );
            } else {
                let end = after
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                named.push(&after[..end]);
            }
        }
        let edges = graph.entry(from.to_string()).or_default();
        for name in named.into_iter().filter(|n| !n.is_empty()) {
            let to = alias.get(name).map_or(name, String::as_str);
            if to != from {
                edges.insert(to.to_string());
            }
        }
    }
    graph
}

/// A cycle of `graph`, if it has one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        at: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut cycle = path[i..].to_vec();
            cycle.push(at.to_string());
            return Some(cycle);
        }
        if !done.insert(at.to_string()) {
            return None;
        }
        path.push(at.to_string());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_library_modules_form_no_cycle() {
    let graph = library_graph();
    // The checker sees the edges it must: the command layer stands on the Tracker API.
    assert!(graph["command"].contains("tracker"), "{graph:?}");
    assert!(graph["tracker"].contains("rules"), "{graph:?}");
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
}

#[test]
fn the_transports_import_nothing_of_each_other_and_nothing_imports_the_command_line() {
    let mut wrong = Vec::new();
    // This file names what it looks for.
    for (rel, text) in sources().into_iter().filter(|(r, _)| r != "layering.rs") {
        let code = code(&text);
        let in_cli = rel.starts_with("cli/");
        let names_cli = code.contains("crate::cli") || code.contains("cli::");
        if !in_cli && rel != "main.rs" && names_cli {
            wrong.push(format!("{rel} imports the command line"));
        }
        if in_cli && code.contains("mcp::") {
            wrong.push(format!("{rel} imports the MCP server"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn no_function_in_src_is_over_100_lines() {
    let mut long = Vec::new();
    for (rel, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (start, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let t = t
                .strip_prefix("pub(crate) ")
                .or_else(|| t.strip_prefix("pub "))
                .unwrap_or(t);
            let t = t.strip_prefix("async ").unwrap_or(t);
            let t = t.strip_prefix("const ").unwrap_or(t);
            if !t.starts_with("fn ") {
                continue;
            }
            let (mut depth, mut opened) = (0i64, false);
            for (n, l) in lines[start..].iter().enumerate() {
                let l = l.split("//").next().unwrap_or_default();
                for c in l.chars() {
                    match c {
                        '{' => (depth, opened) = (depth + 1, true),
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    if n + 1 > 100 {
                        long.push(format!("{rel}:{} is {} lines", start + 1, n + 1));
                    }
                    break;
                }
            }
        }
    }
    assert!(long.is_empty(), "functions over 100 lines: {long:#?}");
}
