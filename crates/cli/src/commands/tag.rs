//! `arca tag`.

use serde::Serialize;

use crate::app::GlobalArgs;
use crate::{exit, output};

/// Add, remove or set the tags of snapshots
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca tag latest --add keep-forever
  arca tag --host laptop --tag daily --remove daily --add weekly
  arca tag 1a2b3c4d --set archive,2025

Without SNAPSHOT, every snapshot that passes --host/--tag/--path is changed. A retagged
snapshot gets a new id (snapshot files are never modified in place).")]
pub struct Args {
    /// Snapshots to change (id, prefix or \"latest\")
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,

    /// Add tag T (repeatable, or comma-separated)
    #[arg(long, value_name = "T")]
    add: Vec<String>,

    /// Remove tag T (repeatable, or comma-separated)
    #[arg(long, value_name = "T")]
    remove: Vec<String>,

    /// Replace all tags with T (repeatable, or comma-separated; \"\" for none)
    #[arg(long, value_name = "T")]
    set: Vec<String>,

    #[command(flatten)]
    select: super::SnapshotArgs,

    /// Print old and new ids as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Retagged {
    old: String,
    new: String,
}

fn split(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

pub fn run(g: &GlobalArgs, a: &Args) -> anyhow::Result<u8> {
    if a.add.is_empty() && a.remove.is_empty() && a.set.is_empty() {
        output::message("arca: error: nothing to do: give --add, --remove or --set");
        return Ok(exit::USAGE);
    }
    let filter = a.select.filter()?;
    let repo = g.open()?;
    let targets = repo.find_snapshots(&a.snapshots, &filter)?;
    let set = (!a.set.is_empty()).then(|| split(&a.set));
    let (add, remove) = (split(&a.add), split(&a.remove));
    let mut changed = Vec::new();
    for s in &targets {
        if let Some(new) = repo.retag(s, set.as_deref(), &add, &remove)? {
            changed.push(Retagged {
                old: s.id.to_string(),
                new: new.to_string(),
            });
        }
    }
    if a.json {
        output::json(&changed)?;
    } else {
        for c in &changed {
            output::line(format!("{} -> {}", &c.old[..8], &c.new[..8]))?;
        }
        if !g.quiet {
            output::message(format!(
                "changed {} of {} snapshot(s)",
                changed.len(),
                targets.len()
            ));
        }
    }
    Ok(exit::OK)
}
