//! The estimate scanner: walks the sources like the archiver (same excludes, no content)
//! and reports growing totals, so progress can show a percentage and an ETA.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::os::unix::ffi::OsStrExt;

use super::reader::Abort;
use crate::metadata::read_dir_names;
use crate::patterns::PatternSet;
use crate::progress::BackupProgress;

pub(crate) fn estimate(
    sources: &[PathBuf],
    excludes: &PatternSet,
    progress: &dyn BackupProgress,
    abort: &Abort,
    done: &AtomicBool,
) {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut last = Instant::now();
    let mut stack: Vec<PathBuf> = sources.to_vec();
    while let Some(path) = stack.pop() {
        if abort.should_stop() || done.load(Ordering::Relaxed) {
            return;
        }
        if excludes.matches(&path) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(names) = read_dir_names(&path) {
                stack.extend(
                    names
                        .iter()
                        .map(|n| path.join(std::ffi::OsStr::from_bytes(n))),
                );
            }
        } else if meta.is_file() {
            files += 1;
            bytes += meta.len();
            if last.elapsed() > Duration::from_millis(200) {
                progress.total(files, bytes);
                last = Instant::now();
            }
        }
    }
    progress.total(files, bytes);
}
