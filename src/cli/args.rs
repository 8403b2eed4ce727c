//! Command-line arguments, as clap definitions. The man page and completions come from here too.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tracker::command::summary;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  done as asked
  1  internal or I/O error
  2  bad usage or invalid input
  3  conflict: claimed by another live holder, version mismatch, stale token, dependency cycle
  4  not found: no such item, no tracker file, nothing ready
  5  busy: the file stayed locked past --lock-timeout, or --wait ran out
  6  data error: not a tracker, damaged, newer format, or verify found a mismatch";

/// A work tracker for people and coding agents sharing one backlog from many terminals.
#[derive(Parser, Debug)]
#[command(name = "tracker", version, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    /// Tracker file, or a postgres:// URL (default: $TRACKER_DB, else .tracker/tracker.redb here
    /// or in a parent)
    #[arg(long, global = true, value_name = "PATH|URL")]
    pub db: Option<std::ffi::OsString>,
    /// Print JSON on stdout (one object; arrays for list; JSON Lines for log)
    #[arg(long, global = true)]
    pub json: bool,
    /// Holder name for claims and the ops log (default: $TRACKER_AS, else user@host/tty)
    #[arg(long = "as", global = true, value_name = "NAME")]
    pub actor: Option<String>,
    /// How long to wait for the file when other processes hold it
    #[arg(long, global = true, value_name = "DUR", default_value = "10s", value_parser = parse_lock_timeout)]
    pub lock_timeout: Duration,
    /// When to use colours
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub color: ColorWhen,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

