//! The command line: parse arguments, lower them into the command layer's requests
//! (`tracker::command`, see `lower`), run them, render. No business logic here.

mod args;
mod columns;
mod edit;
mod locate;
mod lower;
mod out;
mod progress;
mod render;
mod run;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use tracker::command::{
    self, claim, comment, dep, done, export, import, list, log, new_item, plan, rebuild, release,
    renew, show, status, update, upgrade, verify,
};
use tracker::json::{self, ItemJson, OpJson};
use tracker::{Access, Actor, Backend, Error, ItemView, Result, Target};

use args::{Cli, Command, ConfigCommand, DepCommand};
use render::Style;

/// Another transport this command line can hand the tracker to: `tracker mcp` runs the MCP
/// server, which main.rs passes in, so neither transport imports the other.
pub type Serve = fn(Backend, Option<Actor>) -> Result<i32>;

/// `tracker serve`: the HTTP server, which main.rs passes in likewise.
pub type ServeHttp = fn(Backend, crate::HttpOptions) -> Result<i32>;

/// The library's tracker over whichever backend the command line names.
pub type Tracker = tracker::Tracker<Backend>;

/// Everything a command needs besides its own arguments.
pub struct Ctx {
    pub db: Option<Target>,
    pub json: bool,
    /// The holder name given by --as or TRACKER_AS; without one the library's default applies.
    pub actor: Option<Actor>,
    pub lock_timeout: Duration,
    pub style: Style,
    /// The MCP server, for `tracker mcp`.
    pub mcp: Serve,
    /// The HTTP server, for `tracker serve`.
    pub http: ServeHttp,
}

impl Ctx {
    /// The tracker: --db, else $TRACKER_DB, else .tracker/tracker.redb here or above (in a
    /// linked git worktree: in the main worktree, see `locate`).
    pub fn target(&self) -> Result<Target> {
        if let Some(t) = &self.db {
            return Ok(t.clone());
        }
        let search = locate::Search::from(&current_dir()?);
        let found = search.find();
        warn_once(search.shadow_warning(found.as_deref()));
        match found {
            Some(path) => Ok(Target::File(path)),
            None => Err(Error::NoTracker {
                looked_for: tracker::error::describe_search(
                    &search.start,
                    search.linked.as_ref().map(|l| l.root.as_path()),
                ),
            }),
        }
    }

    /// Where `init` makes (or finds) the tracker: --db, else $TRACKER_DB, else
    /// .tracker/tracker.redb here. In a linked git worktree it is the main worktree's tracker,
    /// found as every command finds it, or made at the main worktree's top: never a second one.
    fn init_target(&self) -> Result<Target> {
        if let Some(t) = &self.db {
            return Ok(t.clone());
        }
        let search = locate::Search::from(&current_dir()?);
        let Some(linked) = &search.linked else {
            return Ok(Target::File(PathBuf::from(".tracker/tracker.redb")));
        };
        let found = search.find();
        warn_once(search.shadow_warning(found.as_deref()));
        Ok(Target::File(found.unwrap_or_else(|| {
            linked.home.join(".tracker").join("tracker.redb")
        })))
    }

    pub fn open(&self, access: Access) -> Result<Tracker> {
        let backend = Backend::open(&self.target()?, access, self.lock_timeout)?;
        Ok(self.tracker(backend))
    }

    fn tracker(&self, backend: Backend) -> Tracker {
        let t = Tracker::with_store(backend);
        match &self.actor {
            Some(actor) => t.with_actor(actor.clone()),
            None => t,
        }
    }
}

fn current_dir() -> Result<PathBuf> {
    std::env::current_dir().map_err(|e| Error::io("cannot read the current directory", e))
}

/// A warning on stderr, once per process (`log --follow` and MCP look the tracker up again and
/// again). Plain text even with --json, as `edit`'s notes: JSON on stderr is for the error.
fn warn_once(warning: Option<String>) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Some(w) = warning {
        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!("tracker: warning: {}", render::safe(&w, false));
        }
    }
}

