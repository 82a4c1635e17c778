//! Snapshot payloads: no panic; decoded snapshots round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = arca_repo::Snapshot::decode(data, "fuzz") {
        let again = s.encode().expect("encodes");
        assert_eq!(
            arca_repo::Snapshot::decode(&again, "fuzz").expect("re-decodes"),
            s
        );
    }
});
