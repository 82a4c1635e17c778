//! Exported keys as text (docs/design.md §5.6): a key slot, still wrapped by its
//! passphrase, written so that a person can keep it, print it and type it back.
//!
//! *Plain* is for files and copy and paste: a header naming the format and the
//! repository, the slot in base64, and a CRC-32 line (over the repository id and the
//! slot) that tells damage apart from a wrong passphrase.
//!
//! ```text
//! arca key v1 repository 000102…1f (64 hex digits)
//! QVJDQQECAAAREREREREREREREREREREREREREREREREREREREREREQEIAAAAAQAA
//! …
//! crc32 053e5852
//! ```
//!
//! *Paper* is for typing back by hand: numbered lines of 16 bytes in groups of four hex
//! digits, each ending with a CRC-16 of its number and bytes, so that a typo is reported
//! on its line; line 1 carries the repository, the number of lines and a CRC-32 of the
//! whole slot.
//!
//! ```text
//! arca paper key v1 (repository 0001020304050607; arca key import --paper)
//!  1: 0001 0203 0405 0607 / 10 / 740c 7906 - d5bf
//!  2: 4152 4341 0102 0000 1111 1111 1111 1111 - 5c10
//!  …
//! 10: 2b2c - 7cf3
//! ```
//!
//! [`PaperKeyReader`] checks paper lines one at a time, so that an interactive import can
//! ask for a mistyped line again at once.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use arca_backends::ObjectId;

use crate::RepoError;
use crate::keyfile::KeySlot;

/// The plain format's header starts with this, then `repository <64 hex digits>`.
const PLAIN_TITLE: &str = "arca key v1";
/// The paper format's title line starts with this.
const PAPER_TITLE: &str = "arca paper key v1";
/// Base64 characters per line of the plain format.
const BASE64_LINE: usize = 64;
/// Slot bytes per numbered line of the paper format (but the last).
pub const PAPER_LINE_BYTES: usize = 16;
/// Bytes of the repository id on line 1 of the paper format.
const PAPER_REPOSITORY_BYTES: usize = 8;
/// What the exported slot is called in messages about its content.
const OBJECT: &str = "the exported key";

/// The two text formats of an exported key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTextFormat {
    /// Base64 with a header and a CRC-32: for files and copy and paste.
    Plain,
    /// Numbered hex lines with a checksum each: for printing and typing back.
    Paper,
}

