//! Argument parsing, dispatch to the subcommands, and the mapping of outcomes to exit
//! codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use arca_core::{CancelToken, Location, Repository};
use clap::{Parser, Subcommand};

use crate::commands;
use crate::exit;
use crate::output;

const ABOUT: &str = "Encrypted, deduplicated, compressed backups.";

const AFTER_HELP: &str = "\
Examples:
  export ARCA_REPOSITORY=/srv/backup ARCA_PASSWORD_FILE=~/.config/arca/password
  arca init
  arca backup ~/documents ~/projects --exclude '**/node_modules' --tag daily
  arca snapshots
  arca ls latest /home/me/documents
  arca restore latest --target /tmp/restore --include '/home/me/documents/**'
  arca check --read-data

Exit codes: 0 ok, 1 error, 2 bad usage, 3 backup saved but some files unreadable,
10 no repository, 11 locked by another process, 12 wrong password, 13 the repository's
key is in a key file and none was given, 130 interrupted.";

/// Options every command takes.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Repository location: a directory, or s3:... (see README)
    #[arg(
        short = 'r',
        long = "repo",
        env = "ARCA_REPOSITORY",
        global = true,
        value_name = "LOCATION"
    )]
    pub repo: Option<String>,

    /// Read the repository password, or a generated secret (`arca key add
    /// --new-secret-file`), from FILE
    #[arg(
        long,
        env = "ARCA_PASSWORD_FILE",
        global = true,
        value_name = "FILE",
        hide_env_values = true
    )]
    pub password_file: Option<PathBuf>,

    /// Run COMMAND (with sh -c) and use its output as the password
    #[arg(long, global = true, value_name = "COMMAND")]
    pub password_command: Option<String>,

    /// The repository's key is in FILE, not in the repository (see `arca init --key-file`)
    #[arg(long, env = "ARCA_KEY_FILE", global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Print only errors and warnings
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Do not draw progress bars
    #[arg(long, global = true)]
    pub no_progress: bool,

    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
}

impl GlobalArgs {
    /// Whether progress bars are wanted (they are drawn only on a terminal anyway).
    pub fn progress(&self) -> bool {
        !self.quiet && !self.no_progress
    }

    /// The repository location.
    pub fn location(&self) -> anyhow::Result<Location> {
        let text = self
            .repo
            .as_deref()
            .context("no repository given: use -r/--repo or set ARCA_REPOSITORY")?;
        Ok(Location::parse(text)?)
    }

    /// The repository's backend, with the storage options.
    pub fn backend(&self) -> anyhow::Result<std::sync::Arc<dyn arca_core::WriteBackend>> {
        self.storage.open(&self.location()?)
    }

    /// Opens the repository with the password from the usual sources.
    pub fn open(&self) -> anyhow::Result<Repository> {
        self.open_cached(true)
    }

    /// Opens the repository, with the metadata cache only if `cache` (and the options
    /// allow it). `check` reads without it: it must see what the repository holds.
    pub fn open_cached(&self, cache: bool) -> anyhow::Result<Repository> {
        let location = self.location()?;
        // Refuse early and clearly when there is no repository, before asking for a password.
        let backend = self.existing(self.storage.open(&location)?)?;
        let password = crate::password::obtain(self, false)?;
        let mut options = if cache {
            self.storage.open_options(&location)
        } else {
            arca_core::OpenOptions::default()
        };
        options.key_file = self.key_file.clone();
        let repo =
            Repository::open_with(backend, password.as_bytes(), &options).map_err(key_file_hint)?;
        if let (Some(dir), None) = (&options.cache_dir, repo.cache_dir()) {
            output::message(format!(
                "warning: cannot use the cache directory {}; reading everything from the repository",
                dir.display()
            ));
        }
        for (id, e) in repo.index_problems() {
            output::message(format!(
                "warning: index {id} is unreadable and was skipped ({e}); run `arca check`"
            ));
        }
        Ok(repo)
    }

    /// `backend` if a repository is there; else `RepositoryNotFound` (exit 10), before
    /// any password is asked for.
    pub fn existing(
        &self,
        backend: std::sync::Arc<dyn arca_core::WriteBackend>,
    ) -> anyhow::Result<std::sync::Arc<dyn arca_core::WriteBackend>> {
        if arca_core::Repository::exists(backend.as_ref())? {
            return Ok(backend);
        }
        Err(arca_core::Error::new(
            arca_core::ErrorKind::RepositoryNotFound,
            format!("no repository at {}", backend.location()),
        )
        .into())
    }
}

