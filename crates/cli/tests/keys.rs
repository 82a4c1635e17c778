//! Key files (`init --key-file`, `--key-file`/`ARCA_KEY_FILE`) and exported keys
//! (`key export`, `key import`), end to end with the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use common::*;

/// Asserts `out` exited with `code` and one line on stderr containing every needle.
fn fails(out: &Output, code: i32, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} missing in: {err}");
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `arca init --key-file FILE` with a cheap key derivation.
fn init_with_key_file(env: &Env, file: &Path) {
    env.ok(&init_args(&["--key-file", s(file)]));
}

/// `arca ARGS` with `--key-file FILE`.
fn with_key(env: &Env, file: &Path, args: &[&str]) -> Output {
    env.cmd()
        .arg("--key-file")
        .arg(file)
        .args(args)
        .output()
        .unwrap()
}

/// `arca ARGS` with the text on standard input.
fn with_input(env: &Env, input: &str, args: &[&str], key_file: Option<&Path>) -> Output {
    let mut cmd = env.cmd();
    if let Some(file) = key_file {
        cmd.env("ARCA_KEY_FILE", file);
    }
    cmd.args(args);
    output_with_input(cmd, input)
}

fn slots_in(repo: &Path) -> usize {
    fs::read_dir(repo.join("keys")).unwrap().count()
}

fn restore_and_compare(env: &Env, key_file: Option<&Path>, src: &Path, target: &str) {
    let target = env.path(target);
    let mut cmd = env.cmd();
    if let Some(file) = key_file {
        cmd.env("ARCA_KEY_FILE", file);
    }
    let out = cmd
        .args(["restore", "latest", "--target", s(&target)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&manifest(src), &manifest(&restored(&target, src)));
}

#[test]
fn a_key_file_repository_needs_the_file_for_everything() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    let key = env.path("secret/repo.key");
    fs::create_dir_all(key.parent().unwrap()).unwrap();
    init_with_key_file(&env, &key);
    assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    assert_eq!(slots_in(&env.repo), 0, "no slot may be in the repository");
    let original = fs::read(&key).unwrap();

    let out = with_key(&env, &key, &["backup", s(&src)]);
    assert!(out.status.success(), "{}", stderr(&out));
    restore_and_compare(&env, Some(&key), &src, "restored");

    // Without the file: a clear one-line error and exit 13, for every command.
    for args in [
        &["snapshots"][..],
        &["backup", s(&src)],
        &["restore", "latest", "--target", s(&env.path("never"))],
        &["check"],
        &["key", "list"],
        &["key", "export"],
    ] {
        let out = env.run(args);
        fails(
            &out,
            13,
            &[
                "keeps its key outside the repository",
                "--key-file",
                "ARCA_KEY_FILE",
            ],
        );
    }
    assert!(!env.path("never").exists());

    // A second init never overwrites the key file, and creates nothing; it says so
    // before asking for a password (none is given here).
    let other = Env::new();
    let mut args = vec!["init", "--key-file", s(&key)];
    args.extend(FAST_KDF);
    let out = other
        .cmd()
        .env_remove("ARCA_PASSWORD")
        .args(&args)
        .output()
        .unwrap();
    fails(&out, 1, &["already exists", s(&key)]);
    assert_eq!(fs::read(&key).unwrap(), original);
    assert!(!other.repo.exists());
    let help = env.ok(&["key", "--help"]);
    assert!(
        help.contains("Examples:") && help.contains("import"),
        "{help}"
    );
}

