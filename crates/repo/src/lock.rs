//! Coordination records in `locks/`: session markers of running backups, exclusive
//! locks of maintenance commands, and deletion plans of `prune` (docs/design.md §19).
//!
//! Payload: `version (u16 LE) = 1 || tag (u8) || postcard(record)`, tags 1 session,
//! 2 exclusive lock, 3 deletion plan. Sealed as object type 5 with the file's id.

use serde::{Deserialize, Serialize};

use crate::ObjectId;
use crate::RepoError;
use crate::tree::Timestamp;
use crate::wire::decode_postcard;

const LOCK_VERSION: u16 = 1;
const TAG_SESSION: u8 = 1;
const TAG_EXCLUSIVE: u8 = 2;
const TAG_DELETION: u8 = 3;

/// Who holds a session or lock. A holder refreshes its record (writes a new file with
/// the same `session`, then removes the old one) while it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Random, the same in every refresh of one session or lock.
    pub session: [u8; 16],
    /// The host it runs on.
    pub hostname: String,
    /// The user it runs as.
    pub username: String,
    /// Its process id on that host.
    pub pid: u32,
    /// The command (`backup`, `prune`, ...).
    pub command: String,
    /// When it started.
    pub started: Timestamp,
    /// When this record was written.
    pub refreshed: Timestamp,
    /// The host's boot id (Linux `/proc/sys/kernel/random/boot_id`; empty if unknown).
    pub boot_id: String,
    /// The pid namespace's inode (Linux; 0 if unknown): a pid identifies a process
    /// only within its namespace.
    pub pid_namespace: u64,
}

/// Packs that `prune` condemned, and the backup sessions that were running then. The
/// packs may be deleted once none of those sessions runs any more (§19).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionPlan {
    /// When the plan was made.
    pub created: Timestamp,
    /// Sessions running when the packs were condemned.
    pub sessions: Vec<[u8; 16]>,
    /// The condemned packs' ids.
    pub packs: Vec<[u8; 32]>,
}

impl DeletionPlan {
    /// The condemned packs.
    pub fn pack_ids(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.packs.iter().map(|b| ObjectId::from_bytes(*b))
    }
}

/// One record in `locks/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockRecord {
    /// A running backup (or other writer that adds data).
    Session(Holder),
    /// A command that must run alone among maintenance commands (prune, repair).
    Exclusive(Holder),
    /// Packs waiting for deletion.
    Deletion(DeletionPlan),
}

impl LockRecord {
    /// Encodes the payload.
    ///
    /// # Errors
    /// Never in practice (postcard into a vector).
    pub fn encode(&self) -> Result<Vec<u8>, RepoError> {
        let (tag, body) = match self {
            Self::Session(h) => (TAG_SESSION, postcard::to_allocvec(h)),
            Self::Exclusive(h) => (TAG_EXCLUSIVE, postcard::to_allocvec(h)),
            Self::Deletion(p) => (TAG_DELETION, postcard::to_allocvec(p)),
        };
        let body = body.map_err(|e| RepoError::corrupt("lock", e.to_string()))?;
        let mut out = Vec::with_capacity(3 + body.len());
        out.extend_from_slice(&LOCK_VERSION.to_le_bytes());
        out.push(tag);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a payload.
    ///
    /// # Errors
    /// [`RepoError::Corrupt`] naming `object`, or [`RepoError::UnsupportedVersion`].
    pub fn decode(payload: &[u8], object: &str) -> Result<Self, RepoError> {
        let (version, rest) = payload
            .split_first_chunk::<2>()
            .ok_or_else(|| RepoError::corrupt(object, "truncated"))?;
        let version = u16::from_le_bytes(*version);
        if version != LOCK_VERSION {
            return Err(RepoError::UnsupportedVersion {
                object: object.to_owned(),
                found: u32::from(version),
                supported: u32::from(LOCK_VERSION),
            });
        }
        let (tag, body) = rest
            .split_first()
            .ok_or_else(|| RepoError::corrupt(object, "truncated"))?;
        let record = match *tag {
            TAG_SESSION => Self::Session(decode_postcard(body, object)?),
            TAG_EXCLUSIVE => Self::Exclusive(decode_postcard(body, object)?),
            TAG_DELETION => Self::Deletion(decode_postcard(body, object)?),
            other => {
                return Err(RepoError::corrupt(
                    object,
                    format!("unknown lock record type {other}"),
                ));
            }
        };
        let times_ok = match &record {
            Self::Session(h) | Self::Exclusive(h) => {
                h.started.nanos < 1_000_000_000 && h.refreshed.nanos < 1_000_000_000
            }
            Self::Deletion(p) => p.created.nanos < 1_000_000_000,
        };
        if !times_ok {
            return Err(RepoError::corrupt(
                object,
                "time has nanoseconds out of range",
            ));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn holder() -> Holder {
        Holder {
            session: [7; 16],
            hostname: "laptop".into(),
            username: "me".into(),
            pid: 4242,
            command: "backup".into(),
            started: Timestamp {
                secs: 1_767_225_600,
                nanos: 5,
            },
            refreshed: Timestamp {
                secs: 1_767_225_900,
                nanos: 0,
            },
            boot_id: "b".into(),
            pid_namespace: 4_026_531_836,
        }
    }

    #[test]
    fn golden_session_record() {
        let bytes = LockRecord::Session(holder()).encode().unwrap();
        assert_eq!(
            hex::encode(&bytes),
            // version 1, tag 1, session, "laptop", "me", pid 4242 (varint 92 21),
            // "backup", started (zigzag varint seconds, nanos 5), refreshed, boot id
            // "b", pid namespace 4026531836 (varint fc ff ff ff 0e).
            "01000107070707070707070707070707070707066c6170746f70026d659221\
             066261636b757080e4ad950d05d8e8ad950d000162fcffffff0e"
        );
        assert_eq!(
            LockRecord::decode(&bytes, "t").unwrap(),
            LockRecord::Session(holder())
        );
    }

    #[test]
    fn bad_payloads_are_refused() {
        let good = LockRecord::Exclusive(holder()).encode().unwrap();
        let mut v2 = good.clone();
        v2[0] = 2;
        assert!(matches!(
            LockRecord::decode(&v2, "t"),
            Err(RepoError::UnsupportedVersion { .. })
        ));
        let mut tag = good.clone();
        tag[2] = 9;
        assert!(LockRecord::decode(&tag, "t").is_err());
        for cut in 0..good.len() {
            assert!(LockRecord::decode(&good[..cut], "t").is_err(), "{cut}");
        }
    }

    proptest! {
        #[test]
        fn records_round_trip(
            session in any::<[u8; 16]>(),
            host in ".{0,20}",
            pid in any::<u32>(),
            secs in any::<i64>(),
            nanos in 0u32..1_000_000_000,
            packs in proptest::collection::vec(any::<[u8; 32]>(), 0..20),
        ) {
            let h = Holder {
                session,
                hostname: host.clone(),
                username: host,
                pid,
                command: "prune".into(),
                started: Timestamp { secs, nanos },
                refreshed: Timestamp { secs: secs.wrapping_add(1), nanos },
                boot_id: "boot".into(),
                pid_namespace: u64::from(pid),
            };
            for r in [
                LockRecord::Session(h.clone()),
                LockRecord::Exclusive(h),
                LockRecord::Deletion(DeletionPlan {
                    created: Timestamp { secs, nanos },
                    sessions: vec![session],
                    packs,
                }),
            ] {
                let bytes = r.encode().unwrap();
                prop_assert_eq!(LockRecord::decode(&bytes, "t").unwrap(), r);
            }
        }
    }
}
