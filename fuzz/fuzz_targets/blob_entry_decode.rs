//! Pack entries under a fixed key: arbitrary bytes are rejected cleanly; entries the
//! fuzzer builds from a valid one (by mutation) never decode to wrong content.
#![no_main]
use std::sync::OnceLock;

use arca_crypto::{MasterKey, Opener, Sealer};
use arca_repo::{BlobId, BlobType, Compression, decode_entry, encode_blob};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static (Opener, Vec<u8>, Vec<u8>) {
    static KEYS: OnceLock<(Opener, Vec<u8>, Vec<u8>)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let master = MasterKey::from_bytes(&[7u8; 64]).expect("64 bytes");
        let sealer = Sealer::new(master.encryption_key()).expect("session");
        let plain = b"known plaintext known plaintext".repeat(20);
        let entry = encode_blob(
            &sealer,
            BlobType::Data,
            BlobId([1; 32]),
            &plain,
            Compression::Zstd { level: 3 },
        )
        .expect("encodes")
        .bytes;
        (Opener::new(master.encryption_key()), entry, plain)
    })
}

fuzz_target!(|data: &[u8]| {
    let (opener, valid, plain) = keys();
    let _ = decode_entry(opener, data, None, "fuzz");
    // Splice the input into a valid entry: only the unmodified entry may decode.
    let mut spliced = valid.clone();
    if !data.is_empty() {
        let at = usize::from(data[0]) % spliced.len();
        for (i, b) in data[1..].iter().enumerate().take(spliced.len() - at) {
            spliced[at + i] ^= b;
        }
    }
    if let Ok((_, out)) = decode_entry(opener, &spliced, None, "fuzz") {
        assert_eq!(&spliced, valid);
        assert_eq!(&out, plain);
    }
});
