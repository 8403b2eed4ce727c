//! PostgreSQL failures injected inside the server, each said for what it is: a serialization
//! failure (40001) reruns every write command, a connection lost before COMMIT reruns it, one
//! lost after COMMIT was sent is reported as "may have been committed" and never rerun, a read
//! cut off by a statement_timeout or kept waiting by a table lock says so, and a role without
//! the rights it needs is told which one. Runs on the shared test server (`TRACKER_TEST_PG`);
//! the faults live in each test's own schema (triggers), so no other test sees them.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{run_bounded, text, Env};
use serde_json::Value;

const HUNG: Duration = Duration::from_secs(40);

/// A session of the test's own on the tracker's schema.
fn sql(env: &Env) -> postgres::Client {
    postgres::Client::connect(env.db.to_str().unwrap(), postgres::NoTls).unwrap()
}

fn ops(c: &mut postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM tracker_ops", &[])
        .unwrap()
        .get(0)
}

/// A function that, the first time it runs after `arm`, does `action`; a sequence counts the
/// runs, since a sequence is the one thing a rolled-back transaction does not undo.
fn install(c: &mut postgres::Client, name: &str, action: &str) {
    c.batch_execute(&format!(
        "CREATE SEQUENCE {name}_runs;
         CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF nextval('{name}_runs') = 1 THEN {action}; END IF;
           RETURN NULL;
         END $$;"
    ))
    .unwrap();
}

/// Makes the next run of `name` the first.
fn arm(c: &mut postgres::Client, name: &str) {
    c.execute(&format!("SELECT setval('{name}_runs', 1, false)"), &[])
        .unwrap();
}

fn runs(c: &mut postgres::Client, name: &str) -> i64 {
    // is_called is false while armed and never run.
    let row = c
        .query_one(
            &format!("SELECT last_value, is_called FROM {name}_runs"),
            &[],
        )
        .unwrap();
    if row.get::<_, bool>(1) {
        row.get(0)
    } else {
        0
    }
}

fn export_of_one_item(env: &Env, title: &str) -> std::path::PathBuf {
    let other = Env::new();
    other.json(&["new", title]);
    let file = env.path(&format!("{}.json", title.replace(' ', "-")));
    let out = other.run(&["export", "-o", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    file
}

#[test]
fn every_write_command_is_run_again_after_a_serialization_failure() {
    let Some(env) = Env::postgres() else { return };
    let mut c = sql(&env);
    install(
        &mut c,
        "fail_once",
        "RAISE EXCEPTION 'injected by the test' USING ERRCODE = 'serialization_failure'",
    );
    // Whatever a command writes first (an op, a counter or setting, an item) fails once.
    for table in ["tracker_ops", "tracker_meta", "tracker_items"] {
        c.batch_execute(&format!(
            "CREATE TRIGGER fail_once BEFORE INSERT OR UPDATE OR DELETE ON {table} \
             FOR EACH STATEMENT EXECUTE FUNCTION fail_once()"
        ))
        .unwrap();
    }
    let editor = env.path("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i -e 's/^title: .*/title: edited/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let file = export_of_one_item(&env, "imported from a file");
    let stdin_file = export_of_one_item(&env, "imported from stdin");

    let mut token = 0u64;
    // (arguments, ops it logs); `{T}` is the token of the last claim.
    let commands: Vec<(Vec<String>, i64)> = vec![
        (vec!["new".into(), "first".into()], 1),
        (vec!["new".into(), "second".into()], 1),
        (vec!["new".into(), "third".into()], 1),
        (
            vec![
                "update".into(),
                "1".into(),
                "--title".into(),
                "renamed".into(),
            ],
            1,
        ),
        (vec!["edit".into(), "2".into()], 1),
        (
            vec!["claim".into(), "1".into(), "--ttl".into(), "10m".into()],
            1,
        ),
        (
            vec!["renew".into(), "1".into(), "--token".into(), "{T}".into()],
            1,
        ),
        (
            vec!["release".into(), "1".into(), "--token".into(), "{T}".into()],
            1,
        ),
        (vec!["claim".into(), "--next".into()], 1),
        (
            vec!["done".into(), "1".into(), "--token".into(), "{T}".into()],
            1,
        ),
        (vec!["dep".into(), "add".into(), "3".into(), "2".into()], 1),
        (vec!["dep".into(), "rm".into(), "3".into(), "2".into()], 1),
        (
            vec!["--as".into(), "bob".into(), "claim".into(), "3".into()],
            1,
        ),
        (vec!["claim".into(), "3".into(), "--force".into()], 1),
        // claim, renew and done, as on a file
        (
            vec!["run".into(), "2".into(), "--".into(), "true".into()],
            3,
        ),
        (vec!["import".into(), file.display().to_string()], 1),
        (vec!["import".into(), "-".into()], 1),
        (vec!["config".into(), "default-ttl".into(), "20m".into()], 0),
        (vec!["rebuild".into()], 0),
    ];
    for (args, logged) in commands {
        let args: Vec<String> = args
            .into_iter()
            .map(|a| a.replace("{T}", &token.to_string()))
            .collect();
        let mut full = vec!["--json".to_string()];
        if args[0] != "--as" {
            full.extend(["--as".to_string(), "ana".into()]);
        }
        full.extend(args.iter().cloned());
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let before = ops(&mut c);
        arm(&mut c, "fail_once");
        let mut cmd = env.cmd(&refs);
        cmd.env("EDITOR", &editor).env_remove("VISUAL");
        if args[0] == "import" && args[1] == "-" {
            cmd.stdin(std::fs::File::open(&stdin_file).unwrap());
        }
        let out = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} after an injected serialization failure: {}",
            text(&out.stderr)
        );
        assert!(
            runs(&mut c, "fail_once") >= 2,
            "{args:?}: the failure was not injected"
        );
        assert_eq!(ops(&mut c) - before, logged, "{args:?}: ops logged");
        if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
            if let Some(t) = v["claim"]["token"].as_u64() {
                token = t;
            }
        }
    }
    assert_eq!(env.json(&["show", "2"])["title"], "edited");
    let verify = env.run(&["verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stderr));
}

#[test]
fn a_write_whose_connection_is_lost_before_commit_is_run_again_on_a_new_one() {
    let Some(env) = Env::postgres() else { return };
    let mut c = sql(&env);
    // The server ends the session in the middle of the transaction: nothing was committed.
    install(
        &mut c,
        "cut_once",
        "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(10)",
    );
    c.batch_execute(
        "CREATE TRIGGER cut_once BEFORE INSERT ON tracker_ops \
         FOR EACH STATEMENT EXECUTE FUNCTION cut_once()",
    )
    .unwrap();
    arm(&mut c, "cut_once");
    let out = run_bounded(env.cmd(&["--json", "new", "made once"]), HUNG);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(runs(&mut c, "cut_once"), 2, "run again exactly once");
    assert_eq!(ops(&mut c), 1);
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 1);
}

/// The changes and COMMIT go in one batch, so a connection lost during it may have been lost
/// before the server committed or after: the write looks (on a new connection, under the write
/// lock, for its last op) instead of guessing, and runs again only if it did not commit.
#[test]
fn a_connection_lost_while_committing_is_checked_and_the_write_is_made_exactly_once() {
    let Some(env) = Env::postgres() else { return };
    let mut c = sql(&env);
    // Deferred to COMMIT: the session ends while the server commits; nothing was committed.
    install(
        &mut c,
        "cut_at_commit",
        "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(10)",
    );
    c.batch_execute(
        "CREATE CONSTRAINT TRIGGER cut_at_commit AFTER INSERT ON tracker_ops \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cut_at_commit()",
    )
    .unwrap();
    arm(&mut c, "cut_at_commit");
    let key = ["--idempotency-key", "make-it-once"];
    let mut args = vec!["--json", "new", "made exactly once"];
    args.extend(key);
    let out = run_bounded(env.cmd(&args), HUNG);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        runs(&mut c, "cut_at_commit"),
        2,
        "checked, then run again once"
    );
    assert_eq!(ops(&mut c), 1);
    // A repeat with the same key is still harmless.
    let again = run_bounded(env.cmd(&args), HUNG);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 1);
    assert_eq!(ops(&mut c), 1);
}

