//! Tree blobs read without a metadata cache: their pack is read whole and kept in
//! memory, and a damaged tree costs no second read of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arca_backends::{Call, FileKind, Intercept, ObjectId, WriteBackend};
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
