//! The B2 backend against `tests/servers/b2_server.py` on 127.0.0.1 (Backblaze's own
//! b2sdk RawSimulator behind HTTP). `scripts/test-servers.sh start` runs it and `.ci/test`
//! exports its address and keys; without them these tests say so and pass, except under
//! CI, where they fail.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use arca_backends::{
    B2Backend, B2Config, ErrorKind, FileKind, ObjectId, ReadBackend, Retry, RetryPolicy,
    WriteBackend, conformance,
};
use bytes::Bytes;

/// The shared server's API URL and keys, from `ARCA_TEST_B2_*`.
struct Server {
    api_url: String,
    account_id: String,
    master_key: String,
    key_id: String,
    key: String,
    bucket: String,
}

fn skip_or_fail(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what}: run scripts/test-servers.sh start");
    }
    eprintln!("skipped: {what} (bash scripts/test-servers.sh start)");
}

fn server() -> Option<Server> {
    let var = |suffix: &str| std::env::var(format!("ARCA_TEST_B2_{suffix}")).ok();
    match (
        var("API_URL"),
        var("ACCOUNT_ID"),
        var("APPLICATION_KEY"),
        var("KEY_ID"),
        var("KEY"),
        var("BUCKET"),
    ) {
        (Some(api_url), Some(account_id), Some(master_key), Some(key_id), Some(key), Some(b)) => {
            Some(Server {
                api_url,
                account_id,
                master_key,
                key_id,
                key,
                bucket: b,
            })
        }
        _ => {
            skip_or_fail("ARCA_TEST_B2_* are not set: no B2 server");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", ObjectId::random().unwrap().short())
}

/// A config for `location` (after `b2:`) with key `(id, key)` on `api_url`, with small
/// large-file settings, so that the suite's 24 and 40 MiB objects use the large-file API.
fn config(api_url: &str, id: &str, key: &str, location: &str) -> B2Config {
    let (api_url, id, key) = (api_url.to_owned(), id.to_owned(), key.to_owned());
    let mut config = B2Config::parse(location, &move |name| match name {
        "B2_APPLICATION_KEY_ID" => Some(id.clone()),
        "B2_APPLICATION_KEY" => Some(key.clone()),
        "ARCA_B2_API_URL" => Some(api_url.clone()),
        _ => None,
    })
    .unwrap();
    config.large_file_threshold = 8 << 20;
    config.part_size = 5 << 20;
    config
}

fn restricted(server: &Server, location: &str) -> B2Backend {
    B2Backend::new(config(
        &server.api_url,
        &server.key_id,
        &server.key,
        location,
    ))
}

#[test]
fn conforms_with_a_bucket_restricted_key() {
    let Some(server) = server() else { return };
    let started = Instant::now();
    let failures = conformance::run(&|| {
        let location = format!("{}:/{}", server.bucket, unique("repo-"));
        Box::new(restricted(&server, &location)) as Box<dyn WriteBackend>
    });
    eprintln!("B2 conformance suite: {:.1?}", started.elapsed());
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_master_key_finds_its_bucket_by_name() {
    let Some(server) = server() else { return };
    let location = format!("{}/{}", server.bucket, unique("master-"));
    let b2 = B2Backend::new(config(
        &server.api_url,
        &server.account_id,
        &server.master_key,
        &location,
    ));
    b2.create().unwrap();
    let id = ObjectId::from_bytes([1; 32]);
    b2.write(FileKind::Key, &id, Bytes::from_static(b"slot"))
        .unwrap();
    // The restricted key sees what the master key wrote.
    let other = restricted(&server, &location);
    assert_eq!(other.list(FileKind::Key).unwrap(), vec![(id, 4)]);
    // A bucket that does not exist: create says so, permanently; list: not found.
    let missing = B2Backend::new(config(
        &server.api_url,
        &server.account_id,
        &server.master_key,
        "arca-no-such-bucket",
    ));
    let err = missing.create().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    assert!(err.to_string().contains("create the bucket"), "{err}");
    assert!(missing.list(FileKind::Index).unwrap_err().is_not_found());
}

#[test]
fn the_restricted_key_is_refused_other_buckets() {
    let Some(server) = server() else { return };
    let b2 = restricted(&server, "arca-other:/repo");
    let id = ObjectId::from_bytes([2; 32]);
    for err in [
        b2.create().unwrap_err(),
        b2.write(FileKind::Snapshot, &id, Bytes::from_static(b"x"))
            .unwrap_err(),
        b2.list(FileKind::Snapshot).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
        let text = err.to_string();
        eprintln!("another bucket: {text}");
        assert!(
            text.contains("b2:arca-other") && text.contains("restricted to bucket arca-test"),
            "{text}"
        );
        assert!(!text.contains(&server.key), "{text}");
    }
}

#[test]
fn a_wrong_key_is_a_permanent_error_without_the_key() {
    let Some(server) = server() else { return };
    let b2 = B2Backend::new(config(
        &server.api_url,
        &server.key_id,
        "K00not-the-key",
        &format!("{}:/repo", server.bucket),
    ));
    let err = b2.list(FileKind::Index).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    let text = err.to_string();
    eprintln!("a wrong key: {text}");
    assert!(
        text.contains("401") && text.contains("B2_APPLICATION_KEY"),
        "{text}"
    );
    assert!(!text.contains("K00not-the-key"), "{text}");
}

/// Writers of one id that pass the existence check together each add a version (B2
/// keeps them all): a removal must delete every one, or an older version would show.
#[test]
fn removal_deletes_every_version() {
    let Some(server) = server() else { return };
    let location = format!("{}:/{}", server.bucket, unique("versions-"));
    restricted(&server, &location).create().unwrap();
    let id = ObjectId::from_bytes([9; 32]);
    let data = Bytes::from_static(b"the same bytes");
    for round in 0..10 {
        let writers: Vec<B2Backend> = (0..8).map(|_| restricted(&server, &location)).collect();
        let start = std::sync::Barrier::new(writers.len());
        let stored = std::thread::scope(|s| {
            let handles: Vec<_> = writers
                .iter()
                .map(|b2| {
                    let (start, data) = (&start, data.clone());
                    s.spawn(move || {
                        start.wait();
                        b2.write(FileKind::Index, &id, data)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|r| match r {
                    Ok(()) => true,
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
                        false
                    }
                })
                .count()
        });
        let b2 = &writers[0];
        assert_eq!(b2.read_full(FileKind::Index, &id).unwrap(), data);
        b2.remove(FileKind::Index, &id).unwrap();
        assert!(
            b2.read_full(FileKind::Index, &id)
                .unwrap_err()
                .is_not_found()
        );
        assert!(b2.remove(FileKind::Index, &id).unwrap_err().is_not_found());
        assert!(b2.list(FileKind::Index).unwrap().is_empty());
        if stored > 1 {
            eprintln!("round {round}: {stored} versions stored and removed");
            return;
        }
    }
    panic!("no two writers raced in 10 rounds: the test proved nothing");
}

#[test]
fn prefixes_keep_repositories_apart() {
    let Some(server) = server() else { return };
    let base = unique("apart-");
    let a = restricted(&server, &format!("{}:/{base}/a", server.bucket));
    a.create().unwrap();
    let id = ObjectId::from_bytes([5; 32]);
    a.write(FileKind::Index, &id, Bytes::from_static(b"i"))
        .unwrap();
    let c = restricted(&server, &format!("{}:/{base}/ab", server.bucket));
    c.create().unwrap();
    assert!(c.list(FileKind::Index).unwrap().is_empty());
    assert_eq!(a.list(FileKind::Index).unwrap(), vec![(id, 1)]);
    let inside = restricted(&server, &format!("{}:/{base}/a/index", server.bucket));
    assert_eq!(
        inside.create().unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
}

/// A private `b2_server.py` with fault options, stopped when dropped.
struct FaultyServer {
    child: Child,
    api_url: String,
    credentials: serde_json::Value,
    dir: tempfile::TempDir,
}

impl FaultyServer {
    /// A restricted-key backend at `b2:BUCKET:/PREFIX` on this server.
    fn backend(&self, prefix: &str) -> B2Backend {
        let field = |name: &str| self.credentials[name].as_str().unwrap().to_owned();
        let mut config = config(
            &self.api_url,
            &field("key_id"),
            &field("key"),
            &format!("{}:/{prefix}", field("bucket")),
        );
        config.large_file_threshold = 1 << 20;
        config.part_size = 256 << 10;
        B2Backend::new(config)
    }

    /// How many requests the server answered with `status`.
    fn answered(&self, status: u16) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap();
        let pattern = format!("HTTP/1.1\" {status} ");
        log.lines().filter(|l| l.contains(&pattern)).count()
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn faulty_server(options: &[&str]) -> Option<FaultyServer> {
    let cache = std::env::var_os("ARCA_TEST_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/arca-test")));
    let python = cache.map(|c| c.join("venv/bin/python"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/servers/b2_server.py");
    let Some(python) = python.filter(|p| p.exists()) else {
        skip_or_fail("no test-server venv with b2sdk");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials.json");
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new(python)
        .arg(script)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(options)
        .arg("--credentials-file")
        .arg(&credentials)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut server = FaultyServer {
        child,
        api_url: format!("http://127.0.0.1:{port}"),
        credentials: serde_json::Value::Null,
        dir,
    };
    // The credentials file appears once the server listens.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&credentials)
            && let Ok(value) = serde_json::from_str(&text)
        {
            server.credentials = value;
            return Some(server);
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("b2_server.py exited while starting: {status}");
        }
        assert!(Instant::now() < deadline, "b2_server.py did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every 5th request answers 503 (and spoils the upload URL it hit): the retry layer
/// carries every call through, and the backend never reuses a spoiled upload URL.
#[test]
fn injected_503s_are_transient_and_retried() {
    if server().is_none() {
        return;
    }
    let Some(faulty) = faulty_server(&["--fail-every", "5"]) else {
        return;
    };
    let retries = Arc::new(AtomicU32::new(0));
    let counter = retries.clone();
    let policy = RetryPolicy {
        retries: 8,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    let b2 = Retry::new(faulty.backend("faults"), policy).on_retry(Arc::new(move |e, _, _| {
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
        assert!(e.to_string().contains("503"), "{e}");
        counter.fetch_add(1, Ordering::Relaxed);
    }));
    b2.create().unwrap();
    let object = |n: u8, len: usize| {
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(n)).collect();
        (ObjectId::from_bytes([n; 32]), Bytes::from(data))
    };
    // Small uploads from several threads (each with its own upload URL), and two large
    // files of 5 parts.
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let b2 = &b2;
            s.spawn(move || {
                for n in 0..6u8 {
                    let (id, data) = object(t * 10 + n + 1, 1000 + usize::from(n));
                    b2.write(FileKind::Pack, &id, data).unwrap();
                }
            });
        }
    });
    for n in [100u8, 101] {
        let (id, data) = object(n, (5 << 18) - 7);
        b2.write(FileKind::Pack, &id, data).unwrap();
    }
    let listed = b2.list(FileKind::Pack).unwrap();
    assert_eq!(listed.len(), 26, "{listed:?}");
    for (id, size) in listed {
        let n = id.as_bytes()[0];
        let (_, data) = if n >= 100 {
            object(n, (5 << 18) - 7)
        } else {
            object(n, 1000 + usize::from((n - 1) % 10))
        };
        assert_eq!(size, data.len() as u64);
        assert_eq!(b2.read_full(FileKind::Pack, &id).unwrap(), data);
        assert_eq!(
            b2.read_range(FileKind::Pack, &id, 3, 500).unwrap(),
            data.slice(3..503)
        );
        b2.remove(FileKind::Pack, &id).unwrap();
    }
    assert!(b2.list(FileKind::Pack).unwrap().is_empty());
    let retried = retries.load(Ordering::Relaxed);
    eprintln!("faults: {retried} retries");
    assert!(
        retried >= 10,
        "only {retried} retries: were faults injected?"
    );
    // An upload URL that got a 503 is never used again (the server would answer 401).
    assert!(faulty.answered(503) >= retried as usize);
    assert_eq!(faulty.answered(401), 0);
}

/// The server expires the account token on every 6th use: the backend authorizes
/// anew and repeats the call, with no retry layer above it.
#[test]
fn expired_tokens_are_renewed() {
    if server().is_none() {
        return;
    }
    let Some(faulty) = faulty_server(&["--expire-tokens-every", "6"]) else {
        return;
    };
    let b2 = faulty.backend("expiry");
    b2.create().unwrap();
    let mut written = Vec::new();
    for n in 1..=8u8 {
        let len = if n == 8 {
            (1 << 20) + 1
        } else {
            usize::from(n) * 100
        };
        let (id, data) = (ObjectId::from_bytes([n; 32]), Bytes::from(vec![n; len]));
        b2.write(FileKind::Snapshot, &id, data.clone()).unwrap();
        written.push((id, data));
    }
    assert_eq!(b2.list(FileKind::Snapshot).unwrap().len(), 8);
    for (id, data) in &written {
        assert_eq!(&b2.read_full(FileKind::Snapshot, id).unwrap(), data);
        assert_eq!(
            b2.read_range(FileKind::Snapshot, id, 1, 50).unwrap(),
            data.slice(1..51)
        );
        b2.remove(FileKind::Snapshot, id).unwrap();
    }
    assert!(b2.list(FileKind::Snapshot).unwrap().is_empty());
    let expired = faulty.answered(401);
    assert!(expired >= 5, "only {expired} expired tokens");
}

#[test]
fn listings_follow_pagination_past_a_thousand_names() {
    let Some(server) = server() else { return };
    let location = format!("{}:/{}", server.bucket, unique("many-"));
    let backend = restricted(&server, &location);
    backend.create().unwrap();
    conformance::lists_past_a_thousand(&backend).unwrap();
}
