//! What the HTTP backends (S3, B2) share: one connection-pooling agent per backend and
//! the mapping from HTTP outcomes to [`ErrorKind`]s.

use std::time::Duration;

use bytes::Bytes;

use crate::{BackendError, ErrorKind};

/// Settings of the HTTP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// The longest a request may take from connecting to the last byte of its response;
    /// a request that takes longer fails transiently.
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
        408 | 429 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// A pooled HTTP/1.1 client.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    agent: ureq::Agent,
}

/// A request being built: method, URL, headers, body.
pub(crate) struct Request<'a> {
    pub method: &'static str,
    pub url: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    pub fn new(method: &'static str, url: &'a str) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            body: None,
        }
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
            .max_idle_connections(options.pool)
            .max_idle_connections_per_host(options.pool)
            .max_redirects(0)
            .user_agent(concat!("arca/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            agent: config.into(),
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
            let kind = match &e {
                ureq::Error::Timeout(_)
                | ureq::Error::Io(_)
                | ureq::Error::ConnectionFailed
                | ureq::Error::Protocol(_) => ErrorKind::Transient,
                _ => ErrorKind::Permanent,
            };
            BackendError::new(kind, operation, object, e.to_string())
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
        let sent = match body {
            Some(body) => self.agent.run(builder.body(body).map_err(bad)?),
            None => self.agent.run(builder.body(()).map_err(bad)?),
        };
        let mut response = sent.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(transport)?;
        Ok(Reply {
            status,
            body: Bytes::from(body),
            headers,
        })
    }
}