/// Parses the command line and runs it; returns the process exit code. `mcp` serves
/// `tracker mcp`, `http` serves `tracker serve`.
pub fn main(mcp: Serve, http: ServeHttp) -> i32 {
    // Parsing builds clap's whole command tree. The process ends right after the command, so
    // the tree and the matches are left to the OS rather than freed node by node (a sixth of
    // clap's cost at start-up).
    let mut cmd = Cli::command();
    let parsed = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut matches| {
            let cli = Cli::from_arg_matches_mut(&mut matches);
            std::mem::forget(matches);
            cli
        })
        .map_err(|e| e.format(&mut cmd));
    std::mem::forget(cmd);
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // A blank name counts as not given, so a blank --as falls back to TRACKER_AS.
    let given = |field: &'static str, name: Option<String>| {
        name.filter(|n| !n.trim().is_empty()).map(|n| (field, n))
    };
    let named = given("--as", cli.actor.clone())
        .or_else(|| given("TRACKER_AS", std::env::var("TRACKER_AS").ok()))
        .map(|(field, name)| tracker::command::named_actor(field, &name))
        .transpose();
    let (actor, refused) = match named {
        Ok(actor) => (actor, None),
        Err(e) => (None, Some(e)),
    };
    let db = cli
        .db
        .clone()
        .or_else(|| std::env::var_os("TRACKER_DB").filter(|v| !v.is_empty()))
        .map(|v| match v.to_str() {
            // A URL is never taken as a path.
            Some(s) => Target::parse(s),
            None => Target::File(PathBuf::from(v)),
        });
    let ctx = Ctx {
        db,
        json: cli.json,
        actor,
        lock_timeout: cli.lock_timeout,
        style: Style::detect(cli.color),
        mcp,
        http,
    };
    if let Some(e) = refused {
        return report(&ctx, &e);
    }
    match dispatch(&ctx, cli.command) {
        Ok(code) => code,
        Err(e) => report(&ctx, &e),
    }
}

/// A command line clap could not parse: its own help and messages, or with `--json` the same
/// error object every other failure gives (help and version requests are not failures).
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    let asked_for_json = std::env::args_os().any(|a| a == "--json");
    let is_failure = !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if asked_for_json && is_failure {
        let text = e.render().to_string();
        let message = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        let err = refusal(&e).unwrap_or_else(|| Error::Invalid(message.to_string()));
        eprintln!(
            "{}",
            render::escape_json_for_terminal(&json::error_json(&err).to_string())
        );
        return 2;
    }
    e.exit()
}

/// A bad value, a missing or an unknown argument, worded as the MCP server words it (the
/// library's one template), naming the flag as it is typed (`--wait`, `<ITEM>`). Clap's first
/// line said "the following required arguments were not provided:" without naming them.
fn refusal(e: &clap::Error) -> Option<Error> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match e.get(ContextKind::InvalidArg)? {
        ContextValue::String(s) => s.as_str(),
        ContextValue::Strings(v) => v.first()?.as_str(),
        _ => return None,
    };
    // "--wait <DUR>" is the flag and its value's name; a positional is "<ITEM>" alone.
    let field = if arg.starts_with('-') {
        arg.split_whitespace().next()?
    } else {
        arg
    };
    match e.kind() {
        ErrorKind::ValueValidation => Some(Error::bad_field(field, std::error::Error::source(e)?)),
        ErrorKind::MissingRequiredArgument => Some(Error::missing_field(field)),
        ErrorKind::UnknownArgument => Some(Error::unknown_field(field)),
        _ => None,
    }
}

fn report(ctx: &Ctx, e: &Error) -> i32 {
    if ctx.json {
        // Errors as data: one JSON object on stderr, nothing on stdout. Characters that could
        // act on a terminal are written as \u escapes, so the parsed text is exact.
        let line = json::error_json(e).to_string();
        eprintln!("{}", render::escape_json_for_terminal(&line));
        return e.exit_code();
    }
    let label = match e.exit_code() {
        3 => "conflict",
        4 => "not found",
        5 => "busy",
        6 => "data error",
        2 => "invalid",
        _ => "error",
    };
    // Messages quote holder names, titles and actors from the file, so they are cleaned like any
    // human output; stderr is never JSON, even with --json.
    eprintln!("tracker: {label}: {}", render::safe(&e.to_string(), false));
    e.exit_code()
}

/// Prints the item a command changed: JSON, or one line in words.
fn emit(ctx: &Ctx, t: &Tracker, v: &ItemView, verb: &str) -> Result<i32> {
    let printed = if ctx.json {
        out::json(&ItemJson::from(v))
    } else {
        // Only a claim is shown against the clock: a database's costs a round trip.
        let now = if v.claim.is_some() {
            t.now()
        } else {
            t.local_now()
        };
        out::text(&format!("{}\n", render::changed(v, verb, &now)))
    };
    out::after_change(&format!("{verb} #{}", v.item.num), printed)?;
    Ok(0)
}

