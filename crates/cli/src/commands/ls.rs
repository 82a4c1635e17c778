//! `arca ls`.

use std::path::{Path, PathBuf};

use arca_core::{Node, NodeKind};
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::{exit, output};

/// List the files in a snapshot, below PATH (default: everything).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  arca ls latest
  arca ls 1a2b3c4d /home/me/documents -l
  arca ls latest --json | jq -r 'select(.type == \"file\") | .path'")]
pub struct Args {
    /// Snapshot: full id, unique id prefix, or \"latest\" (the newest matching
    /// --host/--tag/--path/--time)
    #[arg(value_name = "SNAPSHOT")]
    snapshot: String,

    /// Path inside the snapshot to list
    #[arg(value_name = "PATH", default_value = "/")]
    path: PathBuf,

    /// Long format: type and mode, owner, group, size, modification time
    #[arg(short, long)]
    long: bool,

    #[command(flatten)]
    select: super::SnapshotArgs,

    /// Print one JSON object per entry (JSON lines)
    #[arg(long)]
    json: bool,
}

/// One entry in `--json` output. Field names are a stable contract (see README).
#[derive(Serialize)]
struct EntryJson<'a> {
    path: String,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    mode: u32,
    permissions: String,
    uid: u32,
    gid: u32,
    user: &'a str,
    group: &'a str,
    size: u64,
    mtime: String,
    atime: String,
    ctime: String,
    inode: u64,
    links: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

/// `drwxr-xr-x`-style permissions, with setuid/setgid/sticky shown as ls does.
pub fn permissions(node: &Node) -> String {
    let t = match node.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::BlockDevice => 'b',
        NodeKind::CharDevice => 'c',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        _ => '-',
    };
    let m = node.mode;
    let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
    let special =
        |exec: u32, special: u32, set: char, unset: char| match (m & exec != 0, m & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        };
    [
        t,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o001, 0o1000, 't', 'T'),
    ]
    .iter()
    .collect()
}

fn owner(name: &str, id: u32) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        name.to_owned()
    }
}

fn print(path: &Path, node: &Node, long: bool, json: bool, utc_offset: i32) -> anyhow::Result<()> {
    let target = (node.kind == NodeKind::Symlink)
        .then(|| String::from_utf8_lossy(&node.target).into_owned());
    if json {
        return output::json(&EntryJson {
            path: path.display().to_string(),
            name: node.display_name(),
            kind: output::kind_name(node.kind),
            mode: node.mode,
            permissions: permissions(node),
            uid: node.uid,
            gid: node.gid,
            user: &node.user,
            group: &node.group,
            size: node.size,
            mtime: output::rfc3339(node.mtime, utc_offset),
            atime: output::rfc3339(node.atime, utc_offset),
            ctime: output::rfc3339(node.ctime, utc_offset),
            inode: node.inode,
            links: node.links,
            target,
        });
    }
    if !long {
        return output::line(path.display());
    }
    let mut line = format!(
        "{} {:<8} {:<8} {:>12} {} {}",
        permissions(node),
        owner(&node.user, node.uid),
        owner(&node.group, node.gid),
        node.size,
        output::local_time(node.mtime),
        path.display()
    );
    if let Some(t) = target {
        line.push_str(" -> ");
        line.push_str(&t);
    }
    output::line(line)
}

pub fn run(g: &GlobalArgs, a: &Args) -> anyhow::Result<u8> {
    let repo = g.open()?;
    let snapshot = repo.find_snapshot_filtered(&a.snapshot, &a.select.filter()?)?;
    let offset = snapshot.snapshot.utc_offset;
    let mut printing = Ok(());
    let walked = repo.walk(
        &snapshot,
        &arca_core::absolute(&a.path)?,
        &mut |path, node| output::carry(&mut printing, print(path, node, a.long, a.json, offset)),
    );
    printing?;
    walked?;
    Ok(exit::OK)
}
