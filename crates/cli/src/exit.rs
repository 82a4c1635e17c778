//! Exit codes. These are a contract: scripts branch on them.

use arca_core::ErrorKind;

/// Success.
pub const OK: u8 = 0;
/// A fatal error.
pub const FATAL: u8 = 1;
/// Invalid command-line usage (unknown flag, missing argument).
pub const USAGE: u8 = 2;
/// The backup finished, but some source files could not be read (the snapshot is partial).
pub const PARTIAL: u8 = 3;
/// No repository at the given location.
pub const NO_REPOSITORY: u8 = 10;
/// Another process holds the lock the command needs (the message names it).
pub const LOCKED: u8 = 11;
/// The password opens no key of the repository.
pub const WRONG_PASSWORD: u8 = 12;
/// The repository keeps its key in a key file, and none was given (`--key-file`).
pub const KEY_FILE_REQUIRED: u8 = 13;
/// Interrupted (SIGINT, SIGTERM or SIGHUP).
pub const INTERRUPTED: u8 = 130;

/// The exit code for a failed command.
pub fn for_error(err: &anyhow::Error) -> u8 {
    let kind = err
        .chain()
        .find_map(|e| e.downcast_ref::<arca_core::Error>())
        .map(arca_core::Error::kind);
    match kind {
        Some(ErrorKind::RepositoryNotFound) => NO_REPOSITORY,
        Some(ErrorKind::WrongPassword) => WRONG_PASSWORD,
        Some(ErrorKind::KeyFileRequired) => KEY_FILE_REQUIRED,
        Some(ErrorKind::Interrupted) => INTERRUPTED,
        Some(ErrorKind::Locked) => LOCKED,
        _ => FATAL,
    }
}