// Each command's summary (its --help line and man page NAME) is the table of commands'
// (`tracker::command::COMMANDS`), which the MCP tool list is built from too.
//
// Deferred: clap builds a command's arguments only when that command runs (or help, completions
// and man pages need them), instead of every command's on every start.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    #[command(about = summary("init"))]
    Init {
        /// Lease length for claims that name none (default 15m)
        #[arg(long, value_name = "DUR", value_parser = parse_ttl)]
        default_ttl: Option<Duration>,
    },
    #[command(about = summary("config"))]
    #[command(subcommand)]
    Config(ConfigCommand),
    #[command(about = summary("new"))]
    New(NewArgs),
    #[command(about = summary("show"))]
    Show {
        /// The item: 42, #42, a ULID or a unique ULID prefix
        item: String,
    },
    #[command(about = summary("list"))]
    List(ListArgs),
    #[command(about = summary("update"))]
    Update(UpdateArgs),
    #[command(about = summary("edit"))]
    Edit {
        /// The item: 42, #42, a ULID or a unique ULID prefix
        item: String,
    },
    #[command(about = summary("claim"))]
    Claim(ClaimArgs),
    #[command(about = summary("renew"))]
    #[command(visible_alias = "heartbeat")]
    Renew(RenewArgs),
    #[command(about = summary("release"))]
    Release(TokenArgs),
    #[command(about = summary("done"))]
    Done(DoneArgs),
    #[command(about = summary("dep"))]
    #[command(subcommand)]
    Dep(DepCommand),
    #[command(about = summary("run"))]
    #[command(
        after_help = "The command gets TRACKER_ITEM (the ULID), TRACKER_NUM (the number) and \
TRACKER_TOKEN (the fencing token) in its environment. It runs in a process group of its own; the \
lease is renewed every TTL/3 and tied to that group, so if `run` is killed the item stays claimed \
until the last process of the group is gone (at most the TTL). If the lease is lost, the whole \
group is stopped (SIGTERM, then SIGKILL after 5s) and `run` exits 3. Otherwise `run` exits with \
the command's own exit code (128+N if a signal N ended it): done on 0, released otherwise."
    )]
    Run(RunArgs),
    #[command(about = summary("log"))]
    Log(LogArgs),
    #[command(about = summary("export"))]
    Export(ExportArgs),
    #[command(about = summary("import"))]
    Import(ImportArgs),
    #[command(about = summary("verify"))]
    Verify,
    #[command(about = summary("rebuild"))]
    Rebuild,
    #[command(about = summary("comment"))]
    Comment(CommentArgs),
    #[command(
        about = summary("upgrade"),
        long_about = "Migrate a tracker of an older format (file or PostgreSQL schema) to this \
tracker's format, in one transaction, nothing lost. Until then this tracker reads it as it is and \
refuses every change (exit 6). Afterwards older trackers refuse it (exit 6), so everyone sharing \
it needs this version. On PostgreSQL the role needs the right to create tables in the schema. \
Upgrading a tracker already of this format changes nothing."
    )]
    Upgrade,
    #[command(about = summary("status"))]
    Status(StatusArgs),
    #[command(about = summary("completions"))]
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    #[command(about = summary("mcp"))]
    Mcp,
    #[command(about = summary("serve"))]
    Serve(ServeArgs),
    #[command(about = summary("man"))]
    Man {
        /// The command to print the page of, like `claim` or `dep add` (default: tracker's own
        /// page, which lists every command)
        command: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The address and port to listen on (port 0: any free port; the first line printed names
    /// the one taken). Beyond loopback without --tls-cert the traffic is plain HTTP: a warning
    /// says so
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7744")]
    pub listen: std::net::SocketAddr,
    /// Refuse every write (403): the board and the reads only
    #[arg(long)]
    pub read_only: bool,
    /// Also answer requests whose Host header is NAME (besides the listen address, localhost
    /// and 127.0.0.1): the names a server bound beyond loopback is reached by
    #[arg(long, value_name = "NAME")]
    pub allow_host: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM; with --tls-key)
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Connections served at once; one more is answered 503 (busy) and closed
    #[arg(long, value_name = "N", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Count lease events of this last stretch, like 24h or 100y (default: the latest 10,000
    /// ops)
    #[arg(long, value_name = "DUR", value_parser = parse_window)]
    pub since: Option<Duration>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The export to read (JSON or JSON Lines, as `export` writes it); `-` reads standard input
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// For items changed both here and in the file: `theirs` takes the file's copy, `ours` keeps
    /// this tracker's. Without it such conflicts are listed and nothing is imported (exit 3)
    #[arg(long, value_enum, value_name = "SIDE")]
    pub prefer: Option<PreferSide>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PreferSide {
    Ours,
    Theirs,
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// One line saying what is to be done (at most 4096 bytes, no control characters)
    #[arg(required_unless_present = "plan")]
    pub title: Option<String>,
    /// Create many items in one transaction, all or none, from a plan (`-` for standard
    /// input): {"items": [{"key": "k1", "title": ..., "parent": "k0", "blocked_by": ["#5"]}]}
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["title", "body", "body_file", "priority", "labels", "blocked_by",
            "item_type", "parent"]
    )]
    pub plan: Option<PathBuf>,
    /// Details, any length up to 1 MiB (newlines allowed)
    #[arg(long, default_value = "", conflicts_with = "body_file")]
    pub body: String,
    /// Read the body from a file (`-` for standard input), for text too long for an argument
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<PathBuf>,
    /// 0 (highest) to 4
    #[arg(long, short, value_parser = parse_priority)]
    pub priority: Option<u8>,
    /// A label to put on the item (repeat for more)
    #[arg(long = "label", short = 'l', value_name = "LABEL")]
    pub labels: Vec<String>,
    /// An item this one waits for: it is not ready until that one is done (repeat for more)
    #[arg(long = "blocked-by", value_name = "ITEM")]
    pub blocked_by: Vec<String>,
    /// A repeat with the same key returns the first item and creates nothing
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// What kind of work: task (the default), bug, feature, chore or epic
    #[arg(long = "type", value_name = "TYPE")]
    pub item_type: Option<String>,
    /// The item this one is part of (its parent)
    #[arg(long, value_name = "ITEM")]
    pub parent: Option<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// open, done, cancelled, or all
    #[arg(long, default_value = "open")]
    pub status: String,
    /// Only ready items: open, unblocked, unclaimed; best priority first
    #[arg(long)]
    pub ready: bool,
    /// Only items with a live claim
    #[arg(long)]
    pub claimed: bool,
    /// Only items with this label
    #[arg(long)]
    pub label: Option<String>,
    /// Only items claimed by this holder
    #[arg(long)]
    pub holder: Option<String>,
    /// At most this many items
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Do not cut titles to the terminal width
    #[arg(long)]
    pub wide: bool,
    /// Only items of this type: task, bug, feature, chore or epic
    #[arg(long = "type", value_name = "TYPE")]
    pub item_type: Option<String>,
    /// Only items whose title, body or comments contain TEXT (ignoring case)
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Only the children of ITEM (the items that are part of it)
    #[arg(long, value_name = "ITEM")]
    pub parent: Option<String>,
    /// Show children indented under their parents (with --parent: everything under ITEM)
    #[arg(long)]
    pub tree: bool,
}

