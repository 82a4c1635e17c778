//! Backup sources: making user paths absolute and non-overlapping, the virtual
//! directories above them, and recognising cache directories.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::dir_handle::DirHandle;
use crate::selection::CACHEDIR_SIGNATURE;
use crate::{Error, Result};

/// An entry to process: a real directory entry, or (for the path components above the
/// backed-up paths) a virtual directory whose children are given rather than listed.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) name: Vec<u8>,
    pub(crate) path: PathBuf,
    pub(crate) children: Option<Vec<Entry>>,
}

/// Builds the entries of the root directory from normalized, non-nested absolute source
/// paths (not `/` itself).
pub(crate) fn source_entries(sources: &[PathBuf]) -> Vec<Entry> {
    fn build(prefix: &Path, paths: Vec<Vec<OsString>>) -> Vec<Entry> {
        let mut groups: std::collections::BTreeMap<Vec<u8>, Vec<Vec<OsString>>> =
            Default::default();
        for mut comps in paths {
            if comps.is_empty() {
                continue;
            }
            let first = comps.remove(0);
            groups.entry(first.into_vec()).or_default().push(comps);
        }
        groups
            .into_iter()
            .map(|(name, rests)| {
                let path = prefix.join(std::ffi::OsStr::from_bytes(&name));
                // Sources are not nested, so a group is either one leaf or all deeper.
                let children = if rests.iter().any(|r| r.is_empty()) {
                    None
                } else {
                    Some(build(&path, rests))
                };
                Entry {
                    name,
                    path,
                    children,
                }
            })
            .collect()
    }
    let paths = sources
        .iter()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(n) => Some(n.to_owned()),
                    _ => None,
                })
                .collect()
        })
        .collect();
    build(Path::new("/"), paths)
}

/// Makes source paths absolute and normal, checks they exist, and drops duplicates and
/// paths inside other sources. Returns them sorted.
pub(crate) fn normalize_sources(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::invalid("nothing to back up: no paths given"));
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Error::io("cannot read the current directory", Path::new("."), e))?;
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let abs = normalize(&cwd.join(p));
        std::fs::symlink_metadata(&abs).map_err(|e| Error::io("cannot back up", &abs, e))?;
        out.push(abs);
    }
    out.sort();
    out.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for p in out {
        if !kept.iter().any(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    Ok(kept)
}

pub(crate) fn path_bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

/// Whether `names` (of the open directory `dir`) include a valid `CACHEDIR.TAG`.
pub(crate) fn is_cache_dir(dir: &DirHandle, names: &[Vec<u8>]) -> bool {
    names.iter().any(|n| n == b"CACHEDIR.TAG") && is_cache_dir_at(dir)
}

/// Whether the open directory `dir` holds a `CACHEDIR.TAG` that starts with the
/// standard signature.
pub(crate) fn is_cache_dir_at(dir: &DirHandle) -> bool {
    use std::io::Read;
    let mut head = [0u8; 43];
    dir.open_read(b"CACHEDIR.TAG")
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head[..] == *CACHEDIR_SIGNATURE)
}

/// Lexically normalizes an absolute path: drops `.`, resolves `..`, no symlinks.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}
