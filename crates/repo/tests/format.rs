//! Golden bytes, round trips and damage handling for every structure of format v1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use arca_backends::{FileKind, MemoryBackend, ObjectId, ReadBackend, WriteBackend};
use arca_repo::*;
use proptest::prelude::*;

mod common;
use common::{new_repo, params};

fn node(name: &str, kind: NodeKind) -> Node {
    let mut n = Node::new(name, kind);
    n.mode = 0o644;
    n.uid = 1000;
    n.gid = 100;
    n.user = "alice".into();
    n.group = "users".into();
    n.size = 5;
    n.mtime = Timestamp {
        secs: 1_700_000_000,
        nanos: 123_456_789,
    };
    n.atime = Timestamp {
        secs: 1_700_000_001,
        nanos: 1,
    };
    n.ctime = Timestamp {
        secs: 1_700_000_002,
        nanos: 2,
    };
    n.inode = 42;
    n.device = 2049;
    n.links = 1;
    match kind {
        NodeKind::File => n.content = vec![BlobId([0xaa; 32])],
        NodeKind::Dir => n.subtree = Some(BlobId([0xbb; 32])),
        NodeKind::Symlink => n.target = b"../target".to_vec(),
        _ => {}
    }
    n
}

#[test]
fn header_golden_bytes() {
    let h = Header::new(ObjectType::Snapshot, [0x11; 32]).encode();
    assert_eq!(hex::encode(&h[..8]), "4152434101040000");
    assert_eq!(&h[8..], &[0x11; 32]);
    assert_eq!(
        Header::decode(&h, ObjectType::Snapshot, "x").unwrap().id,
        [0x11; 32]
    );
    // Wrong type, version, magic and reserved bytes are refused.
    assert!(Header::decode(&h, ObjectType::Index, "x").is_err());
    let mut v2 = h;
    v2[4] = 2;
    assert!(matches!(
        Header::decode(&v2, ObjectType::Snapshot, "x"),
        Err(RepoError::UnsupportedVersion { found: 2, .. })
    ));
    let mut bad = h;
    bad[0] = b'X';
    assert!(Header::decode(&bad, ObjectType::Snapshot, "x").is_err());
    let mut res = h;
    res[7] = 1;
    assert!(Header::decode(&res, ObjectType::Snapshot, "x").is_err());
    assert!(Header::decode(&h[..39], ObjectType::Snapshot, "x").is_err());
}

