//! Per-blob compression: the repository's setting and the per-blob method codes.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use crate::RepoError;

/// How blobs are compressed; chosen at `init`, stored in the config, overridable per run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Store blobs as they are.
    None,
    /// Zstandard at `level` (1..=22; negative levels are zstd's fast modes).
    Zstd {
        /// The zstd level.
        level: i32,
    },
    /// LZ4 (block format).
    Lz4,
    /// Probe each blob with LZ4; store it raw if LZ4 cannot shrink it by
    /// [`AUTO_MIN_SAVING_PERCENT`], otherwise compress it with zstd at `level`.
    Auto {
        /// The zstd level used for compressible blobs.
        level: i32,
    },
}

/// `auto` compresses a blob only if LZ4 saves at least this share of its size.
pub const AUTO_MIN_SAVING_PERCENT: usize = 3;

/// The zstd level used when none is given.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

impl Default for Compression {
    /// zstd level 3. On real source code and binaries it stores the same bytes as `auto`
    /// at 1.5x its speed (zstd itself skips incompressible data fast); measurements in
    /// docs/design.md, "Compression".
    fn default() -> Self {
        Self::Zstd {
            level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Zstd { level } => write!(f, "zstd,{level}"),
            Self::Lz4 => f.write_str("lz4"),
            Self::Auto { level } => write!(f, "auto,{level}"),
        }
    }
}

impl FromStr for Compression {
    type Err = RepoError;

    /// Parses `none`, `lz4`, `zstd`, `zstd,LEVEL`, `auto` or `auto,LEVEL`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            RepoError::InvalidInput(format!(
                "unknown compression {s:?}: expected none, lz4, zstd[,LEVEL] or auto[,LEVEL] (LEVEL -7..=22)"
            ))
        };
        let (name, level) = match s.split_once(',') {
            Some((n, l)) => (n, Some(l.trim().parse::<i32>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let level_or_default = || {
            let l = level.unwrap_or(DEFAULT_ZSTD_LEVEL);
            if (-7..=22).contains(&l) && l != 0 {
                Ok(l)
            } else {
                Err(bad())
            }
        };
        match (name.trim().to_ascii_lowercase().as_str(), level) {
            ("none", None) => Ok(Self::None),
            ("lz4", None) => Ok(Self::Lz4),
            ("zstd", _) => Ok(Self::Zstd {
                level: level_or_default()?,
            }),
            ("auto", _) => Ok(Self::Auto {
                level: level_or_default()?,
            }),
            _ => Err(bad()),
        }
    }
}

/// How one stored blob is compressed. The codes are on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// Stored as is.
    None,
    /// Zstandard frame.
    Zstd,
    /// LZ4 block.
    Lz4,
}

impl Method {
    /// The on-disk code.
    pub fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Zstd => 1,
            Self::Lz4 => 2,
        }
    }

    /// Parses an on-disk code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::None),
            1 => Some(Self::Zstd),
            2 => Some(Self::Lz4),
            _ => None,
        }
    }
}

thread_local! {
    // A zstd context costs ~1 MiB to set up; keep one per thread and level.
    static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

fn zstd_compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, compressor) = slot.as_mut()?;
        compressor.compress(data).ok()
    })
}

thread_local! {
    // Creating a decompression context per blob was 3.6% of the CPU samples of an
    // unchanged backup of the Linux tree (perf record).
    static UNZSTD: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn zstd_decompress(data: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    UNZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match &mut *slot {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(data, raw_len)
    })
}

fn smaller(out: Vec<u8>, input: &[u8]) -> Option<Vec<u8>> {
    (out.len() < input.len()).then_some(out)
}

/// Compresses `data` per `setting`. Returns the method used and the bytes to store;
/// data that does not shrink is stored raw ([`Method::None`]), so a blob never grows.
pub fn compress(setting: Compression, data: &[u8]) -> (Method, Option<Vec<u8>>) {
    let out = match setting {
        Compression::None => None,
        Compression::Zstd { level } => zstd_compress(data, level)
            .and_then(|o| smaller(o, data))
            .map(|o| (Method::Zstd, o)),
        Compression::Lz4 => {
            smaller(lz4_flex::block::compress(data), data).map(|o| (Method::Lz4, o))
        }
        Compression::Auto { level } => {
            let probe = lz4_flex::block::compress(data);
            let worth_it = probe.len() * 100 <= data.len() * (100 - AUTO_MIN_SAVING_PERCENT);
            if worth_it {
                zstd_compress(data, level)
                    .and_then(|o| smaller(o, data))
                    .map(|o| (Method::Zstd, o))
            } else {
                None
            }
        }
    };
    match out {
        Some((method, bytes)) => (method, Some(bytes)),
        None => (Method::None, None),
    }
}

