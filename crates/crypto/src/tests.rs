//! Known-answer vectors (computed with independent implementations: Python's hashlib,
//! hmac, blake3, `cryptography` and `argon2-cffi`) and round-trip properties.

use proptest::prelude::*;

use super::*;

fn key(start: u8) -> SecretKey {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = start.wrapping_add(i as u8);
    }
    SecretKey::from_bytes(k)
}

fn pattern() -> Vec<u8> {
    (0..100_000u32).map(|i| (i % 251) as u8).collect()
}

#[test]
fn id_known_answers() {
    let cases: [(&str, Vec<u8>, [&str; 3]); 3] = [
        (
            "empty",
            vec![],
            [
                "4e51e7a913fc80137da52880fecca175bf81e117d5c68126dc2774033517ea0d",
                "d38b42096d80f45f826b44a9d5607de72496a415d3f4a1a8c88e3bb9da8dc1cb",
                "73492b19995d71cdb1e9d74decc09809eb732f1b00bc95c27cb15f9dd4d6478f",
            ],
        ),
        (
            "abc",
            b"abc".to_vec(),
            [
                "d63a32d3e44738d7907f964316c241adaba0abfeabc32349677578a15a203f7f",
                "f0133729c4163dede81e21cd47839256da58171238c8a0d874397c73b14e1e47",
                "6da54495d8152f2bcba87bd7282df70901cdb66b4448ed5f4c7bd2852b8b5532",
            ],
        ),
        (
            "pattern",
            pattern(),
            [
                "a3d6678f3ac4f0550dbc8621a3bdba2fd20d2b5181e935a068799a1c2e7fa69e",
                "0d4ff166a50da654bd916adef42356da4d2a066f5154d2d569a4e4d367afb71d",
                "4389bac55bc43c5254f0010c83a2a134dd19c22c3602e3654e3fad46af5edbaf",
            ],
        ),
    ];
    for (name, data, expected) in cases {
        for (alg, want) in IdAlgorithm::ALL.into_iter().zip(expected) {
            let hasher = IdHasher::new(alg, &key(0)).unwrap();
            assert_eq!(hex::encode(hasher.id(&data)), want, "{name} {alg}");
        }
    }
}

#[test]
fn id_algorithm_codes_and_names_round_trip() {
    for alg in IdAlgorithm::ALL {
        assert_eq!(IdAlgorithm::from_code(alg.code()), Some(alg));
        assert_eq!(IdAlgorithm::from_name(alg.name()), Some(alg));
    }
    assert_eq!(IdAlgorithm::from_code(0), None);
    assert_eq!(IdAlgorithm::from_name("md5"), None);
    // The codes are on disk: pin them.
    assert_eq!(
        IdAlgorithm::ALL.map(IdAlgorithm::code),
        [1, 2, 3],
        "on-disk codes changed"
    );
}

#[test]
fn envelope_known_answer() {
    let session: [u8; 16] = std::array::from_fn(|i| 16 + i as u8);
    let sealer = Sealer::with_session(&key(0), session, 5);
    let envelope = sealer.seal(b"arca aad", b"hello arca").unwrap();
    assert_eq!(
        hex::encode(&envelope),
        "101112131415161718191a1b1c1d1e1f0500000000000000\
         896b50fbea3e13dce2a2decc35d5a7d3a20307e8f0d746347c3f"
    );
    assert_eq!(
        Opener::new(&key(0)).open(b"arca aad", &envelope).unwrap(),
        b"hello arca"
    );
}

#[test]
fn expand_key_known_answer() {
    let mut out = [0u8; 64];
    expand_key(&key(0), b"label", b"context", &mut out).unwrap();
    assert_eq!(
        hex::encode(out),
        "c549d26a47b5543a762a83a0c8e01670d8f4da3d9ecbcfc8329ff88d36f9cc6d\
         6431de2100b4228811f389c66f28bb85242cee50a3092efab2eb3c4d2ea0ec39"
    );
}

