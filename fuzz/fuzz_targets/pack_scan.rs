//! Pack files: scanning arbitrary bytes never panics and every entry it reports lies
//! inside the data.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = arca_repo::ObjectId::from_bytes(if data.len() >= 40 {
        data[8..40].try_into().expect("32 bytes")
    } else {
        [0; 32]
    });
    let (entries, _) = arca_repo::scan_pack(data, &id);
    for e in entries {
        assert!(e.offset as usize + e.length as usize <= data.len());
    }
    let _ = arca_repo::EntryHeader::parse(data, "fuzz");
});