/// A session that holds `table` locked against everyone, readers too, until dropped.
fn lock_out(env: &Env, table: &str) -> postgres::Client {
    let mut c = sql(env);
    c.batch_execute(&format!(
        "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
    ))
    .unwrap();
    c
}

#[test]
fn a_read_cut_off_by_a_statement_timeout_says_so_not_that_writers_held_the_lock() {
    let Some(env) = Env::postgres() else { return };
    env.json(&["new", "one"]);
    let _held = lock_out(&env, "tracker_items");
    let url = env
        .db
        .to_str()
        .unwrap()
        .replace("options=", "options=-cstatement_timeout%3D300%20");
    let mut list = std::process::Command::new(common::bin());
    list.arg("--db")
        .arg(&url)
        .args(["--lock-timeout", "10s", "list"])
        .env_remove("TRACKER_DB");
    let out = run_bounded(list, HUNG);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(said.contains("statement_timeout"), "{said}");
    assert!(!said.contains("other writers"), "{said}");
}

#[test]
fn a_read_kept_waiting_by_a_table_lock_gives_up_at_the_lock_timeout() {
    let Some(env) = Env::postgres() else { return };
    env.json(&["new", "one"]);
    let _held = lock_out(&env, "tracker_items");
    let out = run_bounded(env.cmd(&["--lock-timeout", "1s", "list"]), HUNG);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(said.contains("a read waited"), "{said}");
    assert!(!said.contains("other writers"), "{said}");
}

#[test]
fn a_role_without_create_rights_is_told_which_right_it_lacks() {
    let Ok(url) = std::env::var("TRACKER_TEST_PG_NOCREATE") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test (.ci/postgres.sh sets TRACKER_TEST_PG_NOCREATE)"
        );
        eprintln!("SKIPPED: no role without CREATE rights (start_postgres of .ci/postgres.sh)");
        return;
    };
    for json in [true, false] {
        let mut c = std::process::Command::new(common::bin());
        c.arg("--db").arg(&url);
        if json {
            c.arg("--json");
        }
        c.arg("init").env_remove("TRACKER_DB");
        let out = run_bounded(c, HUNG);
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("tracker_nocreate"), "{said}");
        assert!(said.contains("CREATE"), "{said}");
        if json {
            let v: Value = serde_json::from_str(&said).unwrap();
            assert_eq!(v["error"]["kind"], "io", "{said}");
        } else {
            assert!(!said.contains("internal"), "{said}");
        }
    }
}
