#!/usr/bin/env python3
"""Fails if a workspace crate depends on another in a direction ARCHITECTURE.md forbids,
if clap/anyhow leak out of the CLI, or if a crate opts out of the workspace lints."""
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ALLOWED = {
    "arca-chunker": set(),
    "arca-crypto": set(),
    "arca-backends": set(),
    "arca-repo": {"arca-crypto", "arca-backends"},
    "arca-core": {"arca-repo", "arca-chunker", "arca-crypto", "arca-backends"},
    "arca-cli": {"arca-core"},
    "arca-benches": {"arca-chunker", "arca-crypto", "arca-repo", "arca-core"},
    "arca-fuzz": {"arca-repo", "arca-crypto", "arca-chunker"},
}
CLI_ONLY = {"clap", "anyhow", "indicatif", "rpassword", "ctrlc"}


def packages(manifest):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--manifest-path", manifest],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["packages"]


errors = []
root = Path(__file__).resolve().parent.parent
for manifest in [root / "Cargo.toml", root / "fuzz" / "Cargo.toml"]:
    for pkg in packages(str(manifest)):
        name = pkg["name"]
        if name not in ALLOWED:
            errors.append(f"{name}: unknown workspace crate; add it to .ci/check-deps.py")
            continue
        for dep in pkg["dependencies"]:
            d = dep["name"]
            # A crate may dev-depend on itself (to test its own optional features).
            if d == name and dep.get("kind") == "dev":
                continue
            if d.startswith("arca-") and d not in ALLOWED[name]:
                errors.append(f"{name} -> {d}: not allowed (allowed: {sorted(ALLOWED[name]) or 'none'})")
            if d in CLI_ONLY and name != "arca-cli" and dep.get("kind") != "dev":
                errors.append(f"{name} -> {d}: only the CLI may depend on {d}")
        if name != "arca-fuzz":
            toml = tomllib.loads(Path(pkg["manifest_path"]).read_text())
            if toml.get("lints", {}).get("workspace") is not True:
                errors.append(f"{name}: must set [lints] workspace = true (unsafe_code = forbid)")

for e in errors:
    print(f"dependency check: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
