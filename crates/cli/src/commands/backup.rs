//! `arca backup`.

use std::path::PathBuf;

use arca_core::{
    BackupOptions, BackupSummary, CancelToken, Compression, read_files_from, read_filter_file,
};
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::progress::BackupReporter;
use crate::{exit, output};

/// Back up files and directories into a new snapshot. Files unchanged since the previous
/// snapshot of the same paths on this host are not read again.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca backup ~/documents ~/projects
  arca backup /home --exclude '**/.cache' --iexclude '*.tmp' --tag nightly
  arca backup / --one-file-system --exclude-caches --exclude-larger-than 2G
  arca backup /etc /var/www --exclude-from /etc/arca/filelist --json
  arca backup --files-from /etc/arca/paths --exclude-if-present .nobackup
  pg_dump mydb | arca backup --stdin --stdin-filename db/mydb.sql
  arca backup --stdin-filename mydb.sql --stdin-from-command -- pg_dump mydb

Patterns starting with / match absolute paths; others match at any depth; ** spans
directories. Filter files hold '- PATTERN' (exclude) and '+ PATTERN' (include) lines;
the first rule that matches decides. Exit code 3: the snapshot was saved but some files
could not be read.")]
pub struct Args {
    /// Files and directories to back up
    #[arg(value_name = "PATH", required_unless_present_any = ["files_from", "stdin", "stdin_from_command"])]
    paths: Vec<PathBuf>,

    /// Back up standard input as one file (see --stdin-filename)
    #[arg(long, conflicts_with_all = ["paths", "files_from", "stdin_from_command"])]
    stdin: bool,

    /// The file name (may include directories) that --stdin or --stdin-from-command
    /// stores the data under
    #[arg(long, value_name = "NAME", default_value = "stdin")]
    stdin_filename: String,

    /// Run the command given after `--` and back up its output as one file; the backup
    /// fails (no snapshot) if the command exits unsuccessfully
    #[arg(long, requires = "command", conflicts_with_all = ["paths", "files_from"])]
    stdin_from_command: bool,

    /// The command for --stdin-from-command, after `--`
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<std::ffi::OsString>,

    /// Read more paths to back up from FILE, one per line (repeatable)
    #[arg(long, value_name = "FILE")]
    files_from: Vec<PathBuf>,

    /// Exclude paths matching GLOB (repeatable)
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,

    /// Exclude paths matching GLOB, ignoring case (repeatable)
    #[arg(long, value_name = "GLOB")]
    iexclude: Vec<String>,

    /// Read include/exclude rules from FILE ('- GLOB', '+ GLOB', or a bare GLOB to
    /// exclude; the first match decides) (repeatable)
    #[arg(long, value_name = "FILE")]
    exclude_from: Vec<PathBuf>,

    /// Skip the contents of directories tagged as caches (CACHEDIR.TAG)
    #[arg(long)]
    exclude_caches: bool,

    /// Skip directories containing a file named NAME (repeatable)
    #[arg(long, value_name = "NAME")]
    exclude_if_present: Vec<String>,

    /// Skip files larger than SIZE (e.g. 500M, 2G)
    #[arg(long, value_name = "SIZE")]
    exclude_larger_than: Option<String>,

    /// Do not cross file system boundaries (mount points are kept, empty)
    #[arg(short = 'x', long)]
    one_file_system: bool,

    /// Tag the snapshot with T (repeatable, or comma-separated)
    #[arg(long = "tag", value_name = "T")]
    tags: Vec<String>,

    /// Record host name H instead of this machine's
    #[arg(long, value_name = "H")]
    host: Option<String>,

    /// Record the snapshot as taken at WHEN ("2026-01-10 14:00:00", local time) instead
    /// of now, for imports; it may not be in the future
    #[arg(long, value_name = "WHEN")]
    time: Option<String>,

    #[arg(
        long,
        value_name = "C",
        help = "Compression for this backup: zstd[,LEVEL], lz4, auto[,LEVEL] or none"
    )]
    compression: Option<String>,

    /// Worker threads per stage (default: one per CPU)
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,

    /// Go through everything and report what would be stored; write nothing
    #[arg(long)]
    dry_run: bool,

    /// Print one line per file: A added, M modified, U unchanged, E error
    #[arg(long)]
    list: bool,

    /// Write no snapshot if nothing changed since the previous one
    #[arg(long)]
    skip_if_unchanged: bool,

    /// Write a checkpoint snapshot every DURATION (600 seconds, 10m, 1h): if the backup
    /// is interrupted, the checkpoint restores what was backed up so far, and the next
    /// backup resumes from it instead of reading and uploading it again. 0 writes one
    /// between every two entries (for tests: each waits for the files being read)
    #[arg(long, value_name = "DURATION", value_parser = arca_core::parse_interval)]
    checkpoint_interval: Option<std::time::Duration>,

    /// Print JSON lines: status about once a second, then the summary
    #[arg(long)]
    json: bool,
}

