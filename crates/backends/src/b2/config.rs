//! Where a B2 repository is and how to reach it: parsed from a location string, with the
//! application key from the environment.

use url::Url;

use crate::http::HttpOptions;

/// Everything [`super::B2Backend`] needs.
#[derive(Clone)]
#[non_exhaustive]
pub struct B2Config {
    /// The bucket's name (it must exist: buckets are made in B2's web UI or with the
    /// account's master key, which a backup should not hold).
    pub bucket: String,
    /// The file-name prefix of every object: empty or ending in `/`.
    pub prefix: String,
    /// The application key's id (for the master key: the account id).
    pub key_id: String,
    /// The application key. Never shown by `Debug` or in messages.
    pub application_key: String,
    /// Where `b2_authorize_account` is called, without a trailing `/`; the reply names
    /// the URLs of every later call.
    pub api_url: String,
    /// Objects of at least this many bytes are sent with B2's large-file API.
    pub large_file_threshold: u64,
    /// The part size of large files (raised to the account's minimum part size, and so
    /// that no file needs more than 10,000 parts).
    pub part_size: u64,
    /// The HTTP transport's settings.
    pub http: HttpOptions,
}

impl std::fmt::Debug for B2Config {
    /// Never shows the application key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("B2Config")
            .field("location", &self.location())
            .field("key_id", &self.key_id)
            .field("api_url", &self.api_url)
            .field("large_file_threshold", &self.large_file_threshold)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

/// A location string or setting that is not a usable B2 location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct B2ConfigError(String);

impl B2Config {
    /// B2's API entry point, where every session starts with `b2_authorize_account`.
    pub const DEFAULT_API_URL: &str = "https://api.backblazeb2.com";

