//! Connecting to PostgreSQL the way libpq users expect: passwords from PGPASSWORD or a pgpass
//! file and never shown, TLS with sslmode=require and verify-full, and a URL never taken as a
//! path. Needs the test server of `.ci/postgres.sh` (password auth for one role, TLS on).

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};

use crate::common::text;

const PASSWORD: &str = "pw-s3cret";

/// The TCP address of the test server, from `.ci/postgres.sh`; `None` (skipped) without it.
fn server() -> Option<(String, String)> {
    match (
        std::env::var("TRACKER_TEST_PG_PORT"),
        std::env::var("TRACKER_TEST_PG_DIR"),
    ) {
        (Ok(port), Ok(dir)) => Some((port, dir)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the PostgreSQL connection tests (.ci/postgres.sh sets the server up)"
            );
            eprintln!("SKIPPED: PostgreSQL connection tests (start_postgres from .ci/postgres.sh)");
            None
        }
    }
}

fn tracker(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = common::tracker();
    c.arg("--db")
        .arg(url)
        .arg("--lock-timeout")
        .arg("3s")
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).output().unwrap()
}

fn all_text(o: &Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

#[test]
fn passwords_come_from_pgpassword_or_pgpass_and_are_never_shown() {
    let Some((port, _)) = server() else { return };
    let url = format!("postgres://tracker_pw@127.0.0.1:{port}/tracker_pw?sslmode=disable");
    let init = tracker(&url, &["--json", "init"], &[("PGPASSWORD", PASSWORD)]);
    assert_eq!(init.status.code(), Some(0), "{}", all_text(&init));
    assert!(!all_text(&init).contains(PASSWORD));

    let home = tempfile::tempdir().unwrap();
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!("127.0.0.1:{port}:tracker_pw:tracker_pw:{PASSWORD}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let home_str = home.path().to_str().unwrap();
    let new = tracker(
        &url,
        &["--json", "new", "via pgpass"],
        &[("HOME", home_str)],
    );
    assert_eq!(new.status.code(), Some(0), "{}", all_text(&new));

    // A wrong password in the URL: the server's reason, exit 1, and the password nowhere.
    let wrong =
        format!("postgres://tracker_pw:not-{PASSWORD}@127.0.0.1:{port}/tracker_pw?sslmode=disable");
    for json in [false, true] {
        let mut args = vec!["list"];
        if json {
            args.insert(0, "--json");
        }
        let out = tracker(&wrong, &args, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", all_text(&out));
        assert!(!all_text(&out).contains(PASSWORD), "{}", all_text(&out));
        assert!(all_text(&out).contains("***"), "{}", all_text(&out));
    }
}

#[test]
fn tls_works_with_sslmode_require_verify_ca_and_verify_full() {
    let Some((port, dir)) = server() else { return };
    // The CI server's certificate is signed by a CA of its own (root.crt) for the name localhost.
    let root = format!("{dir}/root.crt");
    let base = format!("postgres://postgres@localhost:{port}/postgres");
    let require = format!("{base}?sslmode=require");
    let out = tracker(&require, &["init"], &[]);
    assert!(matches!(out.status.code(), Some(0)), "{}", all_text(&out));
    let full = format!("{base}?sslmode=verify-full&sslrootcert={root}");
    let out = tracker(&full, &["--json", "list"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", all_text(&out));
    // The same through PGSSLMODE and PGSSLROOTCERT.
    let out = tracker(
        &base,
        &["list"],
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &root)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all_text(&out));
    // verify-full against a name the certificate does not carry is refused.
    let wrong_name = format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={root}"
    );
    let out = tracker(&wrong_name, &["list"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", all_text(&out));
    // verify-ca checks the chain, not the name.
    let ca_only = wrong_name.replace("verify-full", "verify-ca");
    let out = tracker(&ca_only, &["list"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", all_text(&out));
    // A root the server's certificate does not chain to is refused, in both modes; so is
    // require once a root is given (libpq then verifies as verify-ca).
    let leaf = format!("{dir}/server.crt");
    for mode in ["verify-ca", "verify-full", "require"] {
        let url = format!("{base}?sslmode={mode}&sslrootcert={leaf}");
        let out = tracker(&url, &["list"], &[]);
        assert_eq!(out.status.code(), Some(1), "{mode}: {}", all_text(&out));
    }
    // A refused handshake says why.
    let url = format!("{base}?sslmode=verify-full&sslrootcert={leaf}");
    let said = all_text(&tracker(&url, &["list"], &[]));
    assert!(said.to_lowercase().contains("certificate"), "{said}");
    // The system's store only with the name checked, as libpq 16.
    let weak = format!("{base}?sslmode=require&sslrootcert=system");
    let out = tracker(&weak, &["list"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", all_text(&out));
    assert!(all_text(&out).contains("verify-full"), "{}", all_text(&out));
    // A root file that is not a certificate is bad input, not a connection failure.
    let junk = format!("{dir}/server.key.missing");
    let out = tracker(
        &format!("{base}?sslmode=verify-full&sslrootcert={junk}"),
        &["list"],
        &[],
    );
    assert_ne!(out.status.code(), Some(0), "{}", all_text(&out));
    assert!(all_text(&out).contains("sslrootcert"), "{}", all_text(&out));
}

#[test]
fn a_postgres_url_is_never_taken_as_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::tracker()
        .args([
            "--db",
            "postgres://nobody@127.0.0.1:1/none",
            "--lock-timeout",
            "300ms",
            "init",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", all_text(&out));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "init created something here"
    );
}