/// The `--json` summary. Field names are a stable contract (see README).
#[derive(Serialize)]
struct BackupJson {
    message_type: &'static str,
    snapshot_id: Option<String>,
    short_id: Option<String>,
    dry_run: bool,
    skipped: bool,
    parent: Option<String>,
    time: String,
    host: String,
    paths: Vec<String>,
    tags: Vec<String>,
    files_new: u64,
    files_changed: u64,
    files_unchanged: u64,
    dirs_new: u64,
    dirs_changed: u64,
    dirs_unchanged: u64,
    other_entries: u64,
    bytes_original: u64,
    bytes_compressed: u64,
    bytes_deduplicated: u64,
    bytes_read: u64,
    bytes_added_raw: u64,
    data_blobs_added: u64,
    tree_blobs_added: u64,
    chunks_total: u64,
    duration_seconds: f64,
    errors: u64,
    partial: bool,
    changed_during_read: u64,
    checkpoints: u64,
    warnings: Vec<String>,
    repository: RepositoryJson,
}

#[derive(Serialize)]
struct RepositoryJson {
    snapshots: u64,
    bytes_original: u64,
    bytes_compressed: u64,
    bytes_deduplicated: u64,
    unique_chunks: u64,
    total_chunks: u64,
}

fn to_json(s: &BackupSummary) -> BackupJson {
    let snap = &s.snapshot;
    let sum = &snap.summary;
    let r = &s.repository;
    BackupJson {
        message_type: "summary",
        snapshot_id: s.snapshot_id.map(|id| id.to_string()),
        short_id: s.snapshot_id.map(|id| id.short()),
        dry_run: s.dry_run,
        skipped: s.skipped,
        parent: s.parent.map(|p| p.to_string()),
        time: output::rfc3339(snap.time, snap.utc_offset),
        host: snap.hostname.clone(),
        paths: snap
            .paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
        tags: snap.tags.clone(),
        files_new: sum.files_new,
        files_changed: sum.files_changed,
        files_unchanged: sum.files_unchanged,
        dirs_new: sum.dirs_new,
        dirs_changed: sum.dirs_changed,
        dirs_unchanged: sum.dirs_unchanged,
        other_entries: sum.other_entries,
        bytes_original: sum.bytes_total,
        bytes_compressed: sum.bytes_stored_total,
        bytes_deduplicated: sum.bytes_added_stored,
        bytes_read: sum.bytes_read,
        bytes_added_raw: sum.bytes_added_raw,
        data_blobs_added: sum.data_blobs_added,
        tree_blobs_added: sum.tree_blobs_added,
        chunks_total: sum.chunks_total,
        duration_seconds: sum.duration_ms as f64 / 1000.0,
        errors: sum.errors,
        partial: snap.is_partial(),
        changed_during_read: sum.changed_during_read,
        checkpoints: s.checkpoints,
        warnings: s.warnings.clone(),
        repository: RepositoryJson {
            snapshots: r.snapshots,
            bytes_original: r.bytes_total,
            bytes_compressed: r.bytes_stored_total,
            bytes_deduplicated: r.bytes_stored_unique,
            unique_chunks: r.unique_chunks,
            total_chunks: r.total_chunks,
        },
    }
}