/// CRC-16/IBM-3740 (also called CRC-16/CCITT-FALSE): polynomial 0x1021, initial value
/// 0xFFFF, not reflected, no final XOR. It detects every error confined to 16
/// consecutive bits, so every single mistyped hex digit and every swap of two
/// neighbouring digits.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// CRC-32/ISO-HDLC (the CRC of zip, gzip and PNG): reflected polynomial 0xEDB88320,
/// initial value and final XOR 0xFFFFFFFF.
fn crc32(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xFFFF_FFFF;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn text_err(line: usize, reason: impl Into<String>) -> RepoError {
    RepoError::KeyText {
        line,
        reason: reason.into(),
    }
}

/// `0123456789abcdef` as `0123 4567 89ab cdef`.
fn grouped(hex_digits: &str) -> String {
    let chars: Vec<char> = hex_digits.chars().collect();
    chars
        .chunks(4)
        .map(|g| g.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes `slot` of repository `repository_id` as text in `format`.
///
/// # Errors
/// [`RepoError::InvalidInput`] if the slot is too large for the paper format (over
/// 1 MiB; real slots are a few hundred bytes).
pub fn encode_key_text(
    format: KeyTextFormat,
    slot: &KeySlot,
    repository_id: &ObjectId,
) -> Result<String, RepoError> {
    let bytes = slot.encode();
    match format {
        KeyTextFormat::Plain => Ok(encode_plain(&bytes, repository_id)),
        KeyTextFormat::Paper => encode_paper(&bytes, repository_id),
    }
}

fn encode_plain(bytes: &[u8], repository_id: &ObjectId) -> String {
    let mut out = format!("{PLAIN_TITLE} repository {repository_id}\n");
    let text = BASE64.encode(bytes);
    for line in text.as_bytes().chunks(BASE64_LINE) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!(
        "crc32 {:08x}\n",
        plain_check(repository_id.as_bytes(), bytes)
    ));
    out
}

/// The plain format's CRC-32 covers the repository id of the header and the slot.
fn plain_check(repository: &[u8], slot: &[u8]) -> u32 {
    let mut data = repository.to_vec();
    data.extend_from_slice(slot);
    crc32(&data)
}

/// The bytes line 1 of a paper key stands for, which its CRC-16 covers.
fn paper_header_bytes(repository: &[u8], lines: u16, crc: u32) -> Vec<u8> {
    let mut out = repository.to_vec();
    out.extend_from_slice(&lines.to_be_bytes());
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn line_check(number: u16, content: &[u8]) -> u16 {
    let mut data = number.to_be_bytes().to_vec();
    data.extend_from_slice(content);
    crc16(&data)
}

fn encode_paper(bytes: &[u8], repository_id: &ObjectId) -> Result<String, RepoError> {
    let too_large = || {
        RepoError::InvalidInput(format!(
            "a key slot of {} bytes is too large for the paper format",
            bytes.len()
        ))
    };
    let lines =
        u16::try_from(1 + bytes.len().div_ceil(PAPER_LINE_BYTES)).map_err(|_| too_large())?;
    let width = lines.to_string().len();
    let repository = &repository_id.as_bytes()[..PAPER_REPOSITORY_BYTES];
    let crc = crc32(bytes);
    let mut out = format!(
        "{PAPER_TITLE} (repository {}; arca key import --paper)\n",
        hex::encode(repository)
    );
    out.push_str(&format!(
        "{:>width$}: {} / {lines} / {} - {:04x}\n",
        1,
        grouped(&hex::encode(repository)),
        grouped(&format!("{crc:08x}")),
        line_check(1, &paper_header_bytes(repository, lines, crc)),
    ));
    for (index, chunk) in bytes.chunks(PAPER_LINE_BYTES).enumerate() {
        let number = u16::try_from(index + 2).map_err(|_| too_large())?;
        out.push_str(&format!(
            "{number:>width$}: {} - {:04x}\n",
            grouped(&hex::encode(chunk)),
            line_check(number, chunk),
        ));
    }
    Ok(out)
}

/// A key slot read back from exported text, with the repository the text names.
#[derive(Clone, Debug)]
pub struct ExportedKey {
    slot: KeySlot,
    /// All 32 bytes of the repository id (plain) or the first 8 (paper).
    repository: Vec<u8>,
    format: KeyTextFormat,
}

impl ExportedKey {
    /// Reads exported key text. With `format`, the text must be in that format;
    /// without, it is recognised from its first line.
    ///
    /// The checksums are verified, so damage and typos are reported here, by line
    /// number (the printed numbers for the paper format), before any passphrase is
    /// tried. Whether the slot opens, and for which repository, only the passphrase
    /// can tell (docs/design.md §5.6).
    ///
    /// # Errors
    /// [`RepoError::KeyText`] naming the first bad line; [`RepoError::Corrupt`] if the
    /// checksums hold but the bytes are not a key slot.
    pub fn parse(text: &str, format: Option<KeyTextFormat>) -> Result<Self, RepoError> {
        let first = text.lines().enumerate().find(|(_, l)| !l.trim().is_empty());
        let Some((index, first)) = first else {
            return Err(text_err(1, "the text is empty: there is no key in it"));
        };
        let first = first.trim().to_ascii_lowercase();
        let detected = if first.starts_with("arca key ") {
            KeyTextFormat::Plain
        } else if first.starts_with("arca paper key ")
            || first.starts_with(|c: char| c.is_ascii_digit())
        {
            KeyTextFormat::Paper
        } else {
            return Err(text_err(
                index + 1,
                format!(
                    "not an exported arca key: it starts with neither '{PLAIN_TITLE}' nor '{PAPER_TITLE}'"
                ),
            ));
        };
        if let Some(wanted) = format
            && wanted != detected
        {
            let (is, not) = match detected {
                KeyTextFormat::Plain => ("plain", "paper"),
                KeyTextFormat::Paper => ("paper", "plain"),
            };
            return Err(text_err(
                index + 1,
                format!("this key is in the {is} format, not the {not} format"),
            ));
        }
        match detected {
            KeyTextFormat::Plain => decode_plain(text),
            KeyTextFormat::Paper => {
                let mut reader = PaperKeyReader::new();
                for line in text.lines() {
                    reader.push(line)?;
                }
                reader.finish()
            }
        }
    }

    /// The key slot.
    pub fn slot(&self) -> &KeySlot {
        &self.slot
    }

    /// The format the text was in.
    pub fn format(&self) -> KeyTextFormat {
        self.format
    }

    /// Whether the text names repository `id` (all of it for plain text, its first 8
    /// bytes for paper). Only a hint: the repository id inside the slot, visible once
    /// the passphrase opened it, is what counts.
    pub fn names_repository(&self, id: &ObjectId) -> bool {
        id.as_bytes().starts_with(&self.repository)
    }

    /// The repository the text names, in hex (64 or 16 digits), for messages.
    pub fn repository_hint(&self) -> String {
        hex::encode(&self.repository)
    }
}

fn decode_plain(text: &str) -> Result<ExportedKey, RepoError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let Some((header_line, header)) = lines.next() else {
        return Err(text_err(1, "the text is empty: there is no key in it"));
    };
    let words: Vec<&str> = header.split_whitespace().collect();
    let version = words.get(2).copied().unwrap_or_default();
    if version != "v1" {
        return Err(text_err(
            header_line,
            format!("key text version {version:?}; this arca reads v1"),
        ));
    }
    let repository = match words.as_slice() {
        [_, _, _, "repository", id] => id.parse::<ObjectId>().ok(),
        _ => None,
    };
    let Some(repository) = repository else {
        return Err(text_err(
            header_line,
            format!("expected '{PLAIN_TITLE} repository' and 64 hex digits"),
        ));
    };

    let mut body = String::new();
    // (line number, offset of its first character in `body`)
    let mut starts: Vec<(usize, usize)> = Vec::new();
    let mut trailer = None;
    let mut last_line = header_line;
    for (number, line) in lines.by_ref() {
        last_line = number;
        if let Some(rest) = line.strip_prefix("crc32") {
            trailer = Some((number, rest.trim()));
            break;
        }
        if let Some(c) = line
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
        {
            return Err(text_err(
                number,
                format!("{c:?} is not a base64 character: check this line"),
            ));
        }
        starts.push((number, body.len()));
        body.push_str(line);
    }
    let Some((trailer_line, check)) = trailer else {
        return Err(text_err(
            last_line + 1,
            "the text ends without its 'crc32' line: it was cut short",
        ));
    };
    if let Some((number, _)) = lines.next() {
        return Err(text_err(number, "text after the 'crc32' line"));
    }
    let Some(&(last_body_line, _)) = starts.last() else {
        return Err(text_err(
            trailer_line,
            "there is no key between the header and the 'crc32' line",
        ));
    };
    let line_of = |offset: usize| {
        starts
            .iter()
            .rev()
            .find(|(_, start)| *start <= offset)
            .map_or(last_body_line, |(n, _)| *n)
    };
    let bytes = BASE64.decode(body.as_bytes()).map_err(|e| match e {
        base64::DecodeError::InvalidByte(offset, _)
        | base64::DecodeError::InvalidLastSymbol { offset, .. } => text_err(
            line_of(offset),
            "this line is not valid base64 (misplaced '=' or a changed character)",
        ),
        _ => text_err(
            last_body_line,
            "the base64 text has the wrong length: a character or a line is missing",
        ),
    })?;
    let expected = u32::from_str_radix(check, 16)
        .ok()
        .filter(|_| check.len() == 8)
        .ok_or_else(|| {
            text_err(
                trailer_line,
                format!("expected 'crc32' and 8 hex digits, found {check:?}"),
            )
        })?;
    if plain_check(repository.as_bytes(), &bytes) != expected {
        return Err(text_err(
            trailer_line,
            "checksum mismatch: the key text was changed, or a line is missing or repeated",
        ));
    }
    Ok(ExportedKey {
        slot: KeySlot::decode_unnamed(&bytes, OBJECT)?,
        repository: repository.as_bytes().to_vec(),
        format: KeyTextFormat::Plain,
    })
}

/// What line 1 of a paper key says.
#[derive(Clone, Copy, Debug)]
struct PaperHeader {
    repository: [u8; PAPER_REPOSITORY_BYTES],
    lines: u16,
    crc: u32,
}

/// Reads a paper key line by line, checking each line as it comes: an interactive
/// import asks for a rejected line again. Blank lines, and the title before line 1, are
/// skipped.
///
/// ```
/// use arca_repo::PaperKeyReader;
/// let mut reader = PaperKeyReader::new();
/// assert_eq!(reader.next_line(), 1);
/// let err = reader.push(" 1: 0001 0203 0405 0607 / 10 / 740c 7906 - d5bf0").unwrap_err();
/// assert!(err.to_string().starts_with("line 1: the checksum"));
/// assert!(!reader.push(" 1: 0001 0203 0405 0607 / 10 / 740c 7906 - d5bf")?);
/// assert_eq!(reader.lines(), Some(10));
/// let err = reader.push(" 2: 4152 4341 0102 0000 1111 1111 1111 1112 - 5c10").unwrap_err();
/// assert_eq!(err.to_string(), "line 2: checksum mismatch: check this line");
/// assert_eq!(reader.next_line(), 2); // a rejected line changes nothing
/// # Ok::<(), arca_repo::RepoError>(())
/// ```
#[derive(Clone, Debug)]
pub struct PaperKeyReader {
    next: usize,
    header: Option<PaperHeader>,
    bytes: Vec<u8>,
}

impl Default for PaperKeyReader {
    fn default() -> Self {
        Self::new()
    }
}

/// Digits of `text` (whitespace ignored) as bytes, or an error for line `line`.
fn hex_bytes(line: usize, text: &str) -> Result<Vec<u8>, RepoError> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(c) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(text_err(
            line,
            format!("{c:?} is not a hex digit: check this line"),
        ));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(text_err(
            line,
            "an odd number of hex digits: a digit is missing or extra: check this line",
        ));
    }
    hex::decode(&digits).map_err(|e| text_err(line, e.to_string()))
}

