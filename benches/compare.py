#!/usr/bin/env python3
"""Runs arca and its peers through the same steps, interleaved, and prints the table.

Called by benches/compare.sh, which installs the tools and prepares the corpora; see
there. Every step of one tool runs before the next tool starts; the order of the tools
rotates from run to run, so none is always first. Times are wall-clock seconds of the
tool's process, peak memory its maximum resident set (both from /usr/bin/time); sizes
are the bytes of the repository directory (du -sb).

Steps per tool and run, on a fresh repository:
  initial   back up the Linux tree
  unchanged back it up again, nothing changed
  small     append 2 KiB to every 100th file and add a new 100 MiB file, back it up
            (the stored growth is recorded as well); undone after the run
  restore   restore the latest snapshot into tmpfs; checked with diff -r, then removed
  check     read and verify all data (bupstash: `get` of the latest snapshot, which is
            what it has)
  shift     on a second repository: back up a 1 GiB file of binaries, then the same file
            with one byte inserted at 4096; the growth of the repository is recorded
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

MIB = 1 << 20
PASSWORD = "compare-bench"


def du(path):
    out = subprocess.run(["du", "-sb", path], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[0])


class Tool:
    """One peer: how to init, back up, restore and check; `self.env` for every call."""

    name = ""

    def __init__(self, work, args):
        self.work = work
        self.args = args
        self.env = dict(os.environ, XDG_CACHE_HOME=os.path.join(work, "cache"))
        self.snapshots = []

    def run(self, cmd, cwd=None, capture=False):
        """Runs cmd; returns (seconds, peak KiB, stdout)."""
        subprocess.run(["sync"], check=True)
        tfile = os.path.join(self.work, "time.out")
        full = ["/usr/bin/time", "-f", "%e %M", "-o", tfile] + cmd
        out = subprocess.run(
            full, cwd=cwd, env=self.env, check=False, text=True,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if out.returncode != 0:
            sys.exit(f"{self.name}: {' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
        with open(tfile) as f:
            secs, kib = f.read().split()[-2:]
        return float(secs), int(kib), out.stdout or ""

    def restored_root(self, into, source):
        return os.path.join(into, source.lstrip("/"))


class Arca(Tool):
    """With --arca-unlock secret (the default), each repository gets a generated secret
    after `init`, and every later command opens it with that, as the README advises for
    scheduled jobs (bupstash's key file is the same kind of setting); with `password`,
    every command derives the key from the password with Argon2id (32 MiB, ~0.15 s)."""

    name = "arca"

    def __init__(self, work, args):
        super().__init__(work, args)
        # No ARCA_PASSWORD: each command names what opens the repository.
        self.env.pop("ARCA_PASSWORD", None)
        self.env.pop("ARCA_PASSWORD_FILE", None)
        self.password = os.path.join(work, "password")
        with open(self.password, "w") as f:
            f.write(PASSWORD)
        self.bin = args.arca
        self.unlock = args.arca_unlock
        self.secrets = {}

    def version_cmd(self):
        return [self.bin, "--version"]

    def init(self, repo):
        self.run([self.bin, "init", "-q", "-r", repo, "--password-file", self.password])
        self.secrets.pop(repo, None)
        if self.unlock == "secret":
            secret = os.path.join(self.work, f"secret-{os.path.basename(repo)}")
            if os.path.exists(secret):
                os.remove(secret)
            self.run([self.bin, "key", "add", "-q", "-r", repo, "--password-file", self.password,
                      "--new-secret-file", secret])
            self.secrets[repo] = secret

    def opened(self, repo):
        """The options that open `repo`: its secret if it has one, else the password."""
        return ["-r", repo, "--password-file", self.secrets.get(repo, self.password)]

    def backup(self, repo, path):
        return self.run([self.bin, "backup", "-q", "--no-progress", *self.opened(repo), path])

    def restore(self, repo, into):
        return self.run([self.bin, "restore", "-q", "--no-progress", *self.opened(repo), "latest", "--target", into])

    def check(self, repo):
        return self.run([self.bin, "check", "-q", "--no-progress", "--read-data", *self.opened(repo)])


class Restic(Tool):
    name = "restic"

    def __init__(self, work, args):
        super().__init__(work, args)
        self.env["RESTIC_PASSWORD"] = PASSWORD

    def version_cmd(self):
        return ["restic", "version"]

    def init(self, repo):
        self.run(["restic", "init", "-q", "-r", repo])

    def backup(self, repo, path):
        return self.run(["restic", "backup", "-q", "-r", repo, path])

    def restore(self, repo, into):
        return self.run(["restic", "restore", "-q", "-r", repo, "latest", "--target", into])

    def check(self, repo):
        return self.run(["restic", "check", "-q", "--read-data", "-r", repo])


class Borg(Tool):
    name = "borg"

    def __init__(self, work, args):
        super().__init__(work, args)
        self.env["BORG_PASSPHRASE"] = PASSWORD
        self.env["BORG_BASE_DIR"] = os.path.join(work, "borg-base")

    def version_cmd(self):
        return ["borg", "--version"]

    def init(self, repo):
        self.run(["borg", "init", "-e", "repokey-blake2", repo])

    def backup(self, repo, path):
        name = f"a{len(self.snapshots)}"
        self.snapshots.append(name)
        return self.run(["borg", "create", f"{repo}::{name}", path])

    def restore(self, repo, into):
        return self.run(["borg", "extract", f"{repo}::{self.snapshots[-1]}"], cwd=into)

    def check(self, repo):
        return self.run(["borg", "check", "--verify-data", repo])


class Bupstash(Tool):
    name = "bupstash"

    def __init__(self, work, args):
        super().__init__(work, args)
        key = os.path.join(work, "bupstash.key")
        if not os.path.exists(key):
            subprocess.run(["bupstash", "new-key", "-o", key], check=True, env=self.env)
        self.env["BUPSTASH_KEY"] = key

    def version_cmd(self):
        return ["bupstash", "version"]

    def init(self, repo):
        self.run(["bupstash", "init", "-r", repo])

    def backup(self, repo, path):
        secs, kib, out = self.run(["bupstash", "put", "-q", "-r", repo, path], capture=True)
        self.snapshots.append(out.strip())
        return secs, kib, out

    def restore(self, repo, into):
        return self.run(["bupstash", "restore", "-r", repo, "--into", into, f"id={self.snapshots[-1]}"])

    def restored_root(self, into, source):
        return into

    def check(self, repo):
        return self.run(["sh", "-c", f'bupstash get -r "$0" id={self.snapshots[-1]} > /dev/null', repo])


TOOLS = {t.name: t for t in (Arca, Restic, Borg, Bupstash)}


class SmallChange:
    """Appends 2 KiB to every 100th file of the tree and adds a 100 MiB file; undoes it."""

    def __init__(self, source, big):
        files = []
        for root, dirs, names in os.walk(source):
            dirs.sort()
            for n in sorted(names):
                p = os.path.join(root, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    files.append(p)
        self.files = files[::100]
        self.sizes = {p: os.path.getsize(p) for p in self.files}
        self.new_file = os.path.join(source, "arca-compare-new.bin")
        self.big = big
        rng = random.Random(6)
        self.tail = rng.randbytes(1024).hex().encode()  # 2 KiB of text

    def apply(self):
        for p in self.files:
            with open(p, "ab") as f:
                f.write(self.tail)
        with open(self.big, "rb") as f, open(self.new_file, "wb") as out:
            f.seek(512 * MIB)
            out.write(f.read(100 * MIB))

    def undo(self):
        for p, size in self.sizes.items():
            os.truncate(p, size)
        if os.path.exists(self.new_file):
            os.remove(self.new_file)


def run_tool(tool, args, change, results, run):
    r = results.setdefault(tool.name, {})

    def record(key, value):
        r.setdefault(key, []).append(value)

    repo = os.path.join(tool.work, "repo")
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(os.path.join(tool.work, "cache"), ignore_errors=True)
    tool.snapshots = []
    tool.init(repo)
    secs, kib, _ = tool.backup(repo, args.source)
    record("initial", secs)
    record("initial_mem", kib)
    record("size", du(repo))
    secs, kib, _ = tool.backup(repo, args.source)
    record("unchanged", secs)
    record("unchanged_mem", kib)
    before = du(repo)
    change.apply()
    try:
        secs, kib, _ = tool.backup(repo, args.source)
        record("small", secs)
        record("small_mem", kib)
        record("small_stored", du(repo) - before)
        into = os.path.join(args.tmpfs, tool.name)
        shutil.rmtree(into, ignore_errors=True)
        os.makedirs(into)
        secs, kib, _ = tool.restore(repo, into)
        record("restore", secs)
        record("restore_mem", kib)
        root = tool.restored_root(into, args.source)
        diff = subprocess.run(["diff", "-r", "-q", root, args.source], capture_output=True, text=True)
        shutil.rmtree(into, ignore_errors=True)
        if diff.returncode != 0:
            sys.exit(f"{tool.name}: restore differs from the source:\n{diff.stdout[:2000]}{diff.stderr[:2000]}")
    finally:
        change.undo()
    secs, kib, _ = tool.check(repo)
    record("check", secs)
    record("check_mem", kib)
    shutil.rmtree(repo)

    shift_dir = os.path.join(tool.work, "shift")
    shutil.rmtree(shift_dir, ignore_errors=True)
    os.makedirs(shift_dir)
    data = os.path.join(shift_dir, "data.bin")
    shutil.copyfile(args.big, data)
    tool.snapshots = []
    tool.init(repo)
    tool.backup(repo, shift_dir)
    before = du(repo)
    shutil.copyfile(args.shifted, data)
    secs, kib, _ = tool.backup(repo, shift_dir)
    record("shift_stored", du(repo) - before)
    record("shift_mem", kib)
    shutil.rmtree(repo)
    shutil.rmtree(shift_dir)
    print(f"run {run} {tool.name}: " + ", ".join(f"{k} {v[-1]}" for k, v in r.items()), file=sys.stderr, flush=True)


# (key, row label, unit, goal: ratio to the best peer, or an absolute bound in MiB)
ROWS = [
    ("initial", "initial backup", "s", ("ratio", 0.75)),
    ("unchanged", "re-backup, nothing changed", "s", ("ratio", 1.0)),
    ("small", "re-backup, 1% of files appended + new 100 MiB file", "s", ("ratio", 0.75)),
    ("small_stored", "  stored by that re-backup", "MiB", ("ratio", 1.0)),
    ("restore", "full restore into tmpfs", "s", ("ratio", 0.7)),
    ("check", "check reading all data", "s", ("ratio", 1.0)),
    ("size", "repository size after first backup", "MiB", ("ratio", 1.0)),
    ("initial_mem", "peak memory, initial backup", "MiB", ("ratio", 1.0)),
    ("unchanged_mem", "peak memory, unchanged re-backup", "MiB", ("ratio", 1.0)),
    ("small_mem", "peak memory, small-change re-backup", "MiB", ("ratio", 1.0)),
    ("restore_mem", "peak memory, restore", "MiB", ("ratio", 1.0)),
    ("check_mem", "peak memory, check", "MiB", ("ratio", 1.0)),
    ("shift_stored", "stored growth, 1 byte inserted near the start of 1 GiB", "MiB", ("abs", 0.2)),
]


def scaled(key, values):
    if key.endswith("_mem"):
        return [v / 1024 for v in values]
    if key in ("size", "small_stored", "shift_stored"):
        return [v / MIB for v in values]
    return values


def fmt(values):
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.2f}"
    return f"{med:.2f} ({min(values):.2f}-{max(values):.2f})"


def table(results, tools):
    peers = [t for t in tools if t != "arca"]
    head = ["step (median, min-max)", *tools]
    if "arca" in tools and peers:
        head += ["best peer", "arca / best", "goal", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, unit, goal in ROWS:
        vals = {t: scaled(key, results[t][key]) for t in tools if key in results.get(t, {})}
        row = [f"{label} ({unit})"] + [fmt(vals[t]) if t in vals else "-" for t in tools]
        if "arca" in vals and peers:
            arca = statistics.median(vals["arca"])
            best = min((statistics.median(vals[t]), t) for t in peers if t in vals)
            ratio = arca / best[0] if best[0] > 0 else float("inf")
            kind, bound = goal
            met = (ratio if kind == "ratio" else arca) <= bound
            bound_text = f"<= {bound}x" if kind == "ratio" else f"<= {bound} {unit}"
            row += [f"{best[1]} {best[0]:.2f}", f"{ratio:.2f}", bound_text, "yes" if met else "no"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tools", default="arca bupstash restic borg")
    p.add_argument("--source", required=True)
    p.add_argument("--big", required=True)
    p.add_argument("--shifted", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--tmpfs", required=True)
    p.add_argument("--arca", required=True)
    p.add_argument("--arca-unlock", choices=("secret", "password"), default="secret")
    args = p.parse_args()
    tools = args.tools.split()
    for t in tools:
        if t not in TOOLS:
            sys.exit(f"unknown tool {t!r}; known: {' '.join(TOOLS)}")
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.tmpfs, exist_ok=True)
    change = SmallChange(args.source, args.big)
    change.undo()  # a run killed half-way leaves its change behind
    # Every tool reads the tree from the page cache.
    subprocess.run(["sh", "-c", 'find "$0" -type f -print0 | xargs -0 cat > /dev/null', args.source], check=True)
    instances = {}
    for t in tools:
        work = os.path.join(args.work, t)
        os.makedirs(work, exist_ok=True)
        instances[t] = TOOLS[t](work, args)
    results = {}
    started = time.time()
    for run in range(args.runs):
        k = run % len(tools)
        for t in tools[k:] + tools[:k]:
            run_tool(instances[t], args, change, results, run + 1)
    size = du(args.source)
    print(f"\nLinux tree: {args.source} ({size / MIB:.1f} MiB); {args.runs} runs in {time.time() - started:.0f} s;"
          f" versions: {versions(instances)}; arca unlocks with a {'generated secret' if args.arca_unlock == 'secret' else 'password (Argon2id)'}\n")
    print(table(results, tools))


def versions(instances):
    out = []
    for tool in instances.values():
        v = subprocess.run(tool.version_cmd(), capture_output=True, text=True).stdout.strip().splitlines()
        out.append(v[0] if v else tool.name)
    return "; ".join(out)


if __name__ == "__main__":
    main()
