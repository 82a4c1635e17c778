//! Config payloads: no panic; round trip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = arca_repo::Config::decode(data) {
        assert_eq!(
            arca_repo::Config::decode(&c.encode().expect("encodes")).expect("re-decodes"),
            c
        );
    }
});
