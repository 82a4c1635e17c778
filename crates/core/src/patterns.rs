//! Path patterns, for backup excludes and restore includes/excludes.
//!
//! The pattern language (also in the README):
//! - `*` matches within one path component, `?` one character, `[abc]` a class, and `**`
//!   any number of components (`**/.cache`, `/home/**/*.tmp`).
//! - A pattern starting with `/` is anchored: it matches the absolute path
//!   (`/var/lib/mysql`). Any other pattern matches at any depth: `*.tmp` and
//!   `node_modules` match a file or directory of that name anywhere, `foo/bar` matches
//!   any path ending in `foo/bar`.
//! - An excluded directory is not descended into; an included directory is restored
//!   with everything below it.
//!
//! Exclude files have one pattern per line; blank lines and lines starting with `#` are
//! skipped, and a leading `- ` (as in Duplicity filelists) is accepted.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::{Error, Result};

/// A compiled set of path patterns.
#[derive(Debug, Clone)]
pub struct PatternSet {
    set: GlobSet,
    patterns: Vec<String>,
}

impl Default for PatternSet {
    fn default() -> Self {
        Self {
            set: GlobSet::empty(),
            patterns: Vec::new(),
        }
    }
}

impl PatternSet {
    /// Compiles `patterns`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the first invalid pattern.
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            let trimmed = p.trim_end_matches('/');
            if trimmed.is_empty() {
                return Err(Error::invalid(format!(
                    "invalid pattern {p:?}: it is empty"
                )));
            }
            let anchored = if trimmed.starts_with('/') {
                trimmed.to_owned()
            } else if trimmed.starts_with("**/") {
                format!("/{trimmed}")
            } else {
                format!("/**/{trimmed}")
            };
            let glob = GlobBuilder::new(&anchored)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::invalid(format!("invalid pattern {p:?}: {e}")))?;
            builder.add(glob);
        }
        let set = builder
            .build()
            .map_err(|e| Error::invalid(format!("invalid patterns: {e}")))?;
        Ok(Self {
            set,
            patterns: patterns.to_vec(),
        })
    }

    /// Whether the absolute `path` matches any pattern.
    pub fn matches(&self, path: &Path) -> bool {
        !self.patterns.is_empty() && self.set.is_match(path)
    }

    /// True if there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// Reads the patterns of an exclude file.
///
/// # Errors
/// [`crate::ErrorKind::Io`] or `NotFound` naming the file; `InvalidInput` for a
/// `+ PATTERN` include line, which exclude files do not support.
pub fn read_exclude_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read(path).map_err(|e| Error::io("cannot read exclude file", path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(p) = line.strip_prefix("- ") {
            out.push(p.trim().to_owned());
        } else if line.starts_with("+ ") {
            return Err(Error::invalid(format!(
                "{}:{}: include lines (\"+ PATTERN\") are not supported; list only patterns to exclude",
                path.display(),
                n + 1
            )));
        } else {
            out.push(line.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(p: &[&str]) -> PatternSet {
        PatternSet::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn patterns_match_as_documented() {
        let s = set(&[
            "**/.cache",
            "*.tmp",
            "/var/lib/mysql",
            "node_modules",
            "build/out",
            "/home/*/secret",
        ]);
        for yes in [
            "/home/a/.cache",
            "/.cache",
            "/x/y/z.tmp",
            "/var/lib/mysql",
            "/p/node_modules",
            "/src/build/out",
            "/home/bob/secret",
        ] {
            assert!(s.matches(Path::new(yes)), "{yes}");
        }
        for no in [
            "/home/a/.cache2",
            "/x/y/z.tmpl",
            "/srv/var/lib/mysql",
            "/var/lib/mysql2",
            "/src/build/outer",
            "/home/bob/x/secret",
            "/home/a/cache",
        ] {
            assert!(!s.matches(Path::new(no)), "{no}");
        }
        assert!(!PatternSet::default().matches(Path::new("/anything")));
    }

    #[test]
    fn bad_patterns_are_reported() {
        let err = PatternSet::new(&["a[".to_string()]).unwrap_err();
        assert!(err.to_string().contains("a["), "{err}");
        assert!(PatternSet::new(&["/".to_string()]).is_err());
    }

    #[test]
    fn exclude_files_parse() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ex");
        std::fs::write(&f, "# comment\n\n- **/.cache\n*.tmp\r\n  /var/tmp  \n").unwrap();
        assert_eq!(
            read_exclude_file(&f).unwrap(),
            vec!["**/.cache", "*.tmp", "/var/tmp"]
        );
        std::fs::write(&f, "- a\n+ b\n").unwrap();
        let err = read_exclude_file(&f).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
        assert!(read_exclude_file(&dir.path().join("missing")).is_err());
    }
}
