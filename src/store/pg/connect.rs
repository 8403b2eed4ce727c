//! Connecting the way libpq users expect: a `postgres://` or `postgresql://` URL, with
//! `PGPASSWORD`, `~/.pgpass` (or `PGPASSFILE`), `PGSSLMODE` or `sslmode=` (disable, allow, prefer,
//! require, verify-ca, verify-full), `sslrootcert=`/`PGSSLROOTCERT`, `PGUSER`, `PGHOST`, `PGPORT`,
//! and Unix socket directories (`?host=/run/postgresql`). A password never appears in a message.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Whether `s` names a PostgreSQL database rather than a file.
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// The URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = url[..scheme_end + 3].to_string();
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            out.push_str(user);
            if userinfo.contains(':') {
                out.push_str(":***");
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    out.push_str(&rest[authority_end..]);
    // A password may also come as a query parameter.
    redact_param(&out, "password")
}

fn redact_param(url: &str, name: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            // The postgres crate decodes keys too: `passwor%64=` is a password.
            Some((k, _)) if percent_decode(k) == name => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub(super) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Takes the parameters the `postgres` crate does not understand out of the URL's query.
fn take_params(url: &str, names: &[&str]) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if names.contains(&k) {
            taken.push((k.to_string(), percent_decode(v)));
        } else {
            kept.push(kv);
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, taken)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The password for this connection from a pgpass file, as libpq finds it.
fn pgpass(host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let path = env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let port = port.to_string();
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass(line);
        let [h, p, d, u, pw] = fields.as_slice() else {
            continue;
        };
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        if matches(h, host) && matches(p, &port) && matches(d, db) && matches(u, user) {
            return Some(pw.clone());
        }
    }
    None
}

/// Splits a pgpass line on unescaped colons (`\:` and `\\` are escapes).
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), fields.last_mut()) {
                    last.push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

/// What the URL leaves out, from libpq's environment variables and defaults, as psql does:
/// PGUSER (else $USER, else postgres), PGHOST (else the local socket), PGPORT, PGDATABASE,
/// PGPASSWORD (else PGPASSFILE or ~/.pgpass).
fn libpq_defaults(config: &mut postgres::Config) {
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        config.user(&user);
    }
    if config.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(h) => {
                config.host(&h);
            }
            None => {
                config.host_path("/var/run/postgresql");
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(p) = env("PGPORT").and_then(|p| p.parse().ok()) {
            config.port(p);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(d) = env("PGDATABASE") {
            config.dbname(&d);
        }
    }
    if config.get_password().is_none() {
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or_default().to_string();
        let db = config.get_dbname().unwrap_or(&user).to_string();
        if let Some(pw) = env("PGPASSWORD").or_else(|| pgpass(&host, port, &db, &user)) {
            config.password(pw);
        }
    }
}

/// How long a connection may sit idle before TCP keepalive probes start, how far apart they
/// are, and how many may go unanswered: a server that vanishes (host down, network cut) is
/// noticed within about `KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_RETRIES` = 11 s.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_RETRIES: u32 = 3;
/// How long data sent may stay unacknowledged by the server's host before the connection is
/// given up (Linux `TCP_USER_TIMEOUT`). A server that is busy working still acknowledges what
/// it is sent, so this never cuts off a statement that is running, however long.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects, retrying while the server does not answer, for at most `timeout`.
pub fn connect(url: &str, timeout: Duration) -> Result<postgres::Client> {
    prepare(url, timeout)?.connect(Instant::now() + timeout)
}

/// A connection attempt still under way in a thread of its own, after its caller stopped
/// waiting for it (a server that accepted the connection and never answered).
type Pending = std::sync::mpsc::Receiver<std::result::Result<postgres::Client, postgres::Error>>;

/// Everything needed to connect (and to connect again after the connection is lost): the
/// URL's settings with libpq's defaults filled in, and TLS, worked out once.
pub struct Connector {
    config: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    shown: String,
    user: String,
    /// An attempt that outlived its caller's deadline; the next attempt waits for it first,
    /// so a server that never answers holds at most one thread and one socket of ours.
    pending: std::sync::Mutex<Option<Pending>>,
}

/// Reads the URL and the environment as libpq would. Every connection it makes waits for a
/// lock at most `lock_timeout` (the session's `lock_timeout`), reads included.
pub fn prepare(url: &str, lock_timeout: Duration) -> Result<Connector> {
    let shown = redact(url);
    let (rest, taken) = take_params(url, &["sslmode", "sslrootcert"]);
    let param = |name: &str| {
        taken
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // As libpq 16: the system's store is only worth using with the host name checked, so it
    // makes verify-full the default (and a weaker mode an error, in tls.rs).
    let root_cert = param("sslrootcert").or_else(|| env("PGSSLROOTCERT"));
    let system_roots = root_cert.as_deref() == Some("system");
    let mode_text = param("sslmode")
        .or_else(|| env("PGSSLMODE"))
        .unwrap_or_else(|| {
            if system_roots {
                "verify-full"
            } else {
                "prefer"
            }
            .into()
        });
    let mode = match mode_text.as_str() {
        "disable" => SslMode::Disable,
        "allow" | "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(Error::Invalid(format!(
                "{shown}: sslmode {other:?} is not one of disable, allow, prefer, require, \
                 verify-ca, verify-full"
            )))
        }
    };
    let mut config: postgres::Config = rest
        .parse()
        .map_err(|e| Error::Invalid(format!("{shown} is not a PostgreSQL URL: {e}")))?;
    libpq_defaults(&mut config);
    config.ssl_mode(match mode {
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        _ => postgres::config::SslMode::Require,
    });
    config.application_name("tracker");
    // A lock wait is bounded for every statement of the session, reads too (a read waits for a
    // lock only behind a schema change or the like): set once at start-up, no round trip.
    let ms = lock_timeout.as_millis().max(1);
    let options = match config.get_options() {
        Some(o) if !o.trim().is_empty() => format!("{o} -c lock_timeout={ms}"),
        _ => format!("-c lock_timeout={ms}"),
    };
    config.options(&options);
    config
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(TCP_USER_TIMEOUT);
    // TLS is never used over a Unix socket: only set it up when it can be used.
    let sockets_only = config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, postgres::config::Host::Unix(_)));
    let tls = if mode == SslMode::Disable || sockets_only {
        None
    } else {
        Some(super::tls::connector(mode, root_cert, &shown)?)
    };
    let user = config.get_user().unwrap_or_default().to_string();
    Ok(Connector {
        config,
        tls,
        shown,
        user,
        pending: std::sync::Mutex::new(None),
    })
}

