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

/// Connects, retrying while the server does not answer, for at most `timeout`.
pub fn connect(url: &str, timeout: Duration) -> Result<postgres::Client> {
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
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        config.connect_timeout(left.max(Duration::from_millis(100)));
        let connected = match &tls {
            Some(tls) => config.connect(tls.clone()),
            None => config.connect(postgres::NoTls),
        };
        match connected {
            Ok(client) => return Ok(client),
            Err(e) if e.as_db_error().is_none() && !left.is_zero() && unanswered(&e) => {
                std::thread::sleep(Duration::from_millis(100).min(left));
            }
            Err(e) if e.as_db_error().is_none() && unanswered(&e) => {
                return Err(Error::Busy(format!(
                    "{shown}: the database server did not answer within {:.1}s ({e}); check that \
                     it runs and is reachable, or raise --lock-timeout",
                    timeout.as_secs_f64()
                )))
            }
            Err(e) => {
                let reason = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| with_causes(&e));
                return Err(Error::Internal(format!(
                    "{shown}: cannot connect: {reason}"
                )));
            }
        }
    }
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
