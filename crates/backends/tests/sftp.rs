//! The SFTP backend against OpenSSH's sshd on 127.0.0.1 (started by
//! `scripts/test-servers.sh`; `.ci/test` exports its address, user, key and
//! known_hosts). Without it these tests say so and pass, except under CI.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::path::PathBuf;

use arca_backends::{
    ErrorKind, FileKind, ObjectId, ReadBackend, SftpBackend, SftpConfig, WriteBackend, conformance,
};
use bytes::Bytes;

struct Server {
    host: String,
    port: String,
    user: String,
    key: String,
    known_hosts: String,
    root: String,
}

fn server() -> Option<Server> {
    let var = |name: &str| std::env::var(format!("ARCA_TEST_SFTP_{name}")).ok();
    match (
        var("HOST"),
        var("PORT"),
        var("USER"),
        var("KEY"),
        var("KNOWN_HOSTS"),
        var("ROOT"),
    ) {
        (Some(host), Some(port), Some(user), Some(key), Some(known_hosts), Some(root)) => {
            Some(Server {
                host,
                port,
                user,
                key,
                known_hosts,
                root,
            })
        }
        _ if std::env::var_os("CI").is_some() => {
            panic!("ARCA_TEST_SFTP_* are not set: run scripts/test-servers.sh start")
        }
        _ => {
            eprintln!("skipped: no SFTP server (bash scripts/test-servers.sh start)");
            None
        }
    }
}

fn unique() -> String {
    ObjectId::random().unwrap().short()
}

fn config(s: &Server, path: &str, known_hosts: &str) -> SftpConfig {
    let text = format!("//{}@{}:{}{path}", s.user, s.host, s.port);
    let (key, known_hosts) = (s.key.clone(), known_hosts.to_owned());
    SftpConfig::parse(&text, &move |name| match name {
        "ARCA_SFTP_KEY" => Some(key.clone()),
        "ARCA_SFTP_KNOWN_HOSTS" => Some(known_hosts.clone()),
        _ => None,
    })
    .unwrap()
}

#[test]
fn sftp_conforms() {
    let Some(s) = server() else { return };
    let base = format!("{}/conformance-{}", s.root, unique());
    let failures = conformance::run(&|| {
        let path = format!("{base}/{}/repo", unique());
        Box::new(SftpBackend::new(config(&s, &path, &s.known_hosts))) as Box<dyn WriteBackend>
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn unknown_and_changed_host_keys_are_refused() {
    let Some(s) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = format!("{}/hostkeys-{}", s.root, unique());

    // No entry for the server.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let backend = SftpBackend::new(config(&s, &path, empty.to_str().unwrap()));
    let err = backend.create().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("is not in") && text.contains("SHA256:"),
        "{text}"
    );

    // A different key for the same host and port.
    let genuine = std::fs::read_to_string(&s.known_hosts).unwrap();
    let line = genuine.lines().find(|l| !l.trim().is_empty()).unwrap();
    let host = line.split_whitespace().next().unwrap();
    let other = format!(
        "{host} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    );
    let changed = dir.path().join("changed");
    std::fs::write(&changed, other).unwrap();
    let backend = SftpBackend::new(config(&s, &path, changed.to_str().unwrap()));
    let err = backend.create().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    assert!(err.to_string().contains("differs"), "{err}");

    // A missing known_hosts file.
    let missing: PathBuf = dir.path().join("missing");
    let backend = SftpBackend::new(config(&s, &path, missing.to_str().unwrap()));
    let err = backend.list(FileKind::Snapshot).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn a_wrong_key_is_refused_naming_the_user() {
    let Some(mut s) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    s.key = key.to_str().unwrap().to_owned();
    let mut c = config(&s, &format!("{}/wrong-key", s.root), &s.known_hosts);
    c.home = None;
    let err = SftpBackend::new(c).create().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("cannot log in as {}", s.user)),
        "{err}"
    );
}

#[test]
fn an_interrupted_write_leaves_nothing_visible() {
    let Some(s) = server() else { return };
    let path = format!("{}/tmpfiles-{}", s.root, unique());
    let backend = SftpBackend::new(config(&s, &path, &s.known_hosts));
    backend.create().unwrap();
    // A temporary file as a killed writer leaves it: readers ignore it.
    std::fs::write(format!("{path}/index/.tmp-0123456789abcdef"), b"partial").unwrap();
    assert!(backend.list(FileKind::Index).unwrap().is_empty());
    let id = ObjectId::from_bytes([9; 32]);
    backend
        .write(FileKind::Index, &id, Bytes::from_static(b"whole"))
        .unwrap();
    assert_eq!(backend.list(FileKind::Index).unwrap(), vec![(id, 5)]);

    // Left behind, they are removed once older than the cutoff; objects stay.
    std::fs::create_dir_all(format!("{path}/data/ab")).unwrap();
    std::fs::write(format!("{path}/data/ab/.tmp-00"), b"partial").unwrap();
    std::fs::write(format!("{path}/.tmp-01"), b"partial").unwrap();
    let hour = std::time::Duration::from_secs(3600);
    let now = std::time::SystemTime::now();
    assert_eq!(backend.remove_stale_temporaries(now - hour).unwrap(), 0);
    assert_eq!(backend.remove_stale_temporaries(now + hour).unwrap(), 3);
    assert!(!std::path::Path::new(&format!("{path}/data/ab/.tmp-00")).exists());
    assert_eq!(backend.list(FileKind::Index).unwrap(), vec![(id, 5)]);
}
