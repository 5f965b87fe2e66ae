"""Output at any size on local://: peak memory and time for 10 MB, 100 MB and 1 GB of output.

Each case runs ``head -c SIZE /dev/zero`` in a fresh Python process (so its peak RSS
is its own) on ``local://?mode=exec`` and ``local://?mode=shell``:
  capped     the session's default max_output (64 MiB a stream, head and tail)
  uncapped   max_output=None, for 10 MB and 100 MB only (1 GB kept whole is the bug
             this bound exists for)
Reported per case: seconds for the run, and the growth of peak RSS over the process's
peak once trainlab was imported and the session opened. A last pair of rows times
``echo hi`` on the kept bash shell (median per call), the fast path the capture sits on.
Run: python benchmarks/bench_output.py [--sizes 10,100,1000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

MB = 1_000_000
CHILD = """
import resource, sys, time
import trainlab
mode, size, cap = sys.argv[1], int(sys.argv[2]), sys.argv[3]
session = trainlab.connect(f"local://?mode={mode}", reuse=False)
session.run("true")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kwargs = {} if cap == "capped" else {"max_output": None}
t0 = time.perf_counter()
result = session.run(f"head -c {size} /dev/zero", timeout=300, **kwargs)
took = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(took, (peak - base) * 1024, len(result.stdout_bytes), result.stdout_dropped)
session.close()
"""


def case(mode: str, size: int, cap: str) -> dict[str, object]:
    """One run in a child process: seconds, peak RSS growth, bytes kept and dropped."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(size), cap],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    took, grown, kept, dropped = done.stdout.split()
    return {
        "mode": mode,
        "output_mb": size / MB,
        "max_output": cap,
        "seconds": float(took),
        "peak_rss_growth_mb": int(grown) / MB,
        "kept_mb": int(kept) / MB,
        "dropped_mb": int(dropped) / MB,
    }


def small_calls(repeat: int) -> dict[str, object]:
    """Median microseconds of ``echo hi`` on the kept bash shell."""
    import trainlab

    with trainlab.connect("local://?mode=shell&shell=bash", reuse=False) as session:
        for _ in range(200):
            session.run("echo hi")
        samples = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            session.run("echo hi")
            samples.append(time.perf_counter() - t0)
    return {"pattern": "echo hi (kept bash)", "median_us": statistics.median(samples) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="output sizes in MB")
    parser.add_argument("--repeat", type=int, default=3000, help="echo hi calls timed")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    sizes = [int(float(s) * MB) for s in args.sizes.split(",")]
    rows = []
    for size in sizes:
        for mode in ("exec", "shell"):
            caps = ["capped"] + (["uncapped"] if size <= 100 * MB else [])
            for cap in caps:
                rows.append(case(mode, size, cap))
    print(f"{'mode':6} {'output':>8} {'max_output':>10} {'seconds':>8} {'peak RSS +':>11} kept")
    for row in rows:
        print(
            f"{row['mode']:6} {row['output_mb']:>6.0f}MB {row['max_output']:>10} "
            f"{row['seconds']:>8.2f} {row['peak_rss_growth_mb']:>9.1f}MB "
            f"{row['kept_mb']:.1f} MB (dropped {row['dropped_mb']:.1f} MB)"
        )
    small = small_calls(args.repeat)
    print(f"{small['pattern']}: median {small['median_us']:.0f} us per call")
    print(f"(this process's peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KiB)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "small": small}, handle, indent=2)


if __name__ == "__main__":
    main()
