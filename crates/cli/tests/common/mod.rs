//! Helpers for the end-to-end tests: run the real `arca` binary in an isolated
//! environment, build source trees, and compare trees content- and metadata-wise.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use filetime::FileTime;

pub const PASSWORD: &str = "correct horse battery staple";

/// A cheap key derivation (tests open repositories many times).
pub const FAST_KDF: [&str; 4] = ["--kdf-memory", "1", "--kdf-iterations", "1"];

/// `init ARGS` with [`FAST_KDF`]: the arguments of a cheap `arca init`.
pub fn init_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["init"];
    args.extend(FAST_KDF);
    args.extend(extra);
    args
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd` with `input` on its standard input; its output.
pub fn output_with_input(mut cmd: Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A temporary directory holding a repository and whatever the test creates.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    /// A remote repository location, used instead of `repo` when set.
    pub location: Option<String>,
    /// More environment variables for the binary (credentials of remote storage).
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        Self {
            dir,
            repo,
            location: None,
            vars: Vec::new(),
        }
    }

    /// An environment whose repository is at `location`, reached with `vars`.
    pub fn remote(location: String, vars: Vec<(String, String)>) -> Self {
        Self {
            location: Some(location),
            vars,
            ..Self::new()
        }
    }

    /// A path inside the environment.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The binary, with a clean environment: repository and password set, nothing else
    /// from the caller's ARCA_* variables.
    pub fn cmd(&self) -> Command {
        self.command(env!("CARGO_BIN_EXE_arca"))
    }

    /// `program` (a shell or `script` wrapping the binary) with the environment of
    /// [`Env::cmd`].
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_remove("ARCA_PASSWORD_FILE")
            .env("ARCA_PASSWORD", PASSWORD)
            .env("ARCA_CACHE_DIR", self.dir.path().join("cache"))
            .stdin(Stdio::null());
        match &self.location {
            Some(location) => c.env("ARCA_REPOSITORY", location),
            None => c.env("ARCA_REPOSITORY", &self.repo),
        };
        c.envs(self.vars.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs `arca ARGS` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs `arca ARGS`, asserting exit code `code`.
    pub fn expect(&self, code: i32, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "arca {args:?}\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        out
    }

    /// Runs `arca ARGS`, asserting success, and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        String::from_utf8(self.expect(0, args).stdout).unwrap()
    }

    /// Runs `arca ARGS --json`, asserting success, and parses the output: the last line
    /// when it is JSON lines (backup prints status lines before its summary), else all.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        json_of(&self.ok(&all))
    }

    /// The id of a key slot other than the one in use, from `key list --json`.
    pub fn other_key_id(&self) -> String {
        let keys = self.json(&["key", "list"]);
        let other = keys
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["current"] == false);
        other.unwrap()["id"].as_str().unwrap().to_owned()
    }

    /// `arca dump latest SRC --archive FORMAT --target ARCHIVE`, asserting exit `code`.
    pub fn dump_archive(&self, code: i32, src: &Path, format: &str, archive: &Path) -> Output {
        let (src, archive) = (src.to_str().unwrap(), archive.to_str().unwrap());
        let args = [
            "dump",
            "latest",
            src,
            "--archive",
            format,
            "--target",
            archive,
        ];
        self.expect(code, &args)
    }

    /// `arca init` with a cheap key derivation (tests open the repository many times).
    pub fn init(&self) {
        self.ok(&init_args(&[]));
    }

    /// `arca key add ARGS` with a cheap key derivation, the new password `password`.
    pub fn add_password(&self, password: &str, args: &[&str]) -> Output {
        self.cmd()
            .args(["key", "add"])
            .args(FAST_KDF)
            .args(args)
            .env("ARCA_NEW_PASSWORD", password)
            .output()
            .unwrap()
    }

    /// Runs `arca ARGS` under `ulimit -n 64`, expecting success, and returns its output.
    #[allow(dead_code)]
    pub fn ok_with_64_open_files(&self, args: &[&str]) -> Output {
        let out = self
            .command("sh")
            .args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_arca"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `arca backup PATHS --json`.
    pub fn backup(&self, paths: &[&Path]) -> serde_json::Value {
        let mut args: Vec<&str> = vec!["backup"];
        args.extend(paths.iter().map(|p| p.to_str().unwrap()));
        self.json(&args)
    }
}

/// The JSON of a `--json` command's output: the last line when it is JSON lines
/// (backup prints status lines before its summary), else all of it.
#[allow(dead_code)]
pub fn json_of(out: &str) -> serde_json::Value {
    serde_json::from_str(out)
        .or_else(|_| serde_json::from_str(out.lines().last().unwrap_or_default()))
        .unwrap()
}

/// Waits until files created so far are more than a second old, so that a following
/// backup's child backup trusts them as unchanged (see the racy-file rule in
/// docs/design.md, section 15).
pub fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// Every regular file below `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap();
}

