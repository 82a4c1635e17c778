//! The AES-256-GCM envelope with per-session keys and counter nonces.
//!
//! Envelope layout (all objects in a repository use it):
//!
//! ```text
//! session id (16) | counter (8, little endian) | ciphertext (n) | GCM tag (16)
//! ```
//!
//! The session key is HKDF-SHA-256(salt = "arca-v1 aead session key",
//! IKM = master encryption key, info = session id). The 96-bit GCM nonce is the counter
//! (8 bytes, little endian) followed by four zero bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use crate::random::{expand_key, random_array};
use crate::{CryptoError, SecretKey};

const SESSION_ID_LEN: usize = 16;
const COUNTER_LEN: usize = 8;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = SESSION_ID_LEN + COUNTER_LEN;

/// Bytes an envelope adds to its plaintext: session id, counter and tag.
pub const ENVELOPE_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// A session seals at most this many messages before a new session (new random id,
/// new key) takes over, so the 64-bit counter nonce never comes near wrapping.
pub const SESSION_MAX_MESSAGES: u64 = 1 << 32;

/// A session seals at most this many plaintext bytes (64 GiB, about 2^32 AES blocks)
/// before rotating, which keeps each key far inside AES-GCM's usage limits.
pub const SESSION_MAX_BYTES: u64 = 1 << 36;

const SESSION_KEY_LABEL: &[u8] = b"arca-v1 aead session key";

/// Most session keys an [`Opener`] keeps derived; a repository has one session per
/// writing process, so this covers thousands of backups before any re-derivation.
const OPENER_CACHE_LIMIT: usize = 4096;

fn session_cipher(key: &SecretKey, session_id: &[u8; SESSION_ID_LEN]) -> Aes256Gcm {
    let mut derived = zeroize::Zeroizing::new([0u8; 32]);
    // 32 bytes is always within HKDF-SHA-256's output limit.
    let _ = expand_key(key, SESSION_KEY_LABEL, session_id, &mut derived[..]);
    Aes256Gcm::new((&*derived).into())
}

fn nonce(counter: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&counter.to_le_bytes());
    n.into()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state is updated in single assignments; a panic elsewhere while the
    // lock was held cannot leave it half-written, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Session {
    id: [u8; SESSION_ID_LEN],
    cipher: Aes256Gcm,
}

struct SessionState {
    session: Arc<Session>,
    next_counter: u64,
    bytes: u64,
}

/// Seals (encrypts and authenticates) objects for one writing session.
///
/// Thread-safe: concurrent callers each take a distinct counter value. A fresh random
/// session starts when the current one reaches [`SESSION_MAX_MESSAGES`] or
/// [`SESSION_MAX_BYTES`].
pub struct Sealer {
    key: SecretKey,
    state: Mutex<SessionState>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Starts a session under the master encryption key `key`.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if no session id can be drawn.
    pub fn new(key: &SecretKey) -> Result<Self, CryptoError> {
        let session = Self::new_session(key)?;
        Ok(Self {
            key: key.clone(),
            state: Mutex::new(SessionState {
                session,
                next_counter: 0,
                bytes: 0,
            }),
        })
    }

    /// A sealer with a chosen session id and first counter, for known-answer tests.
    #[cfg(test)]
    pub(crate) fn with_session(key: &SecretKey, id: [u8; SESSION_ID_LEN], counter: u64) -> Self {
        Self {
            key: key.clone(),
            state: Mutex::new(SessionState {
                session: Arc::new(Session {
                    id,
                    cipher: session_cipher(key, &id),
                }),
                next_counter: counter,
                bytes: 0,
            }),
        }
    }

    fn new_session(key: &SecretKey) -> Result<Arc<Session>, CryptoError> {
        let id: [u8; SESSION_ID_LEN] = random_array()?;
        Ok(Arc::new(Session {
            id,
            cipher: session_cipher(key, &id),
        }))
    }

