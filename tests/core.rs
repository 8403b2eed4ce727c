//! Issue 2: the core commands, run as separate processes against a temp file.

use crate::common;

use std::collections::HashSet;

use crate::common::{json_lines, Env};

#[test]
fn life_of_an_item_new_claim_done() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        let created = env.json(&[
            "new",
            "Write the docs",
            "--priority",
            "1",
            "--label",
            "docs",
            "--body",
            "all of them",
        ]);
        assert_eq!(created["num"], 1);
        assert_eq!(created["title"], "Write the docs");
        assert_eq!(created["body"], "all of them");
        assert_eq!(created["status"], "open");
        assert_eq!(created["priority"], 1);
        assert_eq!(created["labels"], serde_json::json!(["docs"]));
        assert_eq!(created["blocked_by"], serde_json::json!([]));
        assert_eq!(created["version"], 1);
        assert!(created["claim"].is_null());
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 26);
        assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

        let claimed = env.json(&["--as", "ana", "claim", "1", "--ttl", "10m"]);
        assert_eq!(claimed["version"], 2);
        let claim = &claimed["claim"];
        assert_eq!(claim["holder"], "ana");
        assert_eq!(claim["token"], 1);
        for field in ["acquired_at", "renewed_at", "expires_at", "host"] {
            assert!(claim[field].is_string(), "claim.{field} missing: {claim}");
        }
        assert!(claim.get("pid").is_some());

        // By ULID prefix, lower case, as users type it.
        let prefix = id[..12].to_lowercase();
        let shown = env.json(&["show", &prefix]);
        assert_eq!(shown["num"], 1);
        assert_eq!(shown["claim"]["holder"], "ana");

        let done = env.json(&["--as", "ana", "done", "#1", "--token", "1"]);
        assert_eq!(done["status"], "done");
        assert_eq!(done["version"], 3);
        assert!(done["claim"].is_null());

        let log = env.run(&["--json", "log"]);
        let ops = json_lines(&log.stdout);
        let kinds: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["new", "claim", "done"]);
        let seqs: Vec<u64> = ops.iter().map(|o| o["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(env.code(&["verify"]).0, 0);
    }
}

#[test]
fn twenty_holders_claim_one_item_at_once_and_exactly_one_wins() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "contended"]);
        let children: Vec<_> = (0..20)
            .map(|i| env.spawn(&["--as", &format!("worker-{i}"), "claim", "1"]))
            .collect();
        let codes: Vec<i32> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap().status.code().unwrap())
            .collect();
        assert_eq!(codes.iter().filter(|&&c| c == 0).count(), 1, "{codes:?}");
        assert_eq!(codes.iter().filter(|&&c| c == 3).count(), 19, "{codes:?}");
        let item = env.json(&["show", "1"]);
        assert_eq!(item["version"], 2);
        assert!(item["claim"]["holder"]
            .as_str()
            .unwrap()
            .starts_with("worker-"));
    }
}

#[test]
fn a_hundred_concurrent_creators_get_distinct_numbers_and_a_gapless_log() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        let children: Vec<_> = (0..100)
            .map(|i| env.spawn(&["--json", "new", &format!("item {i}")]))
            .collect();
        let mut nums = HashSet::new();
        let mut ids = HashSet::new();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", common::text(&out.stderr));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            nums.insert(v["num"].as_u64().unwrap());
            ids.insert(v["id"].as_str().unwrap().to_string());
        }
        assert_eq!(nums.len(), 100);
        assert_eq!(ids.len(), 100);
        assert_eq!(nums, (1..=100).collect());
        let listed = env.json(&["list"]);
        assert_eq!(listed.as_array().unwrap().len(), 100);
        let log = env.run(&["--json", "log"]);
        let seqs: Vec<u64> = json_lines(&log.stdout)
            .iter()
            .map(|o| o["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
        assert_eq!(env.code(&["verify"]).0, 0);
    }
}

#[test]
fn bad_input_gets_the_exit_codes_of_the_contract() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        env.json(&["new", "one"]);
        let cases: &[(&[&str], i32, &str)] = &[
            (&["new", "   "], 2, "title is empty"),
            (&["new", "x", "--priority", "9"], 2, "priority"),
            (&["claim", "1", "--ttl", "soon"], 2, "not a duration"),
            (&["show", "42"], 4, "no item #42"),
            (&["show", "not-an-item!"], 2, "not an item"),
            (&["update", "1", "--status", "sleeping"], 2, "status"),
            (&["dep", "add", "1", "1"], 3, "cannot block itself"),
            (&["list", "--status", "maybe"], 2, "--status"),
            (&["frobnicate"], 2, ""),
        ];
        for (args, code, needle) in cases {
            let (got, err) = env.code(args);
            assert_eq!(got, *code, "{args:?}: {err}");
            assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
            assert_eq!(
                err.trim().lines().count().min(1),
                1,
                "{args:?} said nothing"
            );
        }
    }
}

