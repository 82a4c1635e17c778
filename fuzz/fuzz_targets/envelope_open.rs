//! The AEAD envelope parser: arbitrary bytes never panic and never authenticate.
#![no_main]
use std::sync::OnceLock;

use arca_crypto::{Opener, SecretKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static OPENER: OnceLock<Opener> = OnceLock::new();
    let opener = OPENER.get_or_init(|| Opener::new(&SecretKey::from_bytes([3; 32])));
    assert!(opener.open(b"aad", data).is_err());
    let _ = arca_crypto::unwrap_key(&SecretKey::from_bytes([4; 32]), b"aad", data);
});
