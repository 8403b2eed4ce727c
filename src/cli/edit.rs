//! `tracker edit`: the item as text in $VISUAL/$EDITOR, saved with compare-and-swap against the
//! version read before editing. Nothing typed is lost: on a conflict or a parse error the text is
//! kept in a file whose path is printed.

use std::io::Write;
use std::path::Path;

use tempfile::TempPath;

use tracker::command::update;
use tracker::{Access, Error, Guard, ItemRef, ItemView, Patch, Result};

use super::Ctx;

const BODY_MARK: &str = "--- body (everything below this line) ---";

pub fn edit(ctx: &Ctx, r: &ItemRef) -> Result<i32> {
    let before = ctx.open(Access::ReadOnly)?.get(r)?;
    let text = to_text(&before);
    let draft = write_draft(before.item.num, &text)?;
    if let Err(e) = run_editor(&draft) {
        return Err(kept_in(e, draft));
    }
    let edited = match std::fs::read_to_string(&draft) {
        Ok(t) => t,
        Err(e) => {
            let path = draft.display().to_string();
            return Err(kept_in(
                Error::io(format!("{path}: cannot read back"), e),
                draft,
            ));
        }
    };
    if edited == text {
        eprintln!("tracker: #{} unchanged; nothing saved", before.item.num);
        return Ok(0);
    }
    let patch = match from_text(&edited, &before) {
        Ok(p) => p,
        Err(why) => {
            return Err(Error::Invalid(format!(
                "{why}; your text is kept in {}",
                keep(draft)
            )))
        }
    };
    let guard = Guard {
        if_version: Some(before.item.version),
        ..Guard::default()
    };
    // Not `update::Request::new`: an edit that changes nothing is saved as it is, no refusal.
    let request = update::Request {
        item: r.clone(),
        patch,
        guard,
        force: false,
    };
    match ctx
        .open(Access::ReadWrite)
        .and_then(|t| update::exec(&t, request))
    {
        Ok(v) => {
            drop(draft);
            let t = ctx.open(Access::ReadOnly)?;
            super::emit(ctx, &t, &v, "saved")
        }
        Err(Error::Conflict { message, current }) => Err(Error::Conflict {
            message: format!(
                "{message}. Nothing was saved; your text is kept in {} — run `tracker edit` again and paste it in",
                keep(draft)
            ),
            current,
        }),
        Err(e) => Err(kept_in(e, draft)),
    }
}

/// The text to edit, in a new file only this user can read: a random name created with O_EXCL
/// (so a link planted in the shared temp directory is never followed) and mode 0600 (an item's
/// text is not for other users of the machine). It is deleted when dropped unless `keep` is called.
fn write_draft(num: u64, text: &str) -> Result<TempPath> {
    let mut file = tempfile::Builder::new()
        .prefix(&format!("tracker-edit-{num}-"))
        .suffix(".txt")
        .tempfile()
        .map_err(|e| Error::io("cannot create a temporary file to edit", e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| Error::io(format!("{}: cannot write", file.path().display()), e))?;
    // Closed before the editor opens it; the path alone stays ours to delete.
    Ok(file.into_temp_path())
}

/// Keeps the draft for the user, since it may hold text nobody saved, and says where it is.
fn keep(draft: TempPath) -> String {
    let path = draft.display().to_string();
    if let Err(e) = draft.keep() {
        // Failing to disarm the deletion must not delete the user's text either.
        std::mem::forget(e.path);
    }
    path
}

fn kept_in(e: Error, draft: TempPath) -> Error {
    eprintln!("tracker: your text is kept in {}", keep(draft));
    e
}

fn run_editor(path: &Path) -> Result<()> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".to_string());
    // Through the shell, so EDITOR="code --wait" works as it does for git.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .map_err(|e| Error::io(format!("cannot start the editor {editor:?}"), e))?;
    if !status.success() {
        return Err(Error::Invalid(format!(
            "the editor {editor:?} failed ({status}); nothing saved"
        )));
    }
    Ok(())
}

fn to_text(v: &ItemView) -> String {
    let i = &v.item;
    format!(
        "# Editing #{} (version {}). Lines starting with '#' above the body are ignored.\n\
         title: {}\npriority: {}\nlabels: {}\n{BODY_MARK}\n{}",
        i.num,
        i.version,
        i.title,
        i.priority,
        i.labels.join(", "),
        i.body
    )
}

fn from_text(text: &str, before: &ItemView) -> std::result::Result<Patch, String> {
    let (head, body) = text
        .split_once(&format!("{BODY_MARK}\n"))
        .or_else(|| text.split_once(BODY_MARK))
        .ok_or_else(|| format!("the line {BODY_MARK:?} is missing"))?;
    let mut patch = Patch::default();
    let mut labels: Option<Vec<String>> = None;
    for (n, line) in head.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: expected `field: value`", n + 1))?;
        let value = value.trim();
        match key.trim() {
            "title" => patch.title = Some(value.to_string()),
            "priority" => {
                patch.priority = Some(
                    value
                        .parse()
                        .map_err(|_| format!("line {}: priority {value:?} is not 0 to 4", n + 1))?,
                )
            }
            "labels" => {
                labels = Some(
                    value
                        .split(',')
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty())
                        .collect(),
                )
            }
            other => return Err(format!("line {}: unknown field {other:?}", n + 1)),
        }
    }
    let i = &before.item;
    if patch.title.as_deref() == Some(i.title.as_str()) {
        patch.title = None;
    }
    if patch.priority == Some(i.priority) {
        patch.priority = None;
    }
    if body != i.body {
        patch.body = Some(body.to_string());
    }
    if let Some(new) = labels {
        patch.add_labels = new
            .iter()
            .filter(|l| !i.labels.contains(l))
            .cloned()
            .collect();
        patch.remove_labels = i
            .labels
            .iter()
            .filter(|l| !new.contains(l))
            .cloned()
            .collect();
    }
    Ok(patch)
}