impl PaperKeyReader {
    /// A reader expecting line 1.
    pub fn new() -> Self {
        Self {
            next: 1,
            header: None,
            bytes: Vec::new(),
        }
    }

    /// The number of the line expected next.
    pub fn next_line(&self) -> usize {
        self.next
    }

    /// How many numbered lines the key has, once line 1 is read.
    pub fn lines(&self) -> Option<usize> {
        self.header.map(|h| usize::from(h.lines))
    }

    /// Whether every line has been read.
    pub fn is_complete(&self) -> bool {
        self.header
            .is_some_and(|h| self.next > usize::from(h.lines))
    }

    /// Reads one line of text; returns whether the key is complete. A rejected line
    /// leaves the reader as it was.
    ///
    /// # Errors
    /// [`RepoError::KeyText`] naming the line expected (its printed number) and what is
    /// wrong with it.
    pub fn push(&mut self, text: &str) -> Result<bool, RepoError> {
        let line = text.trim();
        let n = self.next;
        if line.is_empty() {
            return Ok(self.is_complete());
        }
        let lower = line.to_ascii_lowercase();
        if n == 1 && lower.starts_with("arca") {
            let rest = lower.strip_prefix(PAPER_TITLE);
            if rest.is_some_and(|r| r.is_empty() || r.starts_with(char::is_whitespace)) {
                return Ok(false);
            }
            return Err(text_err(
                1,
                format!("the title line is not '{PAPER_TITLE} …'"),
            ));
        }
        if let Some(total) = self.lines().filter(|&t| n > t) {
            return Err(text_err(
                n,
                format!("the key ends with line {total}: this line is extra"),
            ));
        }
        let Some((label, rest)) = line.split_once(':') else {
            return Err(text_err(
                n,
                "no line number: every line starts with its number and ':'",
            ));
        };
        let label = label.trim();
        if label.parse::<usize>().ok() != Some(n) {
            return Err(text_err(
                n,
                format!(
                    "numbered {label:?} where line {n} was expected: a line is missing, repeated or out of order, or its number is mistyped"
                ),
            ));
        }
        let number = u16::try_from(n).map_err(|_| text_err(n, "too many lines"))?;
        let Some((data, check)) = rest.rsplit_once('-') else {
            return Err(text_err(n, "no '- CHECKSUM' at its end: check this line"));
        };
        let check = check.trim();
        let check = u16::from_str_radix(check, 16)
            .ok()
            .filter(|_| check.len() == 4)
            .ok_or_else(|| {
                text_err(
                    n,
                    format!("the checksum {check:?} is not 4 hex digits: check this line"),
                )
            })?;
        if n == 1 {
            let header = Self::parse_header(data)?;
            let content = paper_header_bytes(&header.repository, header.lines, header.crc);
            if line_check(number, &content) != check {
                return Err(text_err(n, "checksum mismatch: check this line"));
            }
            if header.lines < 2 {
                return Err(text_err(n, "a key of fewer than 2 lines holds no key"));
            }
            self.header = Some(header);
        } else {
            let content = hex_bytes(n, data)?;
            if line_check(number, &content) != check {
                return Err(text_err(n, "checksum mismatch: check this line"));
            }
            let last = self.lines() == Some(n);
            if content.is_empty()
                || content.len() > PAPER_LINE_BYTES
                || (!last && content.len() != PAPER_LINE_BYTES)
            {
                return Err(text_err(
                    n,
                    format!(
                        "{} bytes on this line; every line but the last has {PAPER_LINE_BYTES}",
                        content.len()
                    ),
                ));
            }
            self.bytes.extend_from_slice(&content);
        }
        self.next += 1;
        Ok(self.is_complete())
    }