#[test]
fn a_wrong_damaged_or_unreadable_key_file_is_named() {
    let (a, b) = (Env::new(), Env::new());
    let (key_a, key_b) = (a.path("a.key"), b.path("b.key"));
    init_with_key_file(&a, &key_a);
    init_with_key_file(&b, &key_b);
    // Same password, the other repository's file: named as such.
    let out = with_key(&a, &key_b, &["snapshots"]);
    fails(&out, 1, &[s(&key_b), "belongs to another repository"]);
    // A password that does not open the file: exit 12, the file named.
    let out = a
        .cmd()
        .env("ARCA_PASSWORD", "wrong")
        .args(["--key-file", s(&key_a), "snapshots"])
        .output()
        .unwrap();
    fails(&out, 12, &["wrong password", s(&key_a)]);
    // Damaged, missing, unreadable (a directory: root reads any file).
    let damaged = a.path("damaged.key");
    let mut bytes = fs::read(&key_a).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&damaged, &bytes).unwrap();
    fails(
        &with_key(&a, &damaged, &["snapshots"]),
        1,
        &[s(&damaged), "damaged"],
    );
    let missing = a.path("missing.key");
    fails(
        &with_key(&a, &missing, &["snapshots"]),
        1,
        &["cannot read key file", s(&missing)],
    );
    let dir = a.path("a-directory");
    fs::create_dir(&dir).unwrap();
    fails(
        &with_key(&a, &dir, &["snapshots"]),
        1,
        &["cannot read key file", s(&dir)],
    );
    // The right file still works.
    assert!(with_key(&a, &key_a, &["snapshots"]).status.success());
}

#[test]
fn a_lost_key_file_comes_back_from_an_export() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    let key = env.path("repo.key");
    init_with_key_file(&env, &key);
    assert!(with_key(&env, &key, &["backup", s(&src)]).status.success());
    let original = fs::read(&key).unwrap();

    let plain = env.path("key.txt");
    let out = with_key(&env, &key, &["key", "export", s(&plain)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::metadata(&plain).unwrap().mode() & 0o777, 0o600);
    let text = fs::read_to_string(&plain).unwrap();
    assert!(text.starts_with("arca key v1 repository "), "{text}");
    // An export never replaces a file (it could be the key file itself).
    let out = with_key(&env, &key, &["key", "export", "--paper", s(&key)]);
    fails(&out, 1, &["already exists"]);
    assert_eq!(fs::read(&key).unwrap(), original);
    let paper = stdout(&with_key(&env, &key, &["key", "export", "--paper"]));
    assert!(paper.starts_with("arca paper key v1"), "{paper}");

    fs::remove_file(&key).unwrap();
    fails(
        &with_key(&env, &key, &["snapshots"]),
        1,
        &["cannot read key file", s(&key)],
    );
    // Into the repository: refused, that would make the password enough.
    let out = env.run(&["key", "import", s(&plain)]);
    fails(&out, 13, &["outside the repository", "--key-file"]);
    assert_eq!(slots_in(&env.repo), 0);
    // ... before any password is asked for (none is available here).
    let out = env
        .cmd()
        .env_remove("ARCA_PASSWORD")
        .args(["key", "import", s(&plain)])
        .output()
        .unwrap();
    fails(&out, 13, &["outside the repository", "--key-file"]);
    // The wrong password writes nothing.
    let out = env
        .cmd()
        .env("ARCA_PASSWORD", "wrong")
        .args(["--key-file", s(&key), "key", "import", s(&plain)])
        .output()
        .unwrap();
    fails(&out, 12, &["wrong password"]);
    assert!(!key.exists());

    let out = with_key(&env, &key, &["key", "import", s(&plain)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("restored key"), "{}", stdout(&out));
    assert_eq!(fs::read(&key).unwrap(), original);
    assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    restore_and_compare(&env, Some(&key), &src, "restored-plain");
    // Importing again changes nothing.
    let out = with_key(&env, &key, &["key", "import", s(&plain)]);
    assert!(stdout(&out).contains("nothing written"), "{}", stdout(&out));

    // The paper copy, typed back (here: from standard input), restores it as well.
    fs::remove_file(&key).unwrap();
    let out = with_input(&env, &paper, &["key", "import", "--paper"], Some(&key));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(&key).unwrap(), original);
    restore_and_compare(&env, Some(&key), &src, "restored-paper");
    assert_eq!(slots_in(&env.repo), 0);
}

