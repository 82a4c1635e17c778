//! The walker lists the sources ahead of the archiver, on a thread of its own: it reads
//! each directory, sorts its names, reads every entry's metadata and applies the
//! selection rules, so the archiver is left with comparing against the parent snapshot
//! and storing. (An unchanged backup spends about half its walk in `getdents` and
//! `fstatat`; the other half, loading the parent's trees and writing the new ones, now
//! runs beside it.)
//!
//! It makes a directory's entries into [`Listing`]s of at most [`CHUNK`] entries, in the
//! order the archiver consumes them: depth first, names sorted. After a listing, the
//! listings of the directories among its entries follow, each with its whole subtree,
//! before the next listing of the same directory. Listings travel in batches of at most
//! [`CHUNK`] entries or [`BATCH`] listings (most directories are small, and a message
//! per directory cost as many futex and yield calls as the walker saved), and the
//! channel holds at most [`AHEAD`] batches. So the walker's lead is bounded in entries
//! however large a directory is. The walker reads symlink targets too, so an unchanged
//! entry needs nothing more from the file system.
//!
//! Descriptors: the walker holds one for each level of its walk with entries left to
//! list or subdirectories left to walk. Listings carry none, except the listing of a
//! path component above the sources, which carries the directory it was read through
//! (its batch is sent at once, so few are ever in flight). The archiver opens a
//! directory below the sources itself, by name through its parent, only when it must
//! read a file or attributes in it.

use std::iter::Peekable;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_repo::NodeKind;
use crossbeam_channel::{Receiver, Sender};
use nix::sys::stat::FileStat;

use super::reader::Abort;
use super::sources::{Entry, is_cache_dir};
use crate::dir_handle::DirHandle;
use crate::metadata::kind_of;
use crate::selection::Selector;
use crate::{Error, Result};

/// How many batches the walker may have sent that the archiver has not taken.
pub(super) const AHEAD: usize = 4;

/// At most this many entries go in one listing, and in one batch.
pub(super) const CHUNK: usize = 512;

/// At most this many listings go in one batch.
pub(super) const BATCH: usize = 32;

/// One entry of a directory, as the archiver gets it.
#[derive(Debug)]
pub(super) enum Item {
    /// An entry the selection keeps, with its metadata.
    Entry(Scanned),
    /// A path component above the sources; its metadata and open directory come with
    /// its listing, which follows.
    Above(Vec<u8>, PathBuf),
    /// An entry that could not be read: it is left out with this error.
    Error(PathBuf, String),
}

#[derive(Debug)]
pub(super) struct Scanned {
    pub(super) name: Vec<u8>,
    pub(super) path: PathBuf,
    pub(super) stat: FileStat,
    /// A symlink's target.
    pub(super) target: Option<Vec<u8>>,
}

/// Entries of one directory.
#[derive(Debug)]
pub(super) struct Listing {
    pub(super) path: PathBuf,
    /// For a path component above the sources: the directory, opened by path
    /// (following symlinks) when the walker descended into it.
    pub(super) handle: Option<Arc<DirHandle>>,
    /// For a path component above the sources, its metadata, read through `handle`.
    pub(super) stat: Option<Box<FileStat>>,
    /// What went wrong opening or reading it: it is then recorded empty, or, above the
    /// sources, left out.
    pub(super) error: Option<String>,
    /// It is left out of the snapshot: it holds a marker file (`--exclude-if-present`)
    /// or, above the sources, could not be opened.
    pub(super) excluded: bool,
    /// Entries in name order.
    pub(super) items: Vec<Item>,
    /// More listings of this directory follow (after those of its subdirectories).
    pub(super) more: bool,
}

impl Listing {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            handle: None,
            stat: None,
            error: None,
            excluded: false,
            items: Vec::new(),
            more: false,
        }
    }

    fn failed(path: PathBuf, message: String) -> Self {
        let mut listing = Self::new(path);
        listing.error = Some(message);
        listing
    }

    /// The directory is left out of the snapshot, for `error` if any (else for a
    /// marker file).
    fn left_out(path: PathBuf, error: Option<String>) -> Self {
        let mut listing = Self::new(path);
        listing.error = error;
        listing.excluded = true;
        listing
    }
}

