//! The walker lists the sources ahead of the archiver, on a thread of its own: it reads
//! each directory, sorts its names, reads every entry's metadata and applies the
//! selection rules, so the archiver is left with comparing against the parent snapshot
//! and storing. (An unchanged backup spends about half its time in `getdents` and
//! `fstatat`; the other half, loading the parent's trees and writing the new ones, now
//! runs beside it.)
//!
//! It sends one [`Listing`] per directory in the order the archiver descends: depth
//! first, names sorted. Every directory entry in a listing is followed, later, by exactly
//! one listing of its own. The channel is bounded, so the walker runs at most that many
//! directories ahead, each holding one open descriptor.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::Sender;
use nix::sys::stat::{FileStat, SFlag};

use super::reader::Abort;
use super::sources::{Entry, is_cache_dir};
use crate::dir_handle::DirHandle;
use crate::selection::Selector;
use crate::{Error, Result};

/// How many directories the walker may list ahead of the archiver.
pub(super) const AHEAD: usize = 32;

/// One entry of a directory, as the archiver gets it.
#[derive(Debug)]
pub(super) enum Item {
    /// An entry the selection keeps, with its metadata.
    Entry(Scanned),
    /// An entry that could not be read: it is left out with this error.
    Error(PathBuf, String),
}

#[derive(Debug)]
pub(super) struct Scanned {
    pub(super) name: Vec<u8>,
    pub(super) path: PathBuf,
    pub(super) stat: FileStat,
    /// For a path component above the sources: the directory itself, opened by path
    /// (following symlinks), which `stat` describes.
    pub(super) own: Option<Arc<DirHandle>>,
}

/// A directory's listing.
#[derive(Debug)]
pub(super) struct Listing {
    pub(super) path: PathBuf,
    /// `None` if the directory could not be opened.
    pub(super) handle: Option<Arc<DirHandle>>,
    /// Why the directory is recorded empty: it could not be opened or read.
    pub(super) error: Option<String>,
    /// It holds a marker file (`--exclude-if-present`): it is left out entirely.
    pub(super) excluded: bool,
    /// Its entries in name order.
    pub(super) items: Vec<Item>,
}

impl Listing {
    fn new(path: PathBuf, handle: Option<Arc<DirHandle>>) -> Self {
        Self {
            path,
            handle,
            error: None,
            excluded: false,
            items: Vec::new(),
        }
    }
}

/// The root directory `/` and what is listed in it.
pub(crate) struct Root {
    handle: Arc<DirHandle>,
    /// Backing up `/` itself: the root is the source (its file system, its rules).
    device: Option<u64>,
    /// The path components below `/` that lead to the sources; `None` when `/` is the
    /// source and is listed.
    entries: Option<Vec<Entry>>,
}

impl Root {
    pub(crate) fn open(entries: Option<Vec<Entry>>) -> Result<Self> {
        let path = Path::new("/");
        let handle = DirHandle::open_path(path).map_err(|e| Error::io("cannot open", path, e))?;
        let device = match entries {
            Some(_) => None,
            None => Some(
                handle
                    .stat()
                    .map_err(|e| Error::io("cannot read metadata of", path, e))?
                    .st_dev,
            ),
        };
        Ok(Self {
            handle: Arc::new(handle),
            device,
            entries,
        })
    }

    /// Whether `/` is itself the backed-up path.
    pub(crate) fn is_source(&self) -> bool {
        self.entries.is_none()
    }
}

/// A directory below one being walked, to descend into once its parent's listing is sent.
struct Subdir {
    name: Vec<u8>,
    path: PathBuf,
    device: u64,
    /// Given children of a path component above the sources, and its own handle.
    above: Option<(Vec<Entry>, Arc<DirHandle>)>,
}

/// A directory being walked.
struct Frame {
    handle: Arc<DirHandle>,
    /// The file system of the source it belongs to (`None` above the sources).
    device: Option<u64>,
    /// The backed-up path it belongs to (`None` above the sources).
    source: Option<Arc<PathBuf>>,
    subdirs: std::vec::IntoIter<Subdir>,
}