    fn parse_header(data: &str) -> Result<PaperHeader, RepoError> {
        let fields: Vec<&str> = data.split('/').collect();
        let [repository, lines, crc] = fields.as_slice() else {
            return Err(text_err(
                1,
                "expected 'REPOSITORY / LINES / CHECKSUM' before the '-': check this line",
            ));
        };
        let repository: [u8; PAPER_REPOSITORY_BYTES] = hex_bytes(1, repository)?
            .try_into()
            .map_err(|_| text_err(1, "the repository is not 16 hex digits: check this line"))?;
        let lines = lines.trim().parse::<u16>().map_err(|_| {
            text_err(
                1,
                format!(
                    "the number of lines {:?} is not a number: check this line",
                    lines.trim()
                ),
            )
        })?;
        let crc: [u8; 4] = hex_bytes(1, crc)?
            .try_into()
            .map_err(|_| text_err(1, "the key checksum is not 8 hex digits: check this line"))?;
        Ok(PaperHeader {
            repository,
            lines,
            crc: u32::from_be_bytes(crc),
        })
    }

    /// The key, once every line is read.
    ///
    /// # Errors
    /// [`RepoError::KeyText`] for a missing line or a whole-key checksum that does not
    /// match; [`RepoError::Corrupt`] if the lines are not a key slot.
    pub fn finish(self) -> Result<ExportedKey, RepoError> {
        let Some(header) = self.header else {
            return Err(text_err(1, "missing: there is no line 1"));
        };
        if !self.is_complete() {
            return Err(text_err(
                self.next,
                format!("missing: the key has {} lines", header.lines),
            ));
        }
        if crc32(&self.bytes) != header.crc {
            return Err(text_err(
                1,
                "the key checksum on line 1 does not match the other lines: are they all from this key?",
            ));
        }
        Ok(ExportedKey {
            slot: KeySlot::decode_unnamed(&self.bytes, OBJECT)?,
            repository: header.repository.to_vec(),
            format: KeyTextFormat::Paper,
        })
    }
}

#[cfg(test)]
#[path = "key_text_tests.rs"]
mod tests;
