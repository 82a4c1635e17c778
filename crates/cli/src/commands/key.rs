//! `arca key`.

use std::path::PathBuf;

use arca_core::{KdfParams, ObjectId};
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::{exit, output};

/// Manage the repository's passwords (key slots)
#[derive(Debug, clap::Args)]
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
    /// Add a password
    Add(NewKey),
    /// Remove a key slot (never the last one, nor the one in use)
    Remove {
        /// The slot's id or a unique prefix of it
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Change the password in use
    Passwd(NewKey),
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The new password comes from --new-password-file, ARCA_NEW_PASSWORD, or is asked twice
on a terminal.")]
struct NewKey {
    /// Read the new password from FILE
    #[arg(long, value_name = "FILE")]
    new_password_file: Option<PathBuf>,

    /// Argon2id memory for the new slot, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 32)]
    kdf_memory: u32,

    /// Argon2id passes for the new slot
    #[arg(long, value_name = "N", default_value_t = 12)]
    kdf_iterations: u32,
}

impl NewKey {
    fn kdf(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.kdf_memory.saturating_mul(1024),
            iterations: self.kdf_iterations,
            parallelism: 1,
        }
    }
}

#[derive(Serialize)]
struct KeyJson {
    id: String,
    current: bool,
    kdf_memory_kib: u32,
    kdf_iterations: u32,
}

pub fn run(g: &GlobalArgs, a: &Args) -> anyhow::Result<u8> {
    let repo = g.open()?;
    match &a.command {
        KeyCommand::List { json } => {
            let keys = repo.keys()?;
            if *json {
                let list: Vec<KeyJson> = keys
                    .iter()
                    .map(|k| KeyJson {
                        id: k.id.to_string(),
                        current: k.current,
                        kdf_memory_kib: k.kdf.memory_kib,
                        kdf_iterations: k.kdf.iterations,
                    })
                    .collect();
                output::json(&list)?;
            } else {
                for k in keys {
                    output::line(format!(
                        "{} {}  argon2id {} MiB x {}",
                        if k.current { "*" } else { " " },
                        k.id,
                        k.kdf.memory_kib / 1024,
                        k.kdf.iterations
                    ))?;
                }
            }
        }
        KeyCommand::Add(new) => {
            let pw = crate::password::obtain_new(new.new_password_file.as_deref())?;
            let id = repo.add_key(pw.as_bytes(), new.kdf())?;
            output::line(format!("added key {id}"))?;
        }
        KeyCommand::Remove { id } => {
            let keys = repo.keys()?;
            let matches: Vec<ObjectId> = keys
                .iter()
                .map(|k| k.id)
                .filter(|k| k.to_string().starts_with(id.as_str()))
                .collect();
            let [target] = matches.as_slice() else {
                anyhow::bail!(
                    "{} keys match {id:?}: give a unique prefix of one of `arca key list`",
                    matches.len()
                );
            };
            repo.remove_key(target)?;
            output::line(format!("removed key {target}"))?;
        }
        KeyCommand::Passwd(new) => {
            let pw = crate::password::obtain_new(new.new_password_file.as_deref())?;
            let id = repo.change_passphrase(pw.as_bytes(), new.kdf())?;
            output::line(format!("password changed; the new key is {id}"))?;
        }
    }
    Ok(exit::OK)
}
