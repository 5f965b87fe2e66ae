"""Output at any size: peak memory and time for 10 MB, 100 MB and 1 GB of output.

Each case runs ``head -c SIZE /dev/zero`` in a fresh Python process (so its peak RSS
is its own) on ``local://`` and on ``ssh://`` (a private OpenSSH sshd on loopback),
each in exec and shell mode, and on ``pwsh://`` and ``winrm://`` against the
PowerShell test servers:
  capped     the session's default max_output (64 MiB a stream, head and tail)
  uncapped   max_output=None, for 10 MB and 100 MB only (1 GB kept whole is the bug
             this bound exists for)
  raw        the raw library in the same run: paramiko's ``exec_command`` and
             ``stdout.read()`` for ssh, ``subprocess.run(capture_output=True)`` for local
             (both keep everything, so 10 MB and 100 MB only)
On the PowerShell transports the bytes go through ``fold -w 9999`` and the servers run
with ``lines=True``, so they arrive as about SIZE / 10 kB output records, as
PowerShell sends a native command's lines (a single object is received whole before
it can be capped). The servers speak PSRP (psrpcore) and run /bin/sh, not PowerShell;
the WSMan endpoint runs in a process of its own, so the child's RSS is the client's.
Reported per case: seconds for the run, and the growth of peak RSS over the process's
peak once the library was imported and connected. A last row times ``echo hi`` on the
kept bash shell (median per call), the fast path the capture sits on.
Run: python benchmarks/bench_output.py [--sizes 10,100,1000] [--targets local,ssh,psrp]
     [--psrp-sizes 10,100,1000] [--json FILE]
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
RAW_SSH = """
import json, resource, sys, time
import paramiko
uri, options, command = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
port = int(uri.rsplit(":", 1)[1])
client = paramiko.SSHClient()
client.load_host_keys(options["known_hosts"])
client.connect("127.0.0.1", port, username=uri.split("//")[1].split("@")[0],
               key_filename=options["key_file"], allow_agent=False, look_for_keys=False)
client.exec_command("true")[1].read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
_, stdout, _ = client.exec_command(command)
data = stdout.read()
took = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(took, (peak - base) * 1024, len(data), 0)
client.close()
"""
RAW_LOCAL = """
import resource, subprocess, sys, time
command = sys.argv[3]
subprocess.run(["true"])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
done = subprocess.run(["sh", "-c", command], capture_output=True)
took = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(took, (peak - base) * 1024, len(done.stdout), 0)
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
    name: str, target: tuple[str, dict[str, object]], size: int, cap: str, *, mode: str = ""
) -> dict[str, object]:
    """One run in a child process: seconds, peak RSS growth, bytes kept and dropped.

    ``name`` is local, ssh, pwsh or winrm; ``target`` its URI and options; ``mode`` the
    session's mode where it has one.
    """
    uri, options = target
    if mode:
        options = {**options, "mode": mode}
    command = f"head -c {size} /dev/zero"
    if name in ("pwsh", "winrm"):
        command += f" | tr '\\0' x | fold -w {RECORD}"
    code = CHILD if cap != "raw" else (RAW_SSH if name == "ssh" else RAW_LOCAL)
    done = subprocess.run(
        [sys.executable, "-c", code, uri, json.dumps(options), command, cap],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    took, grown, kept, dropped = done.stdout.split()
    return {
        "target": name,
        "mode": mode or "-",
        "output_mb": size / MB,
        "max_output": cap,
        "seconds": float(took),
        "peak_rss_growth_mb": int(grown) / MB,
        "kept_mb": int(kept) / MB,
        "dropped_mb": int(dropped) / MB,
    }


def caps(size: int) -> list[str]:
    return ["capped"] + (["uncapped"] if size <= 100 * MB else [])


def shell_cases(name: str, target: tuple[str, dict[str, object]], sizes: list[int]) -> list:
    """local:// or ssh:// in both modes, and the raw library beside them."""
    rows = []
    for size in sizes:
        for mode in ("exec", "shell"):
            rows += [case(name, target, size, cap, mode=mode) for cap in caps(size)]
        if size <= 100 * MB:
            rows.append(case(name, target, size, "raw"))
    return rows


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
            case(name, target, size, cap)
            for size in sizes
            for name, target in targets.items()
            for cap in caps(size)
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
    parser.add_argument("--targets", default="local,ssh,psrp", help="local, ssh and/or psrp")
    parser.add_argument("--psrp-sizes", default="10,100,1000", help="sizes on pwsh:// and winrm://")
    parser.add_argument("--repeat", type=int, default=3000, help="echo hi calls timed")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    sizes = [int(float(s) * MB) for s in args.sizes.split(",")]
    targets = args.targets.split(",")
    rows: list[dict[str, object]] = []
    with contextlib.ExitStack() as stack:
        if "local" in targets:
            rows += shell_cases("local", ("local://", {}), sizes)
        if "ssh" in targets:
            from trainlab.sandbox.sshd import SSHServer

            server = stack.enter_context(SSHServer(key_types=("ed25519",)))
            rows += shell_cases("ssh", (server.uri, server.client_options), sizes)
    psrp_sizes = [int(float(s) * MB) for s in args.psrp_sizes.split(",") if s]
    if "psrp" in targets and psrp_sizes:
        rows += powershell_cases(psrp_sizes)
    print(
        f"{'target':6} {'mode':6} {'output':>8} {'max_output':>10} {'seconds':>8} "
        f"{'peak RSS +':>11} kept"
    )
    for row in rows:
        print(
            f"{row['target']:6} {row['mode']:6} {row['output_mb']:>6.0f}MB "
            f"{row['max_output']:>10} {row['seconds']:>8.2f} {row['peak_rss_growth_mb']:>9.1f}MB "
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
