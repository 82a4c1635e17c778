//! Bad input of every kind gets a one-line error, a documented exit code, and changes
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// Every file under `dir` with its bytes, to show a failed command wrote nothing.
fn snapshot_of(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    files_in(dir)
        .into_iter()
        .map(|p| {
            let data = fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

#[test]
fn wrong_password_exits_12_and_writes_nothing() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"data");
    env.init();
    env.backup(&[&src]);
    let before = snapshot_of(&env.repo);
    for args in [
        &["snapshots"][..],
        &["backup", src.to_str().unwrap()],
        &["check"],
        &["restore", "latest", "--target", "/tmp/never"],
    ] {
        let out = env
            .cmd()
            .env("ARCA_PASSWORD", "wrong")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(12), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("wrong password"), "{err}");
    }
    assert_eq!(snapshot_of(&env.repo), before);
    assert!(!Path::new("/tmp/never").exists());
}

#[test]
fn missing_repository_exits_10_and_creates_nothing() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"data");
    for args in [
        &["snapshots"][..],
        &["backup", src.to_str().unwrap()],
        &["check"],
        &["ls", "latest"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(10), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("no repository"), "{}", stderr(&out));
    }
    assert!(!env.repo.exists());
    // No repository given at all: a clear message.
    let out = env
        .cmd()
        .env_remove("ARCA_REPOSITORY")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("-r/--repo"), "{}", stderr(&out));
}

#[test]
fn init_refuses_a_non_empty_target_and_an_existing_repository() {
    let env = Env::new();
    fs::create_dir_all(&env.repo).unwrap();
    write(&env.repo.join("precious.txt"), b"keep me");
    let out = env.expect(1, &init_args(&[]));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert_eq!(fs::read(env.repo.join("precious.txt")).unwrap(), b"keep me");
    assert_eq!(fs::read_dir(&env.repo).unwrap().count(), 1);

    let env = Env::new();
    env.init();
    let before = snapshot_of(&env.repo);
    let out = env.expect(1, &init_args(&[]));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(snapshot_of(&env.repo), before);
}

#[test]
fn bad_flags_and_values() {
    let env = Env::new();
    let out = env.expect(2, &["backup", "--no-such-flag"]);
    assert!(stderr(&out).contains("--no-such-flag"));
    env.expect(2, &["frobnicate"]);
    env.expect(2, &["backup"]); // no paths
    for (args, needle) in [
        (&["init", "--compression", "gzip"][..], "gzip"),
        (&["init", "--id-hash", "md5"][..], "md5"),
        (&["init", "--pack-size", "lots"][..], "lots"),
        (&["init", "--chunk-size", "1,2"][..], "1,2"),
        (&["init", "--chunk-size", "1M,256K,4M"][..], "chunk"),
        (&["init", "--kdf-memory", "0"][..], "memory"),
    ] {
        let out = env.expect(1, args);
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(!env.repo.exists(), "{args:?} created the repository");
    }
    env.init();
    let out = env.expect(1, &["backup", "/definitely/not/here"]);
    assert!(
        stderr(&out).contains("/definitely/not/here"),
        "{}",
        stderr(&out)
    );
    let out = env.expect(1, &["backup", "/tmp", "--exclude-from", "/no/such/file"]);
    assert!(stderr(&out).contains("/no/such/file"), "{}", stderr(&out));
}

#[test]
fn every_command_has_help_with_examples() {
    let env = Env::new();
    for cmd in [
        "init",
        "backup",
        "snapshots",
        "ls",
        "restore",
        "check",
        "dump",
        "diff",
        "find",
        "verify",
        "forget",
        "prune",
        "unlock",
        "tag",
        "stats",
        "key",
        "repair",
    ] {
        let out = env.ok(&[cmd, "--help"]);
        assert!(
            out.contains("Examples:"),
            "{cmd} --help lacks examples:\n{out}"
        );
    }
    let top = env.ok(&["--help"]);
    assert!(top.contains("Exit codes"), "{top}");
    assert!(env.ok(&["--version"]).starts_with("arca "));
}

