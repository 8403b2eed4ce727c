//! The table of commands: every command's name, what it is for, and which transports offer it.
//! The command line's help and man pages take their summaries from here (`about`), the MCP
//! server its tools' names and descriptions, and the docs checks walk it.

/// One command.
#[derive(Clone, Copy, Debug)]
pub struct Command {
    /// As typed after `tracker`: `claim`, `dep add`.
    pub name: &'static str,
    /// What it is for, in one line: its `--help` summary and man page's NAME line.
    pub summary: &'static str,
    /// Which transports offer it.
    pub transports: Transports,
}

/// The transports a command is offered on.
#[derive(Clone, Copy, Debug)]
pub struct Transports {
    /// On the command line (every command is).
    pub cli: bool,
    /// As MCP tools: each tool's name and description (`claim` is two: `claim` and
    /// `claim_next`).
    pub mcp: &'static [Tool],
}

/// An MCP tool.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    /// Its name in the tool list.
    pub name: &'static str,
    /// What an agent reads about it.
    pub description: &'static str,
}

const fn cli(name: &'static str, summary: &'static str) -> Command {
    Command {
        name,
        summary,
        transports: Transports {
            cli: true,
            mcp: &[],
        },
    }
}

const fn both(name: &'static str, summary: &'static str, mcp: &'static [Tool]) -> Command {
    Command {
        name,
        summary,
        transports: Transports { cli: true, mcp },
    }
}

const fn tool(name: &'static str, description: &'static str) -> Tool {
    Tool { name, description }
}

