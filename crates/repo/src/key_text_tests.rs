#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use super::*;
use crate::header::{Header, ObjectType};

/// Slot bytes with the given id, salt and wrapped part (not a real wrapped key: the text
/// formats never look inside).
fn slot_bytes(id: [u8; 32], memory_kib: u32, salt: [u8; 32], wrapped: &[u8]) -> Vec<u8> {
    let mut out = Header::new(ObjectType::Key, id).encode().to_vec();
    out.push(1);
    out.extend_from_slice(&memory_kib.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(wrapped);
    out
}

/// A fixed 130-byte slot: 8 full paper lines and a last one of 2 bytes.
fn fixed_slot() -> KeySlot {
    let wrapped: Vec<u8> = (0u8..45).collect();
    KeySlot::decode_unnamed(&slot_bytes([0x11; 32], 8, [0x22; 32], &wrapped), "test").unwrap()
}

fn fixed_repository() -> ObjectId {
    ObjectId::from_bytes(std::array::from_fn(|i| i as u8))
}

/// Checked against an independent implementation (Python's `base64`, `zlib.crc32` and
/// `binascii.crc_hqx(data, 0xffff)`, which is CRC-16/IBM-3740).
const GOLDEN_PLAIN: &str = "\
arca key v1 repository 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
QVJDQQECAAAREREREREREREREREREREREREREREREREREREREREREQEIAAAAAQAA
AAEAAAAiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIgABAgMEBQYHCAkK
CwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLA==
crc32 053e5852
";

const GOLDEN_PAPER: &str = "\
arca paper key v1 (repository 0001020304050607; arca key import --paper)
 1: 0001 0203 0405 0607 / 10 / 740c 7906 - d5bf
 2: 4152 4341 0102 0000 1111 1111 1111 1111 - 5c10
 3: 1111 1111 1111 1111 1111 1111 1111 1111 - 248b
 4: 1111 1111 1111 1111 0108 0000 0001 0000 - 9a2b
 5: 0001 0000 0022 2222 2222 2222 2222 2222 - 6a68
 6: 2222 2222 2222 2222 2222 2222 2222 2222 - 87eb
 7: 2222 2222 2200 0102 0304 0506 0708 090a - 8817
 8: 0b0c 0d0e 0f10 1112 1314 1516 1718 191a - 7f70
 9: 1b1c 1d1e 1f20 2122 2324 2526 2728 292a - a566
10: 2b2c - 7cf3
";

fn encode(format: KeyTextFormat) -> String {
    encode_key_text(format, &fixed_slot(), &fixed_repository()).unwrap()
}

fn line_of(err: RepoError) -> usize {
    match err {
        RepoError::KeyText { line, .. } => line,
        other => panic!("not a key text error: {other}"),
    }
}

#[test]
fn checksums_match_their_published_check_values() {
    // The "check" value of each CRC catalogue entry: the CRC of ASCII "123456789".
    assert_eq!(crc16(b"123456789"), 0x29B1);
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn golden_plain() {
    assert_eq!(encode(KeyTextFormat::Plain), GOLDEN_PLAIN);
    let key = ExportedKey::parse(GOLDEN_PLAIN, None).unwrap();
    assert_eq!(key.slot().encode(), fixed_slot().encode());
    assert_eq!(key.format(), KeyTextFormat::Plain);
    assert_eq!(key.repository_hint(), fixed_repository().to_string());
}

#[test]
fn golden_paper() {
    assert_eq!(encode(KeyTextFormat::Paper), GOLDEN_PAPER);
    let key = ExportedKey::parse(GOLDEN_PAPER, None).unwrap();
    assert_eq!(key.slot().encode(), fixed_slot().encode());
    assert_eq!(key.format(), KeyTextFormat::Paper);
    assert_eq!(key.repository_hint(), "0001020304050607");
}

#[test]
fn the_repository_named_is_checked_in_full_or_by_prefix() {
    let same = fixed_repository();
    let mut bytes = *same.as_bytes();
    bytes[31] ^= 1;
    let late_difference = ObjectId::from_bytes(bytes);
    bytes[0] ^= 1;
    let other = ObjectId::from_bytes(bytes);
    let plain = ExportedKey::parse(GOLDEN_PLAIN, None).unwrap();
    assert!(plain.names_repository(&same));
    assert!(!plain.names_repository(&late_difference));
    let paper = ExportedKey::parse(GOLDEN_PAPER, None).unwrap();
    assert!(paper.names_repository(&same));
    assert!(paper.names_repository(&late_difference)); // only 8 bytes on paper
    assert!(!paper.names_repository(&other));
}

#[test]
fn a_mistyped_paper_line_is_named() {
    let text = GOLDEN_PAPER.replace(" 7: 2222 2222 2200", " 7: 2222 2222 2201");
    let err = ExportedKey::parse(&text, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 7: checksum mismatch: check this line"
    );
    // Letters that are not hex, a missing digit, a swapped pair of digits.
    for (from, to, needle) in [
        ("0304 0506", "03O4 0506", "'O' is not a hex digit"),
        ("0304 0506", "034 0506", "odd number of hex digits"),
        ("0304 0506", "0340 0506", "checksum mismatch"),
    ] {
        let text = GOLDEN_PAPER.replace(from, to);
        let err = ExportedKey::parse(&text, None).unwrap_err().to_string();
        assert!(err.starts_with("line 7: "), "{err}");
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn paper_lines_missing_repeated_swapped_or_extra_are_named() {
    let lines: Vec<&str> = GOLDEN_PAPER.lines().collect();
    let without = |skip: usize| -> String {
        lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| format!("{l}\n"))
            .collect()
    };
    // lines[5] is printed line 5.
    let err = ExportedKey::parse(&without(5), None).unwrap_err();
    assert_eq!(line_of(err), 5);
    let err = ExportedKey::parse(&without(10), None).unwrap_err();
    assert_eq!(err.to_string(), "line 10: missing: the key has 10 lines");
    let mut swapped = lines.clone();
    swapped.swap(3, 4);
    let err = ExportedKey::parse(&swapped.join("\n"), None).unwrap_err();
    assert_eq!(line_of(err), 3);
    // The right content under the wrong number.
    let moved = GOLDEN_PAPER.replace(
        " 4: 1111 1111 1111 1111 0108",
        " 4: 1111 1111 1111 1111 1111 1111 1111 1111 - 248b\n 5: x",
    );
    assert_eq!(line_of(ExportedKey::parse(&moved, None).unwrap_err()), 4);
    let extra = format!("{GOLDEN_PAPER}11: 0000 - 0000\n");
    let err = ExportedKey::parse(&extra, None).unwrap_err();
    assert_eq!(line_of(err), 11);
    assert!(ExportedKey::parse(&format!("{GOLDEN_PAPER}\n\n"), None).is_ok());
}

#[test]
fn paper_typing_is_forgiving_where_it_cannot_hurt() {
    // No title, upper case, no spaces between groups, other whitespace.
    let typed: String = GOLDEN_PAPER
        .lines()
        .skip(1)
        .map(|l| {
            let (number, rest) = l.split_once(':').unwrap();
            let (data, check) = rest.rsplit_once('-').unwrap();
            let data: String = data.split_whitespace().collect();
            format!(
                "\t{number}:{}  -{}\r\n",
                data.to_uppercase(),
                check.to_uppercase()
            )
        })
        .collect();
    let key = ExportedKey::parse(&typed, Some(KeyTextFormat::Paper)).unwrap();
    assert_eq!(key.slot().encode(), fixed_slot().encode());
}

#[test]
fn the_paper_reader_rejects_a_line_without_moving_on() {
    let mut reader = PaperKeyReader::new();
    let lines: Vec<&str> = GOLDEN_PAPER.lines().collect();
    assert!(!reader.push(lines[0]).unwrap()); // the title
    assert!(!reader.push(lines[1]).unwrap());
    assert_eq!(reader.lines(), Some(10));
    assert_eq!(reader.next_line(), 2);
    let typo = lines[2].replace("4152", "4153");
    assert_eq!(line_of(reader.push(&typo).unwrap_err()), 2);
    assert_eq!(reader.next_line(), 2);
    for (i, line) in lines.iter().enumerate().skip(2) {
        assert_eq!(reader.push(line).unwrap(), i == 10, "line {i}");
    }
    assert!(reader.is_complete());
    assert_eq!(
        line_of(reader.clone().push("11: 00 - 0000").unwrap_err()),
        11
    );
    assert_eq!(
        reader.finish().unwrap().slot().encode(),
        fixed_slot().encode()
    );
    // A wrong title is named; a bare reader has nothing to finish.
    assert!(PaperKeyReader::new().push("arca paper kee v1").is_err());
    assert!(PaperKeyReader::new().push("arca paper key v12").is_err());
    assert_eq!(line_of(PaperKeyReader::new().finish().unwrap_err()), 1);
}

#[test]
fn a_paper_key_from_two_keys_fails_the_whole_key_checksum() {
    // Line 1 of another key, whose own checksum holds, above the lines of this one.
    let other =
        KeySlot::decode_unnamed(&slot_bytes([0x33; 32], 8, [0x22; 32], &[7; 45]), "t").unwrap();
    let other_text = encode_key_text(KeyTextFormat::Paper, &other, &fixed_repository()).unwrap();
    let mixed: String = other_text
        .lines()
        .take(2)
        .chain(GOLDEN_PAPER.lines().skip(2))
        .map(|l| format!("{l}\n"))
        .collect();
    let err = ExportedKey::parse(&mixed, None).unwrap_err().to_string();
    assert!(err.starts_with("line 1: the key checksum"), "{err}");
}

#[test]
fn damaged_plain_text_is_named() {
    let changed = GOLDEN_PLAIN.replace("AAEAAAAiIiIi", "AAEAAAAiIiIj");
    let err = ExportedKey::parse(&changed, None).unwrap_err().to_string();
    assert!(err.starts_with("line 5: checksum mismatch"), "{err}");
    let bad_char = GOLDEN_PLAIN.replace("AAEAAAAiIiIi", "AAEAAAA*IiIi");
    let err = ExportedKey::parse(&bad_char, None).unwrap_err().to_string();
    assert!(err.starts_with("line 3: '*' is not a base64"), "{err}");
    let cut: String = GOLDEN_PLAIN
        .lines()
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    let err = ExportedKey::parse(&cut, None).unwrap_err().to_string();
    assert!(
        err.starts_with("line 4: ") && err.contains("cut short"),
        "{err}"
    );
    let missing: String = GOLDEN_PLAIN
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    assert!(ExportedKey::parse(&missing, None).is_err());
    let trailing = format!("{GOLDEN_PLAIN}more\n");
    assert_eq!(line_of(ExportedKey::parse(&trailing, None).unwrap_err()), 6);
    let v2 = GOLDEN_PLAIN.replace("arca key v1", "arca key v2");
    let err = ExportedKey::parse(&v2, None).unwrap_err().to_string();
    assert!(err.contains("version \"v2\""), "{err}");
    let short_id = GOLDEN_PLAIN.replace("1c1d1e1f\n", "1c1d1e\n");
    assert_eq!(line_of(ExportedKey::parse(&short_id, None).unwrap_err()), 1);
}

#[test]
fn formats_are_recognised_or_refused() {
    assert!(ExportedKey::parse(GOLDEN_PLAIN, Some(KeyTextFormat::Plain)).is_ok());
    let err = ExportedKey::parse(GOLDEN_PLAIN, Some(KeyTextFormat::Paper)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1: this key is in the plain format, not the paper format"
    );
    let err = ExportedKey::parse(GOLDEN_PAPER, Some(KeyTextFormat::Plain)).unwrap_err();
    assert!(err.to_string().contains("paper format"), "{err}");
    let err = ExportedKey::parse("\n\n  \n", None).unwrap_err();
    assert_eq!(line_of(err), 1);
    let err = ExportedKey::parse("\n-----BEGIN PGP MESSAGE-----\n", None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("line 2: not an exported arca key"),
        "{err}"
    );
}

#[test]
fn text_whose_checksums_hold_but_is_no_slot_is_damage() {
    let bytes = b"not a key slot at all, but checksummed";
    let text = format!(
        "{PLAIN_TITLE} repository {}\n{}\ncrc32 {:08x}\n",
        fixed_repository(),
        BASE64.encode(bytes),
        plain_check(fixed_repository().as_bytes(), bytes)
    );
    assert!(matches!(
        ExportedKey::parse(&text, None),
        Err(RepoError::Corrupt { .. })
    ));
}

fn arb_slot() -> impl Strategy<Value = KeySlot> {
    (
        any::<[u8; 32]>(),
        8u32..100_000,
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(|(id, memory, salt, wrapped)| {
            KeySlot::decode_unnamed(&slot_bytes(id, memory, salt, &wrapped), "arb").unwrap()
        })
}

proptest! {
    #[test]
    fn plain_round_trip(slot in arb_slot(), repository in any::<[u8; 32]>()) {
        let repository = ObjectId::from_bytes(repository);
        let text = encode_key_text(KeyTextFormat::Plain, &slot, &repository).unwrap();
        prop_assert!(text.lines().all(|l| l.len() <= 87));
        let key = ExportedKey::parse(&text, Some(KeyTextFormat::Plain)).unwrap();
        prop_assert_eq!(key.slot().encode(), slot.encode());
        prop_assert!(key.names_repository(&repository));
    }

    #[test]
    fn paper_round_trip(slot in arb_slot(), repository in any::<[u8; 32]>()) {
        let repository = ObjectId::from_bytes(repository);
        let text = encode_key_text(KeyTextFormat::Paper, &slot, &repository).unwrap();
        prop_assert!(text.lines().skip(1).all(|l| l.len() <= 52), "{}", text);
        let key = ExportedKey::parse(&text, Some(KeyTextFormat::Paper)).unwrap();
        prop_assert_eq!(key.slot().encode(), slot.encode());
        prop_assert!(key.names_repository(&repository));
    }

    /// Any one character of a numbered line changed to any other printable character:
    /// the error names that line, or the change did not change the key.
    #[test]
    fn one_changed_paper_character_is_found_on_its_line(
        slot in arb_slot(),
        pick in any::<prop::sample::Index>(),
        replacement in 0x20u8..0x7f,
    ) {
        let text = encode_key_text(KeyTextFormat::Paper, &slot, &fixed_repository()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Positions in numbered lines (not the title): (line index, byte index).
        let positions: Vec<(usize, usize)> = lines
            .iter()
            .enumerate()
            .skip(1)
            .flat_map(|(i, l)| (0..l.len()).map(move |j| (i, j)))
            .collect();
        let (line, at) = positions[pick.index(positions.len())];
        let original = lines[line].as_bytes()[at];
        prop_assume!(original != replacement);
        let mut changed = lines[line].as_bytes().to_vec();
        changed[at] = replacement;
        let changed = String::from_utf8(changed).unwrap();
        let mut all = lines.clone();
        all[line] = &changed;
        match ExportedKey::parse(&all.join("\n"), Some(KeyTextFormat::Paper)) {
            Err(e) => prop_assert_eq!(line_of(e), line, "{}", changed),
            Ok(key) => {
                // Only padding (`07:` for ` 7:`, `+10` for ` 10`) or the case of a
                // hex digit changed.
                prop_assert!(
                    original.is_ascii_whitespace() || original.eq_ignore_ascii_case(&replacement),
                    "{}", changed
                );
                prop_assert_eq!(key.slot().encode(), slot.encode());
            }
        }
    }
}

#[test]
fn the_largest_paper_key_is_written_and_a_larger_one_refused() {
    // 16 bytes a line, 65535 lines at most: line 1 and 65534 lines of slot bytes.
    let largest = 16 * 65534;
    let fill = largest - 85;
    let slot =
        KeySlot::decode_unnamed(&slot_bytes([1; 32], 8, [2; 32], &vec![3; fill]), "big").unwrap();
    let text = encode_key_text(KeyTextFormat::Paper, &slot, &fixed_repository()).unwrap();
    assert!(text.lines().last().unwrap().starts_with("65535: "));
    let key = ExportedKey::parse(&text, None).unwrap();
    assert_eq!(key.slot().encode().len(), largest);
    let slot = KeySlot::decode_unnamed(
        &slot_bytes([1; 32], 8, [2; 32], &vec![3; fill + 1]),
        "bigger",
    )
    .unwrap();
    let err = encode_key_text(KeyTextFormat::Paper, &slot, &fixed_repository()).unwrap_err();
    assert!(matches!(err, RepoError::InvalidInput(_)), "{err}");
}
