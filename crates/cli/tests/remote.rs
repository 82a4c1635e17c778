//! `arca` end to end on remote repositories served on 127.0.0.1 by
//! `scripts/test-servers.sh` (which `.ci/test` starts): init, backup, restore and check
//! on each, and through injected faults. Without the servers these tests say so and
//! pass, except under CI, where they fail.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod common;

use std::fs;

use common::*;

/// `ARCA_TEST_{name}` or, when missing, `None` (a failure under CI).
fn var(name: &str) -> Option<String> {
    match std::env::var(format!("ARCA_TEST_{name}")) {
        Ok(v) => Some(v),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("ARCA_TEST_{name} is not set: run scripts/test-servers.sh start")
        }
        Err(_) => {
            eprintln!("skipped: ARCA_TEST_{name} not set (bash scripts/test-servers.sh start)");
            None
        }
    }
}

fn unique() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An environment on the S3 server `server` (`S3S` or `S3_MOTO`), in a new bucket.
fn s3(server: &str) -> Option<Env> {
    let endpoint = var(&format!("{server}_ENDPOINT"))?;
    let access = var(&format!("{server}_ACCESS_KEY"))?;
    let secret = var(&format!("{server}_SECRET_KEY"))?;
    Some(Env::remote(
        format!("s3:{endpoint}/arca-e2e-{}/repo", unique()),
        vec![
            ("AWS_ACCESS_KEY_ID".into(), access),
            ("AWS_SECRET_ACCESS_KEY".into(), secret),
            ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
        ],
    ))
}

/// init, backup, a second backup that stores nothing new, restore, check --read-data.
fn round_trip(env: &Env) {
    let src = env.path("src");
    make_tree(&src);
    write(&src.join("big.bin"), &bytes(3 << 20, 7));
    // Files written less than a second before the first backup are read again by the
    // second (the racy-file rule), and small files read again go to a new bundle.
    settle();
    env.init();
    let first = env.backup(&[&src]);
    assert!(first["data_blobs_added"].as_u64().unwrap() > 0, "{first}");
    let second = env.backup(&[&src]);
    assert_eq!(second["data_blobs_added"], 0, "{second}");
    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same(&manifest(&src), &manifest(&restored(&target, &src)));
    let report = env.json(&["check", "--read-data"]);
    assert_eq!(report["ok"], true, "{report}");
    let listing = env.ok(&["snapshots"]);
    assert!(listing.contains("2 snapshot"), "{listing}");
}

/// An environment on the test sshd, logging in with its key.
fn sftp() -> Option<Env> {
    let (host, port, user) = (var("SFTP_HOST")?, var("SFTP_PORT")?, var("SFTP_USER")?);
    let (key, known_hosts, root) = (
        var("SFTP_KEY")?,
        var("SFTP_KNOWN_HOSTS")?,
        var("SFTP_ROOT")?,
    );
    Some(Env::remote(
        format!("sftp://{user}@{host}:{port}{root}/e2e-{}", unique()),
        vec![
            ("ARCA_SFTP_KEY".into(), key),
            ("ARCA_SFTP_KNOWN_HOSTS".into(), known_hosts),
        ],
    ))
}

/// An environment on the B2 API server, with the key restricted to its bucket.
fn b2() -> Option<Env> {
    let (url, bucket) = (var("B2_API_URL")?, var("B2_BUCKET")?);
    let (key_id, key) = (var("B2_KEY_ID")?, var("B2_KEY")?);
    Some(Env::remote(
        format!("b2:{bucket}:/e2e-{}", unique()),
        vec![
            ("B2_ACCOUNT_ID".into(), key_id),
            ("B2_APPLICATION_KEY".into(), key),
            ("ARCA_B2_API_URL".into(), url),
        ],
    ))
}

#[test]
fn b2_round_trip() {
    let Some(env) = b2() else { return };
    round_trip(&env);
}

#[test]
fn sftp_round_trip() {
    let Some(env) = sftp() else { return };
    round_trip(&env);
}

