//! The calls of B2's native API (v3) that the backend uses, over the shared HTTP client:
//! one authorized session (renewed when B2 says its token expired), a pool of upload
//! URLs, and B2's JSON errors mapped to [`ErrorKind`]s.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::config::B2Config;
use crate::http::{Client, Reply, Request, status_kind};
use crate::{BackendError, ErrorKind};

/// Files per listing page (B2 bills a listing call per 1,000 names).
pub(super) const PAGE: u32 = 1000;

/// What `b2_authorize_account` grants, plus the bucket's id.
pub(super) struct Session {
    token: String,
    api_url: String,
    download_url: String,
    pub bucket_id: String,
    /// The smallest part B2 accepts in a large file (all but the last part).
    pub min_part_size: u64,
}

/// An upload URL and its token, usable by one upload at a time.
struct UploadUrl {
    url: String,
    token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Authorization {
    account_id: String,
    authorization_token: String,
    api_info: ApiInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiInfo {
    storage_api: StorageApi,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StorageApi {
    api_url: String,
    download_url: String,
    bucket_id: Option<String>,
    bucket_name: Option<String>,
    name_prefix: Option<String>,
    absolute_minimum_part_size: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Buckets {
    buckets: Vec<Bucket>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bucket {
    bucket_id: String,
    bucket_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadUrlReply {
    upload_url: String,
    authorization_token: String,
}

/// A page of `b2_list_file_names` or `b2_list_file_versions`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FilePage {
    pub files: Vec<FileEntry>,
    pub next_file_name: Option<String>,
    #[serde(default)]
    pub next_file_id: Option<String>,
}

/// One file (version) in a listing.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FileEntry {
    pub file_name: String,
    #[serde(default)]
    pub file_id: String,
    #[serde(default)]
    pub content_length: u64,
    /// `upload` for a stored file; `hide` markers, unfinished large files (`start`) and
    /// `folder`s are not objects.
    pub action: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartedFile {
    file_id: String,
}

/// B2's JSON error body.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// A failed reply: status and B2's code and message.
pub(super) struct Failure {
    pub status: u16,
    pub code: String,
    message: String,
}

impl Failure {
    fn of(reply: &Reply) -> Self {
        let body: ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_else(|_| ErrorBody {
            message: reply.text(),
            ..ErrorBody::default()
        });
        Self {
            status: reply.status,
            code: body.code,
            message: body.message,
        }
    }

    /// The account token (or an upload URL's token) is no longer valid: B2 wants a new
    /// one, not a retry with the same.
    fn token_expired(&self) -> bool {
        self.status == 401 && matches!(self.code.as_str(), "expired_auth_token" | "bad_auth_token")
    }

    fn kind(&self) -> ErrorKind {
        match (self.status, self.code.as_str()) {
            (_, "not_found" | "no_such_file" | "file_not_present") => ErrorKind::NotFound,
            // Two uploads on one upload URL: the next attempt gets its own URL.
            (400, "auth_token_limit") => ErrorKind::Transient,
            (status, _) => status_kind(status),
        }
    }
}

/// The hex SHA-1 B2 wants with every upload and part.
pub(super) fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// `name` percent-encoded for `X-Bz-File-Name` and download URLs: UTF-8 bytes other than
/// letters, digits, `-._~` and `/` become `%XX`. B2 requires encoding a few more
/// characters than URLs do (`+` is a space to it, `%` starts an escape) and decodes any
/// `%XX`, so encoding everything else is always right.
pub(super) fn encode_name(name: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// A B2 account as one bucket's client: the session, the upload URL pool, the HTTP
/// client. Every method names the object it works on as `object` in its errors.
pub(super) struct Api {
    config: B2Config,
    client: Client,
    session: Mutex<Option<Arc<Session>>>,
    uploads: Mutex<Vec<UploadUrl>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent across a panic (they are replaced whole).
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Api {
    pub fn new(config: B2Config) -> Self {
        let client = Client::new(config.http);
        Self {
            config,
            client,
            session: Mutex::new(None),
            uploads: Mutex::new(Vec::new()),
        }
    }

    pub fn config(&self) -> &B2Config {
        &self.config
    }

    /// The error for a failed reply, without secrets.
    fn error(
        &self,
        operation: &'static str,
        object: &str,
        failure: &Failure,
        secrets: &[&str],
    ) -> BackendError {
        let message = self.describe(failure, secrets);
        BackendError::new(failure.kind(), operation, object, message)
    }

    /// `HTTP STATUS CODE: MESSAGE`, with `secrets` and the application key blotted out
    /// (B2 quotes tokens in some messages).
    fn describe(&self, failure: &Failure, secrets: &[&str]) -> String {
        let mut message = format!("HTTP {} {}", failure.status, failure.code);
        if !failure.message.is_empty() {
            message = format!("{message}: {}", failure.message);
        }
        for secret in secrets
            .iter()
            .chain([&self.config.application_key.as_str()])
        {
            if !secret.is_empty() {
                message = message.replace(secret, "[redacted]");
            }
        }
        message.trim_end().to_owned()
    }

    fn unreadable(
        operation: &'static str,
        object: &str,
        what: &str,
        e: &serde_json::Error,
    ) -> BackendError {
        BackendError::new(
            ErrorKind::Permanent,
            operation,
            object,
            format!("unreadable reply to {what}: {e}"),
        )
    }

    /// The current session, authorizing first if there is none.
    pub fn session(&self, operation: &'static str) -> Result<Arc<Session>, BackendError> {
        let mut current = lock(&self.session);
        if let Some(session) = current.as_ref() {
            return Ok(session.clone());
        }
        let session = Arc::new(self.authorize(operation)?);
        *current = Some(session.clone());
        Ok(session)
    }

    /// A new session in place of `stale`, whose token B2 refused (unless another thread
    /// has replaced it already).
    fn reauthorize(
        &self,
        stale: &Arc<Session>,
        operation: &'static str,
    ) -> Result<Arc<Session>, BackendError> {
        let mut current = lock(&self.session);
        if let Some(session) = current.as_ref()
            && !Arc::ptr_eq(session, stale)
        {
            return Ok(session.clone());
        }
        *current = None;
        let session = Arc::new(self.authorize(operation)?);
        *current = Some(session.clone());
        Ok(session)
    }

    /// `b2_authorize_account`, then the bucket's id: from the reply when the key is
    /// restricted to one bucket, else from `b2_list_buckets`.
    fn authorize(&self, operation: &'static str) -> Result<Session, BackendError> {
        let config = &self.config;
        let location = config.location();
        let url = format!("{}/b2api/v3/b2_authorize_account", config.api_url);
        let basic =
            base64_encode(format!("{}:{}", config.key_id, config.application_key).as_bytes());
        let req = Request::new("GET", &url).header("authorization", format!("Basic {basic}"));
        let reply = self.client.send(req, operation, &location)?;
        if !reply.ok() {
            let failure = Failure::of(&reply);
            if reply.status == 401 {
                // Not a token to renew: the key itself is wrong.
                let message = self.describe(&failure, &[]);
                return Err(
                    BackendError::new(ErrorKind::Permanent, operation, &location, message)
                        .context("check B2_ACCOUNT_ID and B2_APPLICATION_KEY"),
                );
            }
            return Err(self.error(operation, &location, &failure, &[]));
        }
        let auth: Authorization = serde_json::from_slice(&reply.body)
            .map_err(|e| Self::unreadable(operation, &location, "b2_authorize_account", &e))?;
        let storage = auth.api_info.storage_api;
        let refused =
            |why: String| BackendError::new(ErrorKind::Permanent, operation, &location, why);
        if let Some(allowed) = storage.name_prefix.as_deref().filter(|p| !p.is_empty())
            && !config.prefix.starts_with(allowed)
        {
            return Err(refused(format!(
                "the application key only gives access to file names starting with \"{allowed}\""
            )));
        }
        let mut session = Session {
            token: auth.authorization_token,
            api_url: storage.api_url.trim_end_matches('/').to_owned(),
            download_url: storage.download_url.trim_end_matches('/').to_owned(),
            bucket_id: String::new(),
            min_part_size: storage.absolute_minimum_part_size.unwrap_or(5_000_000),
        };
        match (storage.bucket_id, storage.bucket_name) {
            (Some(id), Some(name)) if name == config.bucket => session.bucket_id = id,
            (Some(_), Some(name)) => {
                return Err(refused(format!(
                    "the application key is restricted to bucket {name}, not {}",
                    config.bucket
                )));
            }
            _ => {
                let body = json!({"accountId": auth.account_id, "bucketName": config.bucket});
                let found: Buckets =
                    self.post(&session, "b2_list_buckets", &body, operation, &location)?;
                let Some(bucket) = found
                    .buckets
                    .into_iter()
                    .find(|b| b.bucket_name == config.bucket)
                else {
                    return Err(BackendError::new(
                        ErrorKind::NotFound,
                        operation,
                        &location,
                        format!("no bucket {} in this account", config.bucket),
                    ));
                };
                session.bucket_id = bucket.bucket_id;
            }
        }
        Ok(session)
    }

    /// One POST to API call `name` with `session`, without renewal.
    fn post<T: DeserializeOwned>(
        &self,
        session: &Session,
        name: &'static str,
        body: &Value,
        operation: &'static str,
        object: &str,
    ) -> Result<T, BackendError> {
        self.try_post(session, name, body, operation, object)?
            .map_err(|failure| self.error(operation, object, &failure, &[&session.token]))
    }

    /// One POST: its decoded reply, or B2's refusal (transport failures are errors).
    fn try_post<T: DeserializeOwned>(
        &self,
        session: &Session,
        name: &'static str,
        body: &Value,
        operation: &'static str,
        object: &str,
    ) -> Result<Result<T, Failure>, BackendError> {
        let url = format!("{}/b2api/v3/{name}", session.api_url);
        let bytes = body.to_string();
        let req = Request::new("POST", &url)
            .header("authorization", session.token.clone())
            .header("content-type", "application/json")
            .body(bytes.as_bytes());
        let reply = self.client.send(req, operation, object)?;
        if !reply.ok() {
            return Ok(Err(Failure::of(&reply)));
        }
        serde_json::from_slice(&reply.body)
            .map(Ok)
            .map_err(|e| Self::unreadable(operation, object, name, &e))
    }

    /// API call `name` with `body`; `bucketId` is added to objects that lack it. A token
    /// B2 calls expired is renewed once.
    pub fn call<T: DeserializeOwned>(
        &self,
        name: &'static str,
        mut body: Value,
        operation: &'static str,
        object: &str,
    ) -> Result<T, BackendError> {
        let mut session = self.session(operation)?;
        let mut renewed = false;
        loop {
            if let Some(fields) = body.as_object_mut()
                && !fields.contains_key("fileId")
            {
                fields.insert(
                    "bucketId".to_owned(),
                    Value::from(session.bucket_id.clone()),
                );
            }
            match self.try_post(&session, name, &body, operation, object)? {
                Ok(value) => return Ok(value),
                Err(failure) if failure.token_expired() && !renewed => {
                    session = self.reauthorize(&session, operation)?;
                    renewed = true;
                }
                Err(failure) => {
                    return Err(self.error(operation, object, &failure, &[&session.token]));
                }
            }
        }
    }

    /// `GET {downloadUrl}/file/BUCKET/NAME`, with `range` as a `Range` header value.
    /// The raw reply: the caller judges 206, 416 and short bodies; other failures are
    /// errors (404: not found).
    pub fn download(
        &self,
        name: &str,
        range: Option<String>,
        operation: &'static str,
        object: &str,
    ) -> Result<Reply, BackendError> {
        let mut session = self.session(operation)?;
        let mut renewed = false;
        loop {
            let url = format!(
                "{}/file/{}/{}",
                session.download_url,
                self.config.bucket,
                encode_name(name)
            );
            let mut req = Request::new("GET", &url).header("authorization", session.token.clone());
            if let Some(range) = &range {
                req = req.header("range", range.clone());
            }
            let reply = self.client.send(req, operation, object)?;
            if reply.ok() || reply.status == 416 {
                return Ok(reply);
            }
            let failure = Failure::of(&reply);
            if failure.token_expired() && !renewed {
                session = self.reauthorize(&session, operation)?;
                renewed = true;
                continue;
            }
            return Err(self.error(operation, object, &failure, &[&session.token]));
        }
    }

    /// An upload URL for a new file: one from the pool, else a fresh one.
    fn upload_url(&self, fresh: bool, object: &str) -> Result<UploadUrl, BackendError> {
        if !fresh && let Some(url) = lock(&self.uploads).pop() {
            return Ok(url);
        }
        let reply: UploadUrlReply = self.call("b2_get_upload_url", json!({}), "write", object)?;
        Ok(UploadUrl {
            url: reply.upload_url,
            token: reply.authorization_token,
        })
    }

    /// Uploads `data` as file `name` in one request. The upload URL goes back to the
    /// pool only after a success: B2 wants a new URL after any failure. A URL whose token
    /// has expired is replaced by a fresh one once.
    pub fn upload(&self, name: &str, data: &[u8], object: &str) -> Result<(), BackendError> {
        let sha1 = sha1_hex(data);
        let mut fresh = false;
        loop {
            let upload = self.upload_url(fresh, object)?;
            let req = Request::new("POST", &upload.url)
                .header("authorization", upload.token.clone())
                .header("x-bz-file-name", encode_name(name))
                .header("content-type", "application/octet-stream")
                .header("x-bz-content-sha1", sha1.clone())
                .body(data);
            let reply = self.client.send(req, "write", object)?;
            if reply.ok() {
                lock(&self.uploads).push(upload);
                return Ok(());
            }
            let failure = Failure::of(&reply);
            if failure.token_expired() && !fresh {
                fresh = true;
                continue;
            }
            return Err(self.error("write", object, &failure, &[&upload.token]));
        }
    }

    /// Uploads `data` as large file `name` in parts of `part_size` bytes (at least
    /// two parts), cancelling the unfinished file if anything fails.
    pub fn upload_large(
        &self,
        name: &str,
        data: &[u8],
        part_size: usize,
        object: &str,
    ) -> Result<(), BackendError> {
        let body = json!({"fileName": name, "contentType": "application/octet-stream"});
        let started: StartedFile = self.call("b2_start_large_file", body, "write", object)?;
        let file_id = started.file_id;
        let result = self
            .upload_parts(&file_id, data, part_size, object)
            .and_then(|sha1s| {
                let body = json!({"fileId": file_id, "partSha1Array": sha1s});
                self.call::<Value>("b2_finish_large_file", body, "write", object)
                    .map(|_| ())
            });
        if result.is_err() {
            // Unfinished large files are billed; failing to cancel changes nothing else.
            let body = json!({"fileId": file_id});
            let _ = self.call::<Value>("b2_cancel_large_file", body, "write", object);
        }
        result
    }

    /// Uploads the parts in order over one part URL; their SHA-1s.
    fn upload_parts(
        &self,
        file_id: &str,
        data: &[u8],
        part_size: usize,
        object: &str,
    ) -> Result<Vec<String>, BackendError> {
        let mut url: Option<UploadUrl> = None;
        let mut sha1s = Vec::new();
        for (i, part) in data.chunks(part_size.max(1)).enumerate() {
            let number = i + 1;
            let sha1 = sha1_hex(part);
            // One more attempt, on a new part URL, after a failure that B2 says a new
            // URL cures (503, timeouts, an expired URL token): a failed part would
            // otherwise cost every part before it. Backoff is the retry layer's job.
            let mut attempts = 0;
            loop {
                attempts += 1;
                let upload = match url.take() {
                    Some(upload) => upload,
                    None => {
                        let reply: UploadUrlReply = self.call(
                            "b2_get_upload_part_url",
                            json!({"fileId": file_id}),
                            "write",
                            object,
                        )?;
                        UploadUrl {
                            url: reply.upload_url,
                            token: reply.authorization_token,
                        }
                    }
                };
                let req = Request::new("POST", &upload.url)
                    .header("authorization", upload.token.clone())
                    .header("x-bz-part-number", number.to_string())
                    .header("x-bz-content-sha1", sha1.clone())
                    .body(part);
                let failure = match self.client.send(req, "write", object) {
                    Ok(reply) if reply.ok() => {
                        url = Some(upload);
                        break;
                    }
                    Ok(reply) => {
                        let failure = Failure::of(&reply);
                        let err = self.error("write", object, &failure, &[&upload.token]);
                        let renew = failure.token_expired()
                            || (err.kind() == ErrorKind::Transient && failure.status != 429);
                        (err, renew)
                    }
                    Err(err) => {
                        let renew = err.kind() == ErrorKind::Transient;
                        (err, renew)
                    }
                };
                match failure {
                    (_, true) if attempts < 2 => {}
                    (err, _) => return Err(err.context(format!("part {number}"))),
                }
            }
            sha1s.push(sha1);
        }
        Ok(sha1s)
    }
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_percent_encoded_as_b2_wants() {
        assert_eq!(
            encode_name("repo/data/0a/0a1b-~_.x"),
            "repo/data/0a/0a1b-~_.x"
        );
        assert_eq!(encode_name("a b+c%d"), "a%20b%2Bc%25d");
        assert_eq!(encode_name("自由.txt"), "%E8%87%AA%E7%94%B1.txt");
        assert_eq!(
            encode_name("x?y#z&=:@!$'()*;,"),
            "x%3Fy%23z%26%3D%3A%40%21%24%27%28%29%2A%3B%2C"
        );
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn sha1_is_hex() {
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn b2_errors_map_to_kinds() {
        let kind = |status, code: &str| {
            Failure {
                status,
                code: code.to_owned(),
                message: String::new(),
            }
            .kind()
        };
        assert_eq!(kind(404, "not_found"), ErrorKind::NotFound);
        assert_eq!(kind(400, "file_not_present"), ErrorKind::NotFound);
        assert_eq!(kind(400, "no_such_file"), ErrorKind::NotFound);
        assert_eq!(kind(400, "bad_request"), ErrorKind::Permanent);
        assert_eq!(kind(401, "unauthorized"), ErrorKind::Permanent);
        assert_eq!(kind(403, "cap_exceeded"), ErrorKind::Permanent);
        assert_eq!(kind(400, "auth_token_limit"), ErrorKind::Transient);
        for status in [408, 429, 500, 503] {
            assert_eq!(kind(status, "service_unavailable"), ErrorKind::Transient);
        }
    }
}
