"""PowerShell remoting over SSH (pwsh+ssh://) beside WinRM (winrm://), on the test servers.

sshd runs the PSRP test host (trainlab.sandbox.psrp_stdio) as its `powershell`
subsystem, where a real host runs `pwsh -sshs`; the WSMan endpoint is
trainlab.sandbox.winrm_server. Both run each script with /bin/sh: the figures
measure PSRP's framing over an SSH channel and over WSMan/HTTP, the connections' and
pools' lifecycles and the round trips, not PowerShell (a real pwsh starts in
0.3-2 s and a real runspace pool opens in 0.1-1 s, so the per-command patterns cost
far more on a real host). Medians of --repeat calls of `echo hi`.

Patterns
  kit pwsh+ssh kept                one SSH connection, one subsystem channel, one pool
  kit pwsh+ssh batch of 10         run_many of 10 commands: one pipeline (whole batch)
  kit pwsh+ssh fresh               connect + run + close: SSH login, subsystem, pool per command
  kit winrm kept pool              trainlab.connect("winrm://...").run("echo hi")
  pypsrp Client.execute_ps         a runspace pool opened and closed per command
                                   (one kept WSMan connection)
  kit winrm fresh                  connect + run + close per command
  kit ssh exec (no PowerShell)     ssh:// on the same sshd, for scale

Round trips: the same patterns through a relay that holds the server's bytes until
it is quiet (trainlab.sandbox.proxy.RoundTripCounter) count the round trips each
command waits for, with no clock.

Run: python benchmarks/bench_pwsh_ssh.py [--repeat 30] [--rtt 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import _timing
from pypsrp.client import Client

import trainlab
from trainlab.sandbox.proxy import LatencyProxy, RoundTripCounter
from trainlab.sandbox.psrp_stdio import sshd_subsystem
from trainlab.sandbox.sshd import SSHServer
from trainlab.sandbox.winrm_server import WinRMServer

median_ms = functools.partial(_timing.median_ms, warmup=3)
TEN = ["echo hi"] * 10


@contextlib.contextmanager
def patterns(
    sshd: SSHServer, ssh_port: int, winrm: WinRMServer, winrm_port: int
) -> Iterator[dict[str, Callable[[], object]]]:
    """Every pattern's call, against the servers at these ports (direct or relayed)."""
    sessions: list[trainlab.Session] = []
    ssh_uri = f"pwsh+ssh://{sshd.user}@127.0.0.1:{ssh_port}"
    ssh_options = dict(sshd.client_options)
    winrm_uri = f"winrm://{winrm.user}@127.0.0.1:{winrm_port}"
    winrm_options = dict(winrm.client_options)

    def kept(uri: str, options: dict[str, Any]) -> trainlab.Session:
        session = trainlab.connect(uri, reuse=False, **options)
        session.run("true")
        sessions.append(session)
        return session

    def fresh(uri: str, options: dict[str, Any]) -> Callable[[], object]:
        def call() -> None:
            with trainlab.connect(uri, reuse=False, **options) as session:
                session.run("echo hi")

        return call

    pwsh = kept(ssh_uri, ssh_options)
    win = kept(winrm_uri, winrm_options)
    ssh = kept(f"ssh://{sshd.user}@127.0.0.1:{ssh_port}", ssh_options)
    client = Client(
        "127.0.0.1",
        port=winrm_port,
        username=winrm.user,
        password=winrm.password,
        ssl=False,
        auth="basic",
        encryption="never",
    )
    try:
        yield {
            "kit pwsh+ssh kept": lambda: pwsh.run("echo hi"),
            "kit pwsh+ssh batch of 10 (whole batch)": lambda: pwsh.run_many(TEN),
            "kit pwsh+ssh fresh (connect + run + close)": fresh(ssh_uri, ssh_options),
            "kit winrm kept pool": lambda: win.run("echo hi"),
            "kit winrm batch of 10 (whole batch)": lambda: win.run_many(TEN),
            "pypsrp Client.execute_ps (pool per command)": lambda: client.execute_ps("echo hi"),
            "kit winrm fresh (connect + run + close)": fresh(winrm_uri, winrm_options),
            "kit ssh exec (no PowerShell, for scale)": lambda: ssh.run("echo hi"),
        }
    finally:
        client.close()
        for session in sessions:
            session.close()


def measure(
    sshd: SSHServer, ssh_port: int, winrm: WinRMServer, port: int, repeat: int
) -> dict[str, float]:
    with patterns(sshd, ssh_port, winrm, port) as calls:
        return {name: median_ms(call, repeat) for name, call in calls.items()}


def round_trips(sshd: SSHServer, winrm: WinRMServer) -> dict[str, float]:
    """Round trips each pattern's call waits for, counted by relays (no clock)."""
    counts: dict[str, float] = {}
    with (
        RoundTripCounter("127.0.0.1", sshd.port) as ssh_relay,
        RoundTripCounter("127.0.0.1", winrm.port) as winrm_relay,
    ):
        sshd.trust(("127.0.0.1", ssh_relay.port))
        with patterns(sshd, ssh_relay.port, winrm, winrm_relay.port) as calls:
            for name, call in calls.items():
                call()  # settles a kept session's first-call work
                before = sum(ssh_relay.flights) + sum(winrm_relay.flights)
                call()
                counts[name] = sum(ssh_relay.flights) + sum(winrm_relay.flights) - before
    return counts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--rtt", type=float, default=10.0, help="ms; 0 skips the proxy run")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    repeat = max(10, args.repeat)
    results: dict[str, dict[str, float]] = {}
    with SSHServer(config=sshd_subsystem()) as sshd, WinRMServer() as winrm:
        results["loopback"] = measure(sshd, sshd.port, winrm, winrm.port, repeat)
        if args.rtt > 0:
            rtt = args.rtt / 1000
            with (
                LatencyProxy("127.0.0.1", sshd.port, rtt=rtt) as ssh_proxy,
                LatencyProxy("127.0.0.1", winrm.port, rtt=rtt) as winrm_proxy,
            ):
                sshd.trust(("127.0.0.1", ssh_proxy.port))
                column = f"{args.rtt:g} ms RTT"
                results[column] = measure(
                    sshd, ssh_proxy.port, winrm, winrm_proxy.port, max(10, repeat // 2)
                )
        results["round trips"] = round_trips(sshd, winrm)
    print("PowerShell test servers (/bin/sh behind PSRP), median ms of `echo hi`;")
    print("round trips: what one call waits for, counted by a relay")
    _timing.print_columns("pattern", results)
    print()
    for column, fig in results.items():
        if column == "round trips":
            continue
        kept = fig["kit pwsh+ssh kept"]
        print(f"[{column}]")
        print(f"  pwsh+ssh kept / winrm kept pool: {kept / fig['kit winrm kept pool']:.2f}")
        fresh = fig["kit pwsh+ssh fresh (connect + run + close)"]
        print(f"  pwsh+ssh fresh / kept: {fresh / kept:.1f}x")
        print(
            "  pool per command (pypsrp Client) / pwsh+ssh kept: "
            f"{fig['pypsrp Client.execute_ps (pool per command)'] / kept:.1f}x"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