/// Says how to give the key file when the repository needs one.
pub fn key_file_hint(e: arca_core::Error) -> arca_core::Error {
    if e.kind() == arca_core::ErrorKind::KeyFileRequired {
        arca_core::Error::new(
            e.kind(),
            format!("{e}: pass --key-file PATH (or set ARCA_KEY_FILE)"),
        )
    } else {
        e
    }
}

#[derive(Debug, Parser)]
#[command(name = "arca", version, about = ABOUT, after_help = AFTER_HELP, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new repository
    Init(commands::init::Args),
    /// Back up files and directories into a new snapshot
    Backup(commands::backup::Args),
    /// List snapshots
    Snapshots(commands::snapshots::Args),
    /// List the files in a snapshot
    Ls(commands::ls::Args),
    /// Restore a snapshot, or part of it, into a directory
    Restore(commands::restore::Args),
    /// Verify the repository's structure and, with --read-data, all its data
    Check(commands::check::Args),
    /// Write a file to standard output, or a directory as a tar or zip archive
    Dump(commands::dump::Args),
    /// Show what changed between two snapshots
    Diff(commands::diff::Args),
    /// Find files and directories by name across snapshots
    Find(commands::find::Args),
    /// Compare a snapshot with the files on disk
    Verify(commands::verify::Args),
    /// Remove snapshots by id or by a retention policy
    Forget(Box<commands::forget::Args>),
    /// Remove data that no snapshot needs any more
    Prune(commands::prune::Args),
    /// Remove lock and session records of arca processes that are gone
    Unlock(commands::prune::UnlockArgs),
    /// Add, remove or set the tags of snapshots
    Tag(commands::tag::Args),
    /// Show how much the repository stores and how well it deduplicates
    Stats(commands::stats::StatsArgs),
    /// Manage the repository's passwords and key files: list, add, remove, passwd, export, import
    Key(commands::key::Args),
    /// Repair a damaged repository: rebuild the index, write snapshots without lost data
    Repair(commands::repair::Args),
}

/// Parses the command line, runs the command, and returns its exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let cancel = CancelToken::new();
    let handler_token = cancel.clone();
    // First signal: stop cleanly (the repository stays valid). Second: stop now.
    let _ = ctrlc::set_handler(move || {
        if handler_token.is_cancelled() {
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
        handler_token.cancel();
    });
    let g = &cli.global;
    let result = match &cli.command {
        Command::Init(a) => commands::init::run(g, a),
        Command::Backup(a) => commands::backup::run(g, a, &cancel),
        Command::Snapshots(a) => commands::snapshots::run(g, a),
        Command::Ls(a) => commands::ls::run(g, a),
        Command::Restore(a) => commands::restore::run(g, a, &cancel),
        Command::Check(a) => commands::check::run(g, a, &cancel),
        Command::Dump(a) => commands::dump::run(g, a, &cancel),
        Command::Diff(a) => commands::diff::run(g, a, &cancel),
        Command::Find(a) => commands::find::run(g, a, &cancel),
        Command::Verify(a) => commands::verify::run(g, a, &cancel),
        Command::Forget(a) => commands::forget::run(g, a, &cancel),
        Command::Prune(a) => commands::prune::run(g, a, &cancel),
        Command::Unlock(a) => commands::prune::unlock(g, a),
        Command::Tag(a) => commands::tag::run(g, a),
        Command::Stats(a) => commands::stats::run(g, a),
        Command::Key(a) => commands::key::run(g, a),
        Command::Repair(a) => commands::repair::run(g, a, &cancel),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.downcast_ref::<output::ClosedPipe>().is_some() => ExitCode::from(exit::OK),
        Err(e) => {
            output::message(format!("arca: error: {}", one_line(&e)));
            ExitCode::from(exit::for_error(&e))
        }
    }
}

/// The error and its causes on one line. Library errors already carry their cause in
/// their message, so the chain stops there.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        parts.push(cause.to_string());
        if cause.is::<arca_core::Error>() {
            break;
        }
    }
    parts.join(": ")
}