/// Prints a line of human output.
fn say(line: &str) -> Result<()> {
    out::text(&format!("{line}\n"))
}

/// `tracker serve`: the tracker is opened first, so a missing one is reported at once.
fn serve(ctx: &Ctx, a: args::ServeArgs) -> Result<i32> {
    let backend = Backend::open(&ctx.target()?, Access::ReadWrite, ctx.lock_timeout)?;
    let options = crate::HttpOptions {
        listen: a.listen,
        read_only: a.read_only,
        allow_hosts: a.allow_host,
        tls: a.tls_cert.zip(a.tls_key),
        max_connections: usize::try_from(a.max_connections).unwrap_or(usize::MAX),
    };
    (ctx.http)(backend, options)
}

fn dispatch(ctx: &Ctx, command: Command) -> Result<i32> {
    match command {
        Command::Init { default_ttl } => init(ctx, default_ttl),
        Command::Config(ConfigCommand::DefaultTtl { ttl }) => config_default_ttl(ctx, ttl),
        Command::New(a) => new_item(ctx, a),
        Command::Show { item } => {
            let r = lower::show(&item)?;
            let t = ctx.open(Access::ReadOnly)?;
            let d = show::exec(&t, r)?;
            if ctx.json {
                out::json(&json::ShowJson::from(&d))?;
            } else {
                out::text(&render::show(&d, &t.now(), &ctx.style))?;
            }
            Ok(0)
        }
        Command::List(a) => list(ctx, a),
        Command::Update(a) => update(ctx, a),
        Command::Edit { item } => edit::edit(ctx, &command::item_ref(&item)?),
        Command::Claim(a) => claim(ctx, a),
        Command::Renew(a) => {
            let r = lower::renew(a)?;
            let t = ctx.open(Access::ReadWrite)?;
            emit(ctx, &t, &renew::exec(&t, r)?, "renewed")
        }
        Command::Release(a) => {
            let r = lower::release(a)?;
            let t = ctx.open(Access::ReadWrite)?;
            emit(ctx, &t, &release::exec(&t, r)?, "released")
        }
        Command::Done(a) => {
            let r = lower::done(a)?;
            let t = ctx.open(Access::ReadWrite)?;
            emit(ctx, &t, &done::exec(&t, r)?, "done")
        }
        Command::Dep(d) => dep(ctx, d),
        Command::Run(a) => run::run(ctx, a),
        Command::Log(a) => log(ctx, a),
        Command::Export(a) => {
            let r = export::Request {
                jsonl: a.jsonl,
                output: a.output,
            };
            let t = ctx.open(Access::ReadOnly)?;
            let bar = progress::bar("exporting");
            let mut tick = |n: u64, total: u64| progress::set(&bar, n, total);
            let n = export::exec(&t, &r, &mut out::Stdout, &mut tick)?;
            progress::finish(bar);
            if let Some(path) = &r.output {
                eprintln!("exported {n} items to {}", path.display());
            }
            Ok(0)
        }
        Command::Import(a) => import(ctx, a),
        Command::Verify => verify(ctx),
        Command::Rebuild => rebuild(ctx),
        Command::Upgrade => upgrade(ctx),
        Command::Comment(a) => {
            let r = lower::comment(a)?;
            let t = ctx.open(Access::ReadWrite)?;
            emit(ctx, &t, &comment::exec(&t, r)?, "commented on")
        }
        Command::Mcp => {
            // Opened now, so a missing or refused tracker is reported before the handshake.
            let backend = Backend::open(&ctx.target()?, Access::ReadWrite, ctx.lock_timeout)?;
            (ctx.mcp)(backend, ctx.actor.clone())
        }
        Command::Serve(a) => serve(ctx, a),
        Command::Status(a) => {
            let t = ctx.open(Access::ReadOnly)?;
            let s = status::exec(&t, lower::status(&a))?;
            if ctx.json {
                out::json(&json::StatusJson::new(&s.board, s.metrics, &s.now))?;
            } else {
                let mut text = render::board(&s.board, &s.now, &ctx.style);
                text.push_str(&render::metrics(&s.metrics, &ctx.style));
                out::text(&text)?;
            }
            Ok(0)
        }
        Command::Completions { shell } => {
            // Into memory first: generate() panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tracker", &mut script);
            out::text(&String::from_utf8_lossy(&script))?;
            Ok(0)
        }
        Command::Man { command } => {
            out::text(&man_page(&command)?)?;
            Ok(0)
        }
    }
}