#[test]
fn object_type_codes_are_pinned() {
    let all = [
        ObjectType::Config,
        ObjectType::Key,
        ObjectType::Index,
        ObjectType::Snapshot,
        ObjectType::Lock,
        ObjectType::Pack,
        ObjectType::DataBlob,
        ObjectType::TreeBlob,
    ];
    assert_eq!(all.map(ObjectType::code), [1, 2, 3, 4, 5, 6, 7, 8]);
    for t in all {
        assert_eq!(ObjectType::from_code(t.code()), Some(t));
    }
    assert_eq!(
        [Method::None, Method::Zstd, Method::Lz4].map(Method::code),
        [0, 1, 2]
    );
    let kinds = [
        NodeKind::File,
        NodeKind::Dir,
        NodeKind::Symlink,
        NodeKind::BlockDevice,
        NodeKind::CharDevice,
        NodeKind::Fifo,
        NodeKind::Socket,
    ];
    assert_eq!(kinds.map(u8::from), [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn index_golden_bytes() {
    let file = IndexFile {
        packs: vec![IndexedPack {
            id: ObjectId::from_bytes([0x01; 32]),
            entries: vec![PackEntry {
                blob_type: BlobType::Data,
                id: BlobId([0x02; 32]),
                offset: 40,
                length: 100,
                raw_len: 7,
            }],
        }],
    };
    let bytes = file.encode();
    let expected = format!(
        "0100{}{}{}{}{}{}{}{}",
        "01000000",
        "01".repeat(32),
        "01000000",
        "07",
        "02".repeat(32),
        "28000000",
        "64000000",
        "07000000"
    );
    assert_eq!(hex::encode(&bytes), expected);
    assert_eq!(IndexFile::decode(&bytes, "index").unwrap(), file);
}

#[test]
fn tree_golden_bytes() {
    let mut bundled = node("c.txt", NodeKind::File);
    bundled.bundle_offset = Some(300);
    let tree = Tree::new(vec![
        node("b", NodeKind::Dir),
        node("a.txt", NodeKind::File),
        bundled,
    ])
    .unwrap();
    let bytes = tree.encode().unwrap();
    assert_eq!(hex::encode(&bytes), GOLDEN_TREE);
    let back = Tree::decode(&bytes, "tree").unwrap();
    assert_eq!(back, tree);
    assert_eq!(back.nodes()[0].name, b"a.txt");
    assert_eq!(back.nodes()[2].bundle_offset, Some(300));
    assert!(back.find(b"b").is_some());
    assert!(back.find(b"d").is_none());
}

/// Trees written before bundling (version 1) still decode, with no node bundled.
#[test]
fn tree_version_1_golden_bytes() {
    let back = Tree::decode(&hex::decode(GOLDEN_TREE_V1).unwrap(), "tree").unwrap();
    let expected = Tree::new(vec![
        node("b", NodeKind::Dir),
        node("a.txt", NodeKind::File),
    ])
    .unwrap();
    assert_eq!(back, expected);
}

#[test]
fn tree_refuses_a_bundled_node_without_exactly_one_chunk() {
    let mut n = node("a", NodeKind::File);
    n.content.push(BlobId([0xcc; 32]));
    n.bundle_offset = Some(0);
    assert!(Tree::new(vec![n.clone()]).is_err());
    n.content.clear();
    assert!(Tree::new(vec![n]).is_err());
    let mut d = node("d", NodeKind::Dir);
    d.bundle_offset = Some(0);
    assert!(Tree::new(vec![d]).is_err());
    let mut far = node("f", NodeKind::File);
    far.bundle_offset = Some(u64::MAX);
    assert!(Tree::new(vec![far]).is_err());
}

const GOLDEN_TREE_V1: &str = "01000205612e74787401a403e8076405616c6963650575736572730580c49fd50c959aef3a82c49fd50c0184c49fd50c022a81100100000001aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa00016202a403e8076405616c6963650575736572730580c49fd50c959aef3a82c49fd50c0184c49fd50c022a8110010000000001bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const GOLDEN_TREE: &str = "02000305612e74787401a403e8076405616c6963650575736572730580c49fd50c959aef3a82c49fd50c0184c49fd50c022a81100100000001aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa0000016202a403e8076405616c6963650575736572730580c49fd50c959aef3a82c49fd50c0184c49fd50c022a811001000000000001bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb05632e74787401a403e8076405616c6963650575736572730580c49fd50c959aef3a82c49fd50c0184c49fd50c022a81100100000001aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01ac0200";

#[test]
fn snapshot_golden_bytes() {
    let mut snap = Snapshot {
        time: Timestamp {
            secs: 1_700_000_000,
            nanos: 5,
        },
        utc_offset: 3600,
        tree: BlobId([0xcc; 32]),
        paths: vec![b"/home/alice".to_vec()],
        hostname: "box".into(),
        username: "alice".into(),
        uid: 1000,
        gid: 100,
        tags: vec!["daily".into()],
        parent: None,
        excludes: vec!["**/.cache".into()],
        program_version: "0.1.0".into(),
        summary: SnapshotSummary {
            files_new: 3,
            bytes_total: 1000,
            errors: 0,
            ..Default::default()
        },
        notes: vec![],
        checkpoint: false,
    };
    // Version 1 payloads (written by arca 0.1.0) still decode, with the fields
    // version 2 added left empty.
    let v1 = hex::decode(GOLDEN_SNAPSHOT_V1).unwrap();
    assert_eq!(Snapshot::decode(&v1, "snapshot").unwrap(), snap);

    snap.summary.changed_during_read = 2;
    snap.notes = vec!["/home/alice/log: changed while read".into()];
    // Version 2 payloads decode as complete (not checkpoint) snapshots, and complete
    // snapshots are still written as version 2.
    let v2 = hex::decode(GOLDEN_SNAPSHOT_V2).unwrap();
    assert_eq!(Snapshot::decode(&v2, "snapshot").unwrap(), snap);
    assert_eq!(hex::encode(snap.encode().unwrap()), GOLDEN_SNAPSHOT_V2);

    snap.checkpoint = true;
    let bytes = snap.encode().unwrap();
    assert_eq!(hex::encode(&bytes), GOLDEN_SNAPSHOT);
    assert_eq!(Snapshot::decode(&bytes, "snapshot").unwrap(), snap);
    let mut v4 = bytes.clone();
    v4[0] = 4;
    assert!(matches!(
        Snapshot::decode(&v4, "s"),
        Err(RepoError::UnsupportedVersion { found: 4, .. })
    ));
}

const GOLDEN_SNAPSHOT: &str = "030080c49fd50c05a038cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc010b2f686f6d652f616c69636503626f7805616c696365e8076401056461696c790001092a2a2f2e636163686505302e312e300003000000000000e80700000000000000000201232f686f6d652f616c6963652f6c6f673a206368616e676564207768696c65207265616401";

const GOLDEN_SNAPSHOT_V2: &str = "020080c49fd50c05a038cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc010b2f686f6d652f616c69636503626f7805616c696365e8076401056461696c790001092a2a2f2e636163686505302e312e300003000000000000e80700000000000000000201232f686f6d652f616c6963652f6c6f673a206368616e676564207768696c652072656164";

const GOLDEN_SNAPSHOT_V1: &str = "010080c49fd50c05a038cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc010b2f686f6d652f616c69636503626f7805616c696365e8076401056461696c790001092a2a2f2e636163686505302e312e300003000000000000e8070000000000000000";

#[test]
fn config_golden_bytes() {
    let config = Config {
        repository_id: ObjectId::from_bytes([0x33; 32]),
        created: Timestamp {
            secs: 1_700_000_000,
            nanos: 0,
        },
        id_algorithm: IdAlgorithm::Blake3,
        chunker: ChunkerSettings {
            min_size: 262144,
            avg_size: 1048576,
            max_size: 4194304,
            normalization: 1,
            gear_seed: [0x44; 32],
        },
        compression: Compression::Auto { level: 3 },
        pack_size: DEFAULT_PACK_SIZE,
    };
    let bytes = config.encode().unwrap();
    assert_eq!(hex::encode(&bytes), GOLDEN_CONFIG);
    assert_eq!(Config::decode(&bytes).unwrap(), config);
    assert!(
        !format!("{config:?}").contains("68, 68"),
        "the gear seed leaks through Debug"
    );
}

const GOLDEN_CONFIG: &str = "0100333333333333333333333333333333333333333333333333333333333333333380c49fd50c00030180801080804080808002014444444444444444444444444444444444444444444444444444444444444444030680808008";

#[test]
fn repository_init_open_and_wrong_password() {
    let (backend, repo) = new_repo();
    let id = repo.config().repository_id;
    assert_eq!(Repo::peek_id(backend.as_ref()).unwrap(), id);
    let again = Repo::open(backend.clone(), b"pw").unwrap();
    assert_eq!(again.config(), repo.config());
    assert_eq!(again.blob_id(b"x"), repo.blob_id(b"x"));
    assert!(matches!(
        Repo::open(backend.clone(), b"wrong"),
        Err(RepoError::WrongPassword)
    ));
    // A second init on the same location is refused and changes nothing.
    assert!(Repo::init(backend.clone(), b"other", &params()).is_err());
    assert_eq!(Repo::peek_id(backend.as_ref()).unwrap(), id);
    let empty = Arc::new(MemoryBackend::new());
    assert!(matches!(
        Repo::open(empty, b"pw"),
        Err(RepoError::NotFound { .. })
    ));
}

#[test]
fn a_key_kept_outside_the_repository_opens_it_and_nothing_else_does() {
    let backend = Arc::new(MemoryBackend::new());
    let new = Repo::prepare(backend.clone(), b"pw", &params()).unwrap();
    let id = new.repository_id();
    // What a key file holds: the slot's bytes, named by the id in their header.
    let file = new.slot().encode();
    let repo = new.commit(false).unwrap();
    assert!(backend.list(FileKind::Key).unwrap().is_empty());
    let err = Repo::open(backend.clone(), b"pw").unwrap_err();
    assert!(matches!(err, RepoError::NoKeySlots { .. }), "{err}");
    assert!(err.to_string().contains("outside the repository"), "{err}");

    let slot = KeySlot::decode_unnamed(&file, "key file k").unwrap();
    assert_eq!(slot.encode(), file);
    let opened = Repo::open_with_slot(backend.clone(), b"pw", slot.clone(), "key file k").unwrap();
    assert_eq!(opened.config(), repo.config());
    assert_eq!(opened.key_slot().encode(), file);
    assert!(matches!(
        Repo::open_with_slot(backend.clone(), b"wrong", slot, "key file k"),
        Err(RepoError::WrongPassword)
    ));

    // Another repository's slot opens with the same passphrase but is refused by name.
    let (_, other) = new_repo();
    let foreign = other.key_slot().clone();
    let err = Repo::open_with_slot(backend.clone(), b"pw", foreign, "key file f").unwrap_err();
    assert!(matches!(err, RepoError::ForeignKey { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "key file f belongs to another repository ({})",
            other.config().repository_id.short()
        )
    );
    // A slot stored into keys/ later opens it the usual way.
    opened.store_key_slot(opened.key_slot()).unwrap();
    assert_eq!(
        Repo::open(backend.clone(), b"pw")
            .unwrap()
            .config()
            .repository_id,
        id
    );
    assert!(
        opened.store_key_slot(opened.key_slot()).is_err(),
        "never replaced"
    );
    let err = KeySlot::decode_unnamed(b"ARCA", "key file g").unwrap_err();
    assert!(
        err.to_string().starts_with("key file g is damaged"),
        "{err}"
    );
}

#[test]
fn sealed_files_round_trip_and_detect_tampering() {
    let (backend, repo) = new_repo();
    let snap = Snapshot {
        time: Timestamp::default(),
        utc_offset: 0,
        tree: BlobId([1; 32]),
        paths: vec![],
        hostname: String::new(),
        username: String::new(),
        uid: 0,
        gid: 0,
        tags: vec![],
        parent: None,
        excludes: vec![],
        program_version: String::new(),
        summary: SnapshotSummary::default(),
        notes: vec![],
        checkpoint: false,
    };
    let id = repo.save_snapshot(&snap).unwrap();
    assert_eq!(repo.load_snapshot(&id).unwrap(), snap);
    let data = backend.read_full(FileKind::Snapshot, &id).unwrap();
    for pos in [0, 4, 5, 6, 8, 39, 40, 60, data.len() - 1] {
        let mut bad = data.to_vec();
        bad[pos] ^= 0x01;
        backend.remove(FileKind::Snapshot, &id).unwrap();
        backend.write(FileKind::Snapshot, &id, bad.into()).unwrap();
        let err = repo.load_snapshot(&id).unwrap_err();
        assert!(
            matches!(
                err,
                RepoError::Corrupt { .. } | RepoError::UnsupportedVersion { .. }
            ),
            "{pos}: {err}"
        );
        assert!(err.to_string().contains(&id.to_string()), "{pos}: {err}");
    }
    backend.remove(FileKind::Snapshot, &id).unwrap();
    backend
        .write(FileKind::Snapshot, &id, data.clone())
        .unwrap();
    assert_eq!(repo.load_snapshot(&id).unwrap(), snap);
    // A file renamed to another id is refused.
    let other = ObjectId::random().unwrap();
    backend
        .write(FileKind::Snapshot, &other, data.clone())
        .unwrap();
    let err = repo.load_snapshot(&other).unwrap_err().to_string();
    assert!(err.contains(&other.to_string()), "{err}");
}

#[test]
fn blobs_in_packs_round_trip_and_are_bound_to_their_id() {
    let (_backend, repo) = new_repo();
    let data = b"hello hello hello hello hello".repeat(50);
    let id = repo.blob_id(&data);
    let blob = repo
        .encode_blob(BlobType::Data, id, &data, Compression::default())
        .unwrap();
    let mut pack = PackBuilder::new(ObjectId::random().unwrap(), BlobType::Data, 1 << 20);
    let entry = pack.push(&blob).unwrap();
    assert!(
        pack.push(
            &repo
                .encode_blob(BlobType::Tree, id, &data, Compression::None)
                .unwrap()
        )
        .is_err()
    );
    let pack = pack.finish();
    repo.write_pack(&pack).unwrap();
    let mut index = Index::new();
    index.add_pack(pack.id, &pack.entries);
    let loc = index.get(BlobType::Data, &id).unwrap();
    assert_eq!(loc.offset, entry.offset);
    assert_eq!(repo.read_blob(BlobType::Data, &id, &loc).unwrap(), data);
    // Asking for it as another id or type fails authentication / identity checks.
    assert!(repo.read_blob(BlobType::Tree, &id, &loc).is_err());
    assert!(
        repo.read_blob(BlobType::Data, &BlobId([9; 32]), &loc)
            .is_err()
    );
    let (scanned, damage) = scan_pack(&pack.bytes, &pack.id);
    assert!(damage.is_none());
    assert_eq!(scanned.len(), 1);
    assert_eq!(
        (scanned[0].id, scanned[0].offset, scanned[0].length),
        (id, entry.offset, entry.length)
    );
}

#[test]
fn scan_salvages_entries_before_damage() {
    let (_b, repo) = new_repo();
    let mut pack = PackBuilder::new(ObjectId::random().unwrap(), BlobType::Data, 1 << 20);
    let mut ids = vec![];
    for i in 0..3u8 {
        let d = vec![i; 1000];
        let id = repo.blob_id(&d);
        pack.push(
            &repo
                .encode_blob(BlobType::Data, id, &d, Compression::None)
                .unwrap(),
        )
        .unwrap();
        ids.push(id);
    }
    let pack = pack.finish();
    let cut = pack.entries[2].offset as usize + 10;
    let (entries, damage) = scan_pack(&pack.bytes[..cut], &pack.id);
    assert_eq!(
        entries.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[..2].to_vec()
    );
    assert!(damage.unwrap().to_string().contains(&pack.id.to_string()));
    let (_, damage) = scan_pack(&pack.bytes, &ObjectId::random().unwrap());
    assert!(
        damage.is_some(),
        "a pack under another name must be refused"
    );
}

/// Every entry a [`PackReader`] gives for pack `id`, taken to be `len` bytes long, with
/// its bytes, and the error that ended them, if any.
fn read_entries(
    backend: &MemoryBackend,
    id: ObjectId,
    len: u64,
    window: u64,
) -> (Vec<(PackEntry, Vec<u8>)>, Option<RepoError>) {
    let mut entries = Vec::new();
    for next in PackReader::new(backend, id, len, window) {
        match next {
            Ok((entry, bytes)) => entries.push((entry, bytes.to_vec())),
            Err(e) => return (entries, Some(e)),
        }
    }
    (entries, None)
}

#[test]
fn pack_reader_salvages_entries_before_damage_and_tells_storage_errors_apart() {
    let (backend, repo) = new_repo();
    let mut pack = PackBuilder::new(ObjectId::random().unwrap(), BlobType::Data, 1 << 20);
    for i in 0..3u8 {
        let d = vec![i; 1000];
        let blob = repo
            .encode_blob(BlobType::Data, repo.blob_id(&d), &d, Compression::None)
            .unwrap();
        pack.push(&blob).unwrap();
    }
    let pack = pack.finish();
    let cut = pack.entries[2].offset as usize + 10;
    backend
        .write(FileKind::Pack, &pack.id, pack.bytes.slice(..cut))
        .unwrap();
    for window in [1, 100, 1 << 20] {
        let (entries, end) = read_entries(&backend, pack.id, cut as u64, window);
        assert_eq!(
            entries.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
            pack.entries[..2]
                .iter()
                .map(|e| PackEntry { raw_len: 0, ..*e })
                .collect::<Vec<_>>()
        );
        let end = end.unwrap();
        assert!(matches!(end, RepoError::Corrupt { .. }), "{end}");
        assert!(end.to_string().contains(&pack.id.to_string()), "{end}");
        // Listed longer than it is: the storage refuses the range.
        let (_, end) = read_entries(&backend, pack.id, pack.bytes.len() as u64, window);
        assert!(matches!(end, Some(RepoError::Backend(_))), "{end:?}");
    }
    // Under another name, or missing.
    let other = ObjectId::random().unwrap();
    backend
        .write(FileKind::Pack, &other, pack.bytes.slice(..cut))
        .unwrap();
    let (_, end) = read_entries(&backend, other, cut as u64, 1 << 20);
    assert!(matches!(end, Some(RepoError::Corrupt { .. })), "{end:?}");
    let (_, end) = read_entries(&backend, ObjectId::random().unwrap(), 100, 1 << 20);
    assert!(matches!(end, Some(RepoError::Backend(e)) if e.is_not_found()));
}

#[test]
fn key_slots_reject_bad_parameters_from_disk() {
    let (backend, _repo) = new_repo();
    let (id, _) = backend.list(FileKind::Key).unwrap()[0];
    let mut data = backend.read_full(FileKind::Key, &id).unwrap().to_vec();
    // Memory cost field: 4 TiB must be refused before any allocation.
    data[41..45].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        KeySlot::decode(&data, &id),
        Err(RepoError::Corrupt { .. })
    ));
}

fn arb_name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 1..40).prop_filter("valid", |n| is_valid_name(n))
}

