#![allow(clippy::print_stdout, clippy::print_stderr)]
//! How a third-party tool embeds arca: open (or create) a repository, back up a
//! directory, list the snapshots, and restore the latest one.
//!
//! ```text
//! cargo run -p arca-core --example backup_and_restore -- SOURCE_DIR REPOSITORY_DIR RESTORE_DIR
//! ```
//! The passphrase comes from ARCA_PASSWORD.

use std::path::PathBuf;

use arca_core::{
    BackupOptions, ErrorKind, InitOptions, Location, NoProgress, Repository, RestoreOptions,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, repository, target] = args.as_slice() else {
        return Err("usage: backup_and_restore SOURCE_DIR REPOSITORY_DIR RESTORE_DIR".into());
    };
    let passphrase = std::env::var("ARCA_PASSWORD").map_err(|_| "set ARCA_PASSWORD")?;
    let backend = Location::parse(repository)?.backend()?;

    // Open the repository, creating it on first use.
    let mut repo = match Repository::open(backend.clone(), passphrase.as_bytes()) {
        Ok(repo) => repo,
        Err(e) if e.kind() == ErrorKind::RepositoryNotFound => {
            Repository::init(backend, passphrase.as_bytes(), &InitOptions::default())?
        }
        Err(e) => return Err(e.into()),
    };

    let options = BackupOptions {
        excludes: vec!["**/.cache".into()],
        tags: vec!["example".into()],
        ..BackupOptions::default()
    };
    let summary = repo.backup(&[PathBuf::from(source)], &options, &NoProgress)?;
    let s = &summary.snapshot.summary;
    let id = summary
        .snapshot_id
        .map_or("(none)".to_owned(), |id| id.short());
    println!(
        "snapshot {id}: {} new, {} changed, {} unchanged files; {} bytes added",
        s.files_new, s.files_changed, s.files_unchanged, s.bytes_added_stored
    );
    for warning in &summary.warnings {
        eprintln!("warning: {warning}");
    }

    for info in repo.snapshots()? {
        println!(
            "{}  {}  {}",
            info.id.short(),
            info.snapshot.hostname,
            info.paths_lossy().join(" ")
        );
    }

    let latest = repo.find_snapshot("latest")?;
    let restored = repo.restore(
        &latest,
        target.as_ref(),
        &RestoreOptions::default(),
        &NoProgress,
    )?;
    println!(
        "restored {} files ({} bytes) into {target}",
        restored.files, restored.bytes
    );
    Ok(())
}
