//! Backblaze B2 through its native API (v3).
//!
//! A small synchronous client over the shared HTTP client: `b2_authorize_account` once
//! (again when B2 says the token expired), uploads over a pool of upload URLs so that
//! concurrent writers each have their own (B2 refuses two uploads on one URL), and the
//! large-file API from the threshold up. Objects live under the prefix with the local
//! layout (`config`, `keys/ID`, `data/XX/ID`, ...).
//!
//! B2 keeps versions: uploading a name that exists adds a version, and deleting removes
//! one version. So a write first checks that no visible version exists (writers of one id
//! store the same bytes, as for S3, so the remaining race is harmless), and a removal
//! deletes every version of the name. An upload is visible whole or not at all; a large
//! file only once `b2_finish_large_file` has succeeded.
//!
//! Retrying is the [`crate::Retry`] layer's job; the backend itself only renews an
//! expired token once, and fetches a new upload URL where B2 requires one (a large
//! file's part gets one more attempt on a new URL, so that one lost part does not cost
//! the whole file).

mod api;
mod config;

use bytes::Bytes;
use serde_json::{Value, json};

pub use config::{B2Config, B2ConfigError};

use api::{Api, FilePage, PAGE};

use crate::{BackendError, ErrorKind, FileKind, ObjectId, ReadBackend, WriteBackend};

/// The most parts a B2 large file may have.
const MAX_PARTS: u64 = 10_000;

/// A repository in a B2 bucket, under a prefix.
pub struct B2Backend {
    api: Api,
}

impl std::fmt::Debug for B2Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("B2Backend")
            .field("location", &self.location())
            .finish_non_exhaustive()
    }
}

impl B2Backend {
    /// A backend for `config`. Nothing is sent until the first call, which authorizes
    /// the key and looks up the bucket.
    pub fn new(config: B2Config) -> Self {
        Self {
            api: Api::new(config),
        }
    }

    fn config(&self) -> &B2Config {
        self.api.config()
    }

    /// The file name of `(kind, id)`.
    fn key(&self, kind: FileKind, id: &ObjectId) -> String {
        format!("{}{}", self.config().prefix, kind.object_path(id))
    }

    /// The name of `key` in messages: `b2:BUCKET/KEY`.
    fn name(&self, key: &str) -> String {
        format!("b2:{}/{key}", self.config().bucket)
    }

    fn not_found(&self, operation: &'static str, key: &str) -> BackendError {
        BackendError::not_found(operation, self.name(key))
    }

    fn short(&self, key: &str, wanted: u64) -> BackendError {
        BackendError::new(
            ErrorKind::Permanent,
            "read",
            self.name(key),
            format!("the object ends before the {wanted} bytes asked for"),
        )
    }

