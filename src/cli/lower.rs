//! The command line's arguments lowered into the command layer's requests
//! (`tracker::command`): what was typed, as clap parsed it, into what it means. Durations and
//! priorities were already checked by clap with the library's parsers; item references,
//! statuses and guards are checked here by the same functions the MCP server lowers through.
//! Bodies given as files are read here: reading input is this transport's part.

use std::path::Path;

use tracker::command::{
    self, claim, comment, dep, done, import, list, log, new_item, plan, release, renew, show,
    status, update, Spelling,
};
use tracker::{Error, ListQuery, NewItem, Patch, Result};

use super::args::{self, DepCommand, GuardArgs};

/// `--if-version`, `--token`, `--idempotency-key`.
pub fn guard(g: GuardArgs) -> tracker::Guard {
    command::guard(g.if_version, g.token, g.idempotency_key)
}

pub fn new_item(a: args::NewArgs) -> Result<new_item::Request> {
    let blocked_by = command::item_refs(&a.blocked_by)?;
    let body = match &a.body_file {
        Some(path) => read_body(path)?,
        None => a.body,
    };
    Ok(new_item::Request {
        new: NewItem {
            title: a.title.unwrap_or_default(),
            body,
            priority: a.priority,
            labels: a.labels,
            item_type: match &a.item_type {
                Some(ty) => command::item_type(Spelling::Flags, "type", ty)?,
                None => tracker::ItemType::Task,
            },
            parent: a.parent.as_deref().map(command::item_ref).transpose()?,
        },
        blocked_by,
        idempotency_key: a.idempotency_key,
    })
}

/// `new --plan FILE|-`: the plan read from the file or standard input, at most
/// `MAX_PLAN_BYTES`.
pub fn plan(path: &Path, idempotency_key: Option<String>) -> Result<plan::Request> {
    use std::io::Read;
    let limit = tracker::rules::plan::MAX_PLAN_BYTES;
    let mut bytes = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let read = if path == Path::new("-") {
        std::io::stdin().lock().take(cap).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(cap).read_to_end(&mut bytes))
    };
    read.map_err(|e| Error::io(format!("{}: cannot read the plan", path.display()), e))?;
    if bytes.len() > limit {
        return Err(plan::too_large());
    }
    Ok(plan::Request {
        entries: plan::document(&bytes)?,
        idempotency_key,
    })
}

pub fn show(item: &str) -> Result<show::Request> {
    Ok(show::Request {
        item: command::item_ref(item)?,
    })
}

pub fn list(a: &args::ListArgs) -> Result<list::Request> {
    let q = ListQuery {
        status: None,
        ready: a.ready,
        claimed: a.claimed,
        label: a.label.clone(),
        holder: a.holder.clone(),
        item_type: a
            .item_type
            .as_deref()
            .map(|ty| command::item_type(Spelling::Flags, "type", ty))
            .transpose()?,
        search: a.search.clone(),
        parent: a.parent.as_deref().map(command::item_ref).transpose()?,
        // A tree under an item is all of it, not its first level.
        descendants: a.tree && a.parent.is_some(),
        limit: a.limit,
    };
    list::request(Spelling::Flags, &a.status, q)
}

pub fn update(a: args::UpdateArgs) -> Result<update::Request> {
    let item = command::item_ref(&a.item)?;
    let status = a
        .status
        .as_deref()
        .map(|s| command::status_value(Spelling::Flags, "status", s))
        .transpose()?;
    let body = match &a.body_file {
        Some(path) => Some(read_body(path)?),
        None => a.body,
    };
    let patch = Patch {
        title: a.title,
        body,
        priority: a.priority,
        status,
        add_labels: a.add_labels,
        remove_labels: a.remove_labels,
        item_type: a
            .item_type
            .as_deref()
            .map(|ty| command::item_type(Spelling::Flags, "type", ty))
            .transpose()?,
        parent: update::parent_change(Spelling::Flags, a.parent.as_deref(), a.no_parent)?,
        close_reason: a.reason,
    };
    let mut r = update::Request::new(Spelling::Flags, item, patch, guard(a.guard))?;
    r.force = a.force;
    Ok(r)
}

/// Which item `claim` and `run` lease.
pub fn which(t: &args::LeaseTarget) -> Result<claim::Which> {
    Ok(match &t.item {
        Some(item) => claim::Which::Item(command::item_ref(item)?),
        None => claim::Which::Next {
            label: t.label.clone(),
        },
    })
}

pub fn claim(a: args::ClaimArgs) -> Result<claim::Request> {
    Ok(claim::Request {
        which: which(&a.target)?,
        ttl: a.target.ttl,
        wait: a.wait,
        steal_stale: a.steal_stale,
        force: a.force,
        pid: a.pid,
        pgid: None,
        guard: guard(a.guard),
    })
}

pub fn renew(a: args::RenewArgs) -> Result<renew::Request> {
    Ok(renew::Request {
        item: command::item_ref(&a.item)?,
        ttl: a.ttl,
        guard: guard(a.guard),
    })
}

pub fn release(a: args::TokenArgs) -> Result<release::Request> {
    Ok(release::Request {
        item: command::item_ref(&a.item)?,
        guard: guard(a.guard),
    })
}

pub fn done(a: args::DoneArgs) -> Result<done::Request> {
    Ok(done::Request {
        item: command::item_ref(&a.item)?,
        force: a.force,
        reason: a.reason,
        guard: guard(a.guard),
    })
}

pub fn comment(a: args::CommentArgs) -> Result<comment::Request> {
    let text = match &a.body_file {
        Some(path) => read_body(path)?,
        None => a.text.unwrap_or_default(),
    };
    Ok(comment::Request {
        item: command::item_ref(&a.item)?,
        text,
        idempotency_key: a.idempotency_key,
    })
}

pub fn dep(d: DepCommand) -> Result<dep::Request> {
    let (a, edit) = match d {
        DepCommand::Add(a) => (a, dep::Edit::Add),
        DepCommand::Rm(a) => (a, dep::Edit::Remove),
    };
    Ok(dep::Request {
        edit,
        item: command::item_ref(&a.item)?,
        blocker: command::item_ref(&a.blocker)?,
        guard: guard(a.guard),
    })
}

pub fn log(a: &args::LogArgs) -> Result<log::Request> {
    Ok(log::Request {
        item: a.item.as_deref().map(command::item_ref).transpose()?,
        since: a.since,
        limit: a.limit,
    })
}

pub fn import(a: &args::ImportArgs) -> import::Request {
    use tracker::import::Prefer;
    let prefer = match a.prefer {
        None => Prefer::Neither,
        Some(args::PreferSide::Ours) => Prefer::Ours,
        Some(args::PreferSide::Theirs) => Prefer::Theirs,
    };
    import::Request { prefer }
}

pub fn status(a: &args::StatusArgs) -> status::Request {
    status::Request { since: a.since }
}

/// A body from a file, or from standard input for `-`.
fn read_body(path: &Path) -> Result<String> {
    let bytes = if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
            .map_err(|e| Error::io("cannot read the body from standard input", e))?;
        b
    } else {
        std::fs::read(path)
            .map_err(|e| Error::io(format!("{}: cannot read the body", path.display()), e))?
    };
    String::from_utf8(bytes)
        .map_err(|_| Error::Invalid(format!("{}: the body is not UTF-8 text", path.display())))
}