/// The archiver's end of the channel: listings one by one.
pub(super) struct Listings {
    batches: Receiver<Vec<Listing>>,
    /// The rest of the batch being taken.
    taken: std::vec::IntoIter<Listing>,
}

impl Listings {
    pub(super) fn new(batches: Receiver<Vec<Listing>>) -> Self {
        Self {
            batches,
            taken: Vec::new().into_iter(),
        }
    }

    /// The next listing; `None` once the walker has stopped and all it sent is taken.
    pub(super) fn next(&mut self) -> Option<Listing> {
        loop {
            if let Some(listing) = self.taken.next() {
                return Some(listing);
            }
            self.taken = self.batches.recv().ok()?.into_iter();
        }
    }
}

/// The walker's end of the channel: collects listings into batches.
struct Outbox<'a> {
    batches: &'a Sender<Vec<Listing>>,
    batch: Vec<Listing>,
    items: usize,
    /// Listings made so far, sent or not.
    made: usize,
}

impl Outbox<'_> {
    /// Adds `listing` to the batch, sending the batch first if the listing would
    /// overfill it, and after if it is full or the listing holds a descriptor; false
    /// if the archiver has hung up.
    fn push(&mut self, listing: Listing) -> bool {
        self.made += 1;
        if self.items + listing.items.len() > CHUNK && !self.flush() {
            return false;
        }
        let holds_descriptor = listing.handle.is_some();
        self.items += listing.items.len();
        self.batch.push(listing);
        if holds_descriptor || self.items >= CHUNK || self.batch.len() >= BATCH {
            self.flush()
        } else {
            true
        }
    }

    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        if self.batches.send(std::mem::take(&mut self.batch)).is_err() {
            return false;
        }
        self.items = 0;
        true
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

/// A directory among the entries of a listing, to walk once that listing is sent.
enum Subdir {
    /// Below the sources: opened by name through its parent.
    Below {
        name: Vec<u8>,
        path: PathBuf,
        device: u64,
    },
    /// A path component above the sources, with its given children: opened by path.
    Above { path: PathBuf, children: Vec<Entry> },
}

/// A directory being walked.
struct Frame {
    /// The directory, opened (its path is the listings' path).
    handle: Arc<DirHandle>,
    /// The file system of the source it belongs to (`None` above the sources).
    device: Option<u64>,
    /// The backed-up path it belongs to (`None` above the sources).
    source: Option<Arc<PathBuf>>,
    /// Entries not yet listed.
    rest: Peekable<Box<dyn Iterator<Item = Entry> + Send>>,
    /// Directories among the entries of the last listing sent, not yet walked.
    subdirs: std::vec::IntoIter<Subdir>,
}

pub(super) struct Walker<'a> {
    pub(super) selector: &'a Selector,
    pub(super) abort: &'a Abort,
}