/// Decompresses a blob stored with `method` whose plaintext is `raw_len` bytes.
///
/// # Errors
/// [`RepoError::Corrupt`] naming `object` if the data does not decompress to exactly
/// `raw_len` bytes.
pub fn decompress(
    method: Method,
    data: &[u8],
    raw_len: usize,
    object: &str,
) -> Result<Vec<u8>, RepoError> {
    let out = match method {
        Method::None => data.to_vec(),
        Method::Zstd => zstd_decompress(data, raw_len)
            .map_err(|e| RepoError::corrupt(object, format!("zstd: {e}")))?,
        Method::Lz4 => lz4_flex::block::decompress(data, raw_len)
            .map_err(|e| RepoError::corrupt(object, format!("lz4: {e}")))?,
    };
    if out.len() != raw_len {
        return Err(RepoError::corrupt(
            object,
            format!("decompressed to {} bytes, {raw_len} expected", out.len()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn settings_parse_and_print() {
        for (text, want) in [
            ("none", Compression::None),
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd { level: 3 }),
            ("zstd,19", Compression::Zstd { level: 19 }),
            ("zstd,-3", Compression::Zstd { level: -3 }),
            ("auto", Compression::Auto { level: 3 }),
            ("auto,6", Compression::Auto { level: 6 }),
        ] {
            let parsed: Compression = text.parse().unwrap();
            assert_eq!(parsed, want, "{text}");
            assert_eq!(parsed.to_string().parse::<Compression>().unwrap(), want);
        }
        for bad in [
            "", "gzip", "zstd,", "zstd,23", "zstd,0", "none,3", "lz4,1", "auto,x",
        ] {
            assert!(bad.parse::<Compression>().is_err(), "{bad}");
        }
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let mut state = 1u64;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        for setting in [
            Compression::Zstd { level: 3 },
            Compression::Lz4,
            Compression::default(),
        ] {
            assert_eq!(compress(setting, &noise).0, Method::None, "{setting}");
        }
        let text = b"the quick brown fox jumps over the lazy dog. ".repeat(1000);
        assert_eq!(compress(Compression::default(), &text).0, Method::Zstd);
        assert_eq!(
            compress(Compression::Auto { level: 3 }, &text).0,
            Method::Zstd
        );
        assert_eq!(compress(Compression::Lz4, &text).0, Method::Lz4);
        assert_eq!(compress(Compression::None, &text).0, Method::None);
    }

    #[test]
    fn wrong_lengths_and_garbage_are_errors() {
        let text = b"abcabcabcabcabcabcabcabc".repeat(100);
        let (m, out) = compress(Compression::Zstd { level: 3 }, &text);
        let out = out.unwrap();
        assert!(decompress(m, &out, text.len() - 1, "blob x").is_err());
        assert!(decompress(m, &out, text.len() + 1, "blob x").is_err());
        assert!(decompress(Method::Zstd, b"garbage", 10, "blob x").is_err());
        assert!(decompress(Method::Lz4, b"\xff\xff\xff", 10, "blob x").is_err());
        assert!(decompress(Method::None, b"abc", 4, "blob x").is_err());
        // The thread's decompression context is reused: a failure must not spoil it.
        let truncated = &out[..out.len() / 2];
        assert!(decompress(m, truncated, text.len(), "blob x").is_err());
        assert_eq!(decompress(m, &out, text.len(), "blob x").unwrap(), text);
    }

    proptest! {
        #[test]
        fn compress_decompress_round_trip(data in proptest::collection::vec(0u8..4, 0..20_000), which in 0usize..4) {
            let setting = [Compression::None, Compression::Lz4, Compression::Zstd { level: 1 }, Compression::Auto { level: 3 }][which];
            let (method, stored) = compress(setting, &data);
            let stored = stored.unwrap_or_else(|| data.clone());
            prop_assert!(stored.len() <= data.len());
            prop_assert_eq!(decompress(method, &stored, data.len(), "blob").unwrap(), data);
        }
    }
}
