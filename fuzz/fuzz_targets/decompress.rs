//! Decompression of authenticated-but-hostile data (a key holder may write anything):
//! never panics, never returns a length other than the one asked for.
#![no_main]
use arca_repo::{Method, decompress};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let Some(method) = Method::from_code(data[0] % 3) else {
        return;
    };
    let raw_len = usize::from(u16::from_le_bytes([data[1], data[2]])) * 16;
    if let Ok(out) = decompress(method, &data[3..], raw_len, "fuzz") {
        assert_eq!(out.len(), raw_len);
    }
});
