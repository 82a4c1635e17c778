//! Where an S3 repository is and how to reach it: parsed from a location string, with
//! credentials and region from the environment or the AWS shared files.

use std::path::{Path, PathBuf};

use rusty_s3::{Credentials, UrlStyle};
use url::Url;

use crate::http::HttpOptions;

/// Everything [`super::S3Backend`] needs.
#[derive(Clone)]
#[non_exhaustive]
pub struct S3Config {
    /// The service's base URL, without the bucket (`https://s3.eu-west-1.amazonaws.com`).
    pub endpoint: Url,
    /// Path style (`ENDPOINT/BUCKET/KEY`) or virtual-host style (`BUCKET.ENDPOINT/KEY`).
    pub url_style: UrlStyle,
    /// The bucket.
    pub bucket: String,
    /// The key prefix of every object: empty or ending in `/`.
    pub prefix: String,
    /// The signing region.
    pub region: String,
    /// `None` sends unsigned requests (public buckets; rarely useful for writing).
    pub credentials: Option<Credentials>,
    /// `x-amz-storage-class` for new objects (`STANDARD_IA`, `GLACIER_IR`, ...).
    pub storage_class: Option<String>,
    /// Objects of at least this many bytes are sent as multipart uploads.
    pub multipart_threshold: u64,
    /// The part size of multipart uploads (S3's minimum is 5 MiB).
    pub part_size: u64,
    /// The HTTP transport's settings.
    pub http: HttpOptions,
}