#[test]
fn a_mistyped_paper_line_is_reported_by_its_number() {
    let env = Env::new();
    let key = env.path("repo.key");
    init_with_key_file(&env, &key);
    let paper = stdout(&with_key(&env, &key, &["key", "export", "--paper"]));
    let plain = stdout(&with_key(&env, &key, &["key", "export"]));
    fs::remove_file(&key).unwrap();
    // One hex digit of line 7 changed.
    let typo: String = paper
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("7:") {
                let at = line.find(':').unwrap() + 3;
                let mut chars: Vec<char> = line.chars().collect();
                chars[at] = if chars[at] == '0' { '1' } else { '0' };
                chars.into_iter().collect::<String>() + "\n"
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert_ne!(typo, paper);
    let file = env.path("typed.txt");
    fs::write(&file, &typo).unwrap();
    let out = with_key(&env, &key, &["key", "import", "--paper", s(&file)]);
    fails(
        &out,
        1,
        &[s(&file), "line 7: checksum mismatch: check this line"],
    );
    assert!(!key.exists());
    // A line left out is named too.
    let missing: String = paper
        .lines()
        .filter(|l| !l.trim_start().starts_with("4:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let out = with_input(&env, &missing, &["key", "import", "--paper"], Some(&key));
    fails(&out, 1, &["standard input", "line 4:"]);
    // --paper insists on the paper format.
    let out = with_input(&env, &plain, &["key", "import", "--paper"], Some(&key));
    fails(&out, 1, &["line 1: this key is in the plain format"]);
    assert!(!key.exists());
    // Untouched, the typed key restores the file.
    let out = with_input(&env, &paper, &["key", "import", "--paper"], Some(&key));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(with_key(&env, &key, &["snapshots"]).status.success());
}

#[test]
fn export_and_import_on_a_repository_with_its_keys_inside() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"content");
    env.init();
    env.backup(&[&src]);
    let first = env.json(&["key", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let export = env.path("first.txt");
    env.ok(&["key", "export", s(&export)]);
    assert!(env.add_password("second password", &[]).status.success());
    // With the second password, the first slot goes; the first password stops working.
    let out = env
        .cmd()
        .env("ARCA_PASSWORD", "second password")
        .args(["key", "remove", &first[..12]])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.run(&["snapshots"]).status.code(), Some(12));

    // Another repository refuses it by the id in the text, before any password.
    let other = Env::new();
    other.init();
    let before = fs::read_dir(other.repo.join("keys")).unwrap().count();
    let out = other
        .cmd()
        .env_remove("ARCA_PASSWORD")
        .args(["key", "import", s(&export)])
        .output()
        .unwrap();
    fails(&out, 1, &[s(&export), "not of the one at"]);
    assert_eq!(slots_in(&other.repo), before);

    // Imported back (it needs only the config and its own password).
    let out = env.run(&["key", "import", s(&export)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("imported key {first}")));
    assert_eq!(slots_in(&env.repo), 2);
    env.ok(&["snapshots"]);
    let out = env.run(&["key", "import", s(&export)]);
    assert!(stdout(&out).contains("already holds"), "{}", stdout(&out));
    // Damaged text is named by line, and writes nothing.
    let mut text = fs::read_to_string(&export).unwrap();
    text = text.replacen("crc32 ", "crc32 0", 1);
    let out = with_input(&env, &text, &["key", "import"], None);
    fails(&out, 1, &["standard input: line ", "crc32"]);
}

#[test]
fn key_commands_on_a_key_file_repository_never_lose_the_way_in() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"content");
    let key = env.path("repo.key");
    init_with_key_file(&env, &key);
    assert!(with_key(&env, &key, &["backup", s(&src)]).status.success());
    let list = |file: &Path, pw: &str| -> serde_json::Value {
        let out = env
            .cmd()
            .env("ARCA_PASSWORD", pw)
            .args(["--key-file", s(file), "key", "list", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let keys = list(&key, PASSWORD);
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["key_file"], s(&key));
    assert_eq!(keys[0]["current"], true);
    let id = keys[0]["id"].as_str().unwrap().to_owned();

    // No password in the repository: it would make the key file unnecessary.
    let out = env
        .cmd()
        .env("ARCA_NEW_PASSWORD", "other")
        .args(["--key-file", s(&key), "key", "add"])
        .args(FAST_KDF)
        .output()
        .unwrap();
    fails(&out, 1, &["--new-key-file"]);
    assert_eq!(slots_in(&env.repo), 0);
    // The key file's slot is not arca's to delete.
    let out = with_key(&env, &key, &["key", "remove", &id[..10]]);
    fails(&out, 1, &["delete the file"]);
    assert!(key.exists());

    // A second key file with its own password.
    let second = env.path("second.key");
    let out = env
        .cmd()
        .env("ARCA_NEW_PASSWORD", "other")
        .args([
            "--key-file",
            s(&key),
            "key",
            "add",
            "--new-key-file",
            s(&second),
        ])
        .args(FAST_KDF)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::metadata(&second).unwrap().mode() & 0o777, 0o600);
    assert_eq!(list(&second, "other")[0]["key_file"], s(&second));
    assert_eq!(slots_in(&env.repo), 0);

    // passwd rewrites the key file: the old password stops opening it.
    let out = env
        .cmd()
        .env("ARCA_NEW_PASSWORD", "changed")
        .args(["--key-file", s(&key), "key", "passwd"])
        .args(FAST_KDF)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("key file {}", s(&key))));
    assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    assert_eq!(with_key(&env, &key, &["snapshots"]).status.code(), Some(12));
    assert_ne!(list(&key, "changed")[0]["id"], id.as_str());
    let leftovers: Vec<_> = fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".arca-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_repository_moves_its_key_out_by_adding_a_key_file_and_removing_the_inside_slot() {
    let env = Env::new();
    env.init();
    let inside = env.json(&["key", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = env.path("repo.key");
    let mut add = env.cmd();
    add.args(["key", "add", "--new-key-file", s(&key)])
        .args(FAST_KDF)
        .env("ARCA_NEW_PASSWORD", PASSWORD);
    assert!(add.output().unwrap().status.success());
    // Without the key file, the last slot inside cannot go.
    let out = env.run(&["key", "remove", &inside]);
    fails(&out, 1, &["only key"]);
    // Opened with the key file, it can: the file stays a way in.
    let out = with_key(&env, &key, &["key", "remove", &inside]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("opens only with a key file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(slots_in(&env.repo), 0);
    assert_eq!(env.run(&["snapshots"]).status.code(), Some(13));
    assert!(with_key(&env, &key, &["snapshots"]).status.success());
}

#[test]
fn a_paper_key_typed_on_a_terminal_is_checked_line_by_line() {
    let env = Env::new();
    let key = env.path("repo.key");
    init_with_key_file(&env, &key);
    let paper = stdout(&with_key(&env, &key, &["key", "export", "--paper"]));
    let original = fs::read(&key).unwrap();
    fs::remove_file(&key).unwrap();
    // Line 3 typed wrong first (one digit changed), then again correctly.
    let lines: Vec<&str> = paper.lines().skip(1).collect();
    let (number, rest) = lines[2].split_once(':').unwrap();
    let mut digits: Vec<char> = rest.chars().collect();
    digits[1] = if digits[1] == '0' { '1' } else { '0' };
    let wrong = format!("{number}:{}", digits.into_iter().collect::<String>());
    let mut typed = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i == 2 {
            typed.push_str(&wrong);
            typed.push('\n');
        }
        typed.push_str(line);
        typed.push('\n');
    }
    let command = format!(
        "{} --key-file {} key import --paper",
        env!("CARGO_BIN_EXE_arca"),
        s(&key)
    );
    let mut script = env.command("script");
    script.args(["-qec", &command, "/dev/null"]);
    let out = output_with_input(script, &typed);
    let screen = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("line 3: checksum mismatch: check this line; type line 3 again"),
        "{screen}"
    );
    assert!(screen.contains("restored key"), "{screen}");
    assert_eq!(fs::read(&key).unwrap(), original);
}

/// A damaged slot in `keys/` is named by `key list` and can be removed by its id.
#[test]
fn a_damaged_key_slot_can_be_removed() {
    let env = Env::new();
    env.init();
    assert!(env.add_password("second password", &[]).status.success());
    let other = env.other_key_id();
    let slot = env.repo.join("keys").join(&other);
    let bytes = fs::read(&slot).unwrap();
    fs::write(&slot, &bytes[..30]).unwrap();
    fails(&env.run(&["key", "list"]), 1, &[&other[..8]]);
    env.ok(&["key", "remove", &other[..12]]);
    assert!(!slot.exists());
    assert_eq!(env.json(&["key", "list"]).as_array().unwrap().len(), 1);
}

/// `--kdf-lanes` sets the lanes of a new slot; `key list --json` reports each slot's cost.
#[test]
fn kdf_lanes_are_chosen_and_listed() {
    let env = Env::new();
    env.init();
    let out = env.add_password("second password", &["--kdf-lanes", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = env.json(&["key", "list"]);
    let mut lanes: Vec<(u64, u64, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kdf_lanes"].as_u64().unwrap(),
                k["kdf_memory_kib"].as_u64().unwrap(),
                k["kdf_iterations"].as_u64().unwrap(),
            )
        })
        .collect();
    lanes.sort_unstable();
    // Env::init uses 1 MiB, 1 pass and the default 4 lanes.
    assert_eq!(lanes, vec![(3, 1024, 1), (4, 1024, 1)]);
    let text = stdout(&env.run(&["key", "list"]));
    assert!(text.contains("3 lanes"), "{text}");

    let out = env.add_password("third password", &["--kdf-lanes", "17"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--kdf-lanes"), "{}", stderr(&out));

    // Bad settings are refused before a new password is asked for (none is available
    // here, so asking first would fail on the password instead).
    for command in ["add", "passwd"] {
        let mut bad = env.cmd();
        bad.args(["key", command, "--kdf-memory", "0"])
            .env_remove("ARCA_NEW_PASSWORD");
        fails(&bad.output().unwrap(), 1, &["key derivation", "memory"]);
    }
}

/// `arca ARGS` with the password taken from `file` only.
fn with_password_file(env: &Env, file: &Path, args: &[&str]) -> Output {
    env.cmd()
        .env_remove("ARCA_PASSWORD")
        .env("ARCA_PASSWORD_FILE", file)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_generated_secret_runs_unattended_jobs() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    env.init();
    let secret = env.path("secret");
    let out = env.ok(&["key", "add", "--new-secret-file", s(&secret)]);
    assert!(out.starts_with("added key "), "{out}");
    assert_eq!(fs::metadata(&secret).unwrap().mode() & 0o777, 0o600);
    let text = fs::read_to_string(&secret).unwrap();

    // It is the password file of the jobs that follow.
    let out = with_password_file(&env, &secret, &["backup", s(&src)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = with_password_file(&env, &secret, &["key", "list", "--json"]);
    let keys = json_of(&stdout(&out));
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let current: Vec<_> = keys.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["kind"], "secret");
    assert_eq!(current[0]["kdf_memory_kib"], 0);
    let other = keys.iter().find(|k| k["current"] == false).unwrap();
    assert_eq!(other["kind"], "password");
    assert!(other["kdf_memory_kib"].as_u64().unwrap() > 0);
    restore_and_compare(&env, None, &src, "restored");

    // Refused before anything is asked or written, each with one line.
    fails(
        &with_password_file(&env, &secret, &["key", "passwd"]),
        1,
        &["generated secret", "arca key add"],
    );
    fails(
        &with_password_file(&env, &secret, &["key", "export"]),
        1,
        &["generated secret", "password"],
    );
    fails(
        &env.run(&["key", "add", "--new-secret-file", s(&secret)]),
        1,
        &[s(&secret), "already exists"],
    );
    assert_eq!(fs::read_to_string(&secret).unwrap(), text);
    let unused = env.path("unused");
    let out = env.run(&[
        "key",
        "add",
        "--new-secret-file",
        s(&unused),
        "--kdf-memory",
        "8",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!unused.exists());
    // Another secret, or a damaged one, is a wrong password.
    let wrong = env.path("wrong");
    let mut damaged = text.clone().into_bytes();
    damaged[20] = if damaged[20] == b'0' { b'1' } else { b'0' };
    fs::write(&wrong, damaged).unwrap();
    fails(
        &with_password_file(&env, &wrong, &["snapshots"]),
        12,
        &["wrong password"],
    );
    assert_eq!(slots_in(&env.repo), 2);
}

#[test]
fn a_key_file_repository_gets_no_secret() {
    let env = Env::new();
    let key = env.path("repo.key");
    init_with_key_file(&env, &key);
    let secret = env.path("secret");
    fails(
        &with_key(&env, &key, &["key", "add", "--new-secret-file", s(&secret)]),
        1,
        &["key files", "--new-key-file"],
    );
    assert!(!secret.exists());
    assert_eq!(slots_in(&env.repo), 0);
}