fn arb_node() -> impl Strategy<Value = Node> {
    (
        arb_name(),
        0usize..3,
        any::<u32>(),
        any::<u64>(),
        any::<i64>(),
        0u32..1_000_000_000,
        proptest::collection::vec(any::<[u8; 32]>(), 0..4),
        proptest::collection::vec(
            (arb_name(), proptest::collection::vec(any::<u8>(), 0..20)),
            0..3,
        ),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(name, k, mode, size, secs, nanos, content, xattrs, offset)| {
                let kind = [NodeKind::File, NodeKind::Dir, NodeKind::Symlink][k];
                let mut n = Node::new(name, kind);
                n.mode = mode;
                n.size = size;
                n.mtime = Timestamp { secs, nanos };
                n.xattrs = xattrs
                    .into_iter()
                    .map(|(name, value)| Xattr { name, value })
                    .collect();
                match kind {
                    NodeKind::File => {
                        n.content = content.into_iter().map(BlobId).collect();
                        // A bundled file has exactly one chunk.
                        if n.content.len() == 1 {
                            n.bundle_offset = offset.map(|o| o.min(u64::MAX - size));
                        }
                    }
                    NodeKind::Dir => n.subtree = Some(BlobId([7; 32])),
                    _ => n.target = b"t".to_vec(),
                }
                n
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tree_round_trip(nodes in proptest::collection::vec(arb_node(), 0..20)) {
        let mut seen = std::collections::HashSet::new();
        let nodes: Vec<Node> = nodes.into_iter().filter(|n| seen.insert(n.name.clone())).collect();
        let tree = Tree::new(nodes).unwrap();
        let bytes = tree.encode().unwrap();
        prop_assert_eq!(Tree::decode(&bytes, "t").unwrap(), tree.clone());
        // Deterministic: the same nodes in another order encode identically.
        let mut reversed = tree.nodes().to_vec();
        reversed.reverse();
        prop_assert_eq!(Tree::new(reversed).unwrap().encode().unwrap(), bytes);
    }

    #[test]
    fn index_round_trip(packs in proptest::collection::vec((any::<[u8; 32]>(), proptest::collection::vec((any::<bool>(), any::<[u8; 32]>(), 40u32..1_000_000, 82u32..1_000_000, any::<u32>()), 0..10)), 0..5)) {
        let file = IndexFile { packs: packs.into_iter().map(|(id, es)| IndexedPack {
            id: ObjectId::from_bytes(id),
            entries: es.into_iter().map(|(t, id, offset, length, raw_len)| PackEntry {
                blob_type: if t { BlobType::Data } else { BlobType::Tree }, id: BlobId(id), offset, length, raw_len,
            }).collect(),
        }).collect() };
        prop_assert_eq!(IndexFile::decode(&file.encode(), "i").unwrap(), file);
    }

    #[test]
    fn snapshot_round_trip(
        secs in -10_000_000_000i64..10_000_000_000, nanos in 0u32..1_000_000_000, offset in -50_000i32..50_000,
        paths in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..30), 0..4),
        host in ".{0,20}", tags in proptest::collection::vec("[a-z]{1,8}", 0..4),
        parent in proptest::option::of(any::<[u8; 32]>()), figures in any::<[u64; 8]>(),
        notes in proptest::collection::vec(".{0,40}", 0..5), checkpoint in any::<bool>(),
    ) {
        let snap = Snapshot {
            time: Timestamp { secs, nanos },
            utc_offset: offset,
            tree: BlobId([7; 32]),
            paths,
            hostname: host,
            username: "u".into(),
            uid: 1,
            gid: 2,
            tags,
            parent,
            excludes: vec!["- *.o".into()],
            program_version: "0.1.0".into(),
            summary: SnapshotSummary {
                duration_ms: figures[0], files_new: figures[1], bytes_total: figures[2],
                bytes_stored_total: figures[3], chunks_total: figures[4], errors: figures[5],
                changed_during_read: figures[6], data_blobs_added: figures[7],
                ..Default::default()
            },
            notes,
            checkpoint,
        };
        let bytes = snap.encode().unwrap();
        prop_assert_eq!(Snapshot::decode(&bytes, "s").unwrap(), snap);
    }

    #[test]
    fn blob_round_trip(data in proptest::collection::vec(0u8..8, 0..30_000), which in 0usize..4, tree in any::<bool>()) {
        let (_b, repo) = new_repo();
        let compression = [Compression::None, Compression::Lz4, Compression::Zstd { level: 1 }, Compression::default()][which];
        let t = if tree { BlobType::Tree } else { BlobType::Data };
        let id = repo.blob_id(&data);
        let blob = repo.encode_blob(t, id, &data, compression).unwrap();
        prop_assert!(blob.bytes.len() <= data.len() + ENTRY_OVERHEAD);
        let (h, plain) = repo.decode_entry(&blob.bytes, Some((t, id)), "b").unwrap();
        prop_assert_eq!(h.id, id);
        prop_assert_eq!(plain, data);
    }

    /// Pack, then unpack: any set of blobs packed and scanned comes back, entry by entry,
    /// at the offsets the builder reported, and every entry decodes to its plaintext.
    #[test]
    fn pack_and_unpack(blobs in proptest::collection::vec(proptest::collection::vec(0u8..16, 0..5000), 1..12)) {
        let (_b, repo) = new_repo();
        let mut builder = PackBuilder::new(ObjectId::random().unwrap(), BlobType::Data, 1 << 16);
        let mut pushed = Vec::new();
        for data in &blobs {
            let id = repo.blob_id(data);
            let entry = builder.push(&repo.encode_blob(BlobType::Data, id, data, Compression::default()).unwrap()).unwrap();
            pushed.push((entry, data.clone()));
        }
        let pack = builder.finish();
        let (scanned, damage) = scan_pack(&pack.bytes, &pack.id);
        prop_assert!(damage.is_none());
        prop_assert_eq!(scanned.len(), pushed.len());
        for (found, (entry, data)) in scanned.iter().zip(&pushed) {
            prop_assert_eq!((found.id, found.offset, found.length), (entry.id, entry.offset, entry.length));
            let bytes = &pack.bytes[entry.offset as usize..(entry.offset + entry.length) as usize];
            let (_, plain) = repo.decode_entry(bytes, Some((BlobType::Data, entry.id)), "e").unwrap();
            prop_assert_eq!(&plain, data);
            prop_assert_eq!(entry.raw_len as usize, data.len());
        }
    }

    /// A pack read from storage a window at a time gives the entries and bytes that
    /// [`scan_pack`] finds in it whole, whatever the window, and reads each byte once.
    #[test]
    fn pack_reader_matches_scan(
        blobs in proptest::collection::vec(proptest::collection::vec(0u8..16, 0..5000), 0..12),
        window in 1u64..20_000,
    ) {
        let (backend, repo) = new_repo();
        let mut builder = PackBuilder::new(ObjectId::random().unwrap(), BlobType::Data, 1 << 16);
        for data in &blobs {
            let blob = repo.encode_blob(BlobType::Data, repo.blob_id(data), data, Compression::default()).unwrap();
            builder.push(&blob).unwrap();
        }
        let pack = builder.finish();
        repo.write_pack(&pack).unwrap();
        let (scanned, damage) = scan_pack(&pack.bytes, &pack.id);
        prop_assert!(damage.is_none());
        let len = pack.bytes.len() as u64;
        let mut reader = PackReader::new(&*backend, pack.id, len, window);
        let read: Vec<_> = reader.by_ref().map(Result::unwrap).collect();
        prop_assert_eq!(read.len(), scanned.len());
        for ((entry, bytes), want) in read.iter().zip(&scanned) {
            prop_assert_eq!(entry, want);
            let start = want.offset as usize;
            prop_assert_eq!(&bytes[..], &pack.bytes[start..start + want.length as usize]);
        }
        prop_assert_eq!(reader.bytes_read(), len);
    }

    /// Decoders take untrusted bytes: garbage gives an error, never a panic.
    #[test]
    fn decoders_survive_garbage(data in proptest::collection::vec(any::<u8>(), 0..400), prefix in 0usize..3) {
        let mut data = data;
        // Make some inputs get past the version/magic checks.
        match prefix {
            0 if data.len() >= 2 => { data[0] = 1; data[1] = 0; }
            1 if data.len() >= 8 => { data[..8].copy_from_slice(&Header::new(ObjectType::Pack, [0; 32]).encode()[..8]); }
            _ => {}
        }
        let _ = Tree::decode(&data, "t");
        let _ = Snapshot::decode(&data, "s");
        let _ = IndexFile::decode(&data, "i");
        let _ = Config::decode(&data);
        let _ = KeySlot::decode(&data, &ObjectId::ZERO);
        let _ = scan_pack(&data, &ObjectId::ZERO);
        let _ = EntryHeader::parse(&data, "e");
        for t in [ObjectType::Config, ObjectType::Pack, ObjectType::Key] {
            let _ = Header::decode(&data, t, "h");
        }
    }
}