impl Connector {
    /// The role this connects as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Connects, retrying while the server does not answer or is starting up, until
    /// `deadline`. The whole of it is bounded (TCP, TLS, start-up, authentication), not only
    /// the TCP connect: a server that accepts and then never answers gives [`Error::Busy`].
    pub fn connect(&self, deadline: Instant) -> Result<postgres::Client> {
        let started = Instant::now();
        let timeout = deadline.saturating_duration_since(started);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = match self.attempt(left) {
                Some(outcome) => outcome,
                None => {
                    return Err(self
                        .unanswered(timeout, "no reply to connecting, to TLS or to the start-up"))
                }
            };
            let e = match outcome {
                Ok(client) => return Ok(client),
                Err(e) => e,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if !unanswered(&e) {
                return Err(refused(&self.shown, &self.user, &e));
            }
            if left.is_zero() {
                return Err(self.unanswered(timeout, &e.to_string()));
            }
            std::thread::sleep(Duration::from_millis(100).min(left));
        }
    }

    fn unanswered(&self, timeout: Duration, why: &str) -> Error {
        Error::Busy(format!(
            "{}: the database server did not answer within {:.1}s ({why}); check that it runs \
             and is reachable, or raise --lock-timeout",
            self.shown,
            timeout.as_secs_f64()
        ))
    }

    /// One attempt, in a thread of its own so that waiting for it can stop at `left` (the
    /// `postgres` crate bounds only the TCP connect). `None`: it did not finish in time; it
    /// is kept, and the next attempt waits for it instead of starting another.
    fn attempt(
        &self,
        left: Duration,
    ) -> Option<std::result::Result<postgres::Client, postgres::Error>> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let rx = match pending.take() {
            Some(rx) => rx,
            None => {
                let mut config = self.config.clone();
                config.connect_timeout(left.max(Duration::from_millis(100)));
                let tls = self.tls.clone();
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                std::thread::Builder::new()
                    .name("tracker-pg-connect".into())
                    .spawn(move || {
                        resolve_here(&mut config);
                        let connected = match tls {
                            Some(tls) => config.connect(tls),
                            None => config.connect(postgres::NoTls),
                        };
                        // The caller may have stopped waiting: then the client is dropped.
                        let _ = tx.send(connected);
                    })
                    .ok()?;
                rx
            }
        };
        match rx.recv_timeout(left) {
            Ok(outcome) => Some(outcome),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                *pending = Some(rx);
                None
            }
            // The thread died without an answer (it cannot panic, but be safe): try afresh.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
        }
    }
}