#[derive(Args, Debug, Default)]
pub struct GuardArgs {
    /// Refuse (exit 3) unless the item is at this version
    #[arg(long, value_name = "N")]
    pub if_version: Option<u64>,
    /// Refuse (exit 3) unless this is the live lease's fencing token
    #[arg(long, value_name = "T")]
    pub token: Option<u64>,
    /// A repeat with the same key returns the first result and writes nothing
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The item: 42, #42, a ULID or a unique ULID prefix
    pub item: String,
    /// New title
    #[arg(long)]
    pub title: Option<String>,
    /// New body (replaces the old one)
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the new body from a file (`-` for standard input)
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<PathBuf>,
    /// New priority: 0 (highest) to 4
    #[arg(long, short, value_parser = parse_priority)]
    pub priority: Option<u8>,
    /// Add a label (repeat for more)
    #[arg(long = "add-label", value_name = "LABEL")]
    pub add_labels: Vec<String>,
    /// Remove a label (repeat for more)
    #[arg(long = "remove-label", value_name = "LABEL")]
    pub remove_labels: Vec<String>,
    /// open, done or cancelled; closing an item ends its lease (refused while another holds it)
    #[arg(long)]
    pub status: Option<String>,
    /// New type: task, bug, feature, chore or epic
    #[arg(long = "type", value_name = "TYPE")]
    pub item_type: Option<String>,
    /// Make it part of ITEM (a parent chain never loops: exit 3)
    #[arg(long, value_name = "ITEM", conflicts_with = "no_parent")]
    pub parent: Option<String>,
    /// Make it part of no item
    #[arg(long)]
    pub no_parent: bool,
    /// With --status done or cancelled: why it closed (its close_reason)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// With --status done or cancelled: close it even while it has open children
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub guard: GuardArgs,
}