#[test]
fn password_sources() {
    let env = Env::new();
    env.init();
    let file = env.path("pw");
    write(&file, format!("{PASSWORD}\n").as_bytes());
    // From a file (the trailing newline is not part of the password).
    let out = env
        .cmd()
        .env_remove("ARCA_PASSWORD")
        .args(["--password-file", file.to_str().unwrap(), "snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = env
        .cmd()
        .env_remove("ARCA_PASSWORD")
        .env("ARCA_PASSWORD_FILE", &file)
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // From a command.
    let cmd = format!("cat {}", file.display());
    let out = env
        .cmd()
        .env_remove("ARCA_PASSWORD")
        .args(["--password-command", &cmd, "snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A failing command, a missing file, no source at all: clear errors, exit 1.
    let out = env
        .cmd()
        .env_remove("ARCA_PASSWORD")
        .args(["--password-command", "exit 3", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("password command failed"),
        "{}",
        stderr(&out)
    );
    let out = env
        .cmd()
        .env_remove("ARCA_PASSWORD")
        .args(["--password-file", "/no/pw", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/no/pw"), "{}", stderr(&out));
    let out = env
        .cmd()
        .env_remove("ARCA_PASSWORD")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ARCA_PASSWORD"), "{}", stderr(&out));
    // The password never appears in messages.
    let out = env
        .cmd()
        .env("ARCA_PASSWORD", "hunter2-wrong")
        .arg("snapshots")
        .output()
        .unwrap();
    assert!(!stderr(&out).contains("hunter2"));
}

#[test]
fn repository_files_are_private() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"data");
    env.init();
    env.backup(&[&src]);
    let mut stack = vec![env.repo.clone()];
    while let Some(d) = stack.pop() {
        let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", p.display());
            }
        }
    }
}

/// The prompt path: no password in the environment, stdin a terminal. `script(1)` (from
/// util-linux, on every Debian system) gives arca a pseudo-terminal.
#[test]
fn password_prompt_on_a_terminal() {
    let env = Env::new();
    let arca = env!("CARGO_BIN_EXE_arca");
    let run = |command: String, input: &str| {
        let mut script = env.command("script");
        script
            .args(["-qec", &command, "/dev/null"])
            .env_remove("ARCA_PASSWORD");
        output_with_input(script, input)
    };
    // Mismatched confirmation: refused, nothing created.
    let out = run(
        format!("{arca} init --kdf-memory 1 --kdf-iterations 1"),
        "first\nsecond\n",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("do not match"));
    assert!(!env.repo.exists());
    // Typed twice: the repository is created with that password.
    let out = run(
        format!("{arca} init --kdf-memory 1 --kdf-iterations 1"),
        "typed pw\ntyped pw\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ok = env
        .cmd()
        .env("ARCA_PASSWORD", "typed pw")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    let out = run(format!("{arca} snapshots"), "typed pw\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_server_certificate_that_does_not_verify_is_refused_without_retrying() {
    use std::io::{BufRead, BufReader};
    let tls = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/servers/tls");
    let script = "import http.server, ssl, sys\n\
        srv = http.server.HTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)\n\
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
        ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n\
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)\n\
        print(srv.server_address[1], flush=True)\n\
        srv.serve_forever()\n";
    let mut server = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(tls.join("cert.pem"))
        .arg(tls.join("key.pem"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let env = Env::remote(
        format!("s3:https://127.0.0.1:{}/bucket", port.trim()),
        vec![
            ("AWS_ACCESS_KEY_ID".into(), "a".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "b".into()),
        ],
    );
    let out = env.run(&["snapshots"]);
    let _ = server.kill();
    let _ = server.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("certificate"), "{err}");
    assert!(
        !err.contains("retry"),
        "a certificate failure was retried: {err}"
    );
}
