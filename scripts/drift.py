#!/usr/bin/env python3
"""Runs the test suite against the newest versions PyPI offers today, and says what moved.

The project tests and demos with requirements/lock.txt; a user who installs trainlab into
an environment of their own gets whatever is newest. This resolves that newest set in a
scratch folder (the lock is not touched), installs it into a scratch venv, runs the suite,
and prints which packages moved since the lock and which tests broke. When some broke, each
moved package is then tried alone on top of the lock against the failed tests, to name the
package that breaks them (bounded by --blame-seconds).

    python3 scripts/drift.py                  # the whole suite
    python3 scripts/drift.py -- -m 'not notebook' tests/unit
    python3 scripts/drift.py --keep           # keep the scratch folder to look into

Exit status: 0 when the suite passes on the newest versions (or nothing moved), 1 when it
breaks, 2 when it could not run. Standard library only: it makes its own environments.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*(.+))?$")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str | None = None


@dataclass(frozen=True)
class Move:
    name: str
    locked: str | None  # None: new in the newest set
    newest: str | None  # None: no longer needed

    def __str__(self) -> str:
        return f"{self.name} {self.locked or '(none)'} -> {self.newest or '(gone)'}"


def canonical(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str) -> list[Pin]:
    """The pins of a lock written by ``uv pip compile`` (``name==version ; marker`` lines)."""
    pins = []
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            name, version, marker = match.groups()
            pins.append(Pin(canonical(name), version, marker))
    return pins


def moves(locked: list[Pin], newest: list[Pin]) -> list[Move]:
    """The packages whose versions differ between two locks, by name.

    A package pinned twice under different markers (one version per Python range) compares
    as the set of its versions.
    """

    def versions(pins: list[Pin]) -> dict[str, str]:
        out: dict[str, set[str]] = {}
        for pin in pins:
            out.setdefault(pin.name, set()).add(pin.version)
        return {name: ", ".join(sorted(vs)) for name, vs in out.items()}

    old, new = versions(locked), versions(newest)
    return [
        Move(name, old.get(name), new.get(name))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]


def failures(junit_xml: Path) -> dict[str, str]:
    """Test id -> the first line of its failure or error, from pytest's JUnit XML."""
    out: dict[str, str] = {}
    if not junit_xml.exists():
        return out
    # The file is the one pytest just wrote in our own scratch folder.
    for case in ET.parse(junit_xml).getroot().iter("testcase"):  # noqa: S314
        for kind in ("failure", "error"):
            problem = case.find(kind)
            if problem is not None:
                module = case.get("classname", "").replace(".", "/")
                # classname is "tests.unit.test_x" or "tests.unit.test_x.TestClass".
                parts = module.split("/")
                path = "/".join(p for p in parts if not p[:1].isupper()) + ".py"
                klass = "".join(f"::{p}" for p in parts if p[:1].isupper())
                test_id = f"{path}{klass}::{case.get('name')}"
                message = (problem.get("message") or problem.text or kind).strip()
                out[test_id] = message.splitlines()[0][:200] if message else kind
                break
    return out


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, text=True, check=False, **kwargs)  # type: ignore[call-overload]


class Scratch:
    """A scratch venv that can be set to any lock, with trainlab installed editable."""

    def __init__(self, folder: Path, uv: str) -> None:
        self.folder = folder
        self.uv = uv
        self.python = folder / "venv" / "bin" / "python"
        made = run([uv, "venv", "--quiet", "--python", sys.executable, str(folder / "venv")])
        if made.returncode:
            raise SystemExit(2)

    def install(self, lock: Path) -> bool:
        synced = run([self.uv, "pip", "sync", "--quiet", "--python", str(self.python), str(lock)])
        if synced.returncode:
            return False
        python = str(self.python)
        editable = run(
            [self.uv, "pip", "install", "-q", "--no-deps", "--python", python, "-e", str(ROOT)]
        )
        return editable.returncode == 0

    def pytest(self, args: list[str], junit: Path, quiet: bool = False) -> int:
        argv = [str(self.python), "-m", "pytest", "-p", "no:cacheprovider"]
        argv += [f"--junitxml={junit}", *args]
        output = subprocess.DEVNULL if quiet else None
        child = subprocess.Popen(argv, cwd=ROOT, stdout=output, stderr=output)
        try:
            return child.wait()
        except BaseException:  # stopped: let the suite tear down (it removes its test users)
            child.terminate()
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.kill()
            raise


