//! Progress bars on stderr (only on a terminal) and live warnings, implementing the
//! library's progress traits.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arca_core::{BackupProgress, CheckProgress, FileStatus, RestoreProgress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output;

/// A bar if stderr is a terminal and progress is wanted; `None` otherwise.
fn bar(wanted: bool) -> Option<ProgressBar> {
    if !wanted || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
    bar.enable_steady_tick(Duration::from_millis(250));
    bar.set_style(spinner_style());
    Some(bar)
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {elapsed_precise} {bytes} {binary_bytes_per_sec} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Prints a warning without tearing the bar.
fn warn(bar: Option<&ProgressBar>, path: &Path, message: &str) {
    let text = format!("warning: {}: {message}", path.display());
    match bar {
        Some(b) => b.suspend(|| output::message(&text)),
        None => output::message(&text),
    }
}

/// Backup progress: bytes and files processed against the scanner's estimate.
pub struct BackupBar {
    bar: Option<ProgressBar>,
    files: AtomicU64,
    total_files: AtomicU64,
}

impl BackupBar {
    pub fn new(wanted: bool) -> Self {
        Self {
            bar: bar(wanted),
            files: AtomicU64::new(0),
            total_files: AtomicU64::new(0),
        }
    }

    pub fn wants_estimate(&self) -> bool {
        self.bar.is_some()
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl BackupProgress for BackupBar {
    fn total(&self, files: u64, bytes: u64) {
        self.total_files.store(files, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            if b.length().is_none() {
                b.set_style(bar_style());
            }
            b.set_length(bytes);
        }
    }

    fn file_done(&self, _path: &Path, status: FileStatus, size: u64) {
        let done = self.files.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(b) = &self.bar {
            if status == FileStatus::Unchanged {
                b.inc(size);
            }
            let total = self.total_files.load(Ordering::Relaxed);
            if total > 0 {
                b.set_message(format!("{done}/{total} files"));
            } else {
                b.set_message(format!("{done} files"));
            }
        }
    }

    fn bytes_processed(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    fn warning(&self, path: &Path, message: &str) {
        warn(self.bar.as_ref(), path, message);
    }
}

/// A plain byte-count bar: restore (bytes written against the snapshot's size) and
/// check (bytes read against the repository's size).
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    pub fn new(wanted: bool) -> Self {
        Self { bar: bar(wanted) }
    }

    fn set_total(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_style(bar_style());
            b.set_length(bytes);
        }
    }

    fn inc(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl RestoreProgress for Bar {
    fn total(&self, _files: u64, bytes: u64) {
        self.set_total(bytes);
    }

    fn bytes_written(&self, bytes: u64) {
        self.inc(bytes);
    }

    fn warning(&self, path: &Path, message: &str) {
        warn(self.bar.as_ref(), path, message);
    }
}

impl CheckProgress for Bar {
    fn packs_total(&self, _packs: u64, bytes: u64) {
        self.set_total(bytes);
    }

    fn pack_done(&self, bytes: u64) {
        self.inc(bytes);
    }
}