#[test]
fn argon2id_known_answer() {
    let salt: [u8; 32] = std::array::from_fn(|i| 100 + i as u8);
    let params = KdfParams {
        memory_kib: 64,
        iterations: 2,
        parallelism: 1,
    };
    let k = derive_wrapping_key(b"correct horse", &salt, &params).unwrap();
    assert_eq!(
        hex::encode(k.expose()),
        "4ead07175f90118ab9f3fbc026f23ffede563aa1b55fdd18b562675a3e75fa0c"
    );
}

/// HKDF computed by hand with Python's `hmac` (RFC 5869: PRK = HMAC(label, secret),
/// OKM = HMAC(PRK, salt || 0x01)).
#[test]
fn generated_secret_known_answer_and_text() {
    let secret = GeneratedSecret::from_bytes(std::array::from_fn(|i| 0x40 + i as u8));
    let salt: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
    let k = secret.wrapping_key(&salt).unwrap();
    assert_eq!(
        hex::encode(k.expose()),
        "ffb3a26ac4df3a2959328192ae8fd5ca2bf887940b4e70d02d372ec3f3359c83"
    );
    let text = "arca-secret-v1:404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
    assert_eq!(secret.to_text().as_str(), text);
    let back = GeneratedSecret::parse(
        format!(
            " {}\r\n",
            text.to_uppercase()
                .replace("ARCA-SECRET-V1", "arca-secret-v1")
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(back.wrapping_key(&salt).unwrap().expose(), k.expose());
    // Anything else is a passphrase.
    for not in [
        "",
        "arca-secret-v1:",
        &text[..text.len() - 2],
        &format!("{text}00"),
        &text.replace("4041", "404g"),
        &text.replace("v1", "v2"),
        &text[15..],
    ] {
        assert!(GeneratedSecret::parse(not.as_bytes()).is_none(), "{not}");
    }
    // A salt makes another key; a fresh secret is another secret.
    assert_ne!(secret.wrapping_key(&[0; 32]).unwrap().expose(), k.expose());
    let fresh = GeneratedSecret::generate().unwrap();
    assert_ne!(fresh.to_text(), secret.to_text());
    assert!(!format!("{fresh:?}").contains(&fresh.to_text()[15..]));
}

#[test]
fn unwrap_known_answer_and_wrong_key() {
    let wrapped = hex::decode(
        "000102030405060708090a0bb5400c9d66e964a7b39b16db229eb5fa\
         a46e80f8ec32c6c96edaf6a0eeac7ad0",
    )
    .unwrap();
    let plain = unwrap_key(&key(200), b"slot aad", &wrapped).unwrap();
    assert_eq!(&plain[..], b"master key bytes");
    assert!(matches!(
        unwrap_key(&key(201), b"slot aad", &wrapped),
        Err(CryptoError::Authentication)
    ));
    assert!(matches!(
        unwrap_key(&key(200), b"other aad", &wrapped),
        Err(CryptoError::Authentication)
    ));
    assert!(matches!(
        unwrap_key(&key(200), b"slot aad", &wrapped[..20]),
        Err(CryptoError::Truncated { .. })
    ));
}

#[test]
fn kdf_params_are_bounded() {
    let ok = KdfParams::default();
    assert!(ok.validate().is_ok());
    for bad in [
        KdfParams {
            memory_kib: KdfParams::MAX_MEMORY_KIB + 1,
            ..ok
        },
        KdfParams {
            memory_kib: 4,
            ..ok
        },
        KdfParams {
            iterations: 0,
            ..ok
        },
        KdfParams {
            parallelism: 0,
            ..ok
        },
        KdfParams {
            parallelism: 17,
            ..ok
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
        assert!(derive_wrapping_key(b"pw", &[0; 32], &bad).is_err());
    }
}

#[test]
fn counters_never_repeat_across_threads() {
    let sealer = std::sync::Arc::new(Sealer::new(&key(0)).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let s = sealer.clone();
            std::thread::spawn(move || {
                (0..500)
                    .map(|_| s.seal(b"", b"x").unwrap()[..24].to_vec())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = std::collections::HashSet::new();
    for h in handles {
        for nonce in h.join().unwrap() {
            assert!(all.insert(nonce), "nonce repeated");
        }
    }
    assert_eq!(all.len(), 2000);
}

#[test]
fn sessions_rotate_at_the_message_bound() {
    let session = [7u8; 16];
    let sealer = Sealer::with_session(&key(0), session, SESSION_MAX_MESSAGES - 1);
    let last = sealer.seal(b"", b"a").unwrap();
    let next = sealer.seal(b"", b"b").unwrap();
    assert_eq!(&last[..16], &session);
    assert_ne!(&next[..16], &session, "the exhausted session was reused");
    assert_eq!(&next[16..24], &0u64.to_le_bytes());
    let opener = Opener::new(&key(0));
    assert_eq!(opener.open(b"", &last).unwrap(), b"a");
    assert_eq!(opener.open(b"", &next).unwrap(), b"b");
}

#[test]
fn secrets_do_not_leak_through_debug() {
    let m = MasterKey::generate().unwrap();
    let hexkey = hex::encode(m.encryption_key().expose());
    let text = format!(
        "{m:?} {:?} {:?} {:?} {:?}",
        m.encryption_key(),
        Sealer::new(m.encryption_key()).unwrap(),
        Opener::new(m.encryption_key()),
        IdHasher::new(IdAlgorithm::Blake3, m.id_key()).unwrap()
    );
    assert!(!text.contains(&hexkey));
    assert!(!text.contains(&format!("{:?}", m.encryption_key().expose())));
}

#[test]
fn master_key_bytes_round_trip() {
    let m = MasterKey::generate().unwrap();
    let back = MasterKey::from_bytes(&m.to_bytes()[..]).unwrap();
    assert_eq!(back.encryption_key().expose(), m.encryption_key().expose());
    assert_eq!(back.id_key().expose(), m.id_key().expose());
    assert_ne!(m.encryption_key().expose(), m.id_key().expose());
    assert!(MasterKey::from_bytes(&[0u8; 63]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn seal_open_round_trip(plain in proptest::collection::vec(any::<u8>(), 0..5000), aad in proptest::collection::vec(any::<u8>(), 0..64)) {
        let sealer = Sealer::new(&key(9)).unwrap();
        let env = sealer.seal(&aad, &plain).unwrap();
        prop_assert_eq!(env.len(), plain.len() + ENVELOPE_OVERHEAD);
        prop_assert_eq!(Opener::new(&key(9)).open(&aad, &env).unwrap(), plain);
    }

    /// Any single-bit change anywhere in an envelope is detected.
    #[test]
    fn tampering_is_detected(plain in proptest::collection::vec(any::<u8>(), 0..600), bit in any::<proptest::sample::Index>()) {
        let sealer = Sealer::new(&key(3)).unwrap();
        let mut env = sealer.seal(b"aad", &plain).unwrap();
        let i = bit.index(env.len() * 8);
        env[i / 8] ^= 1 << (i % 8);
        prop_assert!(Opener::new(&key(3)).open(b"aad", &env).is_err());
    }

    #[test]
    fn generated_secret_text_round_trip(bytes in any::<[u8; 32]>()) {
        let secret = GeneratedSecret::from_bytes(bytes);
        let back = GeneratedSecret::parse(secret.to_text().as_bytes()).unwrap();
        prop_assert_eq!(back.to_text(), secret.to_text());
    }

    #[test]
    fn wrap_unwrap_round_trip(plain in proptest::collection::vec(any::<u8>(), 0..200)) {
        let w = wrap_key(&key(1), b"aad", &plain).unwrap();
        prop_assert_eq!(&unwrap_key(&key(1), b"aad", &w).unwrap()[..], &plain[..]);
    }

    #[test]
    fn truncated_envelopes_fail_cleanly(len in 0usize..ENVELOPE_OVERHEAD + 4) {
        let env = Sealer::new(&key(2)).unwrap().seal(b"", b"abcd").unwrap();
        prop_assert!(Opener::new(&key(2)).open(b"", &env[..len.min(env.len() - 1)]).is_err());
    }
}