    /// Parses what follows `b2:` in a location: `BUCKET`, `BUCKET:/PREFIX`,
    /// `BUCKET:PREFIX` or `BUCKET/PREFIX`. The key comes from `env`: `B2_ACCOUNT_ID` (or
    /// `B2_APPLICATION_KEY_ID`) and `B2_APPLICATION_KEY`; `ARCA_B2_API_URL` replaces
    /// [`Self::DEFAULT_API_URL`] (for tests and other B2-compatible services).
    ///
    /// ```
    /// use arca_backends::B2Config;
    ///
    /// let env = |name: &str| match name {
    ///     "B2_ACCOUNT_ID" => Some("000a1b2c3d".to_owned()),
    ///     "B2_APPLICATION_KEY" => Some("K000secret".to_owned()),
    ///     _ => None,
    /// };
    /// let config = B2Config::parse("my-backups:/hosts/alpha", &env)?;
    /// assert_eq!((config.bucket.as_str(), config.prefix.as_str()), ("my-backups", "hosts/alpha/"));
    /// assert_eq!(config.location(), "b2:my-backups:/hosts/alpha");
    /// assert!(!format!("{config:?}").contains("K000secret"));
    /// # Ok::<(), arca_backends::B2ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// A message naming what is wrong with the location, or which variable is missing.
    pub fn parse(rest: &str, env: crate::EnvLookup<'_>) -> Result<Self, B2ConfigError> {
        let bad = |why: &str| B2ConfigError(format!("bad B2 location \"b2:{rest}\": {why}"));
        let (bucket, prefix) = match rest.find([':', '/']) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, ""),
        };
        if bucket.is_empty() {
            return Err(bad("no bucket (b2:BUCKET[:/PREFIX])"));
        }
        if !(6..=63).contains(&bucket.len())
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(
                "a bucket name has 6 to 63 letters, digits and hyphens (b2:BUCKET[:/PREFIX])",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.contains("//") {
            return Err(bad("the prefix has an empty path component"));
        }
        if prefix.chars().any(|c| c.is_control() || c == '\\') {
            return Err(bad(
                "B2 file names cannot hold control characters or backslashes",
            ));
        }
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let nonempty = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let key_id = nonempty("B2_ACCOUNT_ID").or_else(|| nonempty("B2_APPLICATION_KEY_ID"));
        let (Some(key_id), Some(application_key)) = (key_id, nonempty("B2_APPLICATION_KEY")) else {
            return Err(B2ConfigError(
                "B2 needs an application key: set B2_ACCOUNT_ID (or B2_APPLICATION_KEY_ID) \
                 and B2_APPLICATION_KEY"
                    .to_owned(),
            ));
        };
        let api_url =
            nonempty("ARCA_B2_API_URL").unwrap_or_else(|| Self::DEFAULT_API_URL.to_owned());
        let api_url = api_url.trim().trim_end_matches('/').to_owned();
        let parsed = Url::parse(&api_url)
            .map_err(|e| B2ConfigError(format!("bad ARCA_B2_API_URL \"{api_url}\": {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(B2ConfigError(format!(
                "bad ARCA_B2_API_URL \"{api_url}\": not an http(s) URL"
            )));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix,
            key_id: key_id.trim().to_owned(),
            application_key: application_key.trim().to_owned(),
            api_url,
            large_file_threshold: 200 << 20,
            part_size: 100 << 20,
            http: HttpOptions::default(),
        })
    }

    /// `b2:BUCKET[:/PREFIX]`, without credentials.
    pub fn location(&self) -> String {
        match self.prefix.trim_end_matches('/') {
            "" => format!("b2:{}", self.bucket),
            prefix => format!("b2:{}:/{prefix}", self.bucket),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(text: &str, vars: &[(&str, &str)]) -> Result<B2Config, B2ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        B2Config::parse(text, &|name| map.get(name).cloned())
    }

    const KEY: [(&str, &str); 2] = [
        ("B2_ACCOUNT_ID", "0012ab"),
        ("B2_APPLICATION_KEY", "K001-the-secret"),
    ];

    #[test]
    fn locations_parse() {
        for (text, prefix, location) in [
            ("bucket-1", "", "b2:bucket-1"),
            ("bucket-1:", "", "b2:bucket-1"),
            ("bucket-1:/", "", "b2:bucket-1"),
            (
                "bucket-1:/some/prefix",
                "some/prefix/",
                "b2:bucket-1:/some/prefix",
            ),
            (
                "bucket-1:some/prefix/",
                "some/prefix/",
                "b2:bucket-1:/some/prefix",
            ),
            (
                "bucket-1/some/prefix",
                "some/prefix/",
                "b2:bucket-1:/some/prefix",
            ),
            ("bucket-1:/a:b c", "a:b c/", "b2:bucket-1:/a:b c"),
        ] {
            let c = parse(text, &KEY).unwrap();
            assert_eq!(
                (c.bucket.as_str(), c.prefix.as_str()),
                ("bucket-1", prefix),
                "{text}"
            );
            assert_eq!(c.location(), location, "{text}");
            // The location parses back to the same place.
            let again = parse(location.strip_prefix("b2:").unwrap(), &KEY).unwrap();
            assert_eq!((again.bucket, again.prefix), (c.bucket, c.prefix));
        }
        for bad in [
            "",
            ":/prefix",
            "/prefix",
            "short",
            "under_score",
            "bucket-1:/a//b",
            "bucket-1:/a\\b",
            "bucket-1:/a\nb",
        ] {
            assert!(parse(bad, &KEY).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_and_api_url_come_from_the_environment() {
        let c = parse("bucket-1", &KEY).unwrap();
        assert_eq!(
            (c.key_id.as_str(), c.application_key.as_str()),
            ("0012ab", "K001-the-secret")
        );
        assert_eq!(c.api_url, B2Config::DEFAULT_API_URL);
        let shown = format!("{c:?}");
        assert!(
            shown.contains("b2:bucket-1") && !shown.contains("the-secret"),
            "{shown}"
        );

        let c = parse(
            "bucket-1",
            &[
                ("B2_APPLICATION_KEY_ID", "key-id"),
                ("B2_APPLICATION_KEY", "k"),
                ("ARCA_B2_API_URL", "http://127.0.0.1:9102/"),
            ],
        )
        .unwrap();
        assert_eq!(c.key_id, "key-id");
        assert_eq!(c.api_url, "http://127.0.0.1:9102");

        let err = parse("bucket-1", &[("B2_APPLICATION_KEY", "k")]).unwrap_err();
        assert!(err.to_string().contains("B2_ACCOUNT_ID"), "{err}");
        assert!(parse("bucket-1", &[("B2_ACCOUNT_ID", "id")]).is_err());
        let mut bad_url = KEY.to_vec();
        bad_url.push(("ARCA_B2_API_URL", "ftp://host"));
        assert!(parse("bucket-1", &bad_url).is_err());
    }
}
