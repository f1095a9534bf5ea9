#!/usr/bin/env python3
"""Validate the Amazon States Language definitions in statemachine/.

Two checks per file:

* the JSON has no duplicate keys. ``JSON.parse`` and ``json.load`` both keep the last of two
  equal keys, so a copy-pasted state silently replaces its namesake; asl-validator cannot see it.
* asl-validator (npm, pinned in package-lock.json) accepts the definition: schema, state
  transitions and JSONPath expressions.

Usage: scripts/check_asl.py [FILE ...]   (default: statemachine/*.asl.json)
Exit status: 0 when every file passes, 1 when one fails, 2 when asl-validator is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"


def duplicate_keys(path: Path) -> list[str]:
    """Return ``"key (in object with keys ...)"`` for every key repeated within one JSON object."""
    found: list[str] = []

    def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                found.append(f"{key!r} (in the object with keys {sorted({k for k, _ in pairs})})")
            seen.add(key)
        return dict(pairs)

    json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=hook)
    return found


def run_validator(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VALIDATOR), "--json-path", str(path)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or sorted((ROOT / "statemachine").glob("*.asl.json"))
    if not files:
        print("check_asl: no statemachine/*.asl.json files found", file=sys.stderr)
        return 1
    if not VALIDATOR.exists():
        print(f"check_asl: {VALIDATOR} is missing; run `npm ci` (or `make install`)", file=sys.stderr)
        return 2
    failed = False
    for path in files:
        shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
        try:
            dups = duplicate_keys(path)
        except (OSError, ValueError) as exc:
            print(f"✕ {shown}: not readable JSON: {exc}")
            failed = True
            continue
        for dup in dups:
            print(f"✕ {shown}: duplicate key {dup}")
        result = run_validator(path)
        if result.returncode != 0:
            print((result.stdout + result.stderr).rstrip())
        failed |= bool(dups) or result.returncode != 0
        if not dups and result.returncode == 0:
            print(f"✓ {shown}: valid (asl-validator, no duplicate keys)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
