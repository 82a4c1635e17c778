//! Damaged packs as `check --read-data` reports them: every stored byte read, damage
//! told apart from storage errors, and intact entries before the damage verified.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use arca_backends::{FileKind, MemoryBackend, ObjectId, ReadBackend, WriteBackend};
use arca_core::{BackupOptions, CheckOptions, CheckReport, NoProgress, Repository};
use bytes::Bytes;

/// A repository holding three 1.5 MiB files, and its data pack (the largest) with its
/// bytes.
fn repository() -> (Arc<MemoryBackend>, ObjectId, Bytes) {
    let memory = Arc::new(MemoryBackend::new());
    let mut repo = Repository::init(memory.clone(), b"pw", &common::fast_init()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        std::fs::write(
            dir.path().join(name),
            common::noise(3 << 19, 2 * i as u64 + 1),
        )
        .unwrap();
    }
    repo.backup(
        &[dir.path().to_path_buf()],
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let (pack, _) = memory
        .list(FileKind::Pack)
        .unwrap()
        .into_iter()
        .max_by_key(|(_, len)| *len)
        .unwrap();
    let bytes = memory.read_full(FileKind::Pack, &pack).unwrap();
    (memory, pack, bytes)
}

fn replace(memory: &MemoryBackend, pack: &ObjectId, bytes: Bytes) {
    memory.remove(FileKind::Pack, pack).unwrap();
    memory.write(FileKind::Pack, pack, bytes).unwrap();
}

fn check(memory: Arc<MemoryBackend>) -> CheckReport {
    let repo = Repository::open(memory, b"pw").unwrap();
    let options = CheckOptions {
        read_data: true,
        ..Default::default()
    };
    repo.check(&options, &NoProgress).unwrap()
}

#[test]
fn a_truncated_pack_is_damage_and_what_precedes_the_cut_is_verified() {
    let (memory, pack, bytes) = repository();
    let cut = bytes.len() - 1000;
    let (entries, _) = arca_repo::scan_pack(&bytes, &pack);
    let cut_entry = entries.last().unwrap().offset as u64;
    replace(&memory, &pack, bytes.slice(..cut));
    let listed: u64 = memory
        .list(FileKind::Pack)
        .unwrap()
        .iter()
        .map(|(_, l)| l)
        .sum();
    let report = check(memory);
    let messages: Vec<String> = report
        .errors
        .iter()
        .map(|p| format!("{}: {}", p.object, p.message))
        .collect();
    let about_pack = |text: &str| {
        messages
            .iter()
            .any(|m| m.starts_with(&format!("pack {pack}")) && m.contains(text))
    };
    assert!(about_pack("truncated"), "{messages:#?}");
    assert!(about_pack("past the end"), "{messages:#?}");
    assert!(
        messages.iter().all(|m| !m.contains("unreadable")),
        "{messages:#?}"
    );
    // Only the file whose last chunk was cut cannot be restored.
    let lost: Vec<&String> = messages
        .iter()
        .filter(|m| m.contains("cannot be restored"))
        .collect();
    assert_eq!(lost.len(), 1, "{messages:#?}");
    // Every byte up to the cut entry is read, and none twice; the cut entry's own
    // bytes are read only if its window reached them before its header was found
    // wrong, which depends on where the repository's chunking key put the cuts.
    let before_cut = listed - cut as u64 + cut_entry;
    assert!(
        (before_cut..=listed).contains(&report.bytes_read),
        "read {} bytes, {before_cut} precede the cut entry, {listed} are stored",
        report.bytes_read
    );
}

#[test]
fn an_unindexed_damaged_entry_after_the_last_indexed_one_is_found() {
    let (memory, pack, bytes) = repository();
    assert!(check(memory.clone()).is_ok());
    // A copy of the pack's last entry with one byte of its body flipped, appended: in
    // no index, so only reading the pack to its end finds it.
    let (entries, damage) = arca_repo::scan_pack(&bytes, &pack);
    assert!(damage.is_none());
    let last = entries.last().unwrap();
    let start = last.offset as usize;
    let mut extra = bytes[start..start + last.length as usize].to_vec();
    let middle = extra.len() / 2;
    extra[middle] ^= 1;
    let mut damaged = bytes.to_vec();
    damaged.extend_from_slice(&extra);
    replace(&memory, &pack, Bytes::from(damaged));
    let report = check(memory);
    let found: Vec<_> = report
        .errors
        .iter()
        .filter(|p| p.object == format!("blob {} in pack {pack}", last.id))
        .collect();
    assert_eq!(found.len(), 1, "{:?}", report.errors);
    assert!(found[0].message.contains("authentic"), "{:?}", found[0]);
}
