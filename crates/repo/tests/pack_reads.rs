//! Reading packs from storage: tree blobs without a metadata cache (their pack read
//! whole and kept in memory; a damaged tree costs no second read of it), and the
//! entries of a whole pack (`Repo::read_pack_entries`) when storage fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arca_backends::{BackendError, Call, ErrorKind, FileKind, Intercept, ObjectId, WriteBackend};
use arca_repo::*;

mod common;
use common::new_repo;

#[test]
fn a_damaged_tree_is_an_error_without_reading_its_pack_again() {
    let (memory, repo) = new_repo();
    let mut builder = PackBuilder::new(ObjectId::random().unwrap(), BlobType::Tree, 1 << 20);
    let trees: Vec<(BlobId, Vec<u8>)> = (0..2u8)
        .map(|n| {
            let data = vec![n; 300];
            let id = repo.blob_id(&data);
            let blob = repo
                .encode_blob(BlobType::Tree, id, &data, Compression::None)
                .unwrap();
            builder.push(&blob).unwrap();
            (id, data)
        })
        .collect();
    let pack = builder.finish();
    let mut index = Index::new();
    index.add_pack(pack.id, &pack.entries);
    // Stored with a bit of the first tree flipped.
    let first = index.get(BlobType::Tree, &trees[0].0).unwrap();
    let mut bytes = pack.bytes.to_vec();
    bytes[first.offset as usize + 50] ^= 1;
    memory
        .write(FileKind::Pack, &pack.id, bytes.into())
        .unwrap();

    let reads = Arc::new(AtomicU64::new(0));
    let counted = reads.clone();
    let backend: Arc<dyn WriteBackend> = Arc::new(Intercept::new(
        memory,
        Box::new(move |call| {
            if let Call::Read(FileKind::Pack, _) = call {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }),
    ));
    let reader = Repo::open(backend, b"pw").unwrap();
    assert!(reader.cache().is_none());
    let err = reader
        .read_blob(BlobType::Tree, &trees[0].0, &first)
        .unwrap_err();
    assert!(matches!(err, RepoError::Corrupt { .. }), "{err}");
    let second = index.get(BlobType::Tree, &trees[1].0).unwrap();
    assert_eq!(
        reader
            .read_blob(BlobType::Tree, &trees[1].0, &second)
            .unwrap(),
        trees[1].1
    );
    assert_eq!(reads.load(Ordering::SeqCst), 1, "the pack is read once");
}

#[test]
fn a_pack_missing_or_removed_while_read_has_no_entries_and_a_bad_header_is_damage() {
    let (memory, repo) = new_repo();
    // Two incompressible 3 MiB blobs: more than one read window.
    let mut builder = PackBuilder::new(ObjectId::random().unwrap(), BlobType::Data, 16 << 20);
    for seed in 0..2u64 {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let data: Vec<u8> = (0..3 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let blob = repo
            .encode_blob(
                BlobType::Data,
                repo.blob_id(&data),
                &data,
                Compression::default(),
            )
            .unwrap();
        builder.push(&blob).unwrap();
    }
    let pack = builder.finish();
    repo.write_pack(&pack).unwrap();
    let len = pack.bytes.len() as u64;
    assert!(len > PACK_READ_WINDOW);

    // Intact: both entries.
    let (entries, damaged) = repo.read_pack_entries(&pack.id, len).unwrap().unwrap();
    assert_eq!((entries.len(), damaged), (2, false));
    // Missing.
    let other = ObjectId::random().unwrap();
    assert!(repo.read_pack_entries(&other, len).unwrap().is_none());

    // Removed between its first and second read: as if it had not been there.
    let reads = Arc::new(AtomicU64::new(0));
    let counted = reads.clone();
    let backend: Arc<dyn WriteBackend> = Arc::new(Intercept::new(
        memory.clone(),
        Box::new(move |call| match call {
            Call::Read(FileKind::Pack, _) if counted.fetch_add(1, Ordering::SeqCst) == 1 => Err(
                BackendError::new(ErrorKind::NotFound, "read", "data", "gone"),
            ),
            _ => Ok(()),
        }),
    ));
    let reader = Repo::open(backend, b"pw").unwrap();
    assert!(reader.read_pack_entries(&pack.id, len).unwrap().is_none());
    assert_eq!(reads.load(Ordering::SeqCst), 2);

    // A header of another pack: damage, nothing listed.
    let mut bytes = pack.bytes.to_vec();
    bytes[8] ^= 1;
    let copy = ObjectId::random().unwrap();
    memory.write(FileKind::Pack, &copy, bytes.into()).unwrap();
    let (entries, damaged) = repo.read_pack_entries(&copy, len).unwrap().unwrap();
    assert!(entries.is_empty() && damaged);
}
