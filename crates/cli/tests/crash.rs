//! SIGKILL at random moments: `arca backup` (with and without checkpoints), `arca prune`
//! and `arca forget --prune` killed anywhere leave a repository that `check --read-data`
//! passes, whose earlier snapshots restore byte for byte, and into which the next backup
//! succeeds. The same for the three commands failing on storage faults: writes refused,
//! replies lost, transfers cut. `ARCA_CRASH_POINTS` sets the points per command
//! (default 30).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn points() -> usize {
    std::env::var("ARCA_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

/// A deterministic pseudo-random sequence (no dependency on a random crate).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs `arca ARGS` and kills it with SIGKILL after `delay`; false if it had
/// finished by then.
fn kill_after(env: &Env, args: &[&str], delay: Duration) -> bool {
    let mut child = env
        .cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed = child.kill().is_ok();
    let _ = child.wait();
    killed
}

fn duration_of(env: &Env, args: &[&str]) -> Duration {
    let started = Instant::now();
    env.ok(args);
    started.elapsed()
}

/// Snapshots, oldest first, with the manifest of the tree each one holds.
struct Known(Vec<(String, BTreeMap<PathBuf, Entry>)>);

impl Known {
    fn add(&mut self, env: &Env, src: &Path) {
        let id = env.json(&["snapshots"]).as_array().unwrap().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.0.push((id, manifest(src)));
    }

    /// The repository checks clean and the known snapshots still listed (the newest
    /// three and one picked by `pick`) restore to the trees they were taken of.
    fn verify(&self, env: &Env, src: &Path, what: &str, pick: u64) {
        let report = env.run(&["check", "--read-data", "--json"]);
        assert_eq!(
            report.status.code(),
            Some(0),
            "{what}: {}",
            String::from_utf8_lossy(&report.stdout)
        );
        let listed: Vec<String> = env
            .json(&["snapshots"])
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        let present: Vec<_> = self
            .0
            .iter()
            .filter(|(id, _)| listed.contains(id))
            .collect();
        let newest = present.len().saturating_sub(3);
        let chosen = (pick as usize) % present.len().max(1);
        for (i, (id, expected)) in present.into_iter().enumerate() {
            if i < newest && i != chosen {
                continue;
            }
            let out = env.path("restore-check");
            let _ = std::fs::remove_dir_all(&out);
            env.ok(&["restore", id, "--target", out.to_str().unwrap()]);
            assert_same(expected, &manifest(&restored(&out, src)));
        }
    }
}

fn change(src: &Path, rng: &mut Rng) {
    let n = rng.next();
    write(
        &src.join(format!("f{}", n % 7)),
        &bytes(((n >> 8) % 800_000) as usize, n),
    );
}

/// A repository with a history, as both crash tests start, and what they do around
/// each interrupted command.
struct Series {
    env: Env,
    src: PathBuf,
    src_arg: String,
    rng: Rng,
    known: Known,
}

impl Series {
    fn new(seed: u64) -> Self {
        let env = Env::new();
        let src = env.path("src");
        make_tree(&src);
        let mut rng = Rng(seed);
        for _ in 0..4 {
            change(&src, &mut rng);
        }
        env.init();
        let src_arg = src.to_str().unwrap().to_owned();
        let mut known = Known(Vec::new());
        env.ok(&["backup", "-q", &src_arg]);
        known.add(&env, &src);
        Self {
            env,
            src,
            src_arg,
            rng,
            known,
        }
    }

    /// Something for the next command to do: new data, a new snapshot, old ones to
    /// forget.
    fn prepare(&mut self) {
        change(&self.src, &mut self.rng);
        self.backup();
        change(&self.src, &mut self.rng);
    }

    fn backup(&mut self) {
        self.env.ok(&["backup", "-q", &self.src_arg]);
        self.known.add(&self.env, &self.src);
    }

    /// The arguments of command `name` at `point`: every other backup writes
    /// checkpoints (after each entry).
    fn args<'a>(&'a self, name: &str, point: usize) -> Vec<&'a str> {
        let mut args = match name {
            "backup" => vec!["backup", "-q", self.src_arg.as_str()],
            "prune" => vec!["prune", "-q", "--max-unused", "0%"],
            _ => vec![
                "forget",
                "-q",
                "--keep-last",
                "2",
                "--prune",
                "--max-unused",
                "0%",
            ],
        };
        if name == "backup" && point % 2 == 1 {
            args.extend(["--checkpoint-interval", "0"]);
        }
        args
    }

    fn verify(&mut self, what: &str) {
        let pick = self.rng.next();
        self.known.verify(&self.env, &self.src, what, pick);
    }

    /// After a command's series: the next backup succeeds, and after a last prune
    /// everything still restores.
    fn finish(mut self) {
        self.backup();
        self.env.ok(&["prune"]);
        self.verify("final prune");
    }
}