impl std::fmt::Debug for S3Config {
    /// Never shows the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("location", &self.location())
            .field("region", &self.region)
            .field("has_credentials", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

/// A location string or setting that is not a usable S3 location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct S3ConfigError(String);

impl S3Config {
    /// Parses what follows `s3:` in a location: `//HOST[:PORT]/BUCKET[/PREFIX]` (HTTPS),
    /// `https://HOST[:PORT]/BUCKET[/PREFIX]`, `http://...` (tests, local servers), or
    /// restic's `HOST/BUCKET[/PREFIX]`. Region and credentials come from `env`:
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`, the region a well-known endpoint names
    /// (`s3.eu-west-1.amazonaws.com`, `s3.eu-central-1.wasabisys.com`, ...), else the profile `AWS_PROFILE` (default
    /// `default`) of `~/.aws/credentials` and `~/.aws/config` (or the files named by
    /// `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE`). Hosts under `amazonaws.com`
    /// use virtual-host style URLs, others path style, unless `ARCA_S3_URL_STYLE` is
    /// `path` or `virtual`.
    ///
    /// # Errors
    /// A message naming what is wrong with the location.
    pub fn parse(rest: &str, env: crate::EnvLookup<'_>) -> Result<Self, S3ConfigError> {
        let bad = |why: &str| S3ConfigError(format!("bad S3 location \"s3:{rest}\": {why}"));
        let url_text = if let Some(after) = rest.strip_prefix("//") {
            format!("https://{after}")
        } else if rest.starts_with("https://") || rest.starts_with("http://") {
            rest.to_owned()
        } else {
            format!("https://{rest}")
        };
        let url = Url::parse(&url_text).map_err(|e| bad(&e.to_string()))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials do not belong in the location: use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        let mut parts = url.path().trim_matches('/').splitn(2, '/');
        let bucket = parts.next().unwrap_or_default().to_owned();
        if bucket.is_empty() {
            return Err(bad("no bucket (s3://HOST/BUCKET[/PREFIX])"));
        }
        let prefix = parts.next().unwrap_or_default().trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let mut endpoint = url.clone();
        endpoint.set_path("/");
        endpoint.set_query(None);
        let aws = url
            .host_str()
            .is_some_and(|h| h == "amazonaws.com" || h.ends_with(".amazonaws.com"));
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
        let home = env("HOME").map(PathBuf::from);
        let shared = |var: &str, file: &str| {
            env(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(file)))
        };
        let creds_file = shared("AWS_SHARED_CREDENTIALS_FILE", "credentials");
        let config_file = shared("AWS_CONFIG_FILE", "config");
        let nonempty = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let credentials = match (
            nonempty(env("AWS_ACCESS_KEY_ID")),
            nonempty(env("AWS_SECRET_ACCESS_KEY")),
        ) {
            (Some(key), Some(secret)) => Some(match nonempty(env("AWS_SESSION_TOKEN")) {
                Some(token) => Credentials::new_with_token(key, secret, token),
                None => Credentials::new(key, secret),
            }),
            _ => creds_file
                .as_deref()
                .and_then(|f| profile_credentials(f, &profile)),
        };
        let region = nonempty(env("AWS_REGION"))
            .or_else(|| nonempty(env("AWS_DEFAULT_REGION")))
            .or_else(|| url.host_str().and_then(region_of_host))
            .or_else(|| {
                let section = if profile == "default" {
                    profile.clone()
                } else {
                    format!("profile {profile}")
                };
                config_file
                    .as_deref()
                    .and_then(|f| ini_value(f, &section, "region"))
            })
            .unwrap_or_else(|| "us-east-1".to_owned());
        let url_style = match nonempty(env("ARCA_S3_URL_STYLE")).as_deref() {
            Some("path") => UrlStyle::Path,
            Some("virtual" | "virtual-host") => UrlStyle::VirtualHost,
            Some(other) => {
                return Err(S3ConfigError(format!(
                    "bad ARCA_S3_URL_STYLE {other:?}: expected \"path\" or \"virtual\""
                )));
            }
            None if aws => UrlStyle::VirtualHost,
            None => UrlStyle::Path,
        };
        Ok(Self {
            endpoint,
            url_style,
            bucket,
            prefix,
            region,
            credentials,
            storage_class: None,
            multipart_threshold: 128 << 20,
            part_size: 32 << 20,
            http: HttpOptions::default(),
        })
    }

    /// `s3:ENDPOINT/BUCKET[/PREFIX]`, without credentials.
    pub fn location(&self) -> String {
        format!(
            "{}/{}",
            self.bucket_location(),
            self.prefix.trim_end_matches('/')
        )
        .trim_end_matches('/')
        .to_owned()
    }

    pub(crate) fn bucket_location(&self) -> String {
        format!(
            "s3:{}/{}",
            self.endpoint.as_str().trim_end_matches('/'),
            self.bucket
        )
    }
}

/// The region a well-known endpoint names: `s3.REGION.amazonaws.com`,
/// `s3.dualstack.REGION.amazonaws.com`, `s3.REGION.wasabisys.com`,
/// `s3.REGION.backblazeb2.com`.
fn region_of_host(host: &str) -> Option<String> {
    let labels: Vec<&str> = host.split('.').collect();
    let region = match labels.as_slice() {
        [.., "s3", "dualstack", region, "amazonaws", "com"]
        | [.., "s3", region, "amazonaws", "com"]
        | ["s3", region, "wasabisys", "com"]
        | ["s3", region, "backblazeb2", "com"] => region,
        [.., region, "amazonaws", "com"] if region.starts_with("s3-") => {
            return Some(region.trim_start_matches("s3-").to_owned());
        }
        _ => return None,
    };
    Some((*region).to_owned())
}

/// `key` of `[section]` in an INI file such as `~/.aws/credentials`.
fn ini_value(path: &Path, section: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_owned();
        } else if current == section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_owned());
        }
    }
    None
}

fn profile_credentials(path: &Path, profile: &str) -> Option<Credentials> {
    let key = ini_value(path, profile, "aws_access_key_id")?;
    let secret = ini_value(path, profile, "aws_secret_access_key")?;
    Some(match ini_value(path, profile, "aws_session_token") {
        Some(token) => Credentials::new_with_token(key, secret, token),
        None => Credentials::new(key, secret),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(text: &str, vars: &[(&str, &str)]) -> Result<S3Config, S3ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        S3Config::parse(text, &|name| map.get(name).cloned())
    }

    #[test]
    fn locations_parse() {
        let c = parse("//s3.eu-west-1.amazonaws.com/bkt/some/prefix/", &[]).unwrap();
        assert_eq!(c.endpoint.as_str(), "https://s3.eu-west-1.amazonaws.com/");
        assert_eq!(
            (c.bucket.as_str(), c.prefix.as_str()),
            ("bkt", "some/prefix/")
        );
        assert!(matches!(c.url_style, UrlStyle::VirtualHost));
        assert_eq!(c.region, "eu-west-1");
        assert!(c.credentials.is_none());
        assert_eq!(
            c.location(),
            "s3:https://s3.eu-west-1.amazonaws.com/bkt/some/prefix"
        );

        let c = parse(
            "http://127.0.0.1:9000/b",
            &[
                ("AWS_ACCESS_KEY_ID", "AK"),
                ("AWS_SECRET_ACCESS_KEY", "SK"),
                ("AWS_DEFAULT_REGION", "eu-central-1"),
            ],
        )
        .unwrap();
        assert_eq!(c.endpoint.as_str(), "http://127.0.0.1:9000/");
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("b", ""));
        assert!(matches!(c.url_style, UrlStyle::Path));
        assert_eq!(c.region, "eu-central-1");
        assert_eq!(c.credentials.as_ref().unwrap().key(), "AK");
        assert_eq!(c.location(), "s3:http://127.0.0.1:9000/b");
        assert!(!format!("{c:?}").contains("SK"));

        let c = parse("//minio.lan/b", &[("ARCA_S3_URL_STYLE", "virtual")]).unwrap();
        assert!(matches!(c.url_style, UrlStyle::VirtualHost));
        let c = parse("//s3.amazonaws.com/b", &[("ARCA_S3_URL_STYLE", "path")]).unwrap();
        assert!(matches!(c.url_style, UrlStyle::Path));
        assert!(parse("//h/b", &[("ARCA_S3_URL_STYLE", "vhost")]).is_err());

        for (host, region) in [
            ("s3.eu-west-1.amazonaws.com", Some("eu-west-1")),
            ("s3.dualstack.ap-south-1.amazonaws.com", Some("ap-south-1")),
            ("s3-us-west-2.amazonaws.com", Some("us-west-2")),
            ("s3.eu-central-1.wasabisys.com", Some("eu-central-1")),
            ("s3.us-west-004.backblazeb2.com", Some("us-west-004")),
            ("s3.amazonaws.com", None),
            ("minio.lan", None),
        ] {
            assert_eq!(region_of_host(host).as_deref(), region, "{host}");
        }
        let c = parse(
            "//s3.eu-west-1.amazonaws.com/b",
            &[("AWS_DEFAULT_REGION", "x")],
        )
        .unwrap();
        assert_eq!(c.region, "x");
        let c = parse(
            "//s3.eu-west-1.amazonaws.com/b",
            &[("AWS_REGION", "y"), ("AWS_DEFAULT_REGION", "x")],
        )
        .unwrap();
        assert_eq!(c.region, "y");

        let c = parse("s3.wasabisys.com/bucket/p", &[]).unwrap();
        assert_eq!(c.endpoint.as_str(), "https://s3.wasabisys.com/");
        assert_eq!(c.prefix, "p/");

        for bad in ["//host", "https://", "//user:pw@host/b", "http://host/"] {
            assert!(parse(bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn shared_files_give_credentials_and_region() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n\n[work]\naws_access_key_id=W\naws_secret_access_key=WS\naws_session_token = T\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[default]\nregion=us-west-2\n[profile work]\nregion = ap-south-1\n",
        )
        .unwrap();
        let files = [
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ];
        let c = parse("//host/b", &files).unwrap();
        assert_eq!(c.credentials.as_ref().unwrap().key(), "D");
        assert_eq!(c.region, "us-west-2");
        let mut with_profile = files.to_vec();
        with_profile.push(("AWS_PROFILE", "work"));
        let c = parse("//host/b", &with_profile).unwrap();
        let k = c.credentials.as_ref().unwrap();
        assert_eq!((k.key(), k.secret(), k.token()), ("W", "WS", Some("T")));
        assert_eq!(c.region, "ap-south-1");
    }
}
