//! What is backed up and restored: path patterns and ordered include/exclude rules.
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
//! Filter files (`--exclude-from`) hold one rule per line: `- PATTERN` excludes,
//! `+ PATTERN` includes, a bare `PATTERN` excludes; blank lines and `#` comments are
//! skipped. The first rule that matches a path decides (as in Duplicity filelists); a
//! path no rule matches is included. As in Duplicity, a rule that matches a directory
//! matches everything in it, and an include rule also matches the directories that lead
//! to what it includes: `+ /home/me/docs` followed by `- **` backs up exactly
//! `/home/me/docs` with all its contents, and the directories above it without their
//! other contents. To exclude part of an included directory, put the exclude first.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use crate::{Error, Result};

/// Makes a user pattern absolute: anchored patterns stay, others match at any depth.
fn anchored(pattern: &str) -> Result<String> {
    let trimmed = pattern.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(Error::invalid(format!(
            "invalid pattern {pattern:?}: it is empty"
        )));
    }
    Ok(if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else if trimmed.starts_with("**/") {
        format!("/{trimmed}")
    } else {
        format!("/**/{trimmed}")
    })
}

fn glob(pattern: &str, case_insensitive: bool) -> Result<globset::Glob> {
    GlobBuilder::new(&anchored(pattern)?)
        .literal_separator(true)
        .backslash_escape(true)
        .case_insensitive(case_insensitive)
        .build()
        .map_err(|e| Error::invalid(format!("invalid pattern {pattern:?}: {e}")))
}

/// A compiled set of path patterns (any match counts).
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
    /// Compiles `patterns` (case-sensitive).
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the first invalid pattern.
    pub fn new(patterns: &[String]) -> Result<Self> {
        Self::with_case(patterns, false)
    }

    /// Compiles `patterns`, matching without regard to case if `case_insensitive`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the first invalid pattern.
    pub fn with_case(patterns: &[String], case_insensitive: bool) -> Result<Self> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            builder.add(glob(p, case_insensitive)?);
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

/// One include or exclude rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRule {
    /// The pattern (see the module documentation).
    pub pattern: String,
    /// Include (`+`) rather than exclude (`-`).
    pub include: bool,
    /// Match without regard to case.
    pub case_insensitive: bool,
}

impl FilterRule {
    /// An exclude rule.
    pub fn exclude(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            include: false,
            case_insensitive: false,
        }
    }

    /// The rule as a filter-file line.
    pub fn to_line(&self) -> String {
        let sign = if self.include { '+' } else { '-' };
        let case = if self.case_insensitive {
            " (case-insensitive)"
        } else {
            ""
        };
        format!("{sign} {}{case}", self.pattern)
    }

    /// Parses a line written by [`FilterRule::to_line`] (as snapshots record their
    /// rules); `None` for a line without a pattern or a `! ` settings line.
    pub fn from_line(line: &str) -> Option<Self> {
        if line.starts_with(SETTING) {
            return None;
        }
        let (include, rest) = if let Some(p) = line.strip_prefix("+ ") {
            (true, p)
        } else {
            (false, line.strip_prefix("- ").unwrap_or(line))
        };
        let (pattern, case_insensitive) = match rest.strip_suffix(" (case-insensitive)") {
            Some(p) => (p, true),
            None => (rest, false),
        };
        // Only an empty pattern is no rule: `to_line` writes any other as it is, also
        // one of whitespace only (a file may be named by a vertical tab).
        (!pattern.is_empty()).then(|| Self {
            pattern: pattern.to_owned(),
            include,
            case_insensitive,
        })
    }
}

struct Compiled {
    matcher: GlobMatcher,
    include: bool,
    /// For include rules: the leading components without wildcards; the directories on
    /// the way there, and below it if wildcards follow, may contain what it includes.
    fixed: PathBuf,
    wild_after_fixed: bool,
}