/// `init`: a new tracker file or database, with its default TTL.
fn init(ctx: &Ctx, default_ttl: Option<Duration>) -> Result<i32> {
    let target = ctx.init_target()?;
    let (backend, created) = Backend::init(&target, ctx.lock_timeout)?;
    // Also for a tracker made before init wrote one: a repeat of init adds it.
    let ignored = match &target {
        Target::File(p) => locate::write_gitignore(p)?,
        Target::Postgres(_) => false,
    };
    let t = ctx.tracker(backend);
    let path = target.shown();
    if let Some(ttl) = default_ttl {
        t.set_default_ttl(ttl)?;
    }
    let printed = if ctx.json {
        out::json(&json::InitJson {
            path: path.to_string(),
            created,
            format_version: tracker::store::FORMAT_VERSION,
        })
    } else if created {
        say(&format!("created {path}"))
    } else if let Some(ttl) = default_ttl {
        say(&format!(
            "{path} is already a tracker; set its default-ttl to {}",
            humantime::format_duration(ttl)
        ))
    } else if ignored {
        say(&format!(
            "{path} is already a tracker; added a .gitignore beside it so git ignores it"
        ))
    } else {
        say(&format!("{path} is already a tracker; nothing changed"))
    };
    if created || default_ttl.is_some() || ignored {
        out::after_change(&format!("initialised {path}"), printed)?;
    } else {
        printed?;
    }
    Ok(0)
}

/// `config default-ttl`: shows or sets the tracker's default lease length.
fn config_default_ttl(ctx: &Ctx, ttl: Option<Duration>) -> Result<i32> {
    let r = command::config::Request { set: ttl };
    let t = ctx.open(r.access())?;
    let changed = r.set.is_some();
    let ttl = command::config::exec(&t, r)?;
    let printed = if ctx.json {
        out::json(&json::ConfigJson {
            default_ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        })
    } else {
        say(&format!("default-ttl {}", humantime::format_duration(ttl)))
    };
    if changed {
        out::after_change("set default-ttl", printed)?;
    } else {
        printed?;
    }
    Ok(0)
}

/// `new`.
fn new_item(ctx: &Ctx, a: args::NewArgs) -> Result<i32> {
    if let Some(path) = &a.plan {
        return new_plan(ctx, path, a.idempotency_key);
    }
    let r = lower::new_item(a)?;
    let t = ctx.open(Access::ReadWrite)?;
    let v = new_item::exec(&t, r)?;
    emit(ctx, &t, &v, "created")
}

/// `new --plan`: one line per item made, in plan order.
fn new_plan(ctx: &Ctx, path: &std::path::Path, key: Option<String>) -> Result<i32> {
    let r = lower::plan(path, key)?;
    let titles: Vec<String> = r
        .entries
        .iter()
        .map(|e| e.title.trim().to_string())
        .collect();
    let t = ctx.open(Access::ReadWrite)?;
    let made = plan::exec(&t, r)?;
    let printed = if ctx.json {
        out::json(&tracker::json::PlanJson::from(made.as_slice()))
    } else {
        out::text(&render::planned(&made, &titles))
    };
    let what = match (made.first(), made.last()) {
        (Some(a), Some(b)) => format!("created #{} to #{}", a.num, b.num),
        _ => "created nothing".to_string(),
    };
    out::after_change(&what, printed)?;
    Ok(0)
}

/// `list`.
fn list(ctx: &Ctx, a: args::ListArgs) -> Result<i32> {
    let q = lower::list(&a)?;
    let t = ctx.open(Access::ReadOnly)?;
    if a.tree {
        // A tree is cut in tree order, not by number before it is built.
        let whole = list::Request { limit: None, ..q };
        let mut rows = list::tree(list::exec(&t, &whole)?);
        rows.truncate(a.limit.unwrap_or(usize::MAX));
        if ctx.json {
            let items: Vec<ItemJson> = rows.iter().map(|(_, v)| ItemJson::from(v)).collect();
            out::json(&items)?;
        } else {
            let (depths, items): (Vec<usize>, Vec<_>) = rows.into_iter().unzip();
            out::text(&render::list(&items, &depths, &t.now(), &ctx.style, a.wide))?;
        }
    } else if ctx.json {
        // Streamed: a JSON array of any length in flat memory.
        let mut w = std::io::BufWriter::new(out::Stdout);
        let mut first = true;
        w.write_all(b"[").map_err(out::failed)?;
        list::each(&t, &q, &mut |v| {
            if !std::mem::take(&mut first) {
                w.write_all(b",").map_err(out::failed)?;
            }
            serde_json::to_writer(&mut w, &ItemJson::from(&v)).map_err(|e| {
                match e.io_error_kind() {
                    Some(_) => out::failed(e.into()),
                    None => Error::Internal(e.to_string()),
                }
            })
        })?;
        w.write_all(b"]\n").map_err(out::failed)?;
        w.flush().map_err(out::failed)?;
    } else {
        let items = list::exec(&t, &q)?;
        out::text(&render::list(&items, &[], &t.now(), &ctx.style, a.wide))?;
    }
    Ok(0)
}

