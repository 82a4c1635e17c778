//! Writing results: stdout lines that tolerate a closed pipe, messages on stderr, and
//! the formatting of sizes, times and tables.

use std::fmt::Display;
use std::io::{self, Write};

use arca_core::{NodeKind, Timestamp};

/// Stdout was closed by the reader (e.g. `arca ls latest | head`). Not a failure: the
/// command stops and exits 0.
#[derive(Debug)]
pub struct ClosedPipe;

impl Display for ClosedPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for ClosedPipe {}

/// Writes one line to stdout.
pub fn line(text: impl Display) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match writeln!(out, "{text}") {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(ClosedPipe.into()),
        other => Ok(other?),
    }
}

/// Hands the outcome of printing inside a library callback (which must return a
/// library error) back to the library: a printing error, such as a closed pipe, is kept
/// in `slot` for the command to return, and stops the library's work.
pub fn carry(slot: &mut anyhow::Result<()>, printed: anyhow::Result<()>) -> arca_core::Result<()> {
    printed.map_err(|e| {
        *slot = Err(e);
        arca_core::Error::new(arca_core::ErrorKind::Interrupted, "output closed")
    })
}

/// Writes a value as one line of JSON to stdout.
pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    line(serde_json::to_string(value)?)
}

/// Writes a message to stderr (a closed stderr is ignored: there is nowhere to report).
pub fn message(text: impl Display) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// A size in binary units, e.g. `1.20 GiB`.
pub fn size(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// A count with thousands separators.
pub fn count(n: u64) -> String {
    indicatif::HumanCount(n).to_string()
}

fn jiff_ts(t: Timestamp) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(t.secs, i32::try_from(t.nanos).ok()?).ok()
}

/// A time in the local time zone, to the second.
pub fn local_time(t: Timestamp) -> String {
    match jiff_ts(t) {
        Some(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        None => format!("@{}", t.secs),
    }
}

/// A time as RFC 3339 with the given UTC offset (seconds east), nanosecond precision.
pub fn rfc3339(t: Timestamp, utc_offset: i32) -> String {
    let offset = jiff::tz::Offset::from_seconds(utc_offset).unwrap_or(jiff::tz::Offset::UTC);
    match jiff_ts(t) {
        Some(ts) => ts.display_with_offset(offset).to_string(),
        None => format!("@{}", t.secs),
    }
}

/// Formats rows under headers in left-aligned columns (the last column unpadded).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let render = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    (*c).to_owned()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![render(headers.to_vec())];
    let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    out.push("-".repeat(total.min(160)));
    for row in rows {
        out.push(render(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The name of a node kind in listings and JSON (a contract: see README).
pub fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::BlockDevice => "blockdev",
        NodeKind::CharDevice => "chardev",
        NodeKind::Fifo => "fifo",
        NodeKind::Socket => "socket",
        _ => "unknown",
    }
}