#[test]
fn sftp_logs_in_with_any_key_the_agent_holds() {
    let Some(mut env) = sftp() else { return };
    let key = var("SFTP_KEY").unwrap();
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // An agent holding a key the server does not know first, then the right one.
    let sock = env.path("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .args(["-D", "-a", sock.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while !sock.exists() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let wrong = env.path("wrong_ed25519");
    run(std::process::Command::new("ssh-keygen").args([
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        wrong.to_str().unwrap(),
    ]));
    for k in [wrong.to_str().unwrap(), &key] {
        run(std::process::Command::new("ssh-add")
            .arg(k)
            .env("SSH_AUTH_SOCK", &sock)
            .stderr(std::process::Stdio::null()));
    }
    // No key file and no ~/.ssh keys: only the agent can log in.
    env.vars.retain(|(k, _)| k != "ARCA_SFTP_KEY");
    let home = env.path("home");
    fs::create_dir(&home).unwrap();
    env.vars
        .push(("HOME".into(), home.to_str().unwrap().into()));
    env.vars
        .push(("SSH_AUTH_SOCK".into(), sock.to_str().unwrap().into()));
    let out = env.run(&init_args(&[]));
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sftp_refuses_an_unknown_host_key() {
    let Some(mut env) = sftp() else { return };
    let empty = env.path("known_hosts");
    fs::write(&empty, "").unwrap();
    env.vars.retain(|(k, _)| k != "ARCA_SFTP_KNOWN_HOSTS");
    let out = env.expect(1, &["init", "--sftp-known-hosts", empty.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not in") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn s3_round_trip_with_signature_checks() {
    let Some(env) = s3("S3S") else { return };
    round_trip(&env);
}

#[test]
fn the_metadata_cache_is_private_optional_and_never_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let Some(env) = s3("S3S") else { return };
    let src = env.path("src");
    make_tree(&src);
    env.init();
    env.backup(&[&src]);
    let listing = env.ok(&["ls", "latest"]);
    let cache = env.path("cache");
    assert!(cache.join("CACHEDIR.TAG").exists());
    let files = files_in(&cache);
    assert!(
        files
            .iter()
            .any(|f| f.to_str().unwrap().contains("/snapshots/"))
            && files.iter().any(|f| f.to_str().unwrap().contains("/data/")),
        "{files:?}"
    );
    for f in &files {
        let mode = fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert!(
            mode == 0o600 || f.ends_with("CACHEDIR.TAG"),
            "{f:?} {mode:o}"
        );
    }
    // Damage every cached file: listings and checks read the repository instead.
    for f in files.iter().filter(|f| !f.ends_with("CACHEDIR.TAG")) {
        let mut data = fs::read(f).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0x55;
        fs::write(f, data).unwrap();
    }
    assert_eq!(env.ok(&["ls", "latest"]), listing);
    assert_eq!(env.json(&["check"])["ok"], true);
    // Without the cache: same answers, and the (repaired) cache is left alone.
    fs::remove_dir_all(&cache).unwrap();
    assert_eq!(env.ok(&["ls", "latest", "--no-cache"]), listing);
    assert!(!cache.exists());
}

#[test]
fn s3_round_trip_on_moto() {
    let Some(env) = s3("S3_MOTO") else { return };
    round_trip(&env);
}

/// init, backup and restore while a fifth of all storage calls fail transiently (half
/// of the failed writes after storing, reads cut): retried to identical data, and the
/// repository checks clean afterwards.
fn through_faults(mut env: Env, seed: u32) {
    let src = env.path("src");
    make_tree(&src);
    write(&src.join("big.bin"), &bytes(2 << 20, 9));
    env.vars.push((
        "ARCA_TEST_FAULTS".into(),
        format!("transient=0.2,lost-replies=0.5,seed={seed}"),
    ));
    let retries = ["--retries", "30"];
    env.ok(&init_args(&retries));
    let out = env.expect(
        0,
        &["backup", src.to_str().unwrap(), retries[0], retries[1]],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("injected fault") && err.contains("retry"),
        "{err}"
    );
    let target = env.path("out");
    let t = target.to_str().unwrap();
    env.ok(&["restore", "latest", "--target", t, retries[0], retries[1]]);
    assert_same(&manifest(&src), &manifest(&restored(&target, &src)));
    env.vars.pop();
    assert_eq!(env.json(&["check", "--read-data"])["ok"], true);
}

#[test]
fn transient_faults_are_retried_to_identical_data() {
    let Some(env) = s3("S3S") else { return };
    through_faults(env, 3);
}

#[test]
fn sftp_through_injected_faults() {
    let Some(env) = sftp() else { return };
    through_faults(env, 8);
}

#[test]
fn b2_through_injected_faults() {
    let Some(env) = b2() else { return };
    through_faults(env, 12);
}

#[test]
fn a_permanent_failure_names_the_backend_and_object_and_leaves_the_repository_valid() {
    let Some(mut env) = s3("S3S") else { return };
    let src = env.path("src");
    make_tree(&src);
    env.init();
    env.backup(&[&src]);
    write(&src.join("new.bin"), &bytes(1 << 20, 4));
    env.vars
        .push(("ARCA_TEST_FAULTS".into(), "permanent-after-writes=1".into()));
    let out = env.expect(1, &["backup", src.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    let location = env.location.clone().unwrap();
    assert!(
        err.contains(&location) && err.contains("data/") && err.lines().count() == 1,
        "{err}"
    );
    env.vars.pop();
    assert_eq!(env.json(&["check", "--read-data"])["ok"], true);
    let listing = env.ok(&["snapshots"]);
    assert!(listing.contains("1 snapshot"), "{listing}");
    // The next backup completes.
    let next = env.backup(&[&src]);
    assert!(next["data_blobs_added"].as_u64().unwrap() > 0, "{next}");
}