/// Ordered include/exclude rules; the first match decides.
#[derive(Default)]
pub struct Filter {
    rules: Vec<Compiled>,
    /// Without include rules, a path's ancestors need no checking: an excluded
    /// directory is never descended into.
    has_includes: bool,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("rules", &self.rules.len())
            .finish()
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

impl Filter {
    /// Compiles `rules`, in order.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the first invalid pattern.
    pub fn new(rules: &[FilterRule]) -> Result<Self> {
        let mut compiled = Vec::with_capacity(rules.len());
        for r in rules {
            let matcher = glob(&r.pattern, r.case_insensitive)?.compile_matcher();
            let anchored = anchored(&r.pattern)?;
            let mut fixed = PathBuf::from("/");
            let mut wild = false;
            for part in anchored.split('/').filter(|p| !p.is_empty()) {
                if has_wildcard(part) {
                    wild = true;
                    break;
                }
                fixed.push(part);
            }
            compiled.push(Compiled {
                matcher,
                include: r.include,
                fixed,
                wild_after_fixed: wild,
            });
        }
        Ok(Self {
            has_includes: rules.iter().any(|r| r.include),
            rules: compiled,
        })
    }

    /// True if there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether the absolute `path` is excluded. `is_dir` lets include rules keep the
    /// directories that lead to what they include. `within` bounds which ancestors count
    /// as matching for the path (the backed-up path it belongs to): directories above
    /// what the user named are not the rules' to decide.
    pub fn excludes(&self, path: &Path, is_dir: bool, within: &Path) -> bool {
        for r in &self.rules {
            let ancestor_matches = || {
                self.has_includes
                    && path
                        .ancestors()
                        .skip(1)
                        .take_while(|a| a.starts_with(within))
                        .any(|a| r.matcher.is_match(a))
            };
            if r.matcher.is_match(path) || ancestor_matches() {
                return !r.include;
            }
            if r.include && is_dir {
                let leads_there = r.fixed.starts_with(path) && r.fixed != path;
                let may_hold = r.wild_after_fixed && path.starts_with(&r.fixed);
                if leads_there || may_hold {
                    return false;
                }
            }
        }
        false
    }
}

/// Reads the rules of a filter file (see the module documentation).
///
/// # Errors
/// [`crate::ErrorKind::Io`] or `NotFound` naming the file; `InvalidInput` for a line
/// with an empty pattern.
pub fn read_filter_file(path: &Path) -> Result<Vec<FilterRule>> {
    let text = std::fs::read(path).map_err(|e| Error::io("cannot read filter file", path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (include, pattern) = if let Some(p) = line.strip_prefix("+ ") {
            (true, p)
        } else if let Some(p) = line.strip_prefix("- ") {
            (false, p)
        } else {
            (false, line)
        };
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Err(Error::invalid(format!(
                "{}:{}: empty pattern",
                path.display(),
                n + 1
            )));
        }
        out.push(FilterRule {
            pattern: pattern.to_owned(),
            include,
            case_insensitive: false,
        });
    }
    Ok(out)
}

/// Reads a list of paths to back up: one per line; blank lines and lines starting with
/// `#` are skipped. Relative paths are taken relative to the current directory.
///
/// # Errors
/// [`crate::ErrorKind::Io`] or `NotFound` naming the file.
pub fn read_files_from(path: &Path) -> Result<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let text = std::fs::read(path).map_err(|e| Error::io("cannot read path list", path, e))?;
    Ok(text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace) && !l.starts_with(b"#"))
        .map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l)))
        .collect())
}

