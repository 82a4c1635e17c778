//! `arca key`.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use arca_core::{
    ErrorKind, ExportedKey, KeyDestination, KeyTextFormat, ObjectId, PaperKeyReader, Repository,
    SlotKdf, parse_exported_key,
};
use serde::Serialize;

use crate::app::{GlobalArgs, key_file_hint};
use crate::commands::KdfArgs;
use crate::{exit, output};

/// Manage the repository's passwords (key slots), key files and exported keys
#[derive(Debug, clap::Args)]
#[command(after_help = "\
A key slot is the repository's master key locked by one password. Slots live in the
repository (keys/), or outside it in key files (arca init --key-file, key add
--new-key-file): then the password alone does not open the repository, the key file
(--key-file FILE or ARCA_KEY_FILE) is needed too.

For unattended jobs, `key add --new-secret-file FILE` writes a generated secret (256
random bits) to FILE. Given as the password (--password-file FILE, ARCA_PASSWORD_FILE),
it opens the repository at once, without the 32 MiB and ~0.15 s of deriving a key from
a password; it cannot be guessed from the repository.

Examples:
  arca key list
  arca key add --new-password-file ~/new-password
  arca key add --new-secret-file /etc/arca/secret   # then ARCA_PASSWORD_FILE=/etc/arca/secret
  arca --key-file ~/.config/arca/repo.key key passwd
  arca key export --paper > key.txt          # print it and keep it safe
  arca --key-file ~/.config/arca/repo.key key import key.txt")]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeyCommand {
    /// List the key slots; `*` marks the one the password in use opens
    List {
        /// Print a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Add a password (a slot in the repository, or in a new key file), or a generated
    /// secret for unattended jobs
    Add(AddKey),
    /// Remove a key slot from the repository (never the last way to open it, nor the
    /// one in use)
    Remove {
        /// The slot's id or a unique prefix of it
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Change the password in use (where its slot is: in the repository, or the key file)
    Passwd(NewKey),
    /// Write the key slot in use as text to keep, print and type back (it stays locked
    /// by its password)
    Export(ExportArgs),
    /// Store an exported key again: into the repository, or with --key-file FILE into a
    /// new key file (to restore a lost one)
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The new password comes from --new-password-file, ARCA_NEW_PASSWORD, or is asked twice
on a terminal.")]
struct NewKey {
    /// Read the new password from FILE
    #[arg(long, value_name = "FILE")]
    new_password_file: Option<PathBuf>,

    #[command(flatten)]
    kdf: KdfArgs,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The new password comes from --new-password-file, ARCA_NEW_PASSWORD, or is asked twice
on a terminal. A repository whose keys are all in key files gets no slot in the
repository (the password alone would then open it): give --new-key-file.")]
struct AddKey {
    #[command(flatten)]
    new: NewKey,

    /// Write the new slot to FILE, a new key file (mode 0600, never overwritten),
    /// instead of into the repository
    #[arg(long, value_name = "FILE")]
    new_key_file: Option<PathBuf>,

    /// Instead of a password, generate a secret and write it to FILE (mode 0600, never
    /// overwritten); give FILE as the password file to open the repository with it
    #[arg(long, value_name = "FILE",
          conflicts_with_all = ["new_key_file", "new_password_file", "kdf_memory", "kdf_iterations", "kdf_lanes"])]
    new_secret_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// Numbered lines of hex digits with a checksum each, for printing and typing back
    #[arg(long)]
    paper: bool,

    /// Write to FILE (mode 0600, never overwritten) instead of standard output
    #[arg(value_name = "FILE")]
    path: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Either format is recognised; --paper insists on the paper format and, when standard
input is a terminal, asks for the lines one by one and checks each as it is typed.
Only the repository's config and the key's password are needed, not another key.")]
struct ImportArgs {
    /// The paper format (typed back by hand)
    #[arg(long)]
    paper: bool,

    /// Read from FILE instead of standard input
    #[arg(value_name = "FILE")]
    path: Option<PathBuf>,
}

#[derive(Serialize)]
struct KeyJson {
    id: String,
    current: bool,
    /// `password` (Argon2id) or `secret` (a generated secret; the kdf fields are 0).
    kind: &'static str,
    kdf_memory_kib: u32,
    kdf_iterations: u32,
    kdf_lanes: u32,
    key_file: Option<String>,
}

fn format(paper: bool) -> KeyTextFormat {
    if paper {
        KeyTextFormat::Paper
    } else {
        KeyTextFormat::Plain
    }
}

pub fn run(g: &GlobalArgs, a: &Args) -> anyhow::Result<u8> {
    // Import works without a key: it is how a lost one comes back.
    if let KeyCommand::Import(args) = &a.command {
        return import(g, args);
    }
    let repo = g.open()?;
    match &a.command {
        KeyCommand::List { json } => list(&repo, *json)?,
        KeyCommand::Add(add) => {
            if let Some(path) = &add.new_secret_file {
                let id = repo.add_secret(path).map_err(|e| match e.kind() {
                    ErrorKind::InvalidInput => arca_core::Error::new(
                        e.kind(),
                        format!("{e} (--new-key-file FILE adds a password in a key file)"),
                    ),
                    _ => e,
                })?;
                output::line(format!(
                    "added key {id}; its secret is in {}",
                    path.display()
                ))?;
                if !g.quiet {
                    output::message(format!(
                        "note: {} opens the repository on its own (ARCA_PASSWORD_FILE={0}): keep it as safe as the repository's data",
                        path.display()
                    ));
                }
                return Ok(exit::OK);
            }
            let kdf = add.new.kdf.params()?;
            let file = add.new.new_password_file.as_deref();
            match &add.new_key_file {
                Some(path) => {
                    arca_core::check_new_key_file(path)?;
                    let pw = crate::password::obtain_new(file)?;
                    let id = repo.add_key_file(path, pw.as_bytes(), kdf)?;
                    output::line(format!("added key {id} in key file {}", path.display()))?;
                }
                None => {
                    repo.check_keys_may_grow().map_err(|e| match e.kind() {
                        ErrorKind::InvalidInput => {
                            arca_core::Error::new(e.kind(), format!("{e} (--new-key-file FILE)"))
                        }
                        _ => e,
                    })?;
                    let pw = crate::password::obtain_new(file)?;
                    let id = repo.add_key(pw.as_bytes(), kdf)?;
                    output::line(format!("added key {id}"))?;
                }
            }
        }
        KeyCommand::Remove { id } => remove(g, &repo, id)?,
        KeyCommand::Passwd(new) => {
            repo.check_passphrase_may_change()?;
            let kdf = new.kdf.params()?;
            let pw = crate::password::obtain_new(new.new_password_file.as_deref())?;
            let id = repo.change_passphrase(pw.as_bytes(), kdf)?;
            match repo.key_file() {
                Some(path) => output::line(format!(
                    "password changed; key file {} now holds key {id}",
                    path.display()
                ))?,
                None => output::line(format!("password changed; the new key is {id}"))?,
            }
            if !g.quiet {
                output::message(
                    "note: copies of the old key (exports, copies of a key file) still open the repository with the old password",
                );
            }
        }
        KeyCommand::Export(e) => match &e.path {
            Some(path) => {
                repo.export_key_to(path, format(e.paper))?;
                if !g.quiet {
                    let warning = if repo.key_file().is_some() {
                        "with its password it opens the repository without the key file: keep it as safe as the key file"
                    } else {
                        "with its password it opens the repository: keep it safe"
                    };
                    output::message(format!(
                        "wrote the key in use to {}; {warning}",
                        path.display()
                    ));
                }
            }
            None => output::line(repo.export_key(format(e.paper))?.trim_end())?,
        },
        // Handled above, before opening.
        KeyCommand::Import(_) => {}
    }
    Ok(exit::OK)
}

fn list(repo: &Repository, json: bool) -> anyhow::Result<()> {
    let keys = repo.keys()?;
    if json {
        let list: Vec<KeyJson> = keys
            .iter()
            .map(|k| {
                let (kind, [memory, iterations, lanes]) = match k.kdf {
                    SlotKdf::Argon2id(p) => {
                        ("password", [p.memory_kib, p.iterations, p.parallelism])
                    }
                    SlotKdf::Secret => ("secret", [0; 3]),
                };
                KeyJson {
                    id: k.id.to_string(),
                    current: k.current,
                    kind,
                    kdf_memory_kib: memory,
                    kdf_iterations: iterations,
                    kdf_lanes: lanes,
                    key_file: k.key_file.as_ref().map(|p| p.display().to_string()),
                }
            })
            .collect();
        return output::json(&list);
    }
    for k in keys {
        let lock = match k.kdf {
            SlotKdf::Argon2id(p) => format!(
                "argon2id {} MiB x {}, {} lane{}",
                p.memory_kib / 1024,
                p.iterations,
                p.parallelism,
                if p.parallelism == 1 { "" } else { "s" },
            ),
            SlotKdf::Secret => "generated secret".to_owned(),
        };
        output::line(format!(
            "{} {}  {lock}{}",
            if k.current { "*" } else { " " },
            k.id,
            k.key_file
                .map(|p| format!("  key file {}", p.display()))
                .unwrap_or_default()
        ))?;
    }
    Ok(())
}

fn remove(g: &GlobalArgs, repo: &Repository, prefix: &str) -> anyhow::Result<()> {
    // Ids only: a damaged slot can be removed too.
    let mut matches: Vec<ObjectId> = repo
        .key_ids()?
        .into_iter()
        .chain(repo.key_file().map(|_| repo.key_id()))
        .filter(|k| k.to_string().starts_with(prefix))
        .collect();
    // The key file's slot may also be in keys/ (imported): one id.
    matches.sort();
    matches.dedup();
    let [target] = matches.as_slice() else {
        bail!(
            "{} keys match {prefix:?}: give a unique prefix of one of `arca key list`",
            matches.len()
        );
    };
    repo.remove_key(target)?;
    output::line(format!("removed key {target}"))?;
    // Only a repository opened with a key file can have lost its last slot in keys/.
    if let Some(path) = repo.key_file().filter(|_| !g.quiet)
        && repo.keys_outside_only()?
    {
        output::message(format!(
            "note: the repository now opens only with a key file, such as {}: keep a copy of it (arca key export --paper)",
            path.display()
        ));
    }
    Ok(())
}

fn import(g: &GlobalArgs, a: &ImportArgs) -> anyhow::Result<u8> {
    let backend = g.backend()?;
    let wanted = a.paper.then_some(KeyTextFormat::Paper);
    let (source, key) = match &a.path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let source = path.display().to_string();
            let key = parse_exported_key(&text, wanted).with_context(|| source.clone())?;
            (source, key)
        }
        None if a.paper && std::io::stdin().is_terminal() => {
            ("the typed key".to_owned(), type_paper_key()?)
        }
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the key from standard input")?;
            let key = parse_exported_key(&text, wanted).context("standard input")?;
            ("standard input".to_owned(), key)
        }
    };
    let destination = match &g.key_file {
        Some(path) => KeyDestination::File(path.clone()),
        None => KeyDestination::Repository,
    };
    // Every check that needs no password, before it is asked for.
    let plan = match Repository::plan_key_import(backend, &key, &destination) {
        Ok(plan) => plan,
        // Another repository's key: name where it came from.
        Err(e) if e.kind() == ErrorKind::InvalidInput => return Err(anyhow!(e).context(source)),
        Err(e) => return Err(key_file_hint(e).into()),
    };
    let password = crate::password::obtain(g, false)?;
    let done = plan.import(password.as_bytes()).map_err(key_file_hint)?;
    let id = done.id;
    let text = match (&done.destination, done.already_present) {
        (KeyDestination::File(path), false) => {
            format!("restored key {id} into key file {}", path.display())
        }
        (KeyDestination::File(path), true) => format!(
            "key file {} already holds key {id}; nothing written",
            path.display()
        ),
        (_, false) => format!("imported key {id} into the repository"),
        (_, true) => format!("the repository already holds key {id}; nothing written"),
    };
    output::line(text)?;
    Ok(exit::OK)
}

/// Asks for a paper key line by line on the terminal, checking each line as it is
/// typed.
fn type_paper_key() -> anyhow::Result<ExportedKey> {
    output::message(
        "Type the paper key line by line as printed, with its number and checksum (the title line may be left out).",
    );
    let mut reader = PaperKeyReader::new();
    let mut stdin = std::io::stdin().lock();
    loop {
        let n = reader.next_line();
        let of = reader
            .lines()
            .map(|t| format!(" of {t}"))
            .unwrap_or_default();
        let _ = write!(std::io::stderr(), "line {n}{of}: ");
        let mut line = String::new();
        if stdin.read_line(&mut line)? == 0 {
            break;
        }
        match reader.push(&line) {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => output::message(format!("{e}; type line {n} again")),
        }
    }
    reader
        .finish()
        .map_err(arca_core::Error::from)
        .context("the typed key")
}
