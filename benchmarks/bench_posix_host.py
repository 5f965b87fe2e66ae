"""The POSIX host against the bash host, side by side in one run.

Both are ``local://?mode=shell`` sessions; only ``shell=`` differs:
  bash            the bash host (read -N, $EPOCHREALTIME): the fast path
  dash (/bin/sh)  the POSIX host on this machine's /bin/sh
  busybox ash     the POSIX host on BusyBox's ash (a link named sh)
  mksh            the POSIX host on mksh
  bash as sh      the POSIX host on bash in POSIX mode (a link named sh)
Patterns, each timed per call with median and p95:
  echo hi             one plain command (runs in the host)
  cd / && echo hi     one command that needs a subshell
  batch of 10         run_many of 10 x "echo hi" (per batch)
  start + echo hi     a new session's first command (the host's start included)
Run: python benchmarks/bench_posix_host.py [--repeat N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

from _timing import blocks_samples, percentile_ms

import trainlab

BATCH = ["echo hi"] * 10


def shells(links: str) -> dict[str, str]:
    """Host name -> the ``shell=`` value that runs it (missing shells are left out)."""
    found = {"bash": "bash", "dash (/bin/sh)": "sh"}
    for name, executable, as_sh in (
        ("busybox ash", "busybox", True),
        ("mksh", "mksh", False),
        ("bash as sh", "bash", True),
    ):
        path = shutil.which(executable)
        if path is None:
            print(f"{name}: {executable} is not installed; left out")
            continue
        if as_sh:
            os.makedirs(os.path.join(links, executable))
            link = os.path.join(links, executable, "sh")
            os.symlink(path, link)
            path = link
        found[name] = path
    return found


def measure(shell: str, repeat: int) -> dict[str, list[float]]:
    session = trainlab.connect("local://", mode="shell", shell=shell, reuse=False)
    assert session.run("echo hi").stdout == "hi\n"
    assert [r.stdout for r in session.run_many(BATCH)] == ["hi\n"] * 10
    samples = blocks_samples(
        {
            "echo hi": lambda: session.run("echo hi"),
            "cd / && echo hi": lambda: session.run("cd / && echo hi"),
            "batch of 10": lambda: session.run_many(BATCH),
        },
        repeat,
    )
    session.close()

    def cold() -> None:
        fresh = trainlab.connect("local://", mode="shell", shell=shell, reuse=False)
        fresh.run("echo hi")
        fresh.close()

    samples.update(blocks_samples({"start + echo hi": cold}, max(20, repeat // 20), 20, 3))
    return samples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as links:
        for name, shell in shells(links).items():
            samples = measure(shell, args.repeat)
            figures[name] = {
                pattern: {
                    "median_ms": statistics.median(values) * 1e3,
                    "p95_ms": percentile_ms(values, 0.95),
                    "n": len(values),
                }
                for pattern, values in samples.items()
            }
    patterns = list(next(iter(figures.values())))
    width = max(len(n) for n in figures)
    starts = figures["bash"]["start + echo hi"]["n"]
    print(f"median / p95 ms per call (repeat {args.repeat}; starts {starts:.0f})")
    print(f"{'host':<{width}}  " + "  ".join(f"{p:>18}" for p in patterns))
    for name, row in figures.items():
        cells = "  ".join(f"{row[p]['median_ms']:8.3f} /{row[p]['p95_ms']:8.3f}" for p in patterns)
        print(f"{name:<{width}}  {cells}")
    bash = figures["bash"]
    print()
    for name, row in figures.items():
        if name == "bash":
            continue
        ratios = ", ".join(
            f"{p} {row[p]['median_ms'] / bash[p]['median_ms']:.2f}x" for p in patterns
        )
        print(f"{name} / bash (median): {ratios}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
