//! Where an SFTP repository is and how to log in: parsed from a location string and
//! the environment.

use std::path::PathBuf;
use std::time::Duration;

/// Everything [`super::SftpBackend`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SftpConfig {
    /// The server's host name or address.
    pub host: String,
    /// The server's port (22 unless given).
    pub port: u16,
    /// The user to log in as.
    pub user: String,
    /// The repository directory on the server: absolute, or relative to the login
    /// directory.
    pub path: String,
    /// A private key file to try (after the SSH agent, before `~/.ssh/id_*`).
    pub key_file: Option<PathBuf>,
    /// The known-hosts file the server's host key must be in.
    pub known_hosts: PathBuf,
    /// The longest any single SSH operation may block.
    pub timeout: Duration,
    /// The user's home directory, for the default key files.
    pub home: Option<PathBuf>,
}

/// A location string that is not a usable SFTP location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SftpConfigError(String);

impl SftpConfig {
    /// Parses what follows `sftp:` in a location: `//[USER@]HOST[:PORT]/PATH` (PATH
    /// absolute; `/~/dir` is relative to the login directory) or scp's
    /// `[USER@]HOST:PATH` (relative to the login directory unless it starts with `/`).
    /// From `env`: `ARCA_SFTP_KEY` (a key file), `ARCA_SFTP_KNOWN_HOSTS` (default
    /// `~/.ssh/known_hosts`), `USER` (when the location names none), `HOME`.
    ///
    /// # Errors
    /// A message naming what is wrong with the location.
    pub fn parse(rest: &str, env: crate::EnvLookup<'_>) -> Result<Self, SftpConfigError> {
        let bad = |why: &str| SftpConfigError(format!("bad SFTP location \"sftp:{rest}\": {why}"));
        let (authority, path) = if let Some(after) = rest.strip_prefix("//") {
            let (authority, path) = after.split_once('/').ok_or_else(|| bad("no path"))?;
            let path = match path.strip_prefix("~/") {
                Some(relative) => relative.to_owned(),
                None => format!("/{path}"),
            };
            (authority, path)
        } else {
            let (authority, path) = rest.split_once(':').ok_or_else(|| {
                bad("expected sftp://[USER@]HOST[:PORT]/PATH or sftp:[USER@]HOST:PATH")
            })?;
            // scp's `host:~/dir` is `host:dir`.
            (
                authority,
                path.strip_prefix("~/").unwrap_or(path).to_owned(),
            )
        };
        if path.trim_matches('/').is_empty() {
            return Err(bad("no path"));
        }
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hostport)) => (Some(user.to_owned()), hostport),
            None => (None, authority),
        };
        if user.as_deref().is_some_and(|u| u.contains(':')) {
            return Err(bad(
                "passwords do not belong in the location: use a key or an SSH agent",
            ));
        }
        let (host, port) = match hostport.strip_prefix('[') {
            // [IPv6]:port
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
                match after.strip_prefix(':') {
                    Some(p) => (host, Some(p)),
                    None if after.is_empty() => (host, None),
                    None => return Err(bad("junk after ]")),
                }
            }
            None => match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("bad port"))?,
            None => 22,
        };
        let home = env("HOME").map(PathBuf::from);
        let user = match user.or_else(|| env("USER")).filter(|u| !u.is_empty()) {
            Some(u) => u,
            None => return Err(bad("no user: write USER@HOST")),
        };
        let known_hosts = env("ARCA_SFTP_KNOWN_HOSTS")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".ssh/known_hosts")))
            .ok_or_else(|| bad("no known_hosts file: set HOME or ARCA_SFTP_KNOWN_HOSTS"))?;
        Ok(Self {
            host: host.to_owned(),
            port,
            user,
            path,
            key_file: env("ARCA_SFTP_KEY").map(PathBuf::from),
            known_hosts,
            timeout: Duration::from_secs(600),
            home,
        })
    }

    /// `sftp://USER@HOST:PORT/PATH` (or `.../~/PATH` for a path relative to the login
    /// directory).
    pub fn location(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let path = match self.path.strip_prefix('/') {
            Some(absolute) => absolute.to_owned(),
            None => format!("~/{}", self.path),
        };
        format!("sftp://{}@{host}:{}/{path}", self.user, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SftpConfig, SftpConfigError> {
        SftpConfig::parse(text, &|name| match name {
            "USER" => Some("me".to_owned()),
            "HOME" => Some("/home/me".to_owned()),
            _ => None,
        })
    }

    #[test]
    fn locations_parse() {
        let c = parse("//backup@example.org:2222/srv/repo").unwrap();
        assert_eq!(
            (c.user.as_str(), c.host.as_str(), c.port, c.path.as_str()),
            ("backup", "example.org", 2222, "/srv/repo")
        );
        assert_eq!(c.known_hosts, PathBuf::from("/home/me/.ssh/known_hosts"));
        assert_eq!(c.location(), "sftp://backup@example.org:2222/srv/repo");

        let c = parse("example.org:backups/laptop").unwrap();
        assert_eq!(
            (c.user.as_str(), c.port, c.path.as_str()),
            ("me", 22, "backups/laptop")
        );
        assert_eq!(c.location(), "sftp://me@example.org:22/~/backups/laptop");

        assert_eq!(parse("u@host:~/rel").unwrap().path, "rel");
        let c = parse("u@host:/abs").unwrap();
        assert_eq!(c.path, "/abs");
        let c = parse("//host/~/rel/dir").unwrap();
        assert_eq!(c.path, "rel/dir");
        let c = parse("//u@[::1]:2200/r").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 2200));
        assert_eq!(c.location(), "sftp://u@[::1]:2200/r");

        for bad in [
            "//host",
            "//host/",
            "host",
            "//u:pw@host/r",
            "//host:0/r",
            "//host:x/r",
            "//:22/r",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
