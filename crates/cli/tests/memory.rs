//! The memory bound, measured as the peak RSS of the `arca backup` process. Alone in its
//! test binary, so the only children are this test's (spawned without fork, they do not
//! inherit the test process's memory).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::io::Write;

use common::*;

/// A 1 GiB file (not compressible, not deduplicable) backs up in under 300 MiB RSS.
/// (The same bound holds for 10 GiB: memory does not grow with the file; the figure
/// is in the README.)
#[test]
fn a_large_file_backs_up_in_bounded_memory() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let mut f = fs::File::create(src.join("large.bin")).unwrap();
    for i in 0..128 {
        f.write_all(&bytes(8 << 20, 1000 + i)).unwrap();
    }
    drop(f);
    env.init();
    let summary = env.backup(&[&src]);
    assert_eq!(summary["bytes_read"], 1u64 << 30);
    let peak_mib = children_max_rss_kib() / 1024;
    // The lower bound proves the measurement saw the backup at all.
    assert!((10..300).contains(&peak_mib), "peak RSS {peak_mib} MiB");
    eprintln!("peak RSS of arca backup of 1 GiB: {peak_mib} MiB");
}
