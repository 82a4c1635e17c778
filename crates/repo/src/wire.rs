//! Byte-level encoding primitives shared by the fixed-layout structures: a bounds-checked
//! little-endian reader, and the versioned postcard envelope for serde structures.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RepoError;

/// A cursor over untrusted bytes. Every read is bounds-checked and reports the object
/// being decoded, so damaged input yields an error, never a panic.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    object: &'a str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], object: &'a str) -> Self {
        Self {
            data,
            pos: 0,
            object,
        }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], RepoError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(RepoError::corrupt(
                self.object,
                format!(
                    "truncated: needs {n} bytes at offset {}, has {}",
                    self.pos,
                    self.data.len() - self.pos
                ),
            ));
        };
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], RepoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, RepoError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, RepoError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, RepoError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, RepoError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.data[self.pos..];
        self.pos = self.data.len();
        out
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn finish(&self) -> Result<(), RepoError> {
        if self.pos != self.data.len() {
            return Err(RepoError::corrupt(
                self.object,
                format!("{} unexpected trailing bytes", self.data.len() - self.pos),
            ));
        }
        Ok(())
    }
}

/// Encodes `value` as `version (u16 LE) || postcard(value)`.
pub(crate) fn encode_versioned<T: Serialize>(
    version: u16,
    value: &T,
) -> Result<Vec<u8>, RepoError> {
    let mut out = version.to_le_bytes().to_vec();
    postcard::to_io(value, &mut out)
        .map_err(|e| RepoError::InvalidInput(format!("cannot encode structure: {e}")))?;
    Ok(out)
}

/// Splits off the leading `u16` version of a versioned structure.
pub(crate) fn split_version<'a>(
    data: &'a [u8],
    object: &str,
) -> Result<(u16, &'a [u8]), RepoError> {
    if data.len() < 2 {
        return Err(RepoError::corrupt(
            object,
            "truncated: no structure version",
        ));
    }
    Ok((u16::from_le_bytes([data[0], data[1]]), &data[2..]))
}

/// Decodes a postcard body that must span all of `data`.
pub(crate) fn decode_postcard<T: DeserializeOwned>(
    data: &[u8],
    object: &str,
) -> Result<T, RepoError> {
    let (value, rest) = postcard::take_from_bytes::<T>(data)
        .map_err(|e| RepoError::corrupt(object, format!("cannot decode: {e}")))?;
    if !rest.is_empty() {
        return Err(RepoError::corrupt(
            object,
            format!("{} unexpected trailing bytes", rest.len()),
        ));
    }
    Ok(value)
}

/// Refuses a structure version other than `supported`.
pub(crate) fn expect_version(found: u16, supported: u16, object: &str) -> Result<(), RepoError> {
    if found != supported {
        return Err(RepoError::UnsupportedVersion {
            object: object.to_owned(),
            found: u32::from(found),
            supported: u32::from(supported),
        });
    }
    Ok(())
}
