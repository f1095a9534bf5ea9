#!/usr/bin/env python3
"""Run mypy (strict, configured in pyproject.toml) over functions/, cli/ and tests/.

`mypy functions cli tests` cannot check the tests in one go: pytest's default import mode puts
every test directory without an __init__.py on sys.path, so tests/emulator/conftest.py and
tests/handlers/conftest.py are both the top-level module "conftest", and test modules import
their siblings that way (`from conftest import ...`). mypy refuses two modules of one name
("Duplicate module named ...").

So the test directories are split into as few mypy runs as possible such that no run holds two
top-level modules of the same name, which is exactly how pytest sees them. The first run also
checks the application sources; the later ones find them through MYPYPATH and report errors in
their own files only (--follow-imports=silent), so nothing is reported twice.

Usage: scripts/run_mypy.py [SOURCE ...]   (default: functions cli; tests/ is always added)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOTS = ("functions", "cli")  # where the application's top-level packages live


def top_level_names(path: Path) -> set[str]:
    """The module names a test directory's files get under pytest's prepend import mode."""
    if (path / "__init__.py").exists():
        return {path.name}
    return {p.stem for p in path.glob("*.py")} | {
        p.name for p in path.iterdir() if p.is_dir() and p.name != "__pycache__"
    }


def test_batches(tests: Path) -> list[list[Path]]:
    units = [
        p for p in sorted(tests.iterdir()) if p.is_dir() and p.name != "__pycache__" and any(p.rglob("*.py"))
    ]
    batches: list[tuple[list[Path], set[str]]] = []
    loose = sorted(tests.glob("*.py"))
    if loose:
        batches.append((list(loose), {p.stem for p in loose}))
    for unit in units:
        names = top_level_names(unit)
        for members, taken in batches:
            if not names & taken:
                members.append(unit)
                taken.update(names)
                break
        else:
            batches.append(([unit], set(names)))
    return [members for members, _ in batches]


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    sources = argv or list(PACKAGE_ROOTS)
    mypy = [sys.executable, "-m", "mypy"]
    batches = test_batches(Path("tests")) if Path("tests").is_dir() else []
    runs: list[tuple[list[str], dict[str, str]]] = [
        ([*sources, *map(str, batches[0] if batches else [])], dict(os.environ))
    ]
    path_env = dict(os.environ, MYPYPATH=os.pathsep.join(PACKAGE_ROOTS))
    # Its own cache: mypy invalidates cached modules checked under different options.
    silent = ["--follow-imports=silent", "--cache-dir", ".mypy_cache/follow-imports-silent"]
    runs += [([*silent, *map(str, batch)], path_env) for batch in batches[1:]]
    status = 0
    for args, env in runs:
        if len(runs) > 1:
            print(f"mypy {' '.join(args)}", flush=True)
        status = max(status, subprocess.run([*mypy, *args], env=env, check=False).returncode)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
