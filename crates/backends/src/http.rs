//! What the HTTP backends (S3, B2) share: one connection-pooling agent per backend and
//! the mapping from HTTP outcomes to [`ErrorKind`]s.

use std::time::Duration;

use bytes::Bytes;
use ureq::RequestExt as _;

use crate::{BackendError, ErrorKind};

/// Settings of the HTTP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// The longest a request may take from connecting to the last byte of its
    /// response, plus the time its bytes take at 32 KiB/s; a request that takes longer
    /// fails transiently.
    pub timeout: Duration,
    /// Idle connections kept open for reuse.
    pub pool: usize,
}

impl Default for HttpOptions {
    /// 10 minutes (a 1 GiB pack at 2 MB/s), 16 pooled connections.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(600),
            pool: 16,
        }
    }
}

/// A response: status, the headers we use, and the whole body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Bytes,
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    headers: Vec<(String, String)>,
}

impl Reply {
    /// A header's value (names compared without case).
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text, for error messages: at most 300 characters.
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        match text.char_indices().nth(300) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text.to_owned(),
        }
    }
}

/// The kind of error an HTTP status means for storage: 404 not found, 408/429/5xx
/// transient (throttling and server trouble), anything else permanent.
pub(crate) fn status_kind(status: u16) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        // 501 Not Implemented and 505 HTTP Version Not Supported do not go away.
        501 | 505 => ErrorKind::Permanent,
        408 | 429 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// Whether a transport failure may go away: timeouts, refused, reset or broken
/// connections may; a TLS certificate the server presents that does not verify (an
/// I/O error of kind `InvalidData` from the TLS layer) or a malformed URL does not.
fn transport_kind(e: &ureq::Error) -> ErrorKind {
    match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => ErrorKind::Permanent,
        ureq::Error::Timeout(_)
        | ureq::Error::Io(_)
        | ureq::Error::ConnectionFailed
        | ureq::Error::HostNotFound
        | ureq::Error::Protocol(_) => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// A request's time limit: `base`, plus the time `bytes` take at [`SLOWEST_RATE`].
fn time_limit(base: std::time::Duration, bytes: u64) -> std::time::Duration {
    base.saturating_add(std::time::Duration::from_secs(bytes / SLOWEST_RATE))
}

/// Error bodies are read up to this size (an HTML error page of a proxy can be large).
const MAX_ERROR_BODY: u64 = 64 << 10;

/// A pooled HTTP/1.1 client.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    agent: ureq::Agent,
    timeout: std::time::Duration,
}

/// The slowest transfer rate a request's time limit allows for: each request gets the
/// configured timeout plus the time its bytes take at this rate, so a large pack on a
/// slow line is not cut off (and retried in vain).
const SLOWEST_RATE: u64 = 32 << 10;

/// A request being built: method, URL, headers, body.
pub(crate) struct Request<'a> {
    pub method: &'static str,
    pub url: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<&'a [u8]>,
    /// Bytes expected in the response (a ranged read), for the time limit.
    pub expected: u64,
}

impl<'a> Request<'a> {
    pub fn new(method: &'static str, url: &'a str) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            body: None,
            expected: 0,
        }
    }

    /// Announces how many bytes the response will carry (for the time limit).
    #[must_use]
    pub fn expect(mut self, bytes: u64) -> Self {
        self.expected = bytes;
        self
    }

    #[must_use]
    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    #[must_use]
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = Some(body);
        self
    }
}

impl Client {
    pub fn new(options: HttpOptions) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(options.timeout))
            .timeout_connect(Some(
                options.timeout.min(std::time::Duration::from_secs(30)),
            ))
            .max_idle_connections(options.pool)
            .max_idle_connections_per_host(options.pool)
            .max_redirects(0)
            .user_agent(concat!("arca/", env!("CARGO_PKG_VERSION")))
            // The system's trust store, so that servers with a private CA installed on
            // this machine (a MinIO on the LAN) verify.
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build();
        Self {
            agent: config.into(),
            timeout: options.timeout,
        }
    }

    /// Sends `req` and reads the whole response. Transport failures (refused or reset
    /// connections, timeouts) are transient errors for `operation` on `object`.
    pub fn send(
        &self,
        req: Request<'_>,
        operation: &'static str,
        object: &str,
    ) -> Result<Reply, BackendError> {
        let transport = |e: ureq::Error| {
            BackendError::new(transport_kind(&e), operation, object, e.to_string())
        };
        let mut builder = ureq::http::Request::builder()
            .method(req.method)
            .uri(req.url);
        for (name, value) in &req.headers {
            builder = builder.header(*name, value.as_str());
        }
        let bad = |e: ureq::http::Error| {
            BackendError::new(ErrorKind::Permanent, operation, object, e.to_string())
        };
        // PUT and POST always carry a Content-Length (S3 refuses them without one).
        let body = match (req.body, req.method) {
            (None, "PUT" | "POST") => Some(&[][..]),
            (body, _) => body,
        };
        let bytes = body.map_or(0, |b| b.len() as u64).max(req.expected);
        let timeout = time_limit(self.timeout, bytes);
        let sent = match body {
            Some(body) => builder
                .body(body)
                .map_err(bad)?
                .with_agent(&self.agent)
                .configure()
                .timeout_global(Some(timeout))
                .run(),
            None => builder
                .body(())
                .map_err(bad)?
                .with_agent(&self.agent)
                .configure()
                .timeout_global(Some(timeout))
                .run(),
        };
        let mut response = sent.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = if status >= 400 {
            // Only for the message: a truncated or unreadable body does not matter.
            let mut body = Vec::new();
            let _ = std::io::Read::read_to_end(
                &mut std::io::Read::take(response.body_mut().as_reader(), MAX_ERROR_BODY),
                &mut body,
            );
            body
        } else {
            response
                .body_mut()
                .with_config()
                .limit(u64::MAX)
                .read_to_vec()
                .map_err(transport)?
        };
        Ok(Reply {
            status,
            body: Bytes::from(body),
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn statuses_and_transport_failures_are_classified() {
        assert_eq!(status_kind(404), ErrorKind::NotFound);
        for transient in [408, 429, 500, 502, 503, 504] {
            assert_eq!(status_kind(transient), ErrorKind::Transient, "{transient}");
        }
        for permanent in [400, 401, 403, 412, 501, 505] {
            assert_eq!(status_kind(permanent), ErrorKind::Permanent, "{permanent}");
        }
        let io = |kind| ureq::Error::Io(std::io::Error::new(kind, "x"));
        // A certificate that does not verify surfaces as InvalidData from the TLS layer.
        assert_eq!(
            transport_kind(&io(std::io::ErrorKind::InvalidData)),
            ErrorKind::Permanent
        );
        assert_eq!(
            transport_kind(&io(std::io::ErrorKind::ConnectionReset)),
            ErrorKind::Transient
        );
        assert_eq!(
            transport_kind(&ureq::Error::ConnectionFailed),
            ErrorKind::Transient
        );
        assert_eq!(
            transport_kind(&ureq::Error::HostNotFound),
            ErrorKind::Transient
        );
        assert_eq!(
            transport_kind(&ureq::Error::BadUri("x".into())),
            ErrorKind::Permanent
        );
    }

    #[test]
    fn time_limits_grow_with_the_bytes_moved() {
        let base = Duration::from_secs(600);
        assert_eq!(time_limit(base, 0), base);
        // 64 MiB at 32 KiB/s: 2048 s more.
        assert_eq!(time_limit(base, 64 << 20), Duration::from_secs(600 + 2048));
        assert_eq!(time_limit(Duration::MAX, u64::MAX), Duration::MAX);
    }
}
