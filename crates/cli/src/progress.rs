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

/// One `--json` status line of a running backup. Field names are a stable contract.
#[derive(serde::Serialize)]
pub struct StatusJson {
    message_type: &'static str,
    seconds_elapsed: f64,
    files_done: u64,
    bytes_done: u64,
    total_files: u64,
    total_bytes: u64,
    percent_done: f64,
    errors: u64,
}

/// One `--list --json` line per file. Field names are a stable contract.
#[derive(serde::Serialize)]
struct FileJson<'a> {
    message_type: &'static str,
    status: &'static str,
    path: &'a str,
}

/// Backup progress: a bar against the scanner's estimate on a terminal; with `--list`
/// one line per file (A added, M modified, U unchanged, E error, as Borg prints them);
/// with `--json` machine-readable lines instead.
pub struct BackupReporter {
    bar: Option<ProgressBar>,
    list: bool,
    json: bool,
    started: std::time::Instant,
    files: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    total_files: AtomicU64,
    total_bytes: AtomicU64,
}

impl BackupReporter {
    pub fn new(bar_wanted: bool, list: bool, json: bool) -> Self {
        Self {
            bar: bar(bar_wanted && !json),
            list,
            json,
            started: std::time::Instant::now(),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            total_files: AtomicU64::new(0),
            total_bytes: AtomicU64::new(0),
        }
    }

    /// Whether a concurrent scan for totals is worth it (someone shows them).
    pub fn wants_estimate(&self) -> bool {
        self.bar.is_some() || self.json
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    /// The current figures as a `--json` status line.
    pub fn status(&self) -> StatusJson {
        let total_bytes = self.total_bytes.load(Ordering::Relaxed);
        let bytes_done = self.bytes.load(Ordering::Relaxed);
        StatusJson {
            message_type: "status",
            seconds_elapsed: self.started.elapsed().as_secs_f64(),
            files_done: self.files.load(Ordering::Relaxed),
            bytes_done,
            total_files: self.total_files.load(Ordering::Relaxed),
            total_bytes,
            percent_done: if total_bytes > 0 {
                (bytes_done as f64 / total_bytes as f64).min(1.0)
            } else {
                0.0
            },
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    fn list_line(&self, code: &'static str, path: &Path) {
        if !self.list {
            return;
        }
        let text = path.display().to_string();
        let print = || {
            // A closed stdout is reported by the final output, not here.
            let _ = if self.json {
                output::json(&FileJson {
                    message_type: "file",
                    status: code,
                    path: &text,
                })
            } else {
                output::line(format!("{code} {text}"))
            };
        };
        match &self.bar {
            Some(b) => b.suspend(print),
            None => print(),
        }
    }

    fn add_bytes(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }
}

impl BackupProgress for BackupReporter {
    fn total(&self, files: u64, bytes: u64) {
        self.total_files.store(files, Ordering::Relaxed);
        self.total_bytes.store(bytes, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            if b.length().is_none() {
                b.set_style(bar_style());
            }
            b.set_length(bytes);
        }
    }

    fn file_done(&self, path: &Path, status: FileStatus, size: u64) {
        let done = self.files.fetch_add(1, Ordering::Relaxed) + 1;
        if status == FileStatus::Unchanged {
            self.add_bytes(size);
        }
        self.list_line(
            match status {
                FileStatus::New => "A",
                FileStatus::Changed => "M",
                _ => "U",
            },
            path,
        );
        if let Some(b) = &self.bar {
            let total = self.total_files.load(Ordering::Relaxed);
            if total > 0 {
                b.set_message(format!("{done}/{total} files"));
            } else {
                b.set_message(format!("{done} files"));
            }
        }
    }

    fn bytes_processed(&self, bytes: u64) {
        self.add_bytes(bytes);
    }

    fn warning(&self, path: &Path, message: &str) {
        warn(self.bar.as_ref(), path, message);
    }

    fn entry_error(&self, path: &Path, message: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.list_line("E", path);
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