    /// Takes the next counter value, rotating the session when a bound is reached.
    fn reserve(&self, len: usize) -> Result<(Arc<Session>, u64), CryptoError> {
        let len = len as u64;
        let mut st = lock(&self.state);
        if st.next_counter >= SESSION_MAX_MESSAGES
            || st.bytes.saturating_add(len) > SESSION_MAX_BYTES
        {
            st.session = Self::new_session(&self.key)?;
            st.next_counter = 0;
            st.bytes = 0;
        }
        let counter = st.next_counter;
        st.next_counter += 1;
        st.bytes = st.bytes.saturating_add(len);
        Ok((st.session.clone(), counter))
    }

    /// Seals `plaintext`, binding `aad`; returns the envelope.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if a session rotation cannot draw an id;
    /// [`CryptoError::TooLong`] past AES-GCM's message size limit.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(plaintext.len() + ENVELOPE_OVERHEAD);
        self.seal_into(aad, plaintext, &mut out)?;
        Ok(out)
    }

    /// Seals `plaintext`, binding `aad`, appending the envelope to `out`.
    ///
    /// # Errors
    /// As [`Sealer::seal`]. On error `out` is left as it was.
    pub fn seal_into(
        &self,
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let (session, counter) = self.reserve(plaintext.len())?;
        let start = out.len();
        out.reserve(plaintext.len() + ENVELOPE_OVERHEAD);
        out.extend_from_slice(&session.id);
        out.extend_from_slice(&counter.to_le_bytes());
        out.extend_from_slice(plaintext);
        let body = &mut out[start + HEADER_LEN..];
        match session
            .cipher
            .encrypt_inout_detached(&nonce(counter), aad, body.into())
        {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(CryptoError::TooLong)
            }
        }
    }
}

/// Opens (authenticates and decrypts) envelopes from any session of a repository.
///
/// Keeps the derived keys of recently seen sessions, so opening many objects from the
/// same backup derives its key once. Thread-safe.
pub struct Opener {
    key: SecretKey,
    cache: Mutex<HashMap<[u8; SESSION_ID_LEN], Arc<Aes256Gcm>>>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opener(..)")
    }
}

impl Opener {
    /// An opener for objects sealed under master encryption key `key`.
    pub fn new(key: &SecretKey) -> Self {
        Self {
            key: key.clone(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cipher(&self, session_id: &[u8; SESSION_ID_LEN]) -> Arc<Aes256Gcm> {
        if let Some(c) = lock(&self.cache).get(session_id) {
            return c.clone();
        }
        let cipher = Arc::new(session_cipher(&self.key, session_id));
        let mut cache = lock(&self.cache);
        if cache.len() >= OPENER_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(*session_id, cipher.clone());
        cipher
    }

    /// Authenticates `envelope` against `aad` and returns the plaintext.
    ///
    /// # Errors
    /// [`CryptoError::Truncated`] if the envelope is shorter than its overhead;
    /// [`CryptoError::Authentication`] if it was altered, sealed with other associated
    /// data, or sealed under another key.
    pub fn open(&self, aad: &[u8], envelope: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if envelope.len() < ENVELOPE_OVERHEAD {
            return Err(CryptoError::Truncated {
                len: envelope.len(),
                min: ENVELOPE_OVERHEAD,
            });
        }
        let (header, rest) = envelope.split_at(HEADER_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut session_id = [0u8; SESSION_ID_LEN];
        session_id.copy_from_slice(&header[..SESSION_ID_LEN]);
        let mut counter = [0u8; COUNTER_LEN];
        counter.copy_from_slice(&header[SESSION_ID_LEN..]);
        let tag = Tag::try_from(tag).map_err(|_| CryptoError::Authentication)?;
        let mut plaintext = ciphertext.to_vec();
        self.cipher(&session_id)
            .decrypt_inout_detached(
                &nonce(u64::from_le_bytes(counter)),
                aad,
                (&mut plaintext[..]).into(),
                &tag,
            )
            .map_err(|_| CryptoError::Authentication)?;
        Ok(plaintext)
    }
}