    /// Visible files whose names start with `prefix`, with their sizes, following
    /// `nextFileName` (at most `limit` of them).
    fn list_names(
        &self,
        operation: &'static str,
        prefix: &str,
        start: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<(String, u64)>, BackendError> {
        let object = self.name(prefix);
        let mut out = Vec::new();
        let mut start = start.map(str::to_owned);
        loop {
            let mut body =
                json!({"prefix": prefix, "maxFileCount": limit.unwrap_or(PAGE).min(PAGE)});
            if let Some(start) = &start {
                body["startFileName"] = Value::from(start.as_str());
            }
            let page: FilePage = self
                .api
                .call("b2_list_file_names", body, operation, &object)?;
            out.extend(
                page.files
                    .into_iter()
                    .filter(|f| f.action == "upload" && f.file_name.starts_with(prefix))
                    .map(|f| (f.file_name, f.content_length)),
            );
            match page.next_file_name {
                Some(next) if limit.is_none() && !next.is_empty() => start = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// The size of file `key`, or `None` if no version of it is visible.
    fn stat(&self, operation: &'static str, key: &str) -> Result<Option<u64>, BackendError> {
        Ok(self
            .list_names(operation, key, Some(key), Some(1))?
            .into_iter()
            .find(|(name, _)| name == key)
            .map(|(_, size)| size))
    }

    fn get(
        &self,
        kind: FileKind,
        id: &ObjectId,
        range: Option<(u64, u64)>,
    ) -> Result<Bytes, BackendError> {
        let key = self.key(kind, id);
        let object = self.name(&key);
        let header = match range {
            Some((offset, length)) => {
                let last = length
                    .checked_sub(1)
                    .and_then(|l| offset.checked_add(l))
                    .ok_or_else(|| self.short(&key, length))?;
                Some(format!("bytes={offset}-{last}"))
            }
            None => None,
        };
        let reply = self.api.download(&key, header, "read", &object)?;
        let Some((offset, length)) = range else {
            return Ok(reply.body);
        };
        if reply.status == 416 {
            return Err(self.short(&key, length));
        }
        if reply.status != 206 {
            // A server that ignored the range sent the whole object.
            return slice(&reply.body, offset, length).ok_or_else(|| self.short(&key, length));
        }
        if reply.body.len() as u64 != length {
            return Err(self.short(&key, length));
        }
        Ok(reply.body)
    }

    /// Every version of file `key`, newest first (hide markers and unfinished large
    /// files included).
    fn versions(&self, key: &str) -> Result<Vec<api::FileEntry>, BackendError> {
        let object = self.name(key);
        let mut out = Vec::new();
        let mut start_id: Option<String> = None;
        loop {
            let mut body = json!({"prefix": key, "startFileName": key, "maxFileCount": PAGE});
            if let Some(id) = &start_id {
                body["startFileId"] = Value::from(id.as_str());
            }
            let page: FilePage = self
                .api
                .call("b2_list_file_versions", body, "remove", &object)?;
            out.extend(page.files.into_iter().filter(|f| f.file_name == key));
            match (page.next_file_name, page.next_file_id) {
                (Some(name), Some(id)) if name == key => start_id = Some(id),
                _ => return Ok(out),
            }
        }
    }

    /// The part size for `len` bytes: the configured one, raised to B2's minimum and so
    /// that there are at most 10,000 parts; `None` if that leaves a single part (B2's
    /// large files have at least two), which is then a plain upload.
    fn part_size(&self, len: u64) -> Result<Option<usize>, BackendError> {
        let min = self.api.session("write")?.min_part_size;
        let size = self
            .config()
            .part_size
            .max(min)
            .max(len.div_ceil(MAX_PARTS))
            .max(1);
        if len <= size {
            return Ok(None);
        }
        Ok(Some(usize::try_from(size).unwrap_or(usize::MAX)))
    }
}

fn slice(body: &Bytes, offset: u64, length: u64) -> Option<Bytes> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(length).ok()?)?;
    (end <= body.len()).then(|| body.slice(start..end))
}

impl ReadBackend for B2Backend {
    fn location(&self) -> String {
        self.config().location()
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectId, u64)>, BackendError> {
        if kind == FileKind::Config {
            let key = self.key(kind, &ObjectId::ZERO);
            return Ok(self
                .stat("list", &key)?
                .map(|size| (ObjectId::ZERO, size))
                .into_iter()
                .collect());
        }
        let prefix = format!("{}{}/", self.config().prefix, kind.dir_name());
        Ok(self
            .list_names("list", &prefix, None, None)?
            .into_iter()
            .filter_map(|(name, size)| {
                let id = name.rsplit('/').next()?;
                Some((id.parse().ok()?, size))
            })
            .collect())
    }

    fn read_full(&self, kind: FileKind, id: &ObjectId) -> Result<Bytes, BackendError> {
        self.get(kind, id, None)
    }

    fn read_range(
        &self,
        kind: FileKind,
        id: &ObjectId,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, BackendError> {
        if length == 0 {
            let key = self.key(kind, id);
            return match self.stat("read", &key)? {
                None => Err(self.not_found("read", &key)),
                Some(size) if size < offset => Err(self.short(&key, 0)),
                Some(_) => Ok(Bytes::new()),
            };
        }
        self.get(kind, id, Some((offset, length)))
    }
}

impl WriteBackend for B2Backend {
    fn create(&self) -> Result<(), BackendError> {
        let prefix = self.config().prefix.clone();
        let used = self
            .list_names("create", &prefix, None, Some(1))
            .map_err(|e| {
                if e.is_not_found() {
                    BackendError::new(
                        ErrorKind::Permanent,
                        "create",
                        self.location(),
                        format!(
                            "{e}: create the bucket first (B2 web UI, or `b2 bucket create` \
                             with a key that may create buckets)"
                        ),
                    )
                } else {
                    e
                }
            })?;
        if !used.is_empty() {
            return Err(BackendError::new(
                ErrorKind::AlreadyExists,
                "create",
                self.location(),
                "the location already holds objects",
            ));
        }
        Ok(())
    }

    fn write(&self, kind: FileKind, id: &ObjectId, data: Bytes) -> Result<(), BackendError> {
        let key = self.key(kind, id);
        let object = self.name(&key);
        if self.stat("write", &key)?.is_some() {
            return Err(BackendError::already_exists("write", object));
        }
        let len = data.len() as u64;
        if len >= self.config().large_file_threshold
            && let Some(part_size) = self.part_size(len)?
        {
            self.api.upload_large(&key, &data, part_size, &object)
        } else {
            self.api.upload(&key, &data, &object)
        }
    }

    fn remove(&self, kind: FileKind, id: &ObjectId) -> Result<(), BackendError> {
        let key = self.key(kind, id);
        let object = self.name(&key);
        let versions = self.versions(&key)?;
        // Visible means: the newest version is an upload (not a hide marker).
        let visible = versions
            .iter()
            .find(|v| v.action != "start")
            .is_some_and(|v| v.action == "upload");
        if !visible {
            return Err(self.not_found("remove", &key));
        }
        // Oldest first, so that a removal that fails midway leaves the object as it
        // was, not an older version in its place. Unfinished large files belong to a
        // writer still at work (or are cleaned up by B2's lifecycle rules).
        for version in versions.iter().rev().filter(|v| v.action != "start") {
            let body = json!({"fileName": key, "fileId": version.file_id});
            match self
                .api
                .call::<Value>("b2_delete_file_version", body, "remove", &object)
            {
                Ok(_) => {}
                // Deleted meanwhile by another remover: gone is what we want.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