fn print_summary(s: &BackupSummary) -> anyhow::Result<()> {
    let sum = &s.snapshot.summary;
    let r = &s.repository;
    let parent = match s.parent {
        Some(p) => format!(" (parent {})", p.short()),
        None => String::new(),
    };
    let headline = match s.snapshot_id {
        Some(id) => format!("snapshot {} saved{parent}", id.short()),
        None if s.dry_run => format!("dry run: nothing was written{parent}"),
        None => format!("nothing changed: no snapshot written{parent}"),
    };
    let added = if s.dry_run {
        "Would add:  "
    } else {
        "Added:      "
    };
    let rows = [
        headline,
        format!(
            "Files:       {} new, {} changed, {} unchanged",
            output::count(sum.files_new),
            output::count(sum.files_changed),
            output::count(sum.files_unchanged)
        ),
        format!(
            "Dirs:        {} new, {} changed, {} unchanged",
            output::count(sum.dirs_new),
            output::count(sum.dirs_changed),
            output::count(sum.dirs_unchanged)
        ),
        format!(
            "{added} {} of data, stored as {}",
            output::size(sum.bytes_added_raw),
            output::size(sum.bytes_added_stored)
        ),
        String::new(),
        format!(
            "{:<16}{:>16}{:>18}{:>20}",
            "", "Original size", "Compressed size", "Deduplicated size"
        ),
        format!(
            "{:<16}{:>16}{:>18}{:>20}",
            "This snapshot:",
            output::size(sum.bytes_total),
            output::size(sum.bytes_stored_total),
            output::size(sum.bytes_added_stored)
        ),
        format!(
            "{:<16}{:>16}{:>18}{:>20}",
            "All snapshots:",
            output::size(r.bytes_total),
            output::size(r.bytes_stored_total),
            output::size(r.bytes_stored_unique)
        ),
        String::new(),
        format!("{:<16}{:>16}{:>18}", "", "Unique chunks", "Total chunks"),
        format!(
            "{:<16}{:>16}{:>18}",
            "Chunk index:",
            output::count(r.unique_chunks),
            output::count(r.total_chunks)
        ),
        format!("Duration:    {:.2} s", sum.duration_ms as f64 / 1000.0),
    ];
    for row in rows {
        output::line(row)?;
    }
    if s.checkpoints > 0 {
        output::line(format!(
            "Checkpoints: {} written during the backup, replaced by this snapshot",
            output::count(s.checkpoints)
        ))?;
    }
    Ok(())
}

pub fn run(g: &GlobalArgs, a: &Args, cancel: &CancelToken) -> anyhow::Result<u8> {
    let mut filter_rules = Vec::new();
    for file in &a.exclude_from {
        filter_rules.extend(read_filter_file(file)?);
    }
    let mut paths = a.paths.clone();
    for file in &a.files_from {
        paths.extend(read_files_from(file)?);
    }
    let exclude_larger_than = a
        .exclude_larger_than
        .as_deref()
        .map(super::parse_size)
        .transpose()?;
    let compression = a
        .compression
        .as_deref()
        .map(str::parse::<Compression>)
        .transpose()?;
    let tags = a
        .tags
        .iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let mut repo = g.open()?;
    let reporter = BackupReporter::new(g.progress(), a.list, a.json);
    let options = BackupOptions {
        excludes: a.exclude.clone(),
        iexcludes: a.iexclude.clone(),
        filter_rules,
        exclude_caches: a.exclude_caches,
        exclude_if_present: a.exclude_if_present.clone(),
        exclude_larger_than,
        one_file_system: a.one_file_system,
        tags,
        host: a.host.clone(),
        compression,
        threads: a.threads,
        estimate: reporter.wants_estimate(),
        dry_run: a.dry_run,
        skip_if_unchanged: a.skip_if_unchanged,
        cancel: cancel.clone(),
        checkpoint_interval: a.checkpoint_interval,
        // A time given to the second means that second's start.
        time: a
            .time
            .as_deref()
            .map(arca_core::parse_time_start)
            .transpose()?,
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        if a.json {
            // Status lines about once a second, as restic --json prints them.
            s.spawn(|| {
                let tick = std::time::Duration::from_millis(100);
                let mut waited = std::time::Duration::ZERO;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    waited += tick;
                    if waited >= std::time::Duration::from_secs(1) {
                        waited = std::time::Duration::ZERO;
                        let _ = output::json(&reporter.status());
                    }
                }
            });
        }
        let result = if a.stdin {
            repo.backup_stream(
                &a.stdin_filename,
                &mut std::io::stdin().lock(),
                &options,
                &reporter,
            )
        } else if let (true, Some((program, args))) =
            (a.stdin_from_command, a.command.split_first())
        {
            repo.backup_command(&a.stdin_filename, program, args, &options, &reporter)
        } else {
            repo.backup(&paths, &options, &reporter)
        };
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    });
    reporter.finish();
    let summary = result?;
    if a.json {
        output::json(&to_json(&summary))?;
    } else if !g.quiet {
        print_summary(&summary)?;
    }
    let errors = summary.snapshot.summary.errors;
    if errors > 0 {
        let what = summary.snapshot_id.map_or("the backup".to_owned(), |id| {
            format!("snapshot {}", id.short())
        });
        output::message(format!(
            "warning: {what} is partial: {errors} file(s) or directories could not be read"
        ));
        return Ok(exit::PARTIAL);
    }
    Ok(exit::OK)
}
