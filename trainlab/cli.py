"""The ``trainlab`` command: ``demo``, ``run``, ``fleet``, ``bench`` and ``inventory``.

``trainlab demo`` needs no infrastructure: it measures this machine through the
kit (a process per command, a kept shell, a batch, the cache), then starts the
sandbox (an SSH server, moto's AWS with SSM, an HTTPS API, on 127.0.0.1) and
measures each near and 20 ms away, prints the table and writes ``report.html``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import trainlab
from trainlab.arguments import add_fleet_arguments, fleet_from_arguments
from trainlab.errors import TrainlabError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trainlab`` console script; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="trainlab", description="Explore infrastructure over kept-alive sessions."
    )
    sub = parser.add_subparsers(dest="action", required=True)

    demo = sub.add_parser("demo", help="benchmark the kit on targets it needs nothing for")
    demo.add_argument("--repeat", type=int, default=50, help="timed calls per strategy")
    demo.add_argument("--markdown", action="store_true", help="print Markdown instead")
    demo.add_argument("--report", default="report.html", help="HTML report to write ('' for none)")

    run = sub.add_parser("run", help="run one command on a target")
    run.add_argument("uri", help="target, e.g. local:// or local://?mode=shell")
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command line")
    run.add_argument("--timeout", type=float, default=None, help="deadline in seconds")

    fleet = sub.add_parser(
        "fleet",
        help="run commands on many targets at once",
        description="Targets from URIs, an Ansible inventory (--ansible) or an OpenSSH "
        "config (--ssh-config), as %train fleet takes them.",
    )
    add_fleet_arguments(fleet)
    fleet.add_argument(
        "-c", "--command", action="append", required=True, help="repeatable: one batch per target"
    )
    fleet.add_argument("--markdown", action="store_true", help="print Markdown instead")

    bench = sub.add_parser("bench", help="compare strategies on a target")
    bench.add_argument("uri")
    bench.add_argument("-c", "--command", action="append", required=True, help="repeatable")
    bench.add_argument("--repeat", type=int, default=30)
    bench.add_argument("--warmup", type=int, default=3)
    bench.add_argument(
        "--strategies",
        default=",".join(trainlab.bench.STRATEGIES),
        help="comma-separated: " + ", ".join(trainlab.bench.STRATEGIES),
    )
    bench.add_argument("--markdown", action="store_true", help="print Markdown instead")
    bench.add_argument("--report", default="", help="also write a self-contained HTML report")

    inventory = sub.add_parser("inventory", help="EC2 instances as a table")
    inventory.add_argument(
        "--region", action="append", default=[], help="repeatable; 'all' for every region"
    )
    inventory.add_argument("--filter", action="append", default=[], help="NAME=VALUE, repeatable")
    inventory.add_argument("--profile", default=None, help="AWS profile")
    inventory.add_argument("--endpoint-url", default=None, help="another endpoint (moto)")
    inventory.add_argument("--csv", action="store_true", help="print CSV instead of a table")

    args = parser.parse_args(argv)
    try:
        if args.action == "demo":
            return _demo(args.repeat, args.markdown, args.report)
        if args.action == "run":
            return _run(args.uri, args.command, args.timeout)
        if args.action == "inventory":
            return _inventory(args)
        if args.action == "fleet":
            return _fleet(args)
        return _bench(args)
    except TrainlabError as exc:
        print(f"trainlab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trainlab: interrupted", file=sys.stderr)
        return 130
    finally:
        trainlab.close_all()


DEMO_COMMANDS = {
    "ssh": ["true", "uname -r"],
    "aws": ["true", "uname -r"],  # through SSM Run Command on a moto instance
    "rest": ["GET /devices/", "GET /time"],
    "winrm": ["echo hi", "hostname"],  # the WSMan test endpoint (NTLM, encrypted)
    "pwsh": ["echo hi", "hostname"],  # the out-of-process PowerShell test host
}
NEAR_ONLY = {"pwsh"}  # a local process: no round trip to slow
DEMO_RTTS = (0.0, 0.020)


def _demo(repeat: int, markdown: bool, report: str = "") -> int:
    from trainlab.sandbox.lab import Sandbox

    session = trainlab.connect("local://?mode=shell")
    platform = session.platform
    print(
        f"trainlab {trainlab.__version__} demo on {platform.pretty_name or platform.name} "
        f"({platform.arch}): the local machine, then a sandbox of SSH, AWS, REST and "
        f"PowerShell servers on 127.0.0.1, near and {DEMO_RTTS[-1] * 1000:.0f} ms away\n"
    )
    local = trainlab.bench.compare(
        "local://",
        ["true", "uname -r", "cat /etc/hostname"],
        repeat=repeat,
        warmup=5,
        label="local",
    )
    _print_bench(local, markdown)
    results = [local]
    with Sandbox(instances=20, ssh_ports=FLEET_TARGETS // 4) as lab:
        if lab.ssh_kind:
            print(f"\nsandbox SSH server: {lab.ssh_kind}")
        for part, reason in lab.missing.items():
            print(f"\n{part}: left out, {reason}")
        for rtt in DEMO_RTTS:
            for part, commands in DEMO_COMMANDS.items():
                if part in lab.missing or (rtt and part in NEAR_ONLY):
                    continue
                uri, options = lab.target(part, rtt=rtt)
                label = f"{part} +{rtt * 1000:.0f} ms"
                print(f"\n{label}: {uri}")
                times = max(5, repeat // (10 if part == "aws" else 5 if rtt else 2))
                result = trainlab.bench.compare(
                    uri, commands, repeat=times, warmup=2, label=label, **options
                )
                if part == "aws":
                    result.notes.append(
                        "ssm:// keeps no connection: fresh and reused differ only by a session"
                    )
                if part == "ssh" and not rtt:
                    result.notes.append(_ssh_round_trips(uri, options))
                if part in ("winrm", "pwsh"):
                    result.notes.append(
                        "a PowerShell test server that runs scripts with /bin/sh: the protocol "
                        "and the session lifecycle are real, PowerShell's own start-up cost is not"
                    )
                _print_bench(result, markdown)
                results.append(result)
        if "ssh" not in lab.missing and lab.ssh_kind == "OpenSSH":
            fleet = _demo_fleet(lab, max(3, repeat // 10))
            _print_bench(fleet, markdown)
            results.append(fleet)
    print("\nSummary (median ms per command; speedup over a fresh connection per command)\n")
    table = trainlab.bench.overview(results)[["median_ms", "p95_ms", "speedup"]]
    if markdown:
        print(trainlab.bench.markdown_table(table.reset_index()))
    else:
        import pandas as pd

        with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
            print(table.to_string())
    print()
    for line in _headlines(results):
        print(line)
    if report:
        from trainlab.report import to_html

        to_html(results, report)
        print(f"\nReport: {report} (self-contained HTML: tables, plots, environment)")
    return 0


FLEET_TARGETS = 24


def _ssh_round_trips(uri: str, options: dict[str, Any]) -> str:
    """How many round trips a cold and a warm SSH command wait for, counted by a relay."""
    from trainlab.sandbox.proxy import RoundTripCounter
    from trainlab.uri import parse_target

    target = parse_target(uri)
    with RoundTripCounter(target.host, target.port or 22) as relay:
        session = trainlab.connect(
            f"ssh://{target.user}@127.0.0.1:{relay.port}", mode="shell", reuse=False, **options
        )
        try:
            session.run("true")
            cold = relay.flights[-1]
            session.run("true")
            warm = relay.flights[-1] - cold
        finally:
            session.close()
    return (
        f"round trips waited for (counted by a relay, no clock): {cold} for a cold command "
        f"(connect, log in, run), {warm} for a warm one in shell mode"
    )


def _demo_fleet(lab: Any, repeat: int) -> trainlab.bench.BenchResult:
    """``hostname`` on 24 distinct SSH targets at once: a cold fan-out against a warm one."""
    from datetime import UTC, datetime

    uris = lab.fleet_uris(FLEET_TARGETS)
    _, options = lab.target("ssh")
    label = f"fleet of {FLEET_TARGETS} (ssh +0 ms)"
    print(f"\n{label}: hostname on {FLEET_TARGETS} targets at once, cold and warm")
    started = datetime.now(UTC)
    fleet = trainlab.Fleet(uris, progress=False, connect_retries=0, **options)

    def fan_out() -> None:
        fleet.run("hostname").raise_for_errors()

    # Cold: every connection opened by the fan-out (closed after each, untimed).
    rows = trainlab.bench.time_calls(
        "fresh",
        "hostname",
        fan_out,
        repeat=repeat,
        per=FLEET_TARGETS,
        after=lambda _: fleet.close(),
    )
    fleet.run("true").raise_for_errors()  # warm: every connection open first
    rows += trainlab.bench.time_calls(
        "reused", "hostname", fan_out, repeat=repeat * 3, per=FLEET_TARGETS
    )
    fleet.close()
    return trainlab.bench.BenchResult(
        target=uris[0],
        commands=["hostname"],
        timings=trainlab.bench.timings_frame(rows),
        started=started,
        repeat=repeat,
        warmup=0,
        notes=[
            f"per target: a whole fan-out's wall time over {FLEET_TARGETS} targets; fresh "
            "opens every connection (cold), reused finds them open (warm)"
        ],
        label=label,
    )


def _headlines(results: list[trainlab.bench.BenchResult]) -> list[str]:
    """One sentence per result: what reuse, a kept shell and the cache saved."""
    lines = []
    for result in results:
        median = {str(k): float(v) for k, v in result.summary["median_ms"].items()}
        kept = median.get("shell", median.get("reused"))
        if kept is None:
            continue
        parts = [f"{result.title}: kept {kept:.2f} ms"]
        if "fresh" in median:
            parts.append(f"fresh {median['fresh']:.2f} ms ({median['fresh'] / kept:.1f}x)")
        if "batched" in median:
            parts.append(f"batched {median['batched']:.2f} ms/command")
        if "cached" in median:
            parts.append(f"cached {median['cached'] * 1000:.0f} us")
        lines.append(", ".join(parts))
    return lines


def _run(uri: str, command: list[str], timeout: float | None) -> int:
    if not command:
        print("trainlab: give a command after the target", file=sys.stderr)
        return 2
    text = command[0] if len(command) == 1 else " ".join(command)
    result = trainlab.connect(uri).run(text, timeout=timeout)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.exit_status


def _inventory(args: argparse.Namespace) -> int:
    from trainlab.aws.inventory import parse_query

    regions, filters = parse_query(args.region, args.filter)
    frame = trainlab.aws.ec2_inventory(
        regions=regions, filters=filters, profile=args.profile, endpoint_url=args.endpoint_url
    )
    if args.csv:
        sys.stdout.write(frame.to_csv(index=False))
    else:
        import pandas as pd

        with pd.option_context("display.width", 160, "display.max_rows", 500):
            print(frame.to_string(index=False))
        print(f"{len(frame)} instances")
    return 0


def _fleet(args: argparse.Namespace) -> int:
    """One row per target and command; exit status 1 when any failed."""
    fleet = fleet_from_arguments(args)
    commands: list[str] = args.command
    if len(commands) == 1:
        result = fleet.run(commands[0])
    else:
        result = fleet.run_many(commands)
    frame = result.frame
    frame["stdout"] = frame["stdout"].str.rstrip("\n").where(frame["error"] == "", frame["error"])
    shown = frame[["target", "command", "exit_status", "duration_s", "stdout"]]
    if args.markdown:
        print(trainlab.bench.markdown_table(shown))
    else:
        print(shown.to_string(index=False))
    print(repr(result), file=sys.stderr)
    return 0 if result.all_ok else 1


def _bench(args: argparse.Namespace) -> int:
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    result = trainlab.bench.compare(
        args.uri, args.command, strategies=strategies, repeat=args.repeat, warmup=args.warmup
    )
    _print_bench(result, args.markdown)
    if args.report:
        result.to_html(args.report)
        print(f"report: {args.report}")
    return 0


def _print_bench(result: trainlab.bench.BenchResult, markdown: bool) -> None:
    if markdown:
        print(result.to_markdown())
        return
    import pandas as pd

    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
        print(result.summary.to_string())
    for note in result.notes:
        print(f"note: {note}")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
