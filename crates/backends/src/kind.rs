//! Object addressing: kinds and ids.

use std::fmt;
use std::str::FromStr;

/// The kinds of objects a repository stores. Each kind is its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FileKind {
    /// The repository configuration; there is exactly one, addressed by [`ObjectId::ZERO`].
    Config,
    /// Key slots.
    Key,
    /// Pack files holding blobs.
    Pack,
    /// Index files.
    Index,
    /// Snapshot files.
    Snapshot,
    /// Lock files.
    Lock,
}

impl FileKind {
    /// Every kind.
    pub const ALL: [FileKind; 6] = [
        Self::Config,
        Self::Key,
        Self::Pack,
        Self::Index,
        Self::Snapshot,
        Self::Lock,
    ];

    /// The directory (or name, for the config) this kind lives under.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Key => "keys",
            Self::Pack => "data",
            Self::Index => "index",
            Self::Snapshot => "snapshots",
            Self::Lock => "locks",
        }
    }

    /// Whether `name` is that of a `data/XX` directory: two hex digits.
    pub(crate) fn is_pack_dir_name(name: &std::ffi::OsStr) -> bool {
        let name = name.as_encoded_bytes();
        name.len() == 2 && name.iter().all(u8::is_ascii_hexdigit)
    }

    /// Where object `id` of this kind lives, relative to the repository's root, in the
    /// layout every backend shares: `config`, `data/XX/ID` (XX: the id's first byte in
    /// hex), `KIND_DIR/ID` for the rest.
    pub fn object_path(self, id: &ObjectId) -> String {
        match self {
            Self::Config => "config".to_owned(),
            Self::Pack => format!(
                "{}/{}/{id}",
                self.dir_name(),
                hex::encode(&id.as_bytes()[..1])
            ),
            _ => format!("{}/{id}", self.dir_name()),
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Config => "config",
            Self::Key => "key",
            Self::Pack => "pack",
            Self::Index => "index",
            Self::Snapshot => "snapshot",
            Self::Lock => "lock",
        };
        f.write_str(name)
    }
}

/// A 256-bit object name, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ObjectId([u8; 32]);

impl ObjectId {
    /// The all-zero id, which addresses the single [`FileKind::Config`] object.
    pub const ZERO: ObjectId = ObjectId([0; 32]);

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random id from the operating system's generator.
    ///
    /// # Errors
    /// If the system random generator fails.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b)?;
        Ok(Self(b))
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 hex digits, for display.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.short())
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an object id (64 hex digits expected): {0:?}")]
pub struct ParseIdError(pub String);

impl FromStr for ObjectId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ParseIdError(s.to_owned()));
        }
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError(s.to_owned()))?;
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_layout() {
        let id = ObjectId::from_bytes([0xab; 32]);
        let hex = "ab".repeat(32);
        assert_eq!(FileKind::Config.object_path(&ObjectId::ZERO), "config");
        assert_eq!(FileKind::Pack.object_path(&id), format!("data/ab/{hex}"));
        assert_eq!(FileKind::Index.object_path(&id), format!("index/{hex}"));
        assert_eq!(FileKind::Key.object_path(&id), format!("keys/{hex}"));
        assert_eq!(
            FileKind::Snapshot.object_path(&id),
            format!("snapshots/{hex}")
        );
        assert_eq!(FileKind::Lock.object_path(&id), format!("locks/{hex}"));
        for (name, is) in [
            ("ab", true),
            ("0F", true),
            ("abc", false),
            ("g0", false),
            (".t", false),
        ] {
            assert_eq!(FileKind::is_pack_dir_name(name.as_ref()), is, "{name}");
        }
    }
}
