//! The S3 backend against real servers on 127.0.0.1: moto (a broad S3 emulation) and
//! s3s-fs (which checks every request's SigV4 signature). `scripts/test-servers.sh
//! start` runs them and `.ci/test` exports their addresses; without them these tests
//! say so and pass, except under CI, where they fail.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use arca_backends::{
    ErrorKind, FileKind, ObjectId, ReadBackend, S3Backend, S3Config, WriteBackend, conformance,
};
use bytes::Bytes;

/// (endpoint, access key, secret key) of a server, from `ARCA_TEST_<NAME>_*`.
fn server(name: &str) -> Option<(String, String, String)> {
    let var = |suffix: &str| std::env::var(format!("ARCA_TEST_{name}_{suffix}")).ok();
    match (var("ENDPOINT"), var("ACCESS_KEY"), var("SECRET_KEY")) {
        (Some(e), Some(a), Some(s)) => Some((e, a, s)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("ARCA_TEST_{name}_* are not set: run scripts/test-servers.sh start")
        }
        _ => {
            eprintln!("skipped: no {name} server (bash scripts/test-servers.sh start)");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", ObjectId::random().unwrap().short())
}

fn config(server: &(String, String, String), location: &str, secret: Option<&str>) -> S3Config {
    let (endpoint, access, real_secret) = server;
    let secret = secret.unwrap_or(real_secret).to_owned();
    let access = access.clone();
    let text = format!("{endpoint}/{location}");
    let mut config = S3Config::parse(&text, &move |name| match name {
        "AWS_ACCESS_KEY_ID" => Some(access.clone()),
        "AWS_SECRET_ACCESS_KEY" => Some(secret.clone()),
        _ => None,
    })
    .unwrap();
    // Small parts, so that the suite's 24 and 40 MiB objects go through multipart uploads.
    config.multipart_threshold = 16 << 20;
    config.part_size = 5 << 20;
    config
}

fn conforms(name: &str) {
    let Some(server) = server(name) else { return };
    let bucket = unique("arca-");
    let failures = conformance::run(&|| {
        let location = format!("{bucket}/{}", unique("repo-"));
        Box::new(S3Backend::new(config(&server, &location, None)).unwrap()) as Box<dyn WriteBackend>
    });
    assert!(failures.is_empty(), "{name}: {failures:#?}");
}

#[test]
fn moto_conforms() {
    conforms("S3_MOTO");
}

#[test]
fn s3s_conforms() {
    conforms("S3S");
}

#[test]
fn a_wrong_secret_is_a_permanent_error_naming_the_object() {
    let Some(server) = server("S3S") else { return };
    let location = format!("{}/repo", unique("arca-"));
    let good = S3Backend::new(config(&server, &location, None)).unwrap();
    good.create().unwrap();
    let bad = S3Backend::new(config(&server, &location, Some("not-the-secret"))).unwrap();
    let id = ObjectId::from_bytes([3; 32]);
    let err = bad
        .write(FileKind::Snapshot, &id, Bytes::from_static(b"x"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("snapshots/") && text.contains("403"),
        "{text}"
    );
    assert!(!text.contains("not-the-secret"), "{text}");
    assert!(good.list(FileKind::Snapshot).unwrap().is_empty());
}

#[test]
fn prefixes_keep_repositories_apart() {
    let Some(server) = server("S3_MOTO") else {
        return;
    };
    let bucket = unique("arca-");
    let a = S3Backend::new(config(&server, &format!("{bucket}/a"), None)).unwrap();
    a.create().unwrap();
    let id = ObjectId::from_bytes([5; 32]);
    a.write(FileKind::Index, &id, Bytes::from_static(b"i"))
        .unwrap();
    let c = S3Backend::new(config(&server, &format!("{bucket}/ab"), None)).unwrap();
    c.create().unwrap();
    assert!(c.list(FileKind::Index).unwrap().is_empty());
    assert_eq!(a.list(FileKind::Index).unwrap(), vec![(id, 1)]);
    // A location inside a repository is not empty.
    let inside = S3Backend::new(config(&server, &format!("{bucket}/a/index"), None)).unwrap();
    assert_eq!(
        inside.create().unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
}

#[test]
fn listings_follow_continuation_past_a_thousand_keys() {
    let Some(server) = server("S3_MOTO") else {
        return;
    };
    let location = format!("{}/many", unique("arca-"));
    let backend = S3Backend::new(config(&server, &location, None)).unwrap();
    backend.create().unwrap();
    conformance::lists_past_a_thousand(&backend).unwrap();
}

#[test]
fn init_creates_a_bucket_outside_us_east_1() {
    // Outside us-east-1, CreateBucket must name the region (LocationConstraint); moto
    // refuses it otherwise, as AWS does.
    let Some(server) = server("S3_MOTO") else {
        return;
    };
    let mut config = config(&server, &format!("{}/repo", unique("arca-")), None);
    config.region = "eu-central-1".into();
    let backend = S3Backend::new(config).unwrap();
    backend.create().unwrap();
    let id = ObjectId::from_bytes([4; 32]);
    backend
        .write(FileKind::Snapshot, &id, Bytes::from_static(b"s"))
        .unwrap();
    assert_eq!(backend.list(FileKind::Snapshot).unwrap(), vec![(id, 1)]);
}
