//! Snapshots: what was backed up, when, from where, and the root tree.
//!
//! Payload: `version (u16 LE) || postcard(Snapshot)`. Version 3 (checkpoints) has every
//! field; version 2 (complete snapshots, still written for them) lacks the last,
//! `checkpoint`; version 1 also `summary.changed_during_read` and `notes`.

use serde::{Deserialize, Serialize};

use crate::RepoError;
use crate::blob::BlobId;
use crate::tree::Timestamp;
use crate::wire::{decode_postcard, encode_versioned, split_version};

const SNAPSHOT_VERSION: u16 = 3;

/// At most this many notes are recorded in a snapshot.
pub const MAX_NOTES: usize = 1000;

/// Figures recorded when a snapshot is made.
///
/// Field order is the encoding order; do not reorder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// Wall-clock duration of the backup, in milliseconds.
    pub duration_ms: u64,
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files in the parent snapshot whose metadata changed (re-read).
    pub files_changed: u64,
    /// Files unchanged since the parent snapshot (not read).
    pub files_unchanged: u64,
    /// Directories not in the parent snapshot.
    pub dirs_new: u64,
    /// Directories whose tree differs from the parent's.
    pub dirs_changed: u64,
    /// Directories whose tree is identical to the parent's.
    pub dirs_unchanged: u64,
    /// Symlinks, devices, FIFOs and sockets.
    pub other_entries: u64,
    /// Total size of the files in the snapshot.
    pub bytes_total: u64,
    /// Bytes read from files during this backup.
    pub bytes_read: u64,
    /// Stored (compressed, encrypted) size of every blob (chunks and trees) the snapshot
    /// references, counting repeats.
    pub bytes_stored_total: u64,
    /// Plaintext size of the blobs this backup added to the repository.
    pub bytes_added_raw: u64,
    /// Stored size of the blobs this backup added to the repository.
    pub bytes_added_stored: u64,
    /// Data blobs added.
    pub data_blobs_added: u64,
    /// Tree blobs added.
    pub tree_blobs_added: u64,
    /// Chunk references in the snapshot, counting repeats.
    pub chunks_total: u64,
    /// Files or directories that could not be read (the snapshot is partial if > 0).
    pub errors: u64,
    /// Files whose size or times changed while they were read; the snapshot holds
    /// what was read (version 2).
    pub changed_during_read: u64,
}

/// A snapshot file's content.
///
/// Field order is the encoding order; do not reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup started.
    pub time: Timestamp,
    /// The local time zone's offset from UTC at that moment, in seconds east.
    pub utc_offset: i32,
    /// The root tree.
    pub tree: BlobId,
    /// The backed-up paths, absolute, as raw bytes.
    pub paths: Vec<Vec<u8>>,
    /// The host the backup ran on.
    pub hostname: String,
    /// The user the backup ran as.
    pub username: String,
    /// That user's uid.
    pub uid: u32,
    /// That user's gid.
    pub gid: u32,
    /// User-given tags, sorted.
    pub tags: Vec<String>,
    /// The snapshot whose metadata was used to skip unchanged files.
    pub parent: Option<[u8; 32]>,
    /// The exclude patterns in effect.
    pub excludes: Vec<String>,
    /// The arca version that wrote it.
    pub program_version: String,
    /// Figures from the backup.
    pub summary: SnapshotSummary,
    /// What the backup noticed about particular paths, one line each: entries it could
    /// not read, files that changed while read (at most [`MAX_NOTES`]; version 2).
    pub notes: Vec<String>,
    /// Written during a backup that had not finished (`--checkpoint-interval`): it holds
    /// the entries backed up so far, and a complete snapshot of the same host and paths
    /// taken later supersedes it (version 3).
    pub checkpoint: bool,
}

impl Snapshot {
    /// True if some files could not be read, so the snapshot lacks them.
    pub fn is_partial(&self) -> bool {
        self.summary.errors > 0
    }

    /// Encodes the payload: version 3 for a checkpoint, version 2 otherwise (the same
    /// bytes without the trailing `checkpoint = false`), so that arca versions that
    /// predate checkpoints keep reading every complete snapshot.
    ///
    /// # Errors
    /// Only if serialization fails.
    pub fn encode(&self) -> Result<Vec<u8>, RepoError> {
        let mut out = encode_versioned(SNAPSHOT_VERSION, self)?;
        if !self.checkpoint {
            // postcard writes `false` as one zero byte, last.
            out.pop();
            out[..2].copy_from_slice(&2u16.to_le_bytes());
        }
        Ok(out)
    }

    /// Decodes a payload.
    ///
    /// # Errors
    /// [`RepoError::Corrupt`] naming `object`, or [`RepoError::UnsupportedVersion`].
    pub fn decode(payload: &[u8], object: &str) -> Result<Self, RepoError> {
        let (version, body) = split_version(payload, object)?;
        let snap: Snapshot = match version {
            SNAPSHOT_VERSION => decode_postcard(body, object)?,
            // Older versions lack trailing fields whose empty values encode as one zero
            // byte each in postcard (`0u64`, an empty list, `false`): version 2 lacks
            // `checkpoint`, version 1 also `changed_during_read` and `notes`.
            1 | 2 => {
                let missing = if version == 1 { 3 } else { 1 };
                let mut v3 = body.to_vec();
                v3.extend(std::iter::repeat_n(0, missing));
                decode_postcard(&v3, object)?
            }
            other => {
                return Err(RepoError::UnsupportedVersion {
                    object: object.to_owned(),
                    found: u32::from(other),
                    supported: u32::from(SNAPSHOT_VERSION),
                });
            }
        };
        if snap.notes.len() > MAX_NOTES {
            return Err(RepoError::corrupt(object, "too many notes"));
        }
        if snap.time.nanos >= 1_000_000_000 {
            return Err(RepoError::corrupt(
                object,
                "time has nanoseconds out of range",
            ));
        }
        Ok(snap)
    }
}