#[test]
fn ambiguous_prefix_is_refused() {
    for env in Env::each() {
        eprintln!("backend: {}", env.backend);
        let ids: Vec<String> = (0..3)
            .map(|i| {
                env.json(&["new", &format!("t{i}")])["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        // Items made within minutes share their time prefix; cut it where it holds a letter, since
        // an all-digit word is read as an item number.
        let cut = (1..=10).find(|&n| {
            ids.iter().all(|i| i[..n] == ids[0][..n])
                && ids[0][..n].bytes().any(|b| b.is_ascii_alphabetic())
        });
        let prefix = &ids[0][..cut.expect("ids share a lettered prefix")];
        let (code, err) = env.code(&["show", prefix]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("ambiguous"), "{err}");
    }
}

#[test]
fn no_tracker_file_exits_4_and_suggests_init() {
    let env = Env::empty();
    let out = common::tracker()
        .args(["list"])
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(common::text(&out.stderr).contains("tracker init"));
    let (code, _) = env.code(&["list"]);
    assert_eq!(code, 4);
}

#[test]
fn files_that_are_not_trackers_are_refused_and_never_written() {
    let env = Env::empty();
    let text = env.path("notes.txt");
    std::fs::write(&text, "just some notes\n").unwrap();
    let random = env.path("random.bin");
    let bytes: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    std::fs::write(&random, &bytes).unwrap();
    let empty = env.path("empty");
    std::fs::write(&empty, "").unwrap();
    let dir = env.path("adir");
    std::fs::create_dir(&dir).unwrap();
    for p in [&text, &random, &empty, &dir] {
        let before = if p.is_file() {
            Some(std::fs::read(p).unwrap())
        } else {
            None
        };
        for args in [&["list"][..], &["new", "x"][..]] {
            let out = common::tracker()
                .arg("--db")
                .arg(p)
                .args(args)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(6),
                "{p:?} {args:?}: {}",
                common::text(&out.stderr)
            );
            let err = common::text(&out.stderr);
            assert!(
                err.contains(&p.display().to_string()),
                "message should name the file: {err}"
            );
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        }
        if let Some(b) = before {
            assert_eq!(std::fs::read(p).unwrap(), b, "{p:?} was written to");
        }
    }
}

#[test]
fn init_again_changes_nothing_and_never_overwrites_a_foreign_file() {
    let env = Env::new();
    env.json(&["new", "kept"]);
    let again = env.json(&["init"]);
    assert_eq!(again["created"], false);
    assert_eq!(env.json(&["show", "1"])["title"], "kept");
    let out = env.run(&["init"]);
    assert!(common::text(&out.stdout).contains("already a tracker"));
    // Many inits at once: all succeed, one file, one tracker.
    let fresh = Env::empty();
    let racers: Vec<_> = (0..8).map(|_| fresh.spawn(&["--json", "init"])).collect();
    let created: Vec<bool> = racers
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", common::text(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["created"] == true
        })
        .collect();
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
    assert_eq!(fresh.code(&["verify"]).0, 0);
    // A file that is not a tracker is refused, and left exactly as it was.
    let notes = env.path("notes.txt");
    std::fs::write(&notes, "mine\n").unwrap();
    let out = common::tracker()
        .arg("--db")
        .arg(&notes)
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", common::text(&out.stderr));
    assert_eq!(std::fs::read(&notes).unwrap(), b"mine\n");
}

#[test]
fn the_file_is_found_in_a_parent_directory_like_git() {
    let env = Env::empty();
    let root = env.dir.path();
    let out = common::tracker()
        .arg("init")
        .current_dir(root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(root.join(".tracker/tracker.redb").exists());
    let sub = root.join("a/b");
    std::fs::create_dir_all(&sub).unwrap();
    let out = common::tracker()
        .args(["--json", "new", "from below"])
        .current_dir(&sub)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out.stderr));
    let out = common::tracker()
        .args(["--json", "list"])
        .env("TRACKER_DB", root.join(".tracker/tracker.redb"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["title"], "from below");
}

#[test]
fn hostile_values_are_shown_safely() {
    let env = Env::new();
    let (code, _) = env.code(&["new", "evil \x1b[2J title"]);
    assert_eq!(code, 2, "control characters in titles are refused");
    env.json(&[
        "new",
        "plain",
        "--body",
        "line\x1b]0;pwned\x07 end",
        "--label",
        "has space",
    ]);
    let out = env.run(&["show", "1"]);
    let shown = common::text(&out.stdout);
    assert!(
        !shown.contains('\x1b'),
        "escape reached the terminal: {shown:?}"
    );
    let v = env.json(&["show", "1"]);
    assert_eq!(v["labels"][0], "has space");
    let big = "x".repeat(5000);
    assert_eq!(env.code(&["new", &big]).0, 2);
}
