//! One error type for the whole crate; each variant maps to an exit code of CLI.md.

use std::path::PathBuf;

use crate::model::ItemView;

/// Every failure of the library. Messages are whole sentences for people: what happened, to
/// what, and what to do next. Programs branch on the variant (or [`Error::kind`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage or invalid input (exit 2).
    #[error("{0}")]
    Invalid(String),

    /// Someone else holds the item, a version or token is stale, or a dependency would cycle (exit 3).
    /// `current` is the item as it is now, so the caller can decide what to do.
    #[error("{message}")]
    Conflict {
        /// What conflicts with what, and what to do next.
        message: String,
        /// The item as it is now, when the conflict is over one item.
        current: Option<Box<ItemView>>,
    },

    /// No such item, or nothing ready (exit 4).
    #[error("{0}")]
    NotFound(String),

    /// No tracker file was found (exit 4).
    #[error("no tracker file found (looked for {looked_for}); run `tracker init` to create one, or pass --db PATH")]
    NoTracker {
        /// Where the tracker was looked for, in words.
        looked_for: String,
    },

    /// The file stayed locked by other processes past the lock timeout, or `--wait` ran out (exit 5).
    #[error("{0}")]
    Busy(String),

    /// Not a tracker, damaged, of a newer format, or a failed `verify` (exit 6).
    #[error("{0}")]
    Data(String),

    /// I/O or internal failure (exit 1).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, to which file.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Anything else that should not happen (exit 1).
    #[error("{0}")]
    Internal(String),

    /// `tracker serve`: a request without the server's token (HTTP 401). Refused use, so exit 2
    /// were it ever a command's.
    #[error("{0}")]
    Unauthorized(String),

    /// `tracker serve`: a request the server refuses whatever its token (HTTP 403): a `Host` or
    /// `Origin` it does not serve, or a write to a `--read-only` server. Exit 2 likewise.
    #[error("{0}")]
    Forbidden(String),
}

/// The library's result type: [`Error`] unless another is named.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The kind of failure, as `--json` errors and MCP tool errors name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid",
            Error::Conflict { .. } => "conflict",
            Error::NotFound(_) | Error::NoTracker { .. } => "not_found",
            Error::Busy(_) => "busy",
            Error::Data(_) => "data",
            Error::Io { .. } => "io",
            Error::Internal(_) => "internal",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
        }
    }

    /// The process exit code CLI.md assigns to this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Io { .. } | Error::Internal(_) => 1,
            Error::Invalid(_) | Error::Unauthorized(_) | Error::Forbidden(_) => 2,
            Error::Conflict { .. } => 3,
            Error::NotFound(_) | Error::NoTracker { .. } => 4,
            Error::Busy(_) => 5,
            Error::Data(_) => 6,
        }
    }

    /// The HTTP status `tracker serve` answers this error with (CLI.md, "`tracker serve`"),
    /// beside the exit code the command line gives it.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Invalid(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) | Error::NoTracker { .. } => 404,
            Error::Conflict { .. } => 409,
            Error::Busy(_) => 503,
            Error::Data(_) | Error::Io { .. } | Error::Internal(_) => 500,
        }
    }

    /// A [`Error::Conflict`] that carries no item.
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::Conflict {
            message: message.into(),
            current: None,
        }
    }

    /// A [`Error::Conflict`] over `current`, the item as it is now.
    pub fn conflict_with(message: impl Into<String>, current: ItemView) -> Error {
        Error::Conflict {
            message: message.into(),
            current: Some(Box::new(current)),
        }
    }

    /// The value given for `field` is refused for `reason`. This and the two below are the one
    /// wording of a refusal at a transport's boundary: each transport names the field its own
    /// way (`--wait` on the command line, `wait` over MCP), so the same input gets the same
    /// message on every one, but for that name.
    pub fn bad_field(field: &str, reason: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("{field}: {reason}"))
    }

    /// A required `field` was not given.
    pub fn missing_field(field: &str) -> Error {
        Error::Invalid(format!("{field}: required, and not given"))
    }

    /// `field` is not an argument of the command or tool.
    pub fn unknown_field(field: &str) -> Error {
        Error::Invalid(format!("{field}: no such argument"))
    }

    /// An update that changes nothing; `fields` are what would, as the transport names them.
    pub fn nothing_to_update(fields: &[&str]) -> Error {
        let list = match fields {
            [] => String::new(),
            [one] => (*one).to_string(),
            [init @ .., last] => format!("{} or {last}", init.join(", ")),
        };
        Error::Invalid(format!("nothing to update: give {list}"))
    }

    /// An [`Error::Io`]: `context` says what was being done, to which file.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a storage failure that is not an I/O error (those are told apart by kind where they
    /// arise, in the store), naming the file.
    pub(crate) fn storage(path: &std::path::Path, err: impl std::fmt::Display) -> Error {
        let text = err.to_string();
        let path = path.display();
        if text.to_lowercase().contains("corrupt") {
            Error::Data(format!("{path}: the tracker file is damaged ({text})"))
        } else {
            Error::Internal(format!("{path}: {text}"))
        }
    }
}

