//! A repository written by someone with the key can hold trees no arca would write:
//! names like `..`, absolute paths, or names with slashes. Restoring them is refused
//! with an error naming the tree, and nothing is written outside the target.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use arca_backends::LocalBackend;
use arca_core::{CheckOptions, ErrorKind, NoProgress, Repository, RestoreOptions};
use arca_repo::{
    BlobType, Compression, IndexFile, IndexedPack, Node, NodeKind, ObjectId, PackBuilder, Repo,
    Snapshot, SnapshotSummary,
};

/// Writes a snapshot whose root tree holds one file node named `name` (bypassing the
/// tree constructor's checks, as a hostile writer would).
fn write_hostile_snapshot(repo: &Repo, name: &[u8]) -> ObjectId {
    write_hostile_node(repo, name, None)
}

/// The same with the node's `bundle_offset` set to `bundle_offset`.
fn write_hostile_node(repo: &Repo, name: &[u8], bundle_offset: Option<u64>) -> ObjectId {
    let content = b"pwned".to_vec();
    let data_id = repo.blob_id(&content);
    let mut node = Node::new(name.to_vec(), NodeKind::File);
    node.mode = 0o644;
    node.size = content.len() as u64;
    node.content = vec![data_id];
    node.bundle_offset = bundle_offset;
    let mut tree = 2u16.to_le_bytes().to_vec();
    tree.extend(postcard::to_stdvec(&vec![node]).unwrap());
    let tree_id = repo.blob_id(&tree);
    let mut index = IndexFile::default();
    for (t, id, bytes) in [
        (BlobType::Data, data_id, &content),
        (BlobType::Tree, tree_id, &tree),
    ] {
        let mut pack = PackBuilder::new(ObjectId::random().unwrap(), t, 1024);
        pack.push(&repo.encode_blob(t, id, bytes, Compression::None).unwrap())
            .unwrap();
        let pack = pack.finish();
        repo.write_pack(&pack).unwrap();
        index.packs.push(IndexedPack {
            id: pack.id,
            entries: pack.entries,
        });
    }
    repo.save_index(&index).unwrap();
    repo.save_snapshot(&Snapshot {
        time: Default::default(),
        utc_offset: 0,
        tree: tree_id,
        paths: vec![b"/".to_vec()],
        hostname: "evil".into(),
        username: "evil".into(),
        uid: 0,
        gid: 0,
        tags: vec![],
        parent: None,
        excludes: vec![],
        program_version: "evil".into(),
        summary: SnapshotSummary::default(),
        notes: vec![],
        checkpoint: false,
    })
    .unwrap()
}

/// A new repository in a temporary directory, opened at the format level (where a
/// hostile writer works).
fn raw_repository() -> (tempfile::TempDir, Arc<LocalBackend>, Repo) {
    let tmp = tempfile::tempdir().unwrap();
    let backend = Arc::new(LocalBackend::new(tmp.path().join("repo")));
    Repository::init(backend.clone(), b"pw", &common::fast_init()).unwrap();
    let raw = Repo::open(backend.clone(), b"pw").unwrap();
    (tmp, backend, raw)
}

#[test]
fn hostile_names_are_refused_and_nothing_escapes() {
    let (tmp, backend, raw) = raw_repository();
    let escape_dir = tmp.path().join("outside");
    std::fs::create_dir(&escape_dir).unwrap();
    let absolute = format!("{}/escaped", escape_dir.display());
    let names: Vec<&[u8]> = vec![
        b"..",
        b"../../outside/escaped",
        absolute.as_bytes(),
        b"a/b",
        b".",
        b"",
        b"nul\0byte",
    ];
    for name in &names {
        write_hostile_snapshot(&raw, name);
    }
    let repo = Repository::open(backend, b"pw").unwrap();
    let snapshots = repo.snapshots().unwrap();
    assert_eq!(snapshots.len(), names.len());
    let target = tmp.path().join("target").join("inner");
    for snap in &snapshots {
        let err = repo
            .restore(snap, &target, &RestoreOptions::default(), &NoProgress)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("tree"), "{err}");
    }
    assert_eq!(
        std::fs::read_dir(&escape_dir).unwrap().count(),
        0,
        "a restore wrote outside its target"
    );
    assert!(!tmp.path().join("target").join("escaped").exists());
    let report = repo.check(&CheckOptions::default(), &NoProgress).unwrap();
    assert_eq!(report.errors.len(), names.len(), "{:?}", report.errors);
}

/// A bundled file whose slice lies beyond its bundle: check names it, restore and dump
/// fail for it with the bundle named, and nothing is left in its place.
#[test]
fn a_slice_beyond_its_bundle_is_reported_not_read() {
    let (tmp, backend, raw) = raw_repository();
    // "pwned" is 5 bytes; 5 bytes from offset 1 run past its end.
    write_hostile_node(&raw, b"sliced", Some(1));
    let bundle = raw.blob_id(b"pwned").to_string();
    let repo = Repository::open(backend, b"pw").unwrap();
    let report = repo.check(&CheckOptions::default(), &NoProgress).unwrap();
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let problem = &report.errors[0];
    assert!(problem.object.ends_with("/sliced"), "{problem}");
    assert!(problem.message.contains("beyond its bundle"), "{problem}");

    let snap = &repo.snapshots().unwrap()[0];
    let target = tmp.path().join("target");
    let err = repo
        .restore(snap, &target, &RestoreOptions::default(), &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("sliced"), "{err}");
    assert!(err.to_string().contains(&bundle), "{err}");
    assert!(!target.join("sliced").exists());
    // An existing file of that name and size may well be right: it is left as it was.
    let existing = tmp.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("sliced"), b"pwned").unwrap();
    let err = repo
        .restore(snap, &existing, &RestoreOptions::default(), &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("left as it was"), "{err}");
    assert_eq!(std::fs::read(existing.join("sliced")).unwrap(), b"pwned");
    let mut out = Vec::new();
    let cancel = arca_core::CancelToken::new();
    let err = repo
        .dump(snap, std::path::Path::new("/sliced"), &mut out, &cancel)
        .unwrap_err();
    assert!(err.to_string().contains("beyond its bundle"), "{err}");
    assert!(err.to_string().contains(&bundle), "{err}");
}