/// The commands the crash tests interrupt.
const COMMANDS: [&str; 3] = ["backup", "prune", "forget --prune"];

#[test]
fn sigkill_anywhere_leaves_a_valid_repository() {
    let mut series = Series::new(0x5eed_1234_abcd);
    for name in COMMANDS {
        let mut killed = 0;
        for point in 0..points() {
            series.prepare();
            // How long the command takes now, on a scratch copy would be exact; the
            // duration of a backup of the same tree is close enough for all three.
            let full = duration_of(&series.env, &["backup", "-q", "--dry-run", &series.src_arg]);
            let delay =
                Duration::from_micros(series.rng.next() % (full.as_micros() as u64 * 2 + 1));
            let args = series.args(name, point);
            if kill_after(&series.env, &args, delay) {
                killed += 1;
            }
            let what = format!("{name} {args:?}, point {point}, after {delay:?}");
            series.verify(&what);
        }
        assert!(
            killed * 3 >= points(),
            "{name}: only {killed} of {} runs were killed",
            points()
        );
        series.backup();
    }
    series.finish();
}

#[test]
fn storage_faults_anywhere_leave_a_valid_repository() {
    let mut series = Series::new(0xfa17_5eed_0042);
    for name in COMMANDS {
        let mut failed = 0;
        for point in 0..points() {
            series.prepare();
            // Either every call fails with some probability, without retries (a failed
            // write, a lost reply to a write that was stored, a read cut short), or the
            // storage refuses every write after some number of them.
            let seed = series.rng.next();
            let plan = if point % 3 == 2 {
                format!("permanent-after-writes={},seed={seed}", seed % 16)
            } else {
                // A prune of a little new data makes few calls: fail them more often.
                let per_mille = if name == "prune" {
                    40 + seed % 300
                } else {
                    5 + seed % 120
                };
                format!("transient=0.{per_mille:03},lost-replies=0.5,seed={seed}")
            };
            let args = series.args(name, point);
            let out = series
                .env
                .cmd()
                .args(&args)
                .args(["--retries", "0", "--test-faults", &plan])
                .output()
                .unwrap();
            let code = out.status.code();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let what = format!("{name} {args:?} with {plan}");
            eprintln!("{what}: exit {code:?} {}", stderr.trim());
            // Success, or a clean failure that names what failed: never a panic.
            assert!(matches!(code, Some(0 | 1)), "{what}: {code:?} {stderr}");
            if code == Some(1) {
                failed += 1;
                assert!(stderr.contains("injected fault"), "{what}: {stderr}");
                assert_eq!(stderr.trim().lines().count(), 1, "{what}: {stderr}");
            }
            // A record the failed command could not remove (a lost reply to its
            // removal) belongs to a process that is gone: plain `unlock` removes it.
            series.env.ok(&["unlock"]);
            series.verify(&what);
        }
        assert!(
            failed * 4 >= points(),
            "{name}: only {failed} of {} runs failed",
            points()
        );
        series.backup();
    }
    series.finish();
}