impl Walker<'_> {
    /// Walks from `root`, sending listings in batches; stops early if the backup stops
    /// or the archiver hangs up. Returns how many listings it made.
    pub(super) fn run(&self, root: Root, batches: &Sender<Vec<Listing>>) -> usize {
        let mut out = Outbox {
            batches,
            batch: Vec::new(),
            items: 0,
            made: 0,
        };
        self.walk(root, &mut out);
        out.made
    }

    fn walk(&self, root: Root, out: &mut Outbox<'_>) {
        let path = PathBuf::from("/");
        let (listing, frame) = match root.entries {
            Some(entries) => self.start(root.handle, None, None, entries.into_iter()),
            None => {
                let source = Some(Arc::new(path.clone()));
                // `/` as the source is listed as it is: no marker or cache rule.
                match self.read(&root.handle, &path, false) {
                    Ok(entries) => self.start(root.handle, root.device, source, entries),
                    Err(listing) => {
                        out.push(listing);
                        out.flush();
                        return;
                    }
                }
            }
        };
        if !out.push(listing) {
            return;
        }
        let mut stack = vec![frame];
        while let Some(top) = stack.last_mut() {
            if self.abort.should_stop() {
                return;
            }
            let (listing, frame) = if let Some(sub) = top.subdirs.next() {
                let descended = self.descend(top, sub);
                // A directory with nothing left to walk closes before its last
                // subdirectory is walked: a chain of single subdirectories holds one
                // descriptor between levels (three for a moment: the parent, the child
                // just opened, and the child's listing), not one per level.
                if top.subdirs.len() == 0 && top.rest.peek().is_none() {
                    stack.pop();
                }
                descended
            } else if top.rest.peek().is_some() {
                (self.next_listing(top), None)
            } else {
                stack.pop();
                continue;
            };
            if !out.push(listing) {
                return;
            }
            stack.extend(frame);
        }
        out.flush();
    }

    /// Starts walking the directory `handle` of `entries`: its first listing and its
    /// frame.
    fn start(
        &self,
        handle: Arc<DirHandle>,
        device: Option<u64>,
        source: Option<Arc<PathBuf>>,
        entries: impl Iterator<Item = Entry> + Send + 'static,
    ) -> (Listing, Frame) {
        let rest: Box<dyn Iterator<Item = Entry> + Send> = Box::new(entries);
        let mut frame = Frame {
            handle,
            device,
            source,
            rest: rest.peekable(),
            subdirs: Vec::new().into_iter(),
        };
        (self.next_listing(&mut frame), frame)
    }

    /// Opens subdirectory `sub` of `parent`; returns its first listing and, if it has
    /// entries, its frame.
    fn descend(&self, parent: &Frame, sub: Subdir) -> (Listing, Option<Frame>) {
        let (name, path, sub_device) = match sub {
            Subdir::Below { name, path, device } => (name, path, device),
            Subdir::Above { path, children } => {
                // Opened by path, following symlinks: the user named what lies below.
                let opened = DirHandle::open_path(&path)
                    .map_err(|e| format!("cannot open: {e}"))
                    .and_then(|h| match h.stat() {
                        Ok(stat) => Ok((Arc::new(h), stat)),
                        Err(e) => Err(format!("cannot read metadata: {e}")),
                    });
                let (handle, stat) = match opened {
                    Ok(opened) => opened,
                    Err(message) => return (Listing::left_out(path, Some(message)), None),
                };
                let (mut listing, frame) =
                    self.start(handle.clone(), None, None, children.into_iter());
                listing.stat = Some(Box::new(stat));
                listing.handle = Some(handle);
                return (listing, Some(frame));
            }
        };
        // A mount point is recorded, empty (as Borg does), and not opened: opening it
        // could mount an automounted file system, or fail on one that is gone.
        if self.selector.other_file_system(parent.device, sub_device) {
            return (Listing::new(path), None);
        }
        let handle = match parent.handle.child(&name) {
            Ok(h) => Arc::new(h),
            Err(e) => {
                let message = format!("cannot open directory: {e}");
                return (Listing::failed(path, message), None);
            }
        };
        let device = Some(parent.device.unwrap_or(sub_device));
        let source = Some(
            parent
                .source
                .clone()
                .unwrap_or_else(|| Arc::new(path.clone())),
        );
        match self.read(&handle, &path, true) {
            Ok(entries) => {
                let (listing, frame) = self.start(handle, device, source, entries);
                (listing, Some(frame))
            }
            Err(listing) => (listing, None),
        }
    }

    /// The entries of directory `dir`, sorted, with the marker and cache rules applied
    /// if `rules`; or the listing it is recorded as instead (unreadable, or left out
    /// for a marker).
    fn read(
        &self,
        dir: &Arc<DirHandle>,
        path: &Path,
        rules: bool,
    ) -> std::result::Result<impl Iterator<Item = Entry> + Send + 'static, Listing> {
        let mut names = match dir.names() {
            Ok(n) => n,
            Err(e) => {
                let message = format!("cannot read directory: {e}");
                return Err(Listing::failed(path.into(), message));
            }
        };
        if rules && self.selector.has_marker(names.iter().map(|n| n.as_slice())) {
            return Err(Listing::left_out(path.to_path_buf(), None));
        }
        if rules && self.selector.exclude_caches && is_cache_dir(dir, &names) {
            names.retain(|n| n == b"CACHEDIR.TAG");
        }
        names.sort_unstable();
        let dir = dir.clone();
        // Paths are made as entries are listed, not for the whole directory at once.
        Ok(names.into_iter().map(move |name| Entry {
            path: dir.join(&name),
            name,
            children: None,
        }))
    }

    /// The next listing of `frame`'s directory: up to [`CHUNK`] entries, with their
    /// metadata and the selection rules applied (except to path components above the
    /// sources). Records the directories among them in `frame.subdirs`.
    fn next_listing(&self, frame: &mut Frame) -> Listing {
        let mut listing = Listing::new(frame.handle.path().to_path_buf());
        let mut subdirs = Vec::new();
        while listing.items.len() < CHUNK {
            let Some(entry) = frame.rest.next() else {
                break;
            };
            if let Some(children) = entry.children {
                subdirs.push(Subdir::Above {
                    path: entry.path.clone(),
                    children,
                });
                listing.items.push(Item::Above(entry.name, entry.path));
                continue;
            }
            let stat = match frame.handle.lstat(&entry.name) {
                Ok(s) => s,
                Err(e) => {
                    let message = format!("cannot read metadata: {e}");
                    listing.items.push(Item::Error(entry.path, message));
                    continue;
                }
            };
            let kind = kind_of(&stat);
            let within = frame
                .source
                .as_deref()
                .map_or(entry.path.as_path(), PathBuf::as_path);
            if self
                .selector
                .filter
                .excludes(&entry.path, kind == NodeKind::Dir, within)
                || (kind == NodeKind::File && self.selector.too_large(stat.st_size.max(0) as u64))
            {
                continue;
            }
            let target = match kind {
                NodeKind::Symlink => match frame.handle.read_link(&entry.name) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        let message = format!("cannot read symlink: {e}");
                        listing.items.push(Item::Error(entry.path, message));
                        continue;
                    }
                },
                _ => None,
            };
            if kind == NodeKind::Dir {
                subdirs.push(Subdir::Below {
                    name: entry.name.clone(),
                    path: entry.path.clone(),
                    device: stat.st_dev,
                });
            }
            listing.items.push(Item::Entry(Scanned {
                name: entry.name,
                path: entry.path,
                stat,
                target,
            }));
        }
        listing.more = frame.rest.peek().is_some();
        frame.subdirs = subdirs.into_iter();
        listing
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

    /// A listing as the tests compare it: its path (marked if left out, `+` if more
    /// follow) and its items (names, or `!` and the path of an error).
    fn shown(l: &Listing) -> (String, Vec<String>) {
        let items = l
            .items
            .iter()
            .map(|i| match i {
                Item::Entry(s) => String::from_utf8_lossy(&s.name).into_owned(),
                Item::Above(name, _) => format!("^{}", String::from_utf8_lossy(name)),
                Item::Error(p, _) => format!("!{}", p.display()),
            })
            .collect();
        let excluded = if l.excluded { "excluded " } else { "" };
        let more = if l.more { " +" } else { "" };
        (format!("{excluded}{}{more}", l.path.display()), items)
    }

    /// The batches a whole walk of `sources` sends.
    fn batches(sources: &[PathBuf], selector: &Selector) -> Vec<Vec<Listing>> {
        let abort = Abort::new(CancelToken::default());
        let root = Root::open(Some(source_entries(sources))).unwrap();
        let (tx, rx) = unbounded();
        let made = Walker {
            selector,
            abort: &abort,
        }
        .run(root, &tx);
        drop(tx);
        let got: Vec<Vec<Listing>> = rx.iter().collect();
        assert_eq!(made, got.iter().map(Vec::len).sum::<usize>());
        got
    }

    /// The listings a whole walk of `sources` sends.
    fn walk(sources: &[PathBuf], selector: &Selector) -> Vec<Listing> {
        batches(sources, selector).into_iter().flatten().collect()
    }

    fn name_of(p: &Path) -> String {
        p.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// `src`, or the path `p` below it, as [`shown`] shows it.
    fn shown_path(src: &Path, p: &str) -> String {
        match p {
            "" => src.display().to_string(),
            _ => src.join(p).display().to_string(),
        }
    }

    /// The listings below `src` (the ones above it lead to it).
    fn below(got: &[Listing], src: &Path) -> Vec<(String, Vec<String>)> {
        got.iter()
            .filter(|l| l.path.starts_with(src))
            .map(shown)
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
        // Above the source: `/` and each component of its path, one entry each, each
        // with its metadata.
        let above = src.components().count() - 1;
        assert_eq!(got.len(), above + 7);
        assert_eq!(got[0].path, Path::new("/"));
        for l in &got[1..above] {
            assert!(l.stat.is_some(), "{l:?}");
            assert_eq!(l.items.len(), 1);
        }
        assert_eq!(
            shown(&got[above - 2]).1,
            [format!("^{}", name_of(src.parent().unwrap()))]
        );
        assert_eq!(shown(&got[above - 1]).1, [name_of(&src)]);
        let s = |p: &str| shown_path(&src, p);
        let v = |items: &[&str]| items.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(
            below(&got, &src),
            [
                (s(""), v(&["a", "b", "c", "link"])),
                (s("a"), v(&["file"])),
                (s("b"), v(&["file", "x", "y"])),
                (s("b/x"), v(&[])),
                (s("b/y"), v(&[])),
                (s("c"), v(&["z"])),
                (s("c/z"), v(&[])),
            ]
        );
    }

    #[test]
    fn a_large_directory_comes_in_parts_with_its_subdirectories_between() {
        let (_tmp, src) = source_dir();
        for i in 0..CHUNK + 10 {
            fs::write(src.join(format!("f{i:04}")), b"").unwrap();
        }
        // Sorted: "d0" comes before every "f", "z0" after.
        fs::create_dir_all(src.join("d0/inner")).unwrap();
        fs::create_dir(src.join("z0")).unwrap();
        let got = walk(std::slice::from_ref(&src), &Selector::default());
        let got = below(&got, &src);
        let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        let s = |p: &str| shown_path(&src, p);
        assert_eq!(
            paths,
            [
                format!("{} +", s("")),
                s("d0"),
                s("d0/inner"),
                s(""),
                s("z0")
            ]
        );
        assert_eq!(got[0].1.len(), CHUNK);
        assert_eq!(got[0].1[0], "d0");
        // The second part holds the rest: 10 files, then z0.
        assert_eq!(got[3].1.len(), 12);
        assert_eq!(got[3].1.last().unwrap(), "z0");
    }

    #[test]
    fn batches_stay_within_their_bounds_and_symlinks_come_read() {
        let (_tmp, src) = source_dir();
        for i in 0..CHUNK + 300 {
            fs::write(src.join(format!("f{i:04}")), b"").unwrap();
        }
        for i in 0..BATCH * 2 {
            fs::create_dir(src.join(format!("d{i:03}"))).unwrap();
        }
        std::os::unix::fs::symlink("f0001", src.join("link")).unwrap();
        let batches = batches(std::slice::from_ref(&src), &Selector::default());
        for batch in &batches {
            let entries: usize = batch.iter().map(|l| l.items.len()).sum();
            assert!(
                entries <= CHUNK && batch.len() <= BATCH,
                "{entries} {}",
                batch.len()
            );
            // A listing holding a descriptor ends its batch.
            let holding = batch.iter().position(|l| l.handle.is_some());
            assert!(holding.is_none_or(|i| i + 1 == batch.len()));
        }
        let target = batches
            .iter()
            .flatten()
            .flat_map(|l| &l.items)
            .find_map(|i| match i {
                Item::Entry(s) if s.name == b"link" => Some(s.target.clone()),
                _ => None,
            });
        assert_eq!(target, Some(Some(b"f0001".to_vec())));
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
        let s = |p: &str| shown_path(&src, p);
        let v = |items: &[&str]| items.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        // A marked directory's listing says to leave it out, and nothing below it is
        // listed.
        assert_eq!(
            below(&got, &src),
            [
                (s(""), v(&["cache", "keep", "marked", "small"])),
                (s("cache"), v(&["CACHEDIR.TAG"])),
                (s("keep"), v(&[])),
                (format!("excluded {}", s("marked")), v(&[])),
            ]
        );
    }

    #[test]
    fn a_path_above_the_sources_that_cannot_be_opened_is_left_out_with_an_error() {
        let (_tmp, src) = source_dir();
        let gone = src.join("gone");
        let got = walk(
            &[gone.join("x"), src.join("also-gone")],
            &Selector::default(),
        );
        let last = got.last().unwrap();
        // `gone` leads to a source, so it is opened by path (and fails); `also-gone`
        // is a source, listed in `src` (and its metadata cannot be read).
        assert_eq!(
            shown(&got[got.len() - 2]).1,
            [
                "!".to_string() + &src.join("also-gone").display().to_string(),
                "^gone".into()
            ]
        );
        assert_eq!(last.path, gone);
        assert!(last.excluded);
        assert!(
            last.error.as_ref().unwrap().starts_with("cannot open: "),
            "{last:?}"
        );
    }

    /// Walks a tree of 200 directories, taking `take` batches, then stopping as `stop`
    /// does; returns how many listings the walker made and how many were taken.
    fn stopped_walk(
        take: usize,
        stop: impl FnOnce(&Abort, &crossbeam_channel::Receiver<Vec<Listing>>) -> usize,
    ) -> (usize, usize) {
        let (_tmp, src) = source_dir();
        for i in 0..200 {
            fs::create_dir_all(src.join(format!("d{i:03}"))).unwrap();
        }
        let abort = Abort::new(CancelToken::default());
        let selector = Selector::default();
        let root = Root::open(Some(source_entries(std::slice::from_ref(&src)))).unwrap();
        let (tx, rx) = bounded(0);
        std::thread::scope(|s| {
            let walker = Walker {
                selector: &selector,
                abort: &abort,
            };
            let walking = s.spawn(move || walker.run(root, &tx));
            let mut taken: usize = (0..take).map(|_| rx.recv().unwrap().len()).sum();
            taken += stop(&abort, &rx);
            drop(rx);
            (walking.join().unwrap(), taken)
        })
    }

    #[test]
    fn the_walker_stops_when_the_archiver_hangs_up_or_the_backup_stops() {
        let rest = |_: &Abort, rx: &crossbeam_channel::Receiver<Vec<Listing>>| {
            rx.iter().map(|b| b.len()).sum()
        };
        let (all, taken) = stopped_walk(0, rest);
        assert_eq!(all, taken);
        assert!(all > 200, "{all}");
        // The channel holds nothing: the walker makes at most the batch it could not
        // send beyond what was taken.
        let (made, taken) = stopped_walk(2, |_, _| 0);
        assert!(made <= taken + BATCH && made < all, "{made} of {all}");
        let (made, taken) = stopped_walk(2, |abort, rx| {
            abort.stop();
            rest(abort, rx)
        });
        // A batch may have been on its way when the backup stopped.
        assert!(made <= taken + BATCH + 1 && made < all, "{made} of {all}");
    }
}
