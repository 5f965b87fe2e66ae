"""Output at any size: peak memory and time for 10 MB, 100 MB and 1 GB of output.

Each case runs ``head -c SIZE /dev/zero`` in a fresh Python process (so its peak RSS
is its own) on ``local://?mode=exec`` and ``local://?mode=shell``, and on ``pwsh://``
and ``winrm://`` against the PowerShell test servers (``--psrp-sizes``, 10 MB, 100 MB
and 1 GB by default):
  capped     the session's default max_output (64 MiB a stream, head and tail)
  uncapped   max_output=None, for 10 MB and 100 MB only (1 GB kept whole is the bug
             this bound exists for)
On the PowerShell transports the bytes go through ``fold -w 9999`` and the servers run
with ``lines=True``, so they arrive as about SIZE / 10 kB output records, as
PowerShell sends a native command's lines (a single object is received whole before
it can be capped). The servers speak PSRP (psrpcore) and run /bin/sh, not PowerShell;
the WSMan endpoint runs in a process of its own, so the child's RSS is the client's.
Reported per case: seconds for the run, and the growth of peak RSS over the process's
peak once trainlab was imported and the session opened. A last pair of rows times
``echo hi`` on the kept bash shell (median per call), the fast path the capture sits on.
Run: python benchmarks/bench_output.py [--sizes 10,100,1000] [--psrp-sizes 10,100,1000]
     [--json FILE]
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
import json, resource, sys, time
import trainlab
uri, options, command, cap = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
session = trainlab.connect(uri, reuse=False, **options)
session.run("true")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kwargs = {} if cap == "capped" else {"max_output": None}
t0 = time.perf_counter()
result = session.run(command, timeout=300, **kwargs)
took = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(took, (peak - base) * 1024, len(result.stdout_bytes), result.stdout_dropped)
session.close()
"""
# The WSMan test endpoint in a process of its own: prints its URI and client options.
WINRM_SERVER = """
import json, sys
from trainlab.sandbox.winrm_server import WinRMServer
with WinRMServer(lines=True) as server:
    print(json.dumps([server.uri, server.client_options]), flush=True)
    sys.stdin.read()
"""
RECORD = 9999  # bytes per line, so per output record, on the PowerShell transports


def case(
    mode: str, size: int, cap: str, target: tuple[str, dict[str, object]] | None = None
) -> dict[str, object]:
    """One run in a child process: seconds, peak RSS growth, bytes kept and dropped.

    ``target`` is a PowerShell target (URI and options); None runs on local:// in ``mode``.
    """
    if target is None:
        uri, options = f"local://?mode={mode}", {}
        command = f"head -c {size} /dev/zero"
    else:
        uri, options = target
        command = f"head -c {size} /dev/zero | tr '\\0' x | fold -w {RECORD}"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, uri, json.dumps(options), command, cap],
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


def powershell_cases(sizes: list[int]) -> list[dict[str, object]]:
    """The cases on pwsh:// (its test host a subprocess) and winrm:// (the endpoint
    in a process of its own), both sending each line as a record."""
    from trainlab.sandbox.psrp_stdio import PSRPStdioHost

    server = subprocess.Popen(
        [sys.executable, "-c", WINRM_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if server.stdout is None:  # pragma: no cover - stdout is a pipe
            raise RuntimeError("the WinRM test server started without its output pipe")
        uri, options = json.loads(server.stdout.readline())
        targets = {
            "pwsh": ("pwsh://", dict(PSRPStdioHost(lines=True).start().client_options)),
            "winrm": (uri, options),
        }
        return [
            case(name, size, cap, target)
            for size in sizes
            for name, target in targets.items()
            for cap in ["capped"] + (["uncapped"] if size <= 100 * MB else [])
        ]
    finally:
        server.communicate("", timeout=30)  # EOF on its stdin ends it


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
    parser.add_argument("--psrp-sizes", default="10,100,1000", help="sizes on pwsh:// and winrm://")
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
    psrp_sizes = [int(float(s) * MB) for s in args.psrp_sizes.split(",") if s]
    if psrp_sizes:
        rows += powershell_cases(psrp_sizes)
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