/// Writes `data` to `path` and sets its modification time back to what it was: a change
/// that size and times do not show (when `data` has the old size).
pub fn rewrite_keeping_mtime(path: &Path, data: &[u8]) {
    let before = fs::metadata(path).unwrap();
    write(path, data);
    filetime::set_file_mtime(path, FileTime::from_last_modification_time(&before)).unwrap();
}

pub fn set_times(path: &Path, atime: (i64, u32), mtime: (i64, u32)) {
    filetime::set_symlink_file_times(
        path,
        FileTime::from_unix_time(atime.0, atime.1),
        FileTime::from_unix_time(mtime.0, mtime.1),
    )
    .unwrap();
}

/// A tree with the cases a backup must get right: nested and empty directories,
/// empty and multi-chunk files, symlinks (dangling too), unusual modes, nanosecond
/// times, and a name that is not UTF-8.
pub fn make_tree(root: &Path) {
    write(&root.join("hello.txt"), b"hello, world\n");
    write(&root.join("empty"), b"");
    write(
        &root.join("docs/report.md"),
        &b"# Report\nlots of text\n".repeat(3000),
    );
    write(
        &root.join("docs/deep/er/still/file.bin"),
        &bytes(300_000, 1),
    );
    write(&root.join("data/big.bin"), &bytes(3 * 1024 * 1024 + 17, 2));
    write(&root.join("data/zeros.bin"), &vec![0u8; 2 * 1024 * 1024]);
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::create_dir_all(root.join("private")).unwrap();
    write(&root.join("private/secret"), b"s3cr3t");
    fs::set_permissions(
        root.join("private/secret"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    write(&root.join("bin/tool"), b"#!/bin/sh\necho hi\n");
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(root.join("bin"), fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    let odd = root.join(OsStr::from_bytes(b"caf\xe9-latin1"));
    write(&odd, b"not utf-8 name");
    set_times(
        &root.join("hello.txt"),
        (1_600_000_000, 111),
        (1_500_000_000, 123_456_789),
    );
    set_times(
        &root.join("docs/report.md"),
        (1_600_000_001, 0),
        (1_400_000_000, 999_999_999),
    );
    set_times(&root.join("link"), (1_300_000_000, 5), (1_300_000_000, 5));
    set_times(
        &root.join("empty-dir"),
        (1_200_000_000, 0),
        (1_200_000_000, 42),
    );
}

/// What a comparison looks at for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    /// Files only: access times of directories and symlinks are not compared (listing
    /// and reading links change them).
    pub atime: Option<(i64, i64)>,
    pub size: u64,
    pub content: Option<Vec<u8>>,
    pub target: Option<Vec<u8>>,
}

/// Metadata of every entry below `root` (relative paths), then file contents. Metadata
/// is taken first so reading contents cannot disturb access times.
pub fn manifest(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            let t = m.file_type();
            let kind = if t.is_dir() {
                stack.push(path.clone());
                "dir"
            } else if t.is_symlink() {
                "symlink"
            } else if t.is_file() {
                "file"
            } else {
                "other"
            };
            let is_link = kind == "symlink";
            out.insert(
                path.strip_prefix(root).unwrap().to_path_buf(),
                Entry {
                    kind,
                    // A symlink's own mode is not meaningful on Linux.
                    mode: if is_link { 0 } else { m.mode() & 0o7777 },
                    uid: m.uid(),
                    gid: m.gid(),
                    mtime: (m.mtime(), m.mtime_nsec()),
                    atime: (kind == "file").then(|| (m.atime(), m.atime_nsec())),
                    size: if kind == "file" { m.size() } else { 0 },
                    content: None,
                    target: is_link.then(|| {
                        fs::read_link(&path)
                            .unwrap()
                            .as_os_str()
                            .as_bytes()
                            .to_vec()
                    }),
                },
            );
        }
    }
    for (rel, e) in out.iter_mut() {
        if e.kind == "file" {
            e.content = Some(read_noatime(&root.join(rel)));
        }
    }
    out
}

/// Reads a file without updating its access time (as its owner or root), so taking a
/// manifest does not change what a following backup records.
pub fn read_noatime(path: &Path) -> Vec<u8> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOATIME)
        .open(path)
        .unwrap();
    let mut out = Vec::new();
    f.read_to_end(&mut out).unwrap();
    out
}

/// Asserts two manifests are equal, naming the first difference.
pub fn assert_same(expected: &BTreeMap<PathBuf, Entry>, actual: &BTreeMap<PathBuf, Entry>) {
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<_> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    for (path, want) in expected {
        let got = &actual[path];
        if want != got {
            let mut w = want.clone();
            let mut g = got.clone();
            let content_differs = w.content != g.content;
            w.content = None;
            g.content = None;
            panic!(
                "{} differs (content differs: {content_differs}):\n want {w:?}\n  got {g:?}",
                path.display()
            );
        }
    }
}

/// The restored copy of absolute `source` under `target`.
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap())
}

/// Peak resident set size of all waited-for children, in KiB.
pub fn children_max_rss_kib() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .unwrap()
        .max_rss()
}
