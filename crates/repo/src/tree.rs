//! Trees: the deterministic encoding of one directory's entries, stored as tree blobs.
//!
//! Payload: `version (u16 LE) = 2 || postcard(Vec<Node>)`, nodes sorted by name bytes
//! (version 1, still read, lacks [`Node::bundle_offset`]). The same directory state
//! always encodes to the same bytes, so an unchanged directory yields the same tree blob
//! id and is stored once.

use serde::{Deserialize, Serialize};

use crate::RepoError;
use crate::blob::BlobId;
use crate::wire::{decode_postcard, encode_versioned, expect_version, split_version};

const TREE_VERSION: u16 = 2;
/// Trees written before small files were bundled: nodes without `bundle_offset`.
const TREE_VERSION_UNBUNDLED: u16 = 1;

/// A point in time: seconds and nanoseconds since the Unix epoch.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp {
    /// Whole seconds (negative before 1970).
    pub secs: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nanos: u32,
}

/// What a node is. Stored as an explicit code (the numbers are on disk).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
#[non_exhaustive]
pub enum NodeKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

impl From<NodeKind> for u8 {
    fn from(k: NodeKind) -> u8 {
        match k {
            NodeKind::File => 1,
            NodeKind::Dir => 2,
            NodeKind::Symlink => 3,
            NodeKind::BlockDevice => 4,
            NodeKind::CharDevice => 5,
            NodeKind::Fifo => 6,
            NodeKind::Socket => 7,
        }
    }
}

/// An unknown node kind code.
#[derive(Debug, thiserror::Error)]
#[error("unknown node kind {0}")]
pub struct UnknownNodeKind(u8);

impl TryFrom<u8> for NodeKind {
    type Error = UnknownNodeKind;
    fn try_from(code: u8) -> Result<Self, Self::Error> {
        Ok(match code {
            1 => Self::File,
            2 => Self::Dir,
            3 => Self::Symlink,
            4 => Self::BlockDevice,
            5 => Self::CharDevice,
            6 => Self::Fifo,
            7 => Self::Socket,
            other => return Err(UnknownNodeKind(other)),
        })
    }
}

/// An extended attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Its name, e.g. `user.comment` or `system.posix_acl_access`.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// Its value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// One directory entry with its metadata.
///
/// Field order is the encoding order; do not reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The file name (raw bytes; need not be UTF-8). Never empty, `.`, `..`, nor
    /// containing `/` or NUL.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// What it is.
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Owner user name at backup time, empty if unknown.
    pub user: String,
    /// Owner group name at backup time, empty if unknown.
    pub group: String,
    /// Size in bytes (files: content length).
    pub size: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// Access time.
    pub atime: Timestamp,
    /// Status change time (used to detect changes; not restorable).
    pub ctime: Timestamp,
    /// Inode number at backup time.
    pub inode: u64,
    /// Device of the containing filesystem at backup time.
    pub device: u64,
    /// Hard link count at backup time.
    pub links: u64,
    /// Device number, for block and character devices.
    pub rdev: u64,
    /// Symlink target (raw bytes), empty otherwise.
    #[serde(with = "serde_bytes")]
    pub target: Vec<u8>,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<Xattr>,
    /// Files: the ids of the content chunks, in order.
    pub content: Vec<BlobId>,
    /// Bundled files (small files stored together in one chunk, a *bundle*): where
    /// this file's `size` bytes start in its one chunk. `None`: the chunks are the
    /// file's own, whole.
    pub bundle_offset: Option<u64>,
    /// Directories: the id of the tree blob listing its entries.
    pub subtree: Option<BlobId>,
}

/// A node as tree version 1 encodes it: [`Node`] without `bundle_offset`.
#[derive(Deserialize)]
struct NodeV1 {
    #[serde(with = "serde_bytes")]
    name: Vec<u8>,
    kind: NodeKind,
    mode: u32,
    uid: u32,
    gid: u32,
    user: String,
    group: String,
    size: u64,
    mtime: Timestamp,
    atime: Timestamp,
    ctime: Timestamp,
    inode: u64,
    device: u64,
    links: u64,
    rdev: u64,
    #[serde(with = "serde_bytes")]
    target: Vec<u8>,
    xattrs: Vec<Xattr>,
    content: Vec<BlobId>,
    subtree: Option<BlobId>,
}

