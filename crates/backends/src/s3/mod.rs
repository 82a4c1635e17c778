//! S3 and S3-compatible storage (AWS, MinIO, Wasabi, Backblaze B2's S3 API, ...).
//!
//! Requests are signed with AWS Signature V4 by `rusty-s3` and sent by a pooled,
//! synchronous HTTP client. Objects live under the prefix with the local layout
//! (`config`, `keys/ID`, `data/XX/ID`, ...). Writes are single `PUT`s (atomic on every
//! S3) or, from the multipart threshold up, multipart uploads, which become visible
//! only when completed. Both carry `If-None-Match: *`, so a server that supports
//! conditional writes refuses to replace an object; for servers that ignore the header,
//! a `HEAD` before the write catches all but a simultaneous writer of the same id
//! (ids are random or content hashes, so two writers of one id write the same bytes).

mod config;

use std::time::Duration;

use bytes::Bytes;
use rusty_s3::actions::{CompleteMultipartUpload, CreateMultipartUpload, ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials};

pub use config::{S3Config, S3ConfigError};

use crate::http::{Client, Reply, Request, status_kind};
use crate::{BackendError, ErrorKind, FileKind, ObjectId, ReadBackend, WriteBackend};

/// How long a signed request stays valid (it is sent at once; this only covers clock
/// skew and slow connections).
const SIGNATURE_LIFETIME: Duration = Duration::from_secs(3600);

/// A repository in an S3 bucket, under a prefix.
pub struct S3Backend {
    config: S3Config,
    bucket: Bucket,
    client: Client,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend")
            .field("location", &self.location())
            .finish_non_exhaustive()
    }
}

/// The text of `<Tag>...</Tag>` in an S3 XML error body.
fn xml_field<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(&body[start..end])
}

impl S3Backend {
    /// A backend for `config` (nothing is sent until the first call).
    ///
    /// # Errors
    /// [`ErrorKind::Permanent`] if the endpoint and bucket name do not form a valid URL
    /// (for example a virtual-host style bucket name that cannot be a host name).
    pub fn new(config: S3Config) -> Result<Self, BackendError> {
        let bucket = Bucket::new(
            config.endpoint.clone(),
            config.url_style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| {
            BackendError::new(
                ErrorKind::Permanent,
                "open",
                config.location(),
                e.to_string(),
            )
        })?;
        let client = Client::new(config.http);
        Ok(Self {
            config,
            bucket,
            client,
        })
    }

    fn credentials(&self) -> Option<&Credentials> {
        self.config.credentials.as_ref()
    }

    /// The object key of `(kind, id)`.
    fn key(&self, kind: FileKind, id: &ObjectId) -> String {
        format!("{}{}", self.config.prefix, kind.object_path(id))
    }

    /// The name of `key` in messages: `s3:ENDPOINT/BUCKET/KEY`.
    fn name(&self, key: &str) -> String {
        format!("{}/{key}", self.config.bucket_location())
    }