/// Resolves a single host name on this thread, so that `tokio-postgres` does not start a
/// thread of its own to do it (and the process then wait for that thread as it exits): a few
/// milliseconds of every command on a busy machine. Anything else is left to the crate.
fn resolve_here(config: &mut postgres::Config) {
    use std::net::ToSocketAddrs;
    let [postgres::config::Host::Tcp(host)] = config.get_hosts() else {
        return;
    };
    if !config.get_hostaddrs().is_empty() || host.parse::<std::net::IpAddr>().is_ok() {
        return;
    }
    let port = config.get_ports().first().copied().unwrap_or(5432);
    if let Some(addr) = (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    {
        config.hostaddr(addr.ip());
    }
}

/// A server that answered and refused: its reason, with the kind that fits it.
fn refused(shown: &str, user: &str, e: &postgres::Error) -> Error {
    use postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        return Error::Internal(format!("{shown}: cannot connect: {}", with_causes(e)));
    };
    let code = db.code();
    let denied = |what: String| {
        Error::io(
            format!("{shown}: cannot connect: {}", db.message()),
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, what),
        )
    };
    if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    {
        return denied(format!(
            "the server refused the login of role {user:?}; check the password (PGPASSWORD, \
             ~/.pgpass) and the server's pg_hba.conf"
        ));
    }
    if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        return denied(format!(
            "role {user:?} may not connect to this database; grant it CONNECT, or use a role \
             that has it"
        ));
    }
    if *code == SqlState::INVALID_CATALOG_NAME {
        return Error::io(
            format!("{shown}: cannot connect: {}", db.message()),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "create the database (createdb), or name one that exists",
            ),
        );
    }
    Error::Internal(format!("{shown}: cannot connect: {}", db.message()))
}

/// An error and the errors that caused it, so a refused TLS handshake says why (an unknown
/// issuer, a name the certificate does not carry, ...).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// Whether a failed connection is one where nobody answered (refused, timed out, unreachable),
/// as opposed to a server that answered with a reason.
fn unanswered(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    if let Some(db) = e.as_db_error() {
        // "the database system is starting up / shutting down": a restart under way.
        return *db.code() == SqlState::CANNOT_CONNECT_NOW
            || *db.code() == SqlState::ADMIN_SHUTDOWN
            || *db.code() == SqlState::CRASH_SHUTDOWN
            || *db.code() == SqlState::TOO_MANY_CONNECTIONS;
    }
    let text = e.to_string().to_lowercase();
    let source = std::error::Error::source(e)
        .map(|s| s.to_string().to_lowercase())
        .unwrap_or_default();
    [
        "timed out",
        "timeout",
        "refused",
        "unreachable",
        "no such file",
        "not found",
    ]
    .iter()
    .any(|w| text.contains(w) || source.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://ana:s3cret@db.example:5432/work?sslmode=require"),
            "postgres://ana:***@db.example:5432/work?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://db/work?user=ana&password=s3cret"),
            "postgresql://db/work?user=ana&password=***"
        );
        assert_eq!(redact("postgres://ana@db/work"), "postgres://ana@db/work");
        // The postgres crate decodes parameter names, so an encoded one is a password too.
        assert_eq!(
            redact("postgres://db/work?passwor%64=s3cret"),
            "postgres://db/work?passwor%64=***"
        );
    }

    #[test]
    fn pgpass_lines_split_on_unescaped_colons() {
        assert_eq!(
            split_pgpass(r"db:5432:*:ana:pa\:ss\\word"),
            vec!["db", "5432", "*", "ana", r"pa:ss\word"]
        );
    }

    #[test]
    fn libpq_only_parameters_are_taken_out() {
        let (url, taken) = take_params(
            "postgres://db/work?sslmode=verify-full&host=/run/pg&sslrootcert=%2Fca.pem",
            &["sslmode", "sslrootcert"],
        );
        assert_eq!(url, "postgres://db/work?host=/run/pg");
        assert_eq!(
            taken,
            vec![
                ("sslmode".to_string(), "verify-full".to_string()),
                ("sslrootcert".to_string(), "/ca.pem".to_string())
            ]
        );
    }
}
