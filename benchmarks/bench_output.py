"""Output at any size: peak memory and time for 10 MB, 100 MB and 1 GB of output.

Each case runs ``head -c SIZE /dev/zero`` in a fresh Python process (so its peak RSS
is its own) on ``local://`` and on ``ssh://`` (a private OpenSSH sshd on loopback),
each in exec and shell mode:
  capped     the session's default max_output (64 MiB a stream, head and tail)
  uncapped   max_output=None, for 10 MB and 100 MB only (1 GB kept whole is the bug
             this bound exists for)
  raw        the raw library in the same run: paramiko's ``exec_command`` and
             ``stdout.read()`` for ssh, ``subprocess.run(capture_output=True)`` for local
             (both keep everything, so 10 MB and 100 MB only)
Reported per case: seconds for the run, and the growth of peak RSS over the process's
peak once the library was imported and connected. A last row times ``echo hi`` on the
kept bash shell (median per call), the fast path the capture sits on.
Run: python benchmarks/bench_output.py [--sizes 10,100,1000] [--targets local,ssh] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
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
uri, mode, size, cap, options = sys.argv[1:6]
size = int(size)
session = trainlab.connect(uri, reuse=False, mode=mode, **json.loads(options))
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
RAW_SSH = """
import json, resource, sys, time
import paramiko
uri, mode, size, cap, options = sys.argv[1:6]
size, options = int(size), json.loads(options)
port = int(uri.rsplit(":", 1)[1])
client = paramiko.SSHClient()
client.load_host_keys(options["known_hosts"])
client.connect("127.0.0.1", port, username=uri.split("//")[1].split("@")[0],
               key_filename=options["key_file"], allow_agent=False, look_for_keys=False)
client.exec_command("true")[1].read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
_, stdout, _ = client.exec_command(f"head -c {size} /dev/zero")
data = stdout.read()
took = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(took, (peak - base) * 1024, len(data), 0)
client.close()
"""
RAW_LOCAL = """
import resource, subprocess, sys, time
size = int(sys.argv[3])
subprocess.run(["true"])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
done = subprocess.run(["sh", "-c", f"head -c {size} /dev/zero"], capture_output=True)
took = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(took, (peak - base) * 1024, len(done.stdout), 0)
"""


def case(
    target: str, uri: str, mode: str, size: int, cap: str, *, options: dict[str, object]
) -> dict[str, object]:
    """One run in a child process: seconds, peak RSS growth, bytes kept and dropped."""
    code = CHILD if cap != "raw" else (RAW_SSH if target == "ssh" else RAW_LOCAL)
    done = subprocess.run(
        [sys.executable, "-c", code, uri, mode, str(size), cap, json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    took, grown, kept, dropped = done.stdout.split()
    return {
        "target": target,
        "mode": mode if cap != "raw" else "-",
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
    parser.add_argument("--targets", default="local,ssh", help="local, ssh or both")
    parser.add_argument("--repeat", type=int, default=3000, help="echo hi calls timed")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    sizes = [int(float(s) * MB) for s in args.sizes.split(",")]
    targets = args.targets.split(",")
    rows = []
    with contextlib.ExitStack() as stack:
        where: dict[str, tuple[str, dict[str, object]]] = {"local": ("local://", {})}
        if "ssh" in targets:
            from trainlab.sandbox.sshd import SSHServer

            server = stack.enter_context(SSHServer(key_types=("ed25519",)))
            where["ssh"] = (server.uri, server.client_options)
        for target in targets:
            uri, options = where[target]
            for size in sizes:
                for mode in ("exec", "shell"):
                    caps = ["capped"] + (["uncapped"] if size <= 100 * MB else [])
                    for cap in caps:
                        rows.append(case(target, uri, mode, size, cap, options=options))
                if size <= 100 * MB:
                    rows.append(case(target, uri, "exec", size, "raw", options=options))
    print(
        f"{'target':6} {'mode':6} {'output':>8} {'max_output':>10} {'seconds':>8} "
        f"{'peak RSS +':>11} kept"
    )
    for row in rows:
        print(
            f"{row['target']:6} {row['mode']:6} {row['output_mb']:>6.0f}MB {row['max_output']:>10} "
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