/// `update`.
fn update(ctx: &Ctx, a: args::UpdateArgs) -> Result<i32> {
    let r = lower::update(a)?;
    let t = ctx.open(Access::ReadWrite)?;
    let v = update::exec(&t, r)?;
    emit(ctx, &t, &v, "updated")
}

/// `claim`: one item, or the best ready one with `--next`.
fn claim(ctx: &Ctx, a: args::ClaimArgs) -> Result<i32> {
    let r = lower::claim(a)?;
    let t = ctx.open(Access::ReadWrite)?;
    let v = claim::exec(&t, r, &|| false)?;
    emit(ctx, &t, &v, "claimed")
}

/// `dep add` and `dep rm`.
fn dep(ctx: &Ctx, d: DepCommand) -> Result<i32> {
    let r = lower::dep(d)?;
    let (edit, b) = (r.edit, r.blocker.clone());
    let t = ctx.open(Access::ReadWrite)?;
    let v = dep::exec(&t, r)?;
    if ctx.json {
        return emit(ctx, &t, &v, "");
    }
    // Named by number: the blocker as the user will see it in `show` and `list`.
    let blocker = t.get(&b)?.item.num;
    let how = match edit {
        dep::Edit::Add => "now waits for",
        dep::Edit::Remove => "no longer waits for",
    };
    let line = format!(
        "#{} (v{}) {how} #{blocker}: {}",
        v.item.num,
        v.item.version,
        render::safe(&v.item.title, false)
    );
    out::after_change(&format!("changed #{}", v.item.num), say(&line))?;
    Ok(0)
}

/// `verify`: replays the log and compares it with the tables.
fn verify(ctx: &Ctx) -> Result<i32> {
    let t = ctx.open(Access::ReadOnly)?;
    let spinner = progress::spinner("replaying the ops log");
    let r = verify::exec(&t, verify::Request);
    progress::finish(spinner);
    let r = r?;
    if ctx.json {
        out::json(&json::VerifyJson {
            ok: r.problems.is_empty(),
            ops: r.ops,
            items: r.items,
            leases: r.leases,
            last_token: r.last_token,
            problems: r.problems.clone(),
        })?;
    } else {
        say(&render::verify(&r))?;
    }
    match verify::mismatch(&r) {
        None => Ok(0),
        Some(e) => Err(e),
    }
}

/// `rebuild`: the tables again from the log.
fn rebuild(ctx: &Ctx) -> Result<i32> {
    let t = ctx.open(Access::ReadWrite)?;
    let spinner = progress::spinner("rebuilding from the ops log");
    let r = rebuild::exec(&t, rebuild::Request);
    progress::finish(spinner);
    let r = r?;
    let printed = if ctx.json {
        out::json(&json::RebuildJson {
            ops: r.ops,
            items: r.items,
            leases: r.leases,
        })
    } else {
        say(&format!(
            "rebuilt from {} ops: {} items, {} leases",
            r.ops, r.items, r.leases
        ))
    };
    out::after_change("rebuilt the tables", printed)?;
    Ok(0)
}

/// `upgrade`: migrate an older format to this binary's.
fn upgrade(ctx: &Ctx) -> Result<i32> {
    let t = ctx.open(Access::ReadWrite)?;
    let u = upgrade::exec(&t, upgrade::Request)?;
    let printed = if ctx.json {
        out::json(&json::UpgradeJson {
            upgraded: u.upgraded(),
            from: u.from,
            to: u.to,
        })
    } else if u.upgraded() {
        say(&format!(
            "upgraded from format {} to format {}",
            u.from, u.to
        ))
    } else {
        say(&format!("already of format {}; nothing to do", u.to))
    };
    out::after_change("upgraded the tracker", printed)?;
    Ok(0)
}

