//! Chunking any input yields in-bounds chunks that reassemble to the input.
#![no_main]
use arca_chunker::{Chunker, ChunkerParams, GearTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = ChunkerParams {
        min_size: 64,
        avg_size: 256,
        max_size: 1024,
        normalization: 2,
    };
    let chunker = Chunker::new(params, GearTable::from_bytes(&[9; 2048])).expect("valid");
    let mut joined = Vec::new();
    for chunk in chunker.chunks(data, data.len() as u64) {
        let chunk = chunk.expect("reading a slice cannot fail");
        assert!(chunk.len() <= 1024 && !chunk.is_empty());
        joined.extend_from_slice(&chunk);
    }
    assert_eq!(joined, data);
});
