//! Exported key text (plain and paper, `arca key import`): parsing never panics; a parsed
//! key written again in its format reads back as the same slot; a line the paper reader
//! rejects leaves it as it was.
#![no_main]
use arca_repo::{ExportedKey, KeyTextFormat, ObjectId, PaperKeyReader, encode_key_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [None, Some(KeyTextFormat::Plain), Some(KeyTextFormat::Paper)] {
        let Ok(key) = ExportedKey::parse(text, format) else {
            continue;
        };
        // The repository the text names, padded to a full id.
        let hint = key.repository_hint();
        let mut id = [0u8; 32];
        for (i, byte) in id.iter_mut().enumerate().take(hint.len() / 2) {
            *byte = u8::from_str_radix(&hint[2 * i..2 * i + 2], 16).expect("hex");
        }
        let id = ObjectId::from_bytes(id);
        assert!(key.names_repository(&id));
        let again = encode_key_text(key.format(), key.slot(), &id).expect("encodes");
        let back = ExportedKey::parse(&again, Some(key.format())).expect("reads back");
        assert_eq!(back.slot().encode(), key.slot().encode());
        assert!(back.names_repository(&id));
    }
    let mut reader = PaperKeyReader::new();
    for line in text.lines() {
        let before = (reader.next_line(), reader.lines(), reader.is_complete());
        if reader.push(line).is_err() {
            assert_eq!(
                (reader.next_line(), reader.lines(), reader.is_complete()),
                before
            );
        }
    }
    let _ = reader.finish();
});