pub(super) struct Walker<'a> {
    pub(super) selector: &'a Selector,
    pub(super) abort: &'a Abort,
}

impl Walker<'_> {
    /// Walks from `root`, sending each directory's listing; stops early if the backup
    /// stops or the archiver hangs up.
    pub(super) fn run(&self, root: Root, listings: &Sender<Listing>) {
        let path = PathBuf::from("/");
        let (frame, listing) = match root.entries {
            Some(entries) => self.list(root.handle, path, None, None, entries),
            None => {
                let source = Some(Arc::new(path.clone()));
                // The root is listed as it is: the marker and cache rules apply to
                // directories below the sources' tops, as for any other source.
                match self.read(&root.handle, &path, false) {
                    Ok(entries) => self.list(root.handle, path, root.device, source, entries),
                    Err(listing) => {
                        let _ = listings.send(listing);
                        return;
                    }
                }
            }
        };
        if listings.send(listing).is_err() {
            return;
        }
        let mut stack = vec![frame];
        while let Some(top) = stack.last_mut() {
            if self.abort.should_stop() {
                return;
            }
            let Some(sub) = top.subdirs.next() else {
                stack.pop();
                continue;
            };
            let (frame, listing) = self.descend(top, sub);
            if listings.send(listing).is_err() {
                return;
            }
            stack.extend(frame);
        }
    }

    /// Opens and lists subdirectory `sub` of `parent`.
    fn descend(&self, parent: &Frame, sub: Subdir) -> (Option<Frame>, Listing) {
        if let Some((entries, handle)) = sub.above {
            let (frame, listing) = self.list(handle, sub.path, None, None, entries);
            return (Some(frame), listing);
        }
        let handle = match parent.handle.child(&sub.name) {
            Ok(h) => Arc::new(h),
            Err(e) => {
                let mut listing = Listing::new(sub.path, None);
                listing.error = Some(format!("cannot open directory: {e}"));
                return (None, listing);
            }
        };
        // A mount point is recorded, empty (as Borg does).
        if self.selector.one_file_system && parent.device.is_some_and(|d| d != sub.device) {
            return (None, Listing::new(sub.path, Some(handle)));
        }
        let device = Some(parent.device.unwrap_or(sub.device));
        let source = Some(
            parent
                .source
                .clone()
                .unwrap_or_else(|| Arc::new(sub.path.clone())),
        );
        match self.read(&handle, &sub.path, true) {
            Ok(entries) => {
                let (frame, listing) = self.list(handle, sub.path, device, source, entries);
                (Some(frame), listing)
            }
            Err(mut listing) => {
                listing.handle = Some(handle);
                (None, listing)
            }
        }
    }

    /// The names of directory `dir` as entries, sorted, with the marker and cache rules
    /// applied if `rules`; or the listing it is recorded as instead (unreadable, or left
    /// out for a marker).
    fn read(
        &self,
        dir: &Arc<DirHandle>,
        path: &Path,
        rules: bool,
    ) -> std::result::Result<Vec<Entry>, Listing> {
        let mut names = match dir.names() {
            Ok(n) => n,
            Err(e) => {
                let mut listing = Listing::new(path.to_path_buf(), Some(dir.clone()));
                listing.error = Some(format!("cannot read directory: {e}"));
                return Err(listing);
            }
        };
        if rules && self.selector.has_marker(names.iter().map(|n| n.as_slice())) {
            let mut listing = Listing::new(path.to_path_buf(), None);
            listing.excluded = true;
            return Err(listing);
        }
        if rules && self.selector.exclude_caches && is_cache_dir(dir, &names) {
            names.retain(|n| n == b"CACHEDIR.TAG");
        }
        names.sort_unstable();
        Ok(names
            .into_iter()
            .map(|name| Entry {
                path: dir.join(&name),
                name,
                children: None,
            })
            .collect())
    }

    /// Reads the metadata of `entries` of directory `dir` and applies the selection
    /// rules to them (not to path components above the sources: the user named what
    /// lies below those).
    fn list(
        &self,
        dir: Arc<DirHandle>,
        path: PathBuf,
        device: Option<u64>,
        source: Option<Arc<PathBuf>>,
        entries: Vec<Entry>,
    ) -> (Frame, Listing) {
        let mut listing = Listing::new(path, Some(dir.clone()));
        let mut subdirs = Vec::new();
        listing.items.reserve(entries.len());
        for entry in entries {
            if let Some(children) = entry.children {
                let own = match DirHandle::open_path(&entry.path) {
                    Ok(h) => Arc::new(h),
                    Err(e) => {
                        listing
                            .items
                            .push(Item::Error(entry.path, format!("cannot open: {e}")));
                        continue;
                    }
                };
                let stat = match own.stat() {
                    Ok(s) => s,
                    Err(e) => {
                        let message = format!("cannot read metadata: {e}");
                        listing.items.push(Item::Error(entry.path, message));
                        continue;
                    }
                };
                subdirs.push(Subdir {
                    name: entry.name.clone(),
                    path: entry.path.clone(),
                    device: stat.st_dev,
                    above: Some((children, own.clone())),
                });
                listing.items.push(Item::Entry(Scanned {
                    name: entry.name,
                    path: entry.path,
                    stat,
                    own: Some(own),
                }));
                continue;
            }
            let stat = match dir.lstat(&entry.name) {
                Ok(s) => s,
                Err(e) => {
                    let message = format!("cannot read metadata: {e}");
                    listing.items.push(Item::Error(entry.path, message));
                    continue;
                }
            };
            let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
            let within = source
                .as_deref()
                .map_or(entry.path.as_path(), PathBuf::as_path);
            let is_dir = kind == SFlag::S_IFDIR;
            if self.selector.filter.excludes(&entry.path, is_dir, within)
                || (kind == SFlag::S_IFREG && self.selector.too_large(stat.st_size.max(0) as u64))
            {
                continue;
            }
            if is_dir {
                subdirs.push(Subdir {
                    name: entry.name.clone(),
                    path: entry.path.clone(),
                    device: stat.st_dev,
                    above: None,
                });
            }
            listing.items.push(Item::Entry(Scanned {
                name: entry.name,
                path: entry.path,
                stat,
                own: None,
            }));
        }
        let frame = Frame {
            handle: dir,
            device,
            source,
            subdirs: subdirs.into_iter(),
        };
        (frame, listing)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crossbeam_channel::{bounded, unbounded};

    use super::*;
    use crate::backup::sources::source_entries;
    use crate::progress::CancelToken;
    use crate::selection::{Filter, FilterRule};
    use crate::testing::source_dir;

    /// What a walk sends: each listing's path and its items (names, or `!` and the
    /// path of an error).
    fn walk(sources: &[PathBuf], selector: &Selector) -> Vec<(PathBuf, Vec<String>)> {
        let abort = Abort::new(CancelToken::default());
        let root = Root::open(Some(source_entries(sources))).unwrap();
        let (tx, rx) = unbounded();
        Walker {
            selector,
            abort: &abort,
        }
        .run(root, &tx);
        drop(tx);
        rx.iter()
            .map(|l| {
                let items = l
                    .items
                    .iter()
                    .map(|i| match i {
                        Item::Entry(s) => String::from_utf8_lossy(&s.name).into_owned(),
                        Item::Error(p, _) => format!("!{}", p.display()),
                    })
                    .collect();
                let mark = if l.excluded { "excluded " } else { "" };
                (PathBuf::from(format!("{mark}{}", l.path.display())), items)
            })
            .collect()
    }

    #[test]
    fn listings_come_in_the_order_the_archiver_descends() {
        let (_tmp, src) = source_dir();
        for d in ["b/y", "b/x", "a", "c/z"] {
            fs::create_dir_all(src.join(d)).unwrap();
        }
        fs::write(src.join("b/file"), b"1").unwrap();
        fs::write(src.join("a/file"), b"2").unwrap();
        std::os::unix::fs::symlink("b", src.join("link")).unwrap();
        let got = walk(std::slice::from_ref(&src), &Selector::default());
        // Above the source: `/` and each component of its path, one entry each.
        let above = src.components().count() - 1;
        assert_eq!(got.len(), above + 7, "{got:#?}");
        assert_eq!(got[0].0, Path::new("/"));
        assert_eq!(got[above - 1].0, src.parent().unwrap());
        assert_eq!(got[above - 1].1, ["src"]);
        let rest = &got[above..];
        let expect = [
            ("", vec!["a", "b", "c", "link"]),
            ("a", vec!["file"]),
            ("b", vec!["file", "x", "y"]),
            ("b/x", vec![]),
            ("b/y", vec![]),
            ("c", vec!["z"]),
            ("c/z", vec![]),
        ];
        for ((path, items), (want_path, want_items)) in rest.iter().zip(expect) {
            assert_eq!(*path, src.join(want_path));
            assert_eq!(*items, want_items, "{}", path.display());
        }
    }

    #[test]
    fn rules_and_markers_shape_the_listings() {
        let (_tmp, src) = source_dir();
        for d in ["keep", "skip", "marked/inner", "cache/sub"] {
            fs::create_dir_all(src.join(d)).unwrap();
        }
        fs::write(src.join("marked/.nobackup"), b"").unwrap();
        fs::write(src.join("big"), vec![0; 100]).unwrap();
        fs::write(src.join("cache/big"), vec![0; 100]).unwrap();
        fs::write(src.join("small"), b"1").unwrap();
        let mut tag = crate::selection::CACHEDIR_SIGNATURE.to_vec();
        tag.push(b'\n');
        fs::write(src.join("cache/CACHEDIR.TAG"), tag).unwrap();
        let selector = Selector {
            filter: Filter::new(&[FilterRule::exclude("**/skip")]).unwrap(),
            exclude_caches: true,
            exclude_if_present: vec![b".nobackup".to_vec()],
            larger_than: Some(50),
            one_file_system: false,
        };
        let got = walk(std::slice::from_ref(&src), &selector);
        let mine: Vec<_> = got
            .into_iter()
            .filter(|(p, _)| p.ends_with("src") || p.to_string_lossy().contains("src/"))
            .collect();
        let src_listing = (
            src.clone(),
            ["cache", "keep", "marked", "small"]
                .map(String::from)
                .to_vec(),
        );
        assert_eq!(mine[0], src_listing);
        assert_eq!(
            mine[1],
            (src.join("cache"), vec!["CACHEDIR.TAG".to_string()])
        );
        assert_eq!(mine[2].0, src.join("keep"));
        // A marked directory's listing says to leave it out, and nothing below it is
        // listed.
        assert_eq!(
            mine[3].0,
            PathBuf::from(format!("excluded {}", src.join("marked").display()))
        );
        assert_eq!(mine.len(), 4, "{mine:#?}");
    }

    #[test]
    fn the_walker_stops_when_the_archiver_hangs_up() {
        let (_tmp, src) = source_dir();
        for i in 0..10 {
            fs::create_dir_all(src.join(format!("d{i}"))).unwrap();
        }
        let abort = Abort::new(CancelToken::default());
        let selector = Selector::default();
        let root = Root::open(Some(source_entries(std::slice::from_ref(&src)))).unwrap();
        let (tx, rx) = bounded(1);
        std::thread::scope(|s| {
            let walker = Walker {
                selector: &selector,
                abort: &abort,
            };
            let walking = s.spawn(move || walker.run(root, &tx));
            assert_eq!(rx.recv().unwrap().path, Path::new("/"));
            drop(rx);
            // Joining returns: the walker saw the closed channel instead of blocking.
            walking.join().unwrap();
        });
    }
}
