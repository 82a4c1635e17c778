//! The estimate scanner: walks the sources with the walker's excludes and file-system
//! rule (not its marker or cache rules; no content) and reports growing totals, so
//! progress can show a percentage and an ETA.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::stat::SFlag;

use super::reader::Abort;
use crate::dir_handle::DirHandle;
use crate::progress::BackupProgress;
use crate::selection::Selector;

pub(crate) fn estimate(
    sources: &[PathBuf],
    selector: &Selector,
    progress: &dyn BackupProgress,
    abort: &Abort,
    done: &AtomicBool,
) {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut last = Instant::now();
    // Depth first, with an open directory for each level that has names left (a level
    // with none closes before its last subdirectory is walked, as in the walker): the
    // estimate runs beside the backup, under the same limit of open files.
    let mut stack: Vec<(DirHandle, std::vec::IntoIter<Vec<u8>>)> = Vec::new();
    for source in sources {
        // With --one-file-system, a directory on another device is not opened, as in
        // the walker: opening it could mount an automounted file system, or hang on one
        // that is gone, and its files would swell the totals.
        let device = nix::sys::stat::lstat(source).ok().map(|st| st.st_dev);
        let elsewhere = |dev| selector.one_file_system && device.is_some_and(|d| d != dev);
        // The source's parent with the source as its one name; `/`, which has none,
        // with its own names.
        let start = match (source.parent(), source.file_name()) {
            (Some(parent), Some(name)) => DirHandle::open_path(parent).map(|dir| {
                (
                    dir,
                    vec![std::os::unix::ffi::OsStrExt::as_bytes(name).to_vec()],
                )
            }),
            _ => DirHandle::open_path(source).map(|root| {
                let names = root.names().unwrap_or_default();
                (root, names)
            }),
        };
        if let Ok((dir, names)) = start {
            stack.push((dir, names.into_iter()));
        }
        while let Some((dir, names)) = stack.last_mut() {
            if abort.should_stop() || done.load(Ordering::Relaxed) {
                return;
            }
            let Some(name) = names.next() else {
                stack.pop();
                continue;
            };
            let last_name = names.len() == 0;
            let Ok(st) = dir.lstat(&name) else { continue };
            let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
            if selector
                .filter
                .excludes(&dir.join(&name), kind == SFlag::S_IFDIR, source)
            {
                continue;
            }
            match kind {
                SFlag::S_IFDIR if elsewhere(st.st_dev) => {}
                SFlag::S_IFDIR => {
                    if let Ok(child) = dir.child(&name) {
                        let names = child.names().unwrap_or_default();
                        if last_name {
                            stack.pop();
                        }
                        stack.push((child, names.into_iter()));
                    }
                }
                SFlag::S_IFREG if !selector.too_large(st.st_size.max(0) as u64) => {
                    files += 1;
                    bytes += st.st_size.max(0) as u64;
                    if last.elapsed() > Duration::from_millis(200) {
                        progress.total(files, bytes);
                        last = Instant::now();
                    }
                }
                _ => {}
            }
        }
    }
    progress.total(files, bytes);
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::CancelToken;
    use crate::selection::{Filter, FilterRule};

    /// The last totals reported.
    #[derive(Default)]
    struct Totals(AtomicU64, AtomicU64);

    impl BackupProgress for Totals {
        fn total(&self, files: u64, bytes: u64) {
            self.0.store(files, Ordering::Relaxed);
            self.1.store(bytes, Ordering::Relaxed);
        }
    }

    /// Files the estimate counts under `/` with `rules`, with --one-file-system.
    fn files_below_root(rules: &[&str]) -> u64 {
        let rules: Vec<FilterRule> = rules
            .iter()
            .filter_map(|l| FilterRule::from_line(l))
            .collect();
        let selector = Selector {
            filter: Filter::new(&rules).unwrap(),
            one_file_system: true,
            ..Selector::default()
        };
        let totals = Totals::default();
        let abort = Abort::new(CancelToken::new());
        estimate(
            &[PathBuf::from("/")],
            &selector,
            &totals,
            &abort,
            &AtomicBool::new(false),
        );
        totals.0.load(Ordering::Relaxed)
    }

    #[test]
    fn one_file_system_keeps_the_estimate_on_the_source_file_system() {
        // /proc, a file system of its own on Linux, holds thousands of regular files.
        let (root, proc) = (std::fs::metadata("/"), std::fs::metadata("/proc"));
        if !matches!((root, proc), (Ok(r), Ok(p)) if r.dev() != p.dev()) {
            eprintln!("/proc is not a separate file system here; skipping");
            return;
        }
        assert_eq!(
            files_below_root(&["+ /proc", "- /*"]),
            0,
            "files counted in /proc"
        );
        // `/` as a source is walked (it was left on the stack unwalked, so a backup of
        // `/` had no estimate).
        assert!(files_below_root(&["+ /etc", "- /*"]) > 0);
    }
}
