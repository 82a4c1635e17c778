//! Index payloads: no panic, no allocation beyond the input's size; round trip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = arca_repo::IndexFile::decode(data, "fuzz") {
        assert_eq!(file.encode(), data, "index encoding is canonical");
    }
});
