//! Tree payloads are untrusted: decoding must never panic, and what decodes re-encodes
//! to the same bytes (the encoding is deterministic and canonical).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = arca_repo::Tree::decode(data, "fuzz") {
        let again = tree.encode().expect("a decoded tree encodes");
        assert_eq!(
            arca_repo::Tree::decode(&again, "fuzz").expect("re-decodes"),
            tree
        );
    }
});
