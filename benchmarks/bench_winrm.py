"""PowerShell: a kept runspace pool and a kept host process against one per command.

Everything runs against the PowerShell test servers on this machine
(trainlab.sandbox.winrm_server over HTTP on loopback, trainlab.sandbox.psrp_stdio
as the pwsh:// host), which run each script with /bin/sh. The figures measure
the protocol's round trips and a pool's or process's lifecycle, not PowerShell:
a real pwsh starts in 0.3-2 s and a real runspace pool opens in 0.1-1 s, so the
ratios on Windows are larger than these. Medians of --repeat calls of `echo hi`.

Patterns
  pypsrp Client.execute_ps        a runspace pool opened and closed per command
                                  (one kept WSMan connection), as pypsrp's Client does
  raw pypsrp kept pool            RunspacePool opened once, PowerShell(pool).invoke()
  kit winrm kept pool             trainlab.connect("winrm://...").run("echo hi")
  kit winrm fresh                 connect + run + close per command
  kit winrm batch of 10           run_many of 10 commands: one pipeline
  kit winrm ... NTLM              auth=negotiate (NTLM) with WinRM message encryption
  kit pwsh kept host              trainlab.connect("pwsh://").run("echo hi")
  kit pwsh process per command    connect + run + close: a host process per command

Run: python benchmarks/bench_winrm.py [--repeat 30] [--rtt 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from typing import Any

import _timing
from pypsrp.client import Client
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

import trainlab
from trainlab.sandbox.proxy import LatencyProxy
from trainlab.sandbox.psrp_stdio import PSRPStdioHost
from trainlab.sandbox.winrm_server import WinRMServer

median_ms = functools.partial(_timing.median_ms, warmup=3)


def measure_winrm(server: WinRMServer, port: int, repeat: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    credentials = {"username": server.user, "password": server.password}
    plain = {"ssl": False, "auth": "basic", "encryption": "never"}
    client = Client("127.0.0.1", port=port, **credentials, **plain)
    figures["pypsrp Client.execute_ps (pool per command)"] = median_ms(
        lambda: client.execute_ps("echo hi"), repeat
    )
    client.close()
    wsman = WSMan("127.0.0.1", port=port, **credentials, **plain)
    pool = RunspacePool(wsman, no_profile=True)
    pool.open()

    def raw_kept() -> object:
        ps = PowerShell(pool)
        ps.add_script("echo hi")
        return ps.invoke()

    figures["raw pypsrp kept pool"] = median_ms(raw_kept, repeat)
    pool.close()
    wsman.close()
    uri = f"winrm://{server.user}@127.0.0.1:{port}"
    options = server.client_options
    kit = trainlab.connect(uri, reuse=False, **options)
    figures["kit winrm kept pool"] = median_ms(lambda: kit.run("echo hi"), repeat)
    ten = ["echo hi"] * 10
    figures["kit winrm batch of 10 (batch)"] = median_ms(lambda: kit.run_many(ten), repeat)
    kit.close()

    def fresh() -> None:
        with trainlab.connect(uri, reuse=False, **options) as session:
            session.run("echo hi")

    figures["kit winrm fresh (connect + run + close)"] = median_ms(fresh, repeat)
    return figures


def measure_pwsh(repeat: int) -> dict[str, float]:
    options: dict[str, Any] = PSRPStdioHost().start().client_options
    kit = trainlab.connect("pwsh://", reuse=False, **options)
    figures = {"kit pwsh kept host": median_ms(lambda: kit.run("echo hi"), repeat)}
    kit.close()

    def per_command() -> None:
        with trainlab.connect("pwsh://", reuse=False, **options) as session:
            session.run("echo hi")

    figures["kit pwsh process per command"] = median_ms(per_command, repeat)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--rtt", type=float, default=10.0, help="ms; 0 skips the proxy run")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    repeat = max(10, args.repeat)
    results: dict[str, dict[str, float]] = {}
    with WinRMServer() as server:
        results["loopback"] = measure_winrm(server, server.port, repeat)
        if args.rtt > 0:
            with LatencyProxy("127.0.0.1", server.port, rtt=args.rtt / 1000) as proxy:
                results[f"{args.rtt:g} ms RTT"] = measure_winrm(server, proxy.port, repeat)
    with WinRMServer(auth="ntlm", allow_unencrypted=False) as sealed:
        kit = trainlab.connect(sealed.uri, reuse=False, **sealed.client_options)
        results["loopback"]["kit winrm kept pool, NTLM + message encryption"] = median_ms(
            lambda: kit.run("echo hi"), repeat
        )
        kit.close()
    results["loopback"].update(measure_pwsh(repeat))
    print("PowerShell test servers (/bin/sh behind PSRP), median ms of `echo hi`")
    _timing.print_columns("pattern", results)
    print()
    for column, fig in results.items():
        kept = fig["kit winrm kept pool"]
        print(f"[{column}]")
        print(
            "  pool per command (pypsrp Client) / kit kept pool: "
            f"{fig['pypsrp Client.execute_ps (pool per command)'] / kept:.1f}x"
        )
        print(f"  kit kept pool / raw pypsrp kept pool: {kept / fig['raw pypsrp kept pool']:.2f}")
        fresh = fig["kit winrm fresh (connect + run + close)"]
        print(f"  kit fresh / kit kept pool: {fresh / kept:.1f}x")
        print(f"  batch of 10 / one command: {fig['kit winrm batch of 10 (batch)'] / kept:.2f}")
        if column == "loopback":
            ratio = fig["kit pwsh process per command"] / fig["kit pwsh kept host"]
            print(f"  pwsh process per command / kept host: {ratio:.1f}x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