#[derive(Args, Debug)]
pub struct CommentArgs {
    /// The item: 42, #42, a ULID or a unique ULID prefix
    pub item: String,
    /// The comment (at most 64 KiB)
    #[arg(required_unless_present = "body_file", conflicts_with = "body_file")]
    pub text: Option<String>,
    /// Read the comment from a file (`-` for standard input)
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<PathBuf>,
    /// A repeat with the same key returns the first result and adds nothing
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

// Which item to lease, and for how long: shared by `claim` and `run`. (A plain comment: a doc
// comment here would become the about text of the commands that flatten it.)
#[derive(Args, Debug)]
pub struct LeaseTarget {
    /// The item; omit with --next
    #[arg(required_unless_present = "next", conflicts_with = "next")]
    pub item: Option<String>,
    /// The best ready item: open, unblocked, unclaimed; best priority, then oldest
    #[arg(long)]
    pub next: bool,
    /// With --next: only items with this label
    // (Not `requires = "next"`: a flag's default value counts as present for that.)
    #[arg(long, conflicts_with = "item")]
    pub label: Option<String>,
    /// Lease length (default: $TRACKER_TTL, else the tracker's default-ttl, else 15m)
    #[arg(long, value_name = "DUR", value_parser = parse_ttl)]
    pub ttl: Option<Duration>,
}

#[derive(Args, Debug)]
pub struct ClaimArgs {
    #[command(flatten)]
    pub target: LeaseTarget,
    /// Keep trying (backoff with jitter) until the item is free or DUR runs out (then exit 5)
    #[arg(long, value_name = "DUR", value_parser = parse_wait)]
    pub wait: Option<Duration>,
    /// Accepted for older scripts: every claim takes over a lease whose holder process is
    /// provably gone
    #[arg(long)]
    pub steal_stale: bool,
    /// Take the lease even from a live holder (recorded as an eviction)
    #[arg(long)]
    pub force: bool,
    /// Tie the lease to this process: it ends as soon as the process is gone
    #[arg(long)]
    pub pid: Option<u32>,
    #[command(flatten)]
    pub guard: GuardArgs,
}

#[derive(Args, Debug)]
pub struct RenewArgs {
    /// The item: 42, #42, a ULID or a unique ULID prefix
    pub item: String,
    /// New lease length from now (default: the lease's own TTL)
    #[arg(long, value_name = "DUR", value_parser = parse_ttl)]
    pub ttl: Option<Duration>,
    #[command(flatten)]
    pub guard: GuardArgs,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The item: 42, #42, a ULID or a unique ULID prefix
    pub item: String,
    #[command(flatten)]
    pub guard: GuardArgs,
}

#[derive(Args, Debug)]
pub struct DoneArgs {
    /// The item: 42, #42, a ULID or a unique ULID prefix
    pub item: String,
    /// Finish it even while another holder has a live lease
    #[arg(long)]
    pub force: bool,
    /// Why it is done (its close_reason)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub guard: GuardArgs,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    #[command(about = summary("config default-ttl"))]
    DefaultTtl {
        /// The new default lease length, like 30m (omit to print the current one)
        #[arg(value_parser = parse_ttl)]
        ttl: Option<Duration>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DepCommand {
    #[command(about = summary("dep add"))]
    Add(DepArgs),
    #[command(about = summary("dep rm"))]
    #[command(visible_alias = "remove")]
    Rm(DepArgs),
}

#[derive(Args, Debug)]
pub struct DepArgs {
    /// The item that waits
    pub item: String,
    /// The item it waits for
    pub blocker: String,
    #[command(flatten)]
    pub guard: GuardArgs,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: LeaseTarget,
    /// The command to run, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogArgs {
    /// Only this item's ops
    pub item: Option<String>,
    /// Start at this sequence number
    #[arg(long, default_value_t = 1)]
    pub since: u64,
    /// At most this many ops
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Keep printing new ops as they arrive
    #[arg(long)]
    pub follow: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to FILE atomically (temp file, fsync, rename) instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// JSON Lines: a header line, then one item per line
    #[arg(long)]
    pub jsonl: bool,
}

// Durations are parsed by the library (`tracker::durations`), which the MCP server uses too,
// so every transport gives the same text the same answer. Checked here, at parse time, so that
// no duration from the command line can overflow a deadline or reach the file.
use tracker::durations::{self, Use};

/// A lease length (`--ttl`, `--default-ttl`, `$TRACKER_TTL`), in the library's bounds.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    durations::parse(s, Use::Ttl)
}

/// How long to wait for the tracker (`--lock-timeout`).
pub fn parse_lock_timeout(s: &str) -> Result<Duration, String> {
    durations::parse(s, Use::LockTimeout)
}

/// How long to keep retrying a claim (`--wait`).
pub fn parse_wait(s: &str) -> Result<Duration, String> {
    durations::parse(s, Use::Wait)
}

/// A priority (`--priority`): the library's range and message, as the MCP server checks it.
pub fn parse_priority(s: &str) -> Result<u8, String> {
    tracker::rules::parse_priority(s)
}

/// How far back `status --since` looks.
pub fn parse_window(s: &str) -> Result<Duration, String> {
    durations::parse(s, Use::Window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command and every argument of every command says what it is for in `--help`.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(format!("{sub_path} (the command)"));
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut missing = Vec::new();
        let mut root = Cli::command();
        root.build();
        walk(&root, "tracker", &mut missing);
        assert!(missing.is_empty(), "no --help text for: {missing:#?}");
    }

    /// Every command path of the table of commands, like `["dep", "add"]`, and `[]` for tracker
    /// itself: what the docs checks walk.
    fn table_paths() -> Vec<Vec<String>> {
        let commands = tracker::command::COMMANDS
            .iter()
            .filter(|c| c.transports.cli);
        let paths = commands.map(|c| c.name.split(' ').map(str::to_string).collect());
        std::iter::once(Vec::new()).chain(paths).collect()
    }

    /// The table of commands (`tracker::command::COMMANDS`) names every command clap parses,
    /// in the order `--help` lists them, and nothing else; each command's summary is its
    /// row's.
    #[test]
    fn the_table_of_commands_is_the_command_line() {
        fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
            for sub in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
                let name = format!("{path}{}", sub.get_name());
                let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
                out.push((name.clone(), about));
                walk(sub, &format!("{name} "), out);
            }
        }
        let mut clap_tree = Vec::new();
        let mut root = Cli::command();
        root.build();
        walk(&root, "", &mut clap_tree);
        let table: Vec<(String, String)> = tracker::command::COMMANDS
            .iter()
            .filter(|c| c.transports.cli)
            .map(|c| (c.name.to_string(), c.summary.to_string()))
            .collect();
        assert_eq!(clap_tree, table);
    }