impl From<NodeV1> for Node {
    fn from(n: NodeV1) -> Self {
        Self {
            name: n.name,
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            user: n.user,
            group: n.group,
            size: n.size,
            mtime: n.mtime,
            atime: n.atime,
            ctime: n.ctime,
            inode: n.inode,
            device: n.device,
            links: n.links,
            rdev: n.rdev,
            target: n.target,
            xattrs: n.xattrs,
            content: n.content,
            bundle_offset: None,
            subtree: n.subtree,
        }
    }
}

impl Node {
    /// A node of `kind` named `name` with all metadata zero.
    pub fn new(name: impl Into<Vec<u8>>, kind: NodeKind) -> Self {
        Self {
            name: name.into(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            size: 0,
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            inode: 0,
            device: 0,
            links: 0,
            rdev: 0,
            target: Vec::new(),
            xattrs: Vec::new(),
            content: Vec::new(),
            bundle_offset: None,
            subtree: None,
        }
    }

    /// The name for display (lossy UTF-8).
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Whether `name` is safe as one path component: not empty, `.` or `..`, and free of
/// `/` and NUL. A tree with any other name is damaged or hostile.
pub fn is_valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// One directory's entries, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    /// A tree of `nodes`, sorted by name.
    ///
    /// # Errors
    /// [`RepoError::InvalidInput`] for an invalid or duplicate name.
    pub fn new(mut nodes: Vec<Node>) -> Result<Self, RepoError> {
        nodes.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        check_nodes(&nodes).map_err(RepoError::InvalidInput)?;
        Ok(Self { nodes })
    }

    /// The entries, sorted by name.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Takes the entries.
    pub fn into_nodes(self) -> Vec<Node> {
        self.nodes
    }

    /// The entry named `name`.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .and_then(|i| self.nodes.get(i))
    }

    /// Encodes the payload (deterministic).
    ///
    /// # Errors
    /// Only if serialization fails, which valid trees do not.
    pub fn encode(&self) -> Result<Vec<u8>, RepoError> {
        encode_versioned(TREE_VERSION, &self.nodes)
    }

    /// Decodes and validates a payload.
    ///
    /// # Errors
    /// [`RepoError::Corrupt`] naming `object` for undecodable bytes, unsorted or invalid
    /// names, or nodes inconsistent with their kind; [`RepoError::UnsupportedVersion`].
    pub fn decode(payload: &[u8], object: &str) -> Result<Self, RepoError> {
        let (version, body) = split_version(payload, object)?;
        let nodes: Vec<Node> = if version == TREE_VERSION_UNBUNDLED {
            let nodes: Vec<NodeV1> = decode_postcard(body, object)?;
            nodes.into_iter().map(Node::from).collect()
        } else {
            expect_version(version, TREE_VERSION, object)?;
            decode_postcard(body, object)?
        };
        check_nodes(&nodes).map_err(|reason| RepoError::corrupt(object, reason))?;
        Ok(Self { nodes })
    }
}

fn check_nodes(nodes: &[Node]) -> Result<(), String> {
    for (i, n) in nodes.iter().enumerate() {
        if !is_valid_name(&n.name) {
            return Err(format!("invalid entry name {:?}", n.display_name()));
        }
        if i > 0 && nodes[i - 1].name >= n.name {
            return Err(format!(
                "entry {:?} is duplicate or out of order",
                n.display_name()
            ));
        }
        if n.mtime.nanos >= 1_000_000_000
            || n.atime.nanos >= 1_000_000_000
            || n.ctime.nanos >= 1_000_000_000
        {
            return Err(format!(
                "entry {:?} has a timestamp with nanoseconds out of range",
                n.display_name()
            ));
        }
        let consistent = match n.kind {
            NodeKind::Dir => n.subtree.is_some() && n.content.is_empty(),
            NodeKind::File => n.subtree.is_none(),
            _ => n.subtree.is_none() && n.content.is_empty(),
        };
        if !consistent {
            return Err(format!(
                "entry {:?} has content or subtree fields inconsistent with its kind",
                n.display_name()
            ));
        }
        if n.bundle_offset.is_some() && (n.kind != NodeKind::File || n.content.len() != 1) {
            return Err(format!(
                "entry {:?} is bundled but has not exactly one chunk",
                n.display_name()
            ));
        }
        if n.bundle_offset
            .is_some_and(|o| o.checked_add(n.size).is_none())
        {
            return Err(format!(
                "entry {:?} ends beyond the largest offset",
                n.display_name()
            ));
        }
    }
    Ok(())
}
