//! Key slots locked by a generated secret: golden bytes (built with Python's
//! `cryptography` and `hmac`, independently of this code), damage, and which slots a
//! secret and a passphrase are tried against.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arca_backends::{FileKind, ObjectId, ReadBackend, WriteBackend};
use arca_crypto::GeneratedSecret;
use arca_repo::*;

mod common;
use common::{FAST_KDF, new_repo};

/// Slot `22…22` wrapping master key `a0 a1 … df` for repository `33…33`, created
/// 1700000000 s + 5 ns by user@host, locked by the secret `40 41 … 5f` with salt
/// `80 81 … 9f` and nonce `00 01 … 0b`.
const GOLDEN_SECRET_SLOT: &str = "4152434101020000222222222222222222222222222222222222222222222222222222222222222202000000000000000000000000808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f000102030405060708090a0b897ee77adfc3b3e99fc49fbc94cdcac91938bb6e56aab2b45a2d0904ec88db24332898f4f1e706fba4df606173370de1d3cb9d69cfb85c15b38559d4b640327eac32d71977f8cd1724b774ef3937b65174218c74c81ae702c61c0cfb17d3059a71aaec901c684eac7059e89050c378cab2415e1229d4631952cfd97d6a9c1281c1d1fb2aa4bf15d37cd1";

const GOLDEN_SECRET: &str =
    "arca-secret-v1:404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";

fn info(repo: &Repo) -> KeyInfo {
    KeyInfo {
        repository_id: repo.config().repository_id,
        created: Timestamp::default(),
        hostname: "h".into(),
        username: "u".into(),
    }
}

#[test]
fn secret_slot_golden_bytes() {
    let bytes = hex::decode(GOLDEN_SECRET_SLOT).unwrap();
    let id = ObjectId::from_bytes([0x22; 32]);
    let slot = KeySlot::decode(&bytes, &id).unwrap();
    assert_eq!(slot.kdf, SlotKdf::Secret);
    assert_eq!(slot.encode(), bytes);

    let (master, info) = slot.open(GOLDEN_SECRET.as_bytes()).unwrap();
    let expected: Vec<u8> = (0xa0..0xe0).collect();
    assert_eq!(&master.to_bytes()[..], &expected[..]);
    assert_eq!(info.repository_id, ObjectId::from_bytes([0x33; 32]));
    assert_eq!(
        info.created,
        Timestamp {
            secs: 1_700_000_000,
            nanos: 5
        }
    );
    assert_eq!(
        (info.hostname.as_str(), info.username.as_str()),
        ("host", "user")
    );

    // Anything but the secret is a wrong password, and costs nothing to refuse.
    let other = GeneratedSecret::from_bytes([0x40; 32]).to_text();
    for wrong in [other.as_bytes(), b"pw", &GOLDEN_SECRET.as_bytes()[15..]] {
        assert!(matches!(slot.open(wrong), Err(RepoError::WrongPassword)));
    }
}

#[test]
fn secret_slots_refuse_damage() {
    let bytes = hex::decode(GOLDEN_SECRET_SLOT).unwrap();
    let id = ObjectId::from_bytes([0x22; 32]);
    // Cost fields must be zero; unknown algorithms are refused; both name the slot.
    for (at, value) in [(41, 1u8), (48, 1), (52, 0x80), (40, 3), (40, 0)] {
        let mut bad = bytes.clone();
        bad[at] = value;
        let err = KeySlot::decode(&bad, &id).unwrap_err();
        assert!(matches!(err, RepoError::Corrupt { .. }), "{at}: {err}");
        assert!(err.to_string().contains(&format!("key {id}")), "{err}");
    }
    // Salt, nonce, ciphertext and tag are authenticated: a flipped bit anywhere after
    // the algorithm byte is a wrong secret.
    for at in [53, 84, 85, 96, 97, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 1;
        let slot = KeySlot::decode(&bad, &id).unwrap();
        assert!(matches!(
            slot.open(GOLDEN_SECRET.as_bytes()),
            Err(RepoError::WrongPassword)
        ));
    }
    // A passphrase slot relabelled as a secret's is refused as damaged (its cost
    // fields are not zero) rather than reported as a wrong secret.
    let (backend, _) = new_repo();
    let (pid, _) = backend.list(FileKind::Key).unwrap()[0];
    let mut data = backend.read_full(FileKind::Key, &pid).unwrap().to_vec();
    data[40] = 2;
    assert!(matches!(
        KeySlot::decode(&data, &pid),
        Err(RepoError::Corrupt { .. })
    ));
}

#[test]
fn a_secret_and_a_passphrase_each_open_only_their_own_kind_of_slot() {
    let (backend, repo) = new_repo();
    let secret = GeneratedSecret::generate().unwrap();
    let text = secret.to_text();
    let slot = repo
        .create_key_slot(SlotLock::Secret(&secret), &info(&repo))
        .unwrap();
    repo.store_key_slot(&slot).unwrap();
    let opened = Repo::open(backend.clone(), text.as_bytes()).unwrap();
    assert_eq!(opened.key_id(), slot.id);
    assert_eq!(opened.config(), repo.config());
    assert_ne!(
        Repo::open(backend.clone(), b"pw").unwrap().key_id(),
        slot.id
    );

    // A secret's text is no password: no slot is made for it...
    let err = repo
        .create_key_slot(
            SlotLock::Passphrase(text.as_bytes(), FAST_KDF),
            &info(&repo),
        )
        .unwrap_err();
    assert!(matches!(err, RepoError::InvalidInput(_)), "{err}");
    // ...and one made by hand, which Argon2id over the text unwraps, is refused by it
    // without deriving anything: a wrong or old secret never pays for Argon2id.
    let id = [0x44; 32];
    let salt = [0x55; 32];
    let mut prefix = b"ARCA\x01\x02\x00\x00".to_vec();
    prefix.extend_from_slice(&id);
    prefix.push(1);
    for cost in [64u32, 1, 1] {
        prefix.extend_from_slice(&cost.to_le_bytes());
    }
    prefix.extend_from_slice(&salt);
    let key = arca_crypto::derive_wrapping_key(text.as_bytes(), &salt, &FAST_KDF).unwrap();
    let wrapped = arca_crypto::wrap_key(&key, &prefix, b"anything").unwrap();
    assert_eq!(
        &arca_crypto::unwrap_key(&key, &prefix, &wrapped).unwrap()[..],
        b"anything"
    );
    let bytes = [prefix, wrapped].concat();
    let argon_slot = KeySlot::decode(&bytes, &ObjectId::from_bytes(id)).unwrap();
    assert_eq!(argon_slot.kdf, SlotKdf::Argon2id(FAST_KDF));
    assert!(matches!(
        argon_slot.open(text.as_bytes()),
        Err(RepoError::WrongPassword)
    ));

    // Neither kind of lock shows its secret in Debug output.
    let shown = format!(
        "{:?} {:?}",
        SlotLock::Passphrase(b"hunter2", FAST_KDF),
        SlotLock::Secret(&secret)
    );
    assert!(
        !shown.contains("hunter2") && !shown.contains("104, 117"),
        "{shown}"
    );
    assert!(!shown.contains(&text[15..]), "{shown}");

    // Without its slot, the secret opens nothing.
    backend.remove(FileKind::Key, &slot.id).unwrap();
    assert!(matches!(
        Repo::open(backend, text.as_bytes()),
        Err(RepoError::WrongPassword)
    ));
}
