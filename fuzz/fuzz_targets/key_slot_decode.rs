//! Key slot files: parsing (header, KDF parameters with their bounds) never panics, and
//! a parsed slot re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = arca_repo::ObjectId::from_bytes(if data.len() >= 40 {
        data[8..40].try_into().expect("32 bytes")
    } else {
        [0; 32]
    });
    if let Ok(slot) = arca_repo::KeySlot::decode(data, &id) {
        assert_eq!(slot.encode(), data);
    }
});