    fn error(&self, operation: &'static str, key: &str, reply: &Reply) -> BackendError {
        let body = reply.text();
        let detail = match (xml_field(&body, "Code"), xml_field(&body, "Message")) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ if body.is_empty() => String::new(),
            _ => body.clone(),
        };
        let message = format!("HTTP {} {detail}", reply.status);
        let kind = match (reply.status, xml_field(&body, "Code")) {
            (412, _) if operation == "write" => ErrorKind::AlreadyExists,
            // A conditional write that raced another for the same key: try again.
            (409, Some("ConditionalRequestConflict" | "OperationAborted")) => ErrorKind::Transient,
            (400, Some("RequestTimeout")) => ErrorKind::Transient,
            (status, _) => status_kind(status),
        };
        BackendError::new(kind, operation, self.name(key), message.trim_end())
    }

    fn send(
        &self,
        req: Request<'_>,
        operation: &'static str,
        key: &str,
    ) -> Result<Reply, BackendError> {
        let reply = self.client.send(req, operation, &self.name(key))?;
        if reply.ok() {
            Ok(reply)
        } else {
            Err(self.error(operation, key, &reply))
        }
    }

    /// HEAD of `key`: its size, or `None` if it does not exist.
    fn head(&self, operation: &'static str, key: &str) -> Result<Option<u64>, BackendError> {
        let url = self
            .bucket
            .head_object(self.credentials(), key)
            .sign(SIGNATURE_LIFETIME);
        match self.send(Request::new("HEAD", url.as_str()), operation, key) {
            Ok(reply) => Ok(Some(
                reply
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn bucket_exists(&self) -> Result<bool, BackendError> {
        let url = self
            .bucket
            .head_bucket(self.credentials())
            .sign(SIGNATURE_LIFETIME);
        let key = "";
        match self.send(Request::new("HEAD", url.as_str()), "open", key) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every key below `prefix` with its size, following continuation tokens.
    fn list_keys(
        &self,
        prefix: &str,
        limit: Option<usize>,
    ) -> Result<Vec<(String, u64)>, BackendError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, self.credentials());
            action.with_prefix(prefix);
            if let Some(limit) = limit {
                action.with_max_keys(limit);
            }
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGNATURE_LIFETIME);
            let reply = self.send(Request::new("GET", url.as_str()), "list", prefix)?;
            let text = String::from_utf8_lossy(&reply.body);
            let page = ListObjectsV2::parse_response(&text).map_err(|e| {
                BackendError::new(
                    ErrorKind::Permanent,
                    "list",
                    self.name(prefix),
                    format!("unreadable listing: {e}"),
                )
            })?;
            out.extend(
                page.contents
                    .into_iter()
                    .map(|c| (c.key, c.size.unwrap_or(0))),
            );
            match page.next_continuation_token {
                Some(t) if limit.is_none() && !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    fn get(
        &self,
        kind: FileKind,
        id: &ObjectId,
        range: Option<(u64, u64)>,
    ) -> Result<Bytes, BackendError> {
        let key = self.key(kind, id);
        let url = self
            .bucket
            .get_object(self.credentials(), &key)
            .sign(SIGNATURE_LIFETIME);
        let mut req = Request::new("GET", url.as_str());
        if let Some((offset, length)) = range {
            let last = offset
                .checked_add(length - 1)
                .ok_or_else(|| self.short(&key, length))?;
            req = req
                .header("range", format!("bytes={offset}-{last}"))
                .expect(length);
        }
        let reply = self.client.send(req, "read", &self.name(&key))?;
        if reply.status == 416 {
            return Err(self.short(&key, range.map_or(0, |r| r.1)));
        }
        if !reply.ok() {
            return Err(self.error("read", &key, &reply));
        }
        if let Some((offset, length)) = range {
            if reply.status != 206 {
                // A server that ignored the range sent the whole object.
                return slice(&reply.body, offset, length).ok_or_else(|| self.short(&key, length));
            }
            if reply.body.len() as u64 != length {
                return Err(self.short(&key, length));
            }
        }
        Ok(reply.body)
    }

    fn short(&self, key: &str, wanted: u64) -> BackendError {
        BackendError::new(
            ErrorKind::Permanent,
            "read",
            self.name(key),
            format!("the object ends before the {wanted} bytes asked for"),
        )
    }

    fn put(&self, key: &str, data: &[u8], class: Option<&str>) -> Result<(), BackendError> {
        let md5 = content_md5(data);
        let mut action = self.bucket.put_object(self.credentials(), key);
        action.headers_mut().insert("if-none-match", "*");
        action.headers_mut().insert("content-md5", md5.clone());
        if let Some(class) = class {
            action
                .headers_mut()
                .insert("x-amz-storage-class", class.to_owned());
        }
        let url = action.sign(SIGNATURE_LIFETIME);
        let mut req = Request::new("PUT", url.as_str())
            .header("if-none-match", "*")
            .header("content-md5", md5)
            .body(data);
        if let Some(class) = class {
            req = req.header("x-amz-storage-class", class.to_owned());
        }
        self.send(req, "write", key).map(|_| ())
    }

    fn put_multipart(
        &self,
        key: &str,
        data: &[u8],
        class: Option<&str>,
    ) -> Result<(), BackendError> {
        let mut create = CreateMultipartUpload::new(&self.bucket, self.credentials(), key);
        if let Some(class) = class {
            create
                .headers_mut()
                .insert("x-amz-storage-class", class.to_owned());
        }
        let url = create.sign(SIGNATURE_LIFETIME);
        let mut req = Request::new("POST", url.as_str());
        if let Some(class) = class {
            req = req.header("x-amz-storage-class", class.to_owned());
        }
        let reply = self.send(req, "write", key)?;
        let started = CreateMultipartUpload::parse_response(&String::from_utf8_lossy(&reply.body))
            .map_err(|e| {
                BackendError::new(
                    ErrorKind::Permanent,
                    "write",
                    self.name(key),
                    format!("unreadable multipart reply: {e}"),
                )
            })?;
        let upload_id = started.upload_id().to_owned();
        let result = self.upload_parts(key, &upload_id, data);
        if result.is_err() {
            // Leave no invisible parts behind to be billed; failure here changes nothing.
            let url = self
                .bucket
                .abort_multipart_upload(self.credentials(), key, &upload_id)
                .sign(SIGNATURE_LIFETIME);
            let _ = self.send(Request::new("DELETE", url.as_str()), "write", key);
        }
        result
    }

    fn upload_parts(&self, key: &str, upload_id: &str, data: &[u8]) -> Result<(), BackendError> {
        let part_size = usize::try_from(self.config.part_size)
            .unwrap_or(usize::MAX)
            .max(1);
        let mut etags = Vec::new();
        for (i, part) in data.chunks(part_size).enumerate() {
            let number = u16::try_from(i + 1).map_err(|_| {
                BackendError::new(
                    ErrorKind::Permanent,
                    "write",
                    self.name(key),
                    "more than 65,535 parts: raise the part size",
                )
            })?;
            let md5 = content_md5(part);
            let mut action = self
                .bucket
                .upload_part(self.credentials(), key, number, upload_id);
            action.headers_mut().insert("content-md5", md5.clone());
            let url = action.sign(SIGNATURE_LIFETIME);
            let req = Request::new("PUT", url.as_str())
                .header("content-md5", md5)
                .body(part);
            let reply = self.send(req, "write", key)?;
            let etag = reply.header("etag").unwrap_or_default().to_owned();
            etags.push(etag);
        }
        let mut complete = CompleteMultipartUpload::new(
            &self.bucket,
            self.credentials(),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        complete.headers_mut().insert("if-none-match", "*");
        let url = complete.sign(SIGNATURE_LIFETIME);
        let body = complete.body();
        let reply = self.send(
            Request::new("POST", url.as_str())
                .header("if-none-match", "*")
                .body(body.as_bytes()),
            "write",
            key,
        )?;
        // A completion can fail after its 200 status line: the error is in the body.
        let text = String::from_utf8_lossy(&reply.body);
        if text.contains("<Error>") {
            let mut failed = self.error("write", key, &reply);
            if failed.kind() == ErrorKind::Permanent {
                failed = BackendError::new(
                    ErrorKind::Transient,
                    "write",
                    self.name(key),
                    failed.to_string(),
                );
            }
            return Err(failed);
        }
        Ok(())
    }
}

/// The `Content-MD5` header of `data`: S3 refuses the upload if the bytes it received
/// differ, and Object Lock buckets require it.
fn content_md5(data: &[u8]) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

fn slice(body: &Bytes, offset: u64, length: u64) -> Option<Bytes> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(length).ok()?)?;
    (end <= body.len()).then(|| body.slice(start..end))
}

impl ReadBackend for S3Backend {
    fn location(&self) -> String {
        self.config.location()
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectId, u64)>, BackendError> {
        if kind == FileKind::Config {
            let key = self.key(kind, &ObjectId::ZERO);
            return Ok(self
                .head("list", &key)?
                .map(|size| (ObjectId::ZERO, size))
                .into_iter()
                .collect());
        }
        let prefix = format!("{}{}/", self.config.prefix, kind.dir_name());
        let keys = self.list_keys(&prefix, None).map_err(|e| {
            if e.is_not_found() {
                e.context("no such bucket")
            } else {
                e
            }
        })?;
        Ok(keys
            .into_iter()
            .filter_map(|(key, size)| {
                let name = key.rsplit('/').next()?;
                Some((name.parse().ok()?, size))
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
            return match self.head("read", &key)? {
                None => Err(BackendError::not_found("read", self.name(&key))),
                Some(size) if size < offset => Err(self.short(&key, 0)),
                Some(_) => Ok(Bytes::new()),
            };
        }
        self.get(kind, id, Some((offset, length)))
    }
}

impl WriteBackend for S3Backend {
    fn create(&self) -> Result<(), BackendError> {
        if !self.bucket_exists()? {
            let Some(credentials) = self.credentials() else {
                return Err(BackendError::new(
                    ErrorKind::Permanent,
                    "create",
                    self.location(),
                    "the bucket does not exist, and creating it needs credentials",
                ));
            };
            let action = self.bucket.create_bucket(credentials);
            let url = action.sign(SIGNATURE_LIFETIME);
            // Outside us-east-1 the body names the region (LocationConstraint).
            let body = action.body();
            match self.send(
                Request::new("PUT", url.as_str()).body(body.as_bytes()),
                "create",
                "",
            ) {
                Ok(_) => {}
                // Someone (perhaps a concurrent init) created it meanwhile.
                Err(e) if e.to_string().contains("BucketAlreadyOwnedByYou") => {}
                Err(e) => return Err(e),
            }
        }
        if !self.list_keys(&self.config.prefix, Some(1))?.is_empty() {
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
        if self.head("write", &key)?.is_some() {
            return Err(BackendError::already_exists("write", self.name(&key)));
        }
        // The storage class applies to packs only: metadata must stay readable at once
        // (an archive class would make the config unreadable) and small files pay
        // the minimum-size charges of infrequent-access classes.
        let class = self
            .config
            .storage_class
            .as_deref()
            .filter(|_| kind == FileKind::Pack);
        if data.len() as u64 >= self.config.multipart_threshold {
            self.put_multipart(&key, &data, class)
        } else {
            self.put(&key, &data, class)
        }
    }

    fn remove(&self, kind: FileKind, id: &ObjectId) -> Result<(), BackendError> {
        let key = self.key(kind, id);
        // DELETE succeeds for missing keys; the contract wants NotFound.
        if self.head("remove", &key)?.is_none() {
            return Err(BackendError::not_found("remove", self.name(&key)));
        }
        let url = self
            .bucket
            .delete_object(self.credentials(), &key)
            .sign(SIGNATURE_LIFETIME);
        self.send(Request::new("DELETE", url.as_str()), "remove", &key)
            .map(|_| ())
    }
}
