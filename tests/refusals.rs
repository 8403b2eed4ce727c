//! What the tracker refuses, it leaves alone: foreign and newer files, special files, its own
//! file as an export target; and a bug is reported as a bug, not as damage.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{text, Env};

fn tracker_on(db: &std::path::Path, args: &[&str]) -> Command {
    let mut c = common::tracker();
    c.arg("--db")
        .arg(db)
        .arg("--lock-timeout")
        .arg("2s")
        .args(args);
    c
}

/// Every command a user might try on a file that turned out not to be ours.
const ATTEMPTS: &[&[&str]] = &[
    &["new", "x"],
    &["init"],
    &["claim", "--next"],
    &["list"],
    &["show", "1"],
    &["verify"],
    &["rebuild"],
];

fn assert_refused_untouched(db: &std::path::Path, what: &str, must_say: &str) {
    let before = std::fs::read(db).unwrap();
    for args in ATTEMPTS {
        let out = common::run_bounded(tracker_on(db, args), Duration::from_secs(20));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{what} {args:?}: {err}");
        assert!(err.contains(must_say), "{what} {args:?}: {err}");
        let after = std::fs::read(db).unwrap();
        let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count()
            + before.len().abs_diff(after.len());
        assert_eq!(
            changed, 0,
            "{what}: {args:?} was refused but changed {changed} bytes of the file"
        );
    }
}

#[test]
fn a_redb_file_that_is_not_a_tracker_is_refused_and_stays_byte_identical() {
    let env = Env::empty();
    {
        let db = redb::Database::create(&env.db).unwrap();
        let w = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("someone_else");
            let mut t = w.open_table(def).unwrap();
            for i in 0..200u64 {
                t.insert(format!("key {i}").as_str(), i).unwrap();
            }
        }
        w.commit().unwrap();
    }
    assert_refused_untouched(&env.db, "a foreign redb file", "not a tracker");
}

#[test]
fn a_tracker_of_a_newer_format_is_refused_and_stays_byte_identical() {
    let env = Env::new();
    env.json(&["new", "from the future"]);
    {
        use tracker::store::{Storage, WriteTxn};
        let store =
            tracker::RedbStore::open(&env.db, tracker::Access::ReadWrite, Duration::from_secs(5))
                .unwrap();
        store
            .write(|t: &mut dyn WriteTxn| t.set_format_version(tracker::store::FORMAT_VERSION + 1))
            .unwrap();
    }
    assert_refused_untouched(&env.db, "a newer tracker", "newer than this tracker's");
}

#[test]
fn special_files_are_refused_as_not_regular_without_hanging() {
    let env = Env::empty();
    let fifo = env.path("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    for db in [fifo.as_path(), std::path::Path::new("/dev/zero")] {
        for args in [&["show", "1"][..], &["new", "x"][..], &["list"][..]] {
            let started = Instant::now();
            let out = common::run_bounded(tracker_on(db, args), Duration::from_secs(10));
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(6), "{db:?} {args:?}: {err}");
            assert!(err.contains("not a regular file"), "{db:?} {args:?}: {err}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{db:?} {args:?}"
            );
        }
    }
}

#[test]
fn export_over_an_existing_file_keeps_its_permission_bits() {
    let env = Env::new();
    env.json(&["new", "private"]);
    let out = env.path("private.json");
    std::fs::write(&out, "old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, err) = env.code(&["export", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(&out).unwrap().contains("private"));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the export widened a 0600 file to {mode:o}");
}

#[test]
fn export_naming_the_tracker_file_itself_is_refused_through_any_name() {
    let env = Env::new();
    env.json(&["new", "keep me"]);
    env.json(&["claim", "1"]);
    let before = std::fs::read(&env.db).unwrap();
    let link = env.path("link.redb");
    std::os::unix::fs::symlink(&env.db, &link).unwrap();
    let hard = env.path("hard.redb");
    std::fs::hard_link(&env.db, &hard).unwrap();
    let relative = format!("./{}", env.db.file_name().unwrap().to_str().unwrap());
    for target in [
        env.db.to_str().unwrap(),
        relative.as_str(),
        link.to_str().unwrap(),
        hard.to_str().unwrap(),
    ] {
        let (code, err) = env.code(&["export", "-o", target]);
        assert_eq!(code, 2, "export -o {target}: {err}");
        assert!(err.contains("tracker file itself"), "{err}");
        assert_eq!(
            std::fs::read(&env.db).unwrap(),
            before,
            "export -o {target} changed the tracker"
        );
    }
    assert_eq!(env.code(&["verify"]).0, 0);
    assert_eq!(
        common::json_lines(&env.run(&["--json", "log"]).stdout).len(),
        2
    );
}

#[test]
fn a_panic_in_tracker_code_inside_a_transaction_is_reported_as_a_bug_not_as_damage() {
    use tracker::store::{ReadTxn, Storage, WriteTxn};
    let env = Env::new();
    env.json(&["new", "healthy"]);
    let before = std::fs::read(&env.db).unwrap();
    {
        let store =
            tracker::RedbStore::open(&env.db, tracker::Access::ReadWrite, Duration::from_secs(5))
                .unwrap();
        let overflow = |n: u64| -> u64 {
            // What an unchecked counter would do in a debug build.
            n.checked_add(u64::MAX)
                .expect("attempt to add with overflow")
        };
        let e = store
            .write(|t: &mut dyn WriteTxn| Ok(overflow(t.item_count()?)))
            .unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.exit_code(), 1, "{msg}");
        assert!(
            msg.contains("a bug in tracker") && msg.contains("please report it"),
            "{msg}"
        );
        assert!(!msg.contains("damaged"), "a bug was called damage: {msg}");
        let e = store
            .read(|t: &dyn ReadTxn| Ok(overflow(t.item_count()?)))
            .unwrap_err();
        assert_eq!(e.exit_code(), 1, "{e}");
        assert!(!e.to_string().contains("damaged"), "{e}");
    }
    // The panic left the file as it found it: no recovery flag behind, nothing to repair.
    assert_eq!(std::fs::read(&env.db).unwrap(), before);
    assert_eq!(env.code(&["verify"]).0, 0);
}