/// The components of a path, as `Path` prefixes, for tests of the parent rule.
#[cfg(test)]
fn ancestors(p: &str) -> Vec<PathBuf> {
    use std::path::Component;
    let mut out = Vec::new();
    let mut cur = PathBuf::from("/");
    for c in Path::new(p).components() {
        if let Component::Normal(n) = c {
            cur.push(n);
            out.push(cur.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(p: &[&str]) -> PatternSet {
        PatternSet::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn rules(lines: &[&str]) -> Filter {
        let rules: Vec<FilterRule> = lines
            .iter()
            .map(|l| FilterRule {
                pattern: l[2..].to_string(),
                include: l.starts_with('+'),
                case_insensitive: false,
            })
            .collect();
        Filter::new(&rules).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn rule_lines_round_trip(
            pattern in "[^\n]*[^ \n][^\n]*",
            include: bool,
            case_insensitive: bool,
        ) {
            let rule = FilterRule { pattern, include, case_insensitive };
            proptest::prop_assert_eq!(FilterRule::from_line(&rule.to_line()), Some(rule));
        }
    }

    #[test]
    fn whitespace_patterns_round_trip() {
        // Found by the property test: a pattern of one vertical tab was dropped.
        for pattern in ["\u{b}", "\t", " x "] {
            let rule = FilterRule::exclude(pattern);
            assert_eq!(FilterRule::from_line(&rule.to_line()), Some(rule));
        }
        assert_eq!(FilterRule::from_line("- "), None);
        assert_eq!(FilterRule::from_line(""), None);
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
    fn first_match_wins_and_includes_keep_their_parents() {
        let root = Path::new("/");
        let ex = |f: &Filter, p: &str, dir: bool| f.excludes(Path::new(p), dir, root);
        let f = rules(&["+ /home/me/docs", "- /home/me/docs/tmp", "- **"]);
        for dir in ancestors("/home/me/docs") {
            assert!(!f.excludes(&dir, true, root), "{}", dir.display());
        }
        // Everything in an included directory is included: the include matches first.
        assert!(!ex(&f, "/home/me/docs/a.txt", false));
        assert!(!ex(&f, "/home/me/docs/tmp", true));
        assert!(!ex(&f, "/home/me/docs/tmp/deep/x", false));
        assert!(ex(&f, "/home/me/music", true));
        assert!(ex(&f, "/home/me/notes.txt", false));
        assert!(ex(&f, "/etc", true));

        // An exclude placed first carves a part out of an included directory.
        let f = rules(&["- /home/me/docs/tmp", "+ /home/me/docs", "- **"]);
        assert!(ex(&f, "/home/me/docs/tmp", true));
        assert!(!ex(&f, "/home/me/docs/keep.txt", false));

        // Wildcards after the fixed part: directories below it may hold matches.
        let f = rules(&["+ /srv/**/*.conf", "- **"]);
        assert!(!ex(&f, "/srv", true));
        assert!(!ex(&f, "/srv/a/b", true));
        assert!(!ex(&f, "/srv/a/b/x.conf", false));
        assert!(ex(&f, "/srv/a/b/x.txt", false));
        assert!(ex(&f, "/etc", true));
        // No rule matches: included.
        assert!(!ex(&rules(&["- *.tmp"]), "/a/b", false));
        // Ancestors above the backed-up path do not count.
        let f = rules(&["+ /x", "- /home", "+ **"]);
        assert!(!f.excludes(Path::new("/home/me/file"), false, Path::new("/home/me")));
        assert!(f.excludes(Path::new("/home/me/file"), false, Path::new("/")));
    }

    #[test]
    fn case_insensitive_rules() {
        let f = Filter::new(&[FilterRule {
            pattern: "*.JPG".into(),
            include: false,
            case_insensitive: true,
        }])
        .unwrap();
        let root = Path::new("/");
        assert!(f.excludes(Path::new("/p/a.jpg"), false, root));
        assert!(f.excludes(Path::new("/p/b.JpG"), false, root));
        assert!(!f.excludes(Path::new("/p/b.png"), false, root));
    }

    #[test]
    fn filter_files_and_path_lists_parse() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rules");
        std::fs::write(
            &f,
            "# comment\n\n- **/.cache\n+ /home/me/docs\n*.tmp\r\n  /var/tmp  \n",
        )
        .unwrap();
        let r = read_filter_file(&f).unwrap();
        assert_eq!(
            r.iter().map(FilterRule::to_line).collect::<Vec<_>>(),
            vec!["- **/.cache", "+ /home/me/docs", "- *.tmp", "- /var/tmp"]
        );
        assert!(read_filter_file(&dir.path().join("missing")).is_err());
        let list = dir.path().join("paths");
        std::fs::write(&list, "/etc\n# no\n\nrelative/dir\n/with space/x\n").unwrap();
        assert_eq!(
            read_files_from(&list).unwrap(),
            vec![
                PathBuf::from("/etc"),
                PathBuf::from("relative/dir"),
                PathBuf::from("/with space/x")
            ]
        );
    }
}

/// The content of a valid `CACHEDIR.TAG` starts with this (cachedir spec 1.0).
pub(crate) const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Everything that decides what a backup skips, shared by the walk and the estimate.
#[derive(Debug, Default)]
pub(crate) struct Selector {
    pub(crate) filter: Filter,
    /// Keep only the tag file of directories holding a valid `CACHEDIR.TAG`.
    pub(crate) exclude_caches: bool,
    /// Skip directories that hold a file of one of these names.
    pub(crate) exclude_if_present: Vec<Vec<u8>>,
    /// Skip files larger than this.
    pub(crate) larger_than: Option<u64>,
    /// Do not descend into directories on another file system than their source.
    pub(crate) one_file_system: bool,
}

/// How a snapshot's `excludes` lines record the settings that are not rules.
const SETTING: &str = "! ";

impl Selector {
    /// The selection as a snapshot's `excludes` lines: `rules` (as filter-file lines,
    /// in order), then one `! SETTING [VALUE]` line per other setting in use.
    pub(crate) fn to_lines(&self, rules: &[FilterRule]) -> Vec<String> {
        let mut lines: Vec<String> = rules.iter().map(FilterRule::to_line).collect();
        if self.exclude_caches {
            lines.push(format!("{SETTING}exclude-caches"));
        }
        for name in &self.exclude_if_present {
            lines.push(format!(
                "{SETTING}exclude-if-present {}",
                String::from_utf8_lossy(name)
            ));
        }
        if let Some(limit) = self.larger_than {
            lines.push(format!("{SETTING}exclude-larger-than {limit}"));
        }
        if self.one_file_system {
            lines.push(format!("{SETTING}one-file-system"));
        }
        lines
    }

    /// The selection a snapshot recorded in its `excludes` lines. Lines it cannot read
    /// (from a later version) are ignored.
    pub(crate) fn from_lines(lines: &[String]) -> Self {
        let rules: Vec<FilterRule> = lines
            .iter()
            .filter_map(|l| FilterRule::from_line(l))
            .collect();
        let mut s = Self {
            filter: Filter::new(&rules).unwrap_or_default(),
            exclude_caches: false,
            exclude_if_present: Vec::new(),
            larger_than: None,
            one_file_system: false,
        };
        for line in lines.iter().filter_map(|l| l.strip_prefix(SETTING)) {
            let (name, value) = line.split_once(' ').unwrap_or((line, ""));
            match name {
                "exclude-caches" => s.exclude_caches = true,
                "exclude-if-present" if !value.is_empty() => {
                    s.exclude_if_present.push(value.as_bytes().to_vec());
                }
                "exclude-larger-than" => s.larger_than = value.parse().ok(),
                "one-file-system" => s.one_file_system = true,
                _ => {}
            }
        }
        s
    }

    /// Whether a directory on `device` is left unopened for being on another file
    /// system than its source's (`source_device`; `None` while the source's own device
    /// is not known yet, as for the source itself).
    pub(crate) fn other_file_system(&self, source_device: Option<u64>, device: u64) -> bool {
        self.one_file_system && source_device.is_some_and(|d| d != device)
    }

    /// Whether a file of `size` bytes is skipped for its size.
    pub(crate) fn too_large(&self, size: u64) -> bool {
        self.larger_than.is_some_and(|limit| size > limit)
    }

    /// Whether a directory with these entry names is skipped for a marker file in it.
    pub(crate) fn has_marker<'a>(&self, mut names: impl Iterator<Item = &'a [u8]>) -> bool {
        !self.exclude_if_present.is_empty()
            && names.any(|n| self.exclude_if_present.iter().any(|m| m == n))
    }
}