/// Where the tracker file was looked for, for "not found" messages.
///
/// Internal to the `tracker` binary (its search for `.tracker/tracker.redb`): no stability promise.
/// `linked_worktree` is the linked git worktree the search was moved out of, into the main one.
#[doc(hidden)]
pub fn describe_search(
    start: &std::path::Path,
    linked_worktree: Option<&std::path::Path>,
) -> String {
    let mut p = PathBuf::from(start);
    p.push(".tracker/tracker.redb");
    match linked_worktree {
        None => format!("--db, TRACKER_DB, and {} or any parent", p.display()),
        Some(w) => format!(
            "--db, TRACKER_DB, and {} or any parent: the repository's, which every worktree of \
             it shares, since {} is a git worktree whose repository's tracker is there",
            p.display(),
            w.display()
        ),
    }
}

/// How a transport spells the name of a field in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spelling {
    /// As a command-line flag: `--if-version`, `--add-label`.
    Flags,
    /// As a JSON argument (MCP, HTTP): `if_version`, `add_labels`.
    Json,
}

impl Spelling {
    /// `field`, the JSON name of a field (`add_labels`), spelled this way (`--add-label`).
    pub fn name(self, field: &str) -> String {
        // The flags that take one value and are repeated, where the JSON field is a list.
        const REPEATED: &[(&str, &str)] = &[
            ("labels", "--label"),
            ("add_labels", "--add-label"),
            ("remove_labels", "--remove-label"),
        ];
        match self {
            Spelling::Json => field.to_string(),
            Spelling::Flags => match REPEATED.iter().find(|(json, _)| *json == field) {
                Some((_, flag)) => (*flag).to_string(),
                None => format!("--{}", field.replace('_', "-")),
            },
        }
    }
}

impl Spelling {
    /// `field` as advice names it in a message: `--force` on the command line, `` `force` ``
    /// (the argument of a tool or a request body) over MCP and HTTP.
    pub fn advice(self, field: &str) -> String {
        match self {
            Spelling::Flags => self.name(field),
            Spelling::Json => format!("`{field}`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind has the HTTP status CLI.md's `tracker serve` section gives it, beside its
    /// exit code: invalid 400, conflict 409, not found 404, busy 503, data error 500 (kind
    /// `data`), other 500; the server's own refusals 401 and 403.
    #[test]
    fn every_kind_has_its_http_status_beside_its_exit_code() {
        let io = || Error::io("reading", std::io::Error::other("gone"));
        let cases = [
            (Error::Invalid("x".into()), "invalid", 2, 400),
            (Error::conflict("x"), "conflict", 3, 409),
            (Error::NotFound("x".into()), "not_found", 4, 404),
            (
                Error::NoTracker {
                    looked_for: "here".into(),
                },
                "not_found",
                4,
                404,
            ),
            (Error::Busy("x".into()), "busy", 5, 503),
            (Error::Data("x".into()), "data", 6, 500),
            (io(), "io", 1, 500),
            (Error::Internal("x".into()), "internal", 1, 500),
            (Error::Unauthorized("x".into()), "unauthorized", 2, 401),
            (Error::Forbidden("x".into()), "forbidden", 2, 403),
        ];
        for (e, kind, code, status) in cases {
            assert_eq!(
                (e.kind(), e.exit_code(), e.http_status()),
                (kind, code, status)
            );
        }
    }
}