/// The man page of `tracker` or of one of its commands (`["dep", "add"]` is `tracker-dep-add`).
pub(crate) fn man_page(path: &[String]) -> Result<String> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut name = String::from("tracker");
    for word in path {
        let sub = cmd
            .get_subcommands()
            .find(|c| c.get_name() == word || c.get_all_aliases().any(|a| a == word))
            .cloned()
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{name} has no command {word:?}: `{} --help` lists them",
                    name.replace('-', " ")
                ))
            })?;
        name = format!("{name}-{}", sub.get_name());
        cmd = sub;
    }
    let cmd = cmd.name(name.clone()).bin_name(name.replace('-', " "));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .map_err(|e| Error::io("cannot render the man page", e))?;
    Ok(String::from_utf8_lossy(&page).into_owned())
}

fn import(ctx: &Ctx, a: args::ImportArgs) -> Result<i32> {
    let request = lower::import(&a);
    let name = a.file.display().to_string();
    // A file either way, so the write can read it again if it must run again.
    let mut input: std::fs::File = if a.file.as_os_str() == "-" {
        // Spooled to a private temporary file first, so the write lock is not held while a slow
        // producer writes, and memory stays flat. It is checked as it is spooled, so input that
        // is not an export is refused at once instead of filling the disk.
        let mut spool =
            tempfile::tempfile().map_err(|e| Error::io("cannot create a temporary file", e))?;
        let mut tee = Tee {
            from: std::io::stdin().lock(),
            to: &mut spool,
        };
        tracker::import::check(&mut tee)?;
        std::io::copy(&mut tee, &mut std::io::sink())
            .map_err(|e| Error::io("cannot read standard input", e))?;
        std::io::Seek::rewind(&mut spool)
            .map_err(|e| Error::io("cannot read the temporary file", e))?;
        spool
    } else {
        std::fs::File::open(&a.file).map_err(|e| Error::io(format!("{name}: cannot read"), e))?
    };
    let t = ctx.open(Access::ReadWrite)?;
    let spinner = progress::spinner("importing");
    let r = import::exec(&t, request, &mut input);
    progress::finish(spinner);
    let r = r?;
    let printed = if ctx.json {
        out::json(&json::ImportJson {
            created: r.created,
            replaced: r.replaced,
            unchanged: r.unchanged,
            kept: r.kept,
        })
    } else {
        say(&format!(
            "imported: {} new, {} replaced, {} unchanged, {} kept as they were here",
            r.created, r.replaced, r.unchanged, r.kept
        ))
    };
    out::after_change(&format!("imported {name}"), printed)?;
    Ok(0)
}

/// Reads from `from`, writing what it read to `to`.
struct Tee<R, W> {
    from: R,
    to: W,
}

impl<R: std::io::Read, W: std::io::Write> std::io::Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.from.read(buf)?;
        self.to.write_all(&buf[..n])?;
        Ok(n)
    }
}

fn log(ctx: &Ctx, a: args::LogArgs) -> Result<i32> {
    let mut r = lower::log(&a)?;
    // A database that tells of commits is kept open and listened to; a file is reopened for
    // every poll, so `--follow` never holds it between polls.
    let mut kept: Option<Tracker> = None;
    loop {
        let t = match kept.take() {
            Some(t) => t,
            None => ctx.open(Access::ReadOnly)?,
        };
        let listening = a.follow && t.listen();
        let now = t.now();
        let mut w = std::io::BufWriter::new(out::Stdout);
        let mut printed = 0usize;
        let mut since = r.since;
        log::each(&t, &r, &mut |op, num| {
            let line = if ctx.json {
                serde_json::to_string(&OpJson::new(&op, num))
                    .map_err(|e| Error::Internal(e.to_string()))?
            } else {
                render::log_line(&op, num, &now)
            };
            writeln!(w, "{line}").map_err(out::failed)?;
            since = op.seq + 1;
            printed += 1;
            Ok(())
        })?;
        w.flush().map_err(out::failed)?;
        r.since = since;
        if let Some(l) = r.limit.as_mut() {
            *l -= printed;
            if *l == 0 {
                return Ok(0);
            }
        }
        if !a.follow {
            return Ok(0);
        }
        if listening {
            // Woken by a commit; the timeout only bounds how long a lost notification is missed.
            t.wait_for_change(Duration::from_secs(10));
            kept = Some(t);
        } else {
            drop(t);
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