def compile_lock(output: Path, *options: str) -> bool:
    env = {**os.environ, "LOCK_OUTPUT": str(output)}
    done = run(["bash", str(ROOT / "scripts" / "lock"), *options], env=env, cwd=ROOT)
    return done.returncode == 0


def blame(
    scratch: Scratch,
    *,
    lock: Path,
    moved: list[Move],
    failed: list[str],
    folder: Path,
    budget: float,
) -> tuple[dict[str, list[str]], list[Move]]:
    """Each moved package alone on the lock: which of the failed tests does it break?"""
    deadline = time.monotonic() + budget
    found: dict[str, list[str]] = {}
    untried = [m for m in moved if m.newest and m.locked]
    for index, move in enumerate(list(untried)):
        if time.monotonic() > deadline:
            return found, untried[index:]
        one = folder / f"one-{move.name}.txt"
        shutil.copyfile(lock, one)  # uv keeps the output file's pins but the one upgraded
        print(f"  trying {move} alone ...", flush=True)
        if not compile_lock(one, "--upgrade-package", move.name) or not scratch.install(one):
            found[move.name] = ["(could not install it alone on the lock)"]
            continue
        junit = folder / f"junit-{move.name}.xml"
        if scratch.pytest(["-q", *failed], junit, quiet=True):
            found[move.name] = sorted(failures(junit)) or ["(pytest failed)"]
    return found, []


def report(moved: list[Move], broke: dict[str, str], blamed: dict[str, list[str]]) -> str:
    lines = ["", "| package | lock | newest | breaks |", "|---|---|---|---|"]
    for move in moved:
        tests = blamed.get(move.name, [])
        shown = ", ".join(tests[:3]) + (f" and {len(tests) - 3} more" if len(tests) > 3 else "")
        lines.append(f"| {move.name} | {move.locked or ''} | {move.newest or ''} | {shown} |")
    if broke:
        lines += ["", f"{len(broke)} tests fail on the newest versions, by first error line:"]
        by_message: dict[str, list[str]] = {}
        for test, message in sorted(broke.items()):
            by_message.setdefault(message, []).append(test)
        for message, tests in sorted(by_message.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"  {len(tests)} x {message}")
            lines += [f"      {test}" for test in tests[:5]]
            if len(tests) > 5:
                lines.append(f"      and {len(tests) - 5} more")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument(
        "--lock", type=Path, default=LOCK, help="the lock to compare with (default: the project's)"
    )
    parser.add_argument(
        "--blame-seconds",
        type=float,
        default=900,
        help="time allowed for trying moved packages one at a time (default 900)",
    )
    parser.add_argument("pytest_args", nargs="*", help="given to pytest (after --)")
    args = parser.parse_args(argv)

    uv = str(ROOT / ".venv" / "bin" / "uv")
    if not Path(uv).exists():
        uv = shutil.which("uv") or ""
    if not uv:
        print("drift needs uv: bash scripts/setup all,dev (it is in the dev extra)")
        return 2
    folder = Path(tempfile.mkdtemp(prefix="trainlab-drift-"))
    # A stop (SIGTERM, as `timeout` sends) still removes the scratch folder below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    try:
        newest = folder / "newest.txt"
        print("resolving the newest versions ...", flush=True)
        if not compile_lock(newest, "--upgrade"):
            return 2
        moved = moves(read_lock(args.lock.read_text()), read_lock(newest.read_text()))
        if not moved:
            print("nothing moved: the lock is the newest set today")
            return 0
        print(f"{len(moved)} packages moved since the lock:")
        print("\n".join(f"  {m}" for m in moved), flush=True)

        scratch = Scratch(folder, uv)
        if not scratch.install(newest):
            print("the newest set does not install; see above")
            return 2
        junit = folder / "junit.xml"
        code = scratch.pytest(args.pytest_args, junit)
        broke = failures(junit)
        if code == 0:
            print(report(moved, {}, {}))
            print(
                "\nthe suite passes on the newest versions: `bash scripts/lock --upgrade` is safe"
            )
            return 0
        print(f"\nthe suite breaks on the newest versions; trying the {len(moved)} moves alone")
        blamed, untried = blame(
            scratch,
            lock=args.lock,
            moved=moved,
            failed=sorted(broke),
            folder=folder,
            budget=args.blame_seconds,
        )
        print(report(moved, broke, blamed))
        if untried:
            print(f"\nout of time before trying: {', '.join(m.name for m in untried)}")
        elif broke and not blamed:
            print("\nno single package breaks them alone: it takes two moves together")
        return 1
    finally:
        if args.keep:
            print(f"\nscratch folder kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
