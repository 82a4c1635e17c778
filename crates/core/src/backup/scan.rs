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
    // estimate runs beside the backup, under the same limit of open files. Each level
    // carries its source's device (`None` above the source), for --one-file-system: as
    // in the walker, a directory on another device is not opened (opening it could
    // mount an automounted file system, or hang on one that is gone, and its files
    // would swell the totals).
    let mut stack: Vec<(DirHandle, std::vec::IntoIter<Vec<u8>>, Option<u64>)> = Vec::new();
    for source in sources {
        // The source's parent with the source as its one name; `/`, which has none,
        // with its own names.
        let start = match (source.parent(), source.file_name()) {
            (Some(parent), Some(name)) => DirHandle::open_path(parent).map(|dir| {
                let name = std::os::unix::ffi::OsStrExt::as_bytes(name).to_vec();
                (dir, vec![name], None)
            }),
            _ => DirHandle::open_path(source).map(|root| {
                let names = root.names().unwrap_or_default();
                let device = root.stat().ok().map(|st| st.st_dev);
                (root, names, device)
            }),
        };
        if let Ok((dir, names, device)) = start {
            stack.push((dir, names.into_iter(), device));
        }
        while let Some((dir, names, device)) = stack.last_mut() {
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
                SFlag::S_IFDIR if selector.other_file_system(*device, st.st_dev) => {}
                SFlag::S_IFDIR => {
                    let device = Some(device.unwrap_or(st.st_dev));
                    if let Ok(child) = dir.child(&name) {
                        let names = child.names().unwrap_or_default();
                        if last_name {
                            stack.pop();
                        }
                        stack.push((child, names.into_iter(), device));
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

    /// Files the estimate counts under `source` with `rules`.
    fn files_below(source: &str, rules: &[&str], one_file_system: bool) -> u64 {
        let rules: Vec<FilterRule> = rules
            .iter()
            .filter_map(|l| FilterRule::from_line(l))
            .collect();
        let selector = Selector {
            filter: Filter::new(&rules).unwrap(),
            one_file_system,
            ..Selector::default()
        };
        let totals = Totals::default();
        let abort = Abort::new(CancelToken::new());
        estimate(
            &[PathBuf::from(source)],
            &selector,
            &totals,
            &abort,
            &AtomicBool::new(false),
        );
        totals.0.load(Ordering::Relaxed)
    }

    /// Whether `a` and `b` exist on different devices.
    fn separate(a: &str, b: &str) -> bool {
        matches!(
            (std::fs::metadata(a), std::fs::metadata(b)),
            (Ok(a), Ok(b)) if a.dev() != b.dev()
        )
    }

    #[test]
    fn root_as_a_source_is_walked() {
        // It was left on the stack unwalked, so a backup of `/` had no estimate.
        assert!(files_below("/", &["+ /etc", "- /*"], true) > 0);
    }

    #[test]
    fn one_file_system_keeps_the_estimate_on_the_source_file_system() {
        // /proc, a file system of its own on Linux, holds thousands of regular files.
        if !separate("/", "/proc") {
            eprintln!("/proc is not a separate file system here; skipping");
            return;
        }
        assert_eq!(
            files_below("/", &["+ /proc", "- /*"], true),
            0,
            "files counted in /proc"
        );
    }

    #[test]
    fn one_file_system_applies_below_a_source_that_is_not_root() {
        // /dev/shm is a tmpfs of its own below /dev.
        if !separate("/dev", "/dev/shm") {
            eprintln!("/dev/shm is not a separate file system here; skipping");
            return;
        }
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let rules = ["+ /dev/shm", "- /dev/*"];
        assert!(files_below("/dev", &rules, false) > 0);
        assert_eq!(files_below("/dev", &rules, true), 0);
    }
}
