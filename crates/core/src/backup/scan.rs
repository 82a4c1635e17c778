//! The estimate scanner: walks the sources with the walker's excludes (not its marker,
//! cache or file-system rules; no content) and reports growing totals, so progress can
//! show a percentage and an ETA.

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
        let (Some(parent), Some(name)) = (source.parent(), source.file_name()) else {
            if let Ok(root) = DirHandle::open_path(source) {
                let names = root.names().unwrap_or_default();
                stack.push((root, names.into_iter()));
            }
            continue;
        };
        if let Ok(dir) = DirHandle::open_path(parent) {
            let names = vec![std::os::unix::ffi::OsStrExt::as_bytes(name).to_vec()];
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