/// Every command, in the order `tracker --help` lists them.
pub const COMMANDS: &[Command] = &[
    cli(
        "init",
        "Create a tracker file (.tracker/tracker.redb here, or --db PATH; in a linked git \
         worktree, the main worktree's)",
    ),
    cli("config", "Show or change this tracker's settings"),
    cli(
        "config default-ttl",
        "Print the default lease length, or set it to DUR",
    ),
    both(
        "new",
        "Create an item, or many at once from a plan (--plan)",
        &[
            tool(
                "new",
                "Create a work item. Returns the item (id, num, title, status, version, ...). \
                 Use idempotency_key when you may retry, so a repeat creates nothing.",
            ),
            tool(
                "plan",
                "Create many items at once, all or none: items is a list of {key, title, type, \
                 parent, blocked_by, body, priority, labels}, where parent and blocked_by name \
                 other entries by key, or existing items (\"#12\"). Returns {\"created\": [{key, \
                 num, id}]} in plan order. A bad entry (unknown reference, cycle, invalid field) \
                 fails with code 2 naming it, and nothing is created. Use idempotency_key when \
                 you may retry: a repeat returns the same items.",
            ),
        ],
    ),
    both(
        "show",
        "Show one item, its claim, blockers and latest ops",
        &[tool(
            "show",
            "Show one item with its live claim (holder, token, expiry), its blockers \
             (blocked_by) and the items it blocks (blocks).",
        )],
    ),
    both(
        "list",
        "List items (open ones unless --status says otherwise)",
        &[tool(
            "list",
            "List items as {\"items\": [...]}: open ones by default; ready=true gives the \
             claimable queue, best priority first, then oldest.",
        )],
    ),
    both(
        "update",
        "Change an item's fields",
        &[tool(
            "update",
            "Change an item's fields (title, body, priority, labels, status). Give if_version to \
             refuse if anyone changed it since you read it; closing an item you hold needs your \
             token.",
        )],
    ),
    cli(
        "edit",
        "Edit an item in $VISUAL/$EDITOR; saved only if nobody changed it meanwhile",
    ),
    both(
        "claim",
        "Take a lease on an item, or on the best ready one with --next",
        &[
            tool(
                "claim",
                "Take a lease on one item. Returns the item with claim.token: pass it to renew, \
                 release and done. Fails with code 3 (conflict) while another live holder has it.",
            ),
            tool(
                "claim_next",
                "Atomically claim the best ready item (open, unblocked, unclaimed; best \
                 priority, then oldest). Returns it with claim.token. Code 4 (not_found) when \
                 nothing is ready.",
            ),
        ],
    ),
    both(
        "renew",
        "Extend your lease",
        &[tool(
            "renew",
            "Extend your lease (a heartbeat): renew well within the TTL while you work.",
        )],
    ),
    both(
        "release",
        "Give your lease back",
        &[tool(
            "release",
            "Give your lease back without finishing the item, so others can take it.",
        )],
    ),
    both(
        "done",
        "Mark an item done and drop its lease",
        &[tool(
            "done",
            "Mark an item done and drop its lease. Pass your token; refused (code 3) if another \
             holder has a live lease, unless force.",
        )],
    ),
    cli("dep", "Add or remove dependencies"),
    both(
        "dep add",
        "ITEM waits for BLOCKER",
        &[tool(
            "dep_add",
            "Make an item wait for another (blocker). A cycle is refused (code 3).",
        )],
    ),
    both(
        "dep rm",
        "ITEM no longer waits for BLOCKER",
        &[tool("dep_rm", "Stop an item waiting for another.")],
    ),
    cli(
        "run",
        "Claim an item, run a command while renewing the lease, then mark done (exit 0) or \
         release",
    ),
    both(
        "log",
        "The ops log, oldest first",
        &[tool(
            "log",
            "The ops log as {\"ops\": [...]}, oldest first: who changed what, when. Use since (a \
             sequence number) to read only what is new.",
        )],
    ),
    cli(
        "export",
        "Write a consistent JSON snapshot of the whole tracker",
    ),
    cli(
        "import",
        "Merge an export into this tracker by ULID: all of it, or nothing",
    ),
    cli("verify", "Replay the ops log and check every invariant"),
    cli(
        "rebuild",
        "Recompute the tables and indexes from the ops log",
    ),
    both(
        "comment",
        "Append a comment to an item (it changes no field, so the version stays)",
        &[tool(
            "comment",
            "Append a comment to an item: a note for the next agent or a person (author = you). \
             It changes no field, so the item's version stays and nobody's if_version breaks.",
        )],
    ),
    cli(
        "upgrade",
        "Migrate a tracker of an older format to this one, in one transaction, nothing lost",
    ),
    both(
        "status",
        "A board: counts by state, live claims with heartbeat ages, stale claims, and what \
         coordination cost (lease events, refusals, time to first claim and to done)",
        &[tool(
            "status",
            "The board: counts by state (open, ready, claimed, blocked, done, cancelled), live \
             claims with heartbeat ages, stale claims, and metrics: lease events overall and per \
             holder (over the last `since`, e.g. \"24h\"), refused claims, and time from new to \
             first claim and from claim to done.",
        )],
    ),
    cli("completions", "Print a shell completion script"),
    cli(
        "mcp",
        "Serve the Model Context Protocol on stdin/stdout, for agents (register `tracker mcp` \
         with your MCP client; `--as NAME` names the agent, else the client's name)",
    ),
    cli(
        "serve",
        "Serve this tracker over HTTP: a live board for people at /, a JSON API for programs \
         (127.0.0.1:7744 unless --listen; the first line printed is the board's URL with its \
         token)",
    ),
    cli(
        "man",
        "Print a man page (roff): `tracker man > tracker.1`, `tracker man claim > \
         tracker-claim.1`",
    ),
];

/// The command named `name` (`claim`, `dep add`).
///
/// # Panics
///
/// When no command has that name: a transport names only commands of this table, which its
/// tests check.
pub fn find(name: &str) -> &'static Command {
    COMMANDS
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no command {name:?} in the table of commands"))
}

/// The summary of the command named `name`, for `--help` and man pages.
pub fn summary(name: &str) -> &'static str {
    find(name).summary
}

/// The description of the MCP tool named `name`.
///
/// # Panics
///
/// When no command offers that tool.
pub fn tool_description(name: &str) -> &'static str {
    COMMANDS
        .iter()
        .flat_map(|c| c.transports.mcp)
        .find(|t| t.name == name)
        .map(|t| t.description)
        .unwrap_or_else(|| panic!("no MCP tool {name:?} in the table of commands"))
}