    /// Where an MCP tool's argument and the command line's flag of the same name both say what
    /// they default to, they say the same. (They did not: `status`'s `since` said "the whole
    /// log", and `claim`'s `ttl` left out `$TRACKER_TTL`, which MCP claims go by too.)
    #[test]
    fn an_argument_defaults_to_the_same_on_both_transports() {
        fn default(help: &str) -> Option<String> {
            let at = help.find("(default: ")?;
            let rest = &help[at..];
            Some(rest[..=rest.find(')')?].to_string())
        }
        use tracker::command::{claim, renew, status};
        let schemas = [
            ("claim", schemars::schema_for!(claim::Args)),
            ("claim", schemars::schema_for!(claim::NextArgs)),
            ("renew", schemars::schema_for!(renew::Args)),
            ("status", schemars::schema_for!(status::Args)),
        ];
        let mut root = Cli::command();
        root.build();
        let mut compared = 0;
        for (command, schema) in schemas {
            let cmd = root.find_subcommand(command).unwrap();
            let properties = schema.as_value()["properties"].as_object().unwrap().clone();
            for (name, p) in properties {
                let mcp = p["description"].as_str().and_then(default);
                let flag = cmd.get_arguments().find(|a| a.get_id() == name.as_str());
                let cli = flag
                    .and_then(|a| a.get_help())
                    .and_then(|h| default(&h.to_string()));
                if let (Some(mcp), Some(cli)) = (mcp, cli) {
                    assert_eq!(mcp, cli, "{command} {name}");
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 4, "claim ttl twice, renew ttl, status since");
    }

    /// docs/man holds one page per command, as `tracker man COMMAND` prints it (regenerate with
    /// `UPDATE_DOCS=1 cargo test --release --bin tracker`).
    #[test]
    fn the_shipped_man_pages_are_the_ones_the_binary_prints() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/man");
        let mut expected = std::collections::BTreeSet::new();
        for path in table_paths() {
            let name = std::iter::once("tracker".to_string())
                .chain(path.iter().cloned())
                .collect::<Vec<_>>()
                .join("-");
            let file = dir.join(format!("{name}.1"));
            let page = crate::cli::man_page(&path).unwrap();
            if std::env::var_os("UPDATE_DOCS").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&file, &page).unwrap();
            }
            let shipped = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                shipped == page,
                "docs/man/{name}.1 is out of date: UPDATE_DOCS=1 cargo test --release --bin tracker"
            );
            expected.insert(format!("{name}.1"));
        }
        let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            on_disk, expected,
            "docs/man holds exactly one page per command"
        );
    }

    /// docs/cli.md has a `### tracker COMMAND` section for every command, and each section names
    /// every long flag of its command, so the reference cannot silently fall behind the binary.
    #[test]
    fn the_reference_documents_every_command_and_flag() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let mut missing = Vec::new();
        let mut root = Cli::command();
        root.build();
        for path in table_paths() {
            if path.is_empty() {
                continue;
            }
            let name = format!("tracker {}", path.join(" "));
            let heading = format!("### {name}\n");
            let Some(start) = doc.find(&heading) else {
                let has_subcommands = path.len() == 1
                    && root
                        .find_subcommand(&path[0])
                        .is_some_and(|c| c.has_subcommands());
                if !has_subcommands {
                    missing.push(format!("a section `### {name}`"));
                }
                continue;
            };
            let body = &doc[start + heading.len()..];
            let section = &body[..body.find("\n### ").unwrap_or(body.len())];
            let mut cmd = &root;
            for word in &path {
                cmd = cmd.find_subcommand(word).unwrap();
            }
            for arg in cmd.get_arguments() {
                if let Some(long) = arg.get_long() {
                    let global = root.get_arguments().any(|a| a.get_long() == Some(long));
                    let documented = section.contains(&format!("--{long}"));
                    if long != "help" && long != "version" && !global && !documented {
                        missing.push(format!("--{long} in `### {name}`"));
                    }
                }
            }
        }
        for arg in root.get_arguments() {
            if let Some(long) = arg.get_long() {
                if long != "help" && long != "version" && !doc.contains(&format!("--{long}")) {
                    missing.push(format!("the global --{long}"));
                }
            }
        }
        assert!(missing.is_empty(), "docs/cli.md lacks: {missing:#?}");
    }
}
