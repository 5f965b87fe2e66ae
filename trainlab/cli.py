"""The ``trainlab`` command: ``demo``, ``run``, ``fleet`` and ``bench``.

``trainlab demo`` needs no infrastructure: it measures this machine through the
kit (a process per command, a kept shell, a batch, the cache) and prints the table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trainlab
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

    fleet = sub.add_parser("fleet", help="run commands on many targets at once")
    fleet.add_argument("uris", nargs="+", metavar="URI", help="targets")
    fleet.add_argument("-c", "--command", action="append", required=True, help="repeatable")
    fleet.add_argument("--timeout", type=float, default=60.0, help="per target, seconds")
    fleet.add_argument("--deadline", type=float, default=None, help="whole fan-out, seconds")
    fleet.add_argument("--max-workers", type=int, default=None, help="targets at once")
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

    args = parser.parse_args(argv)
    try:
        if args.action == "demo":
            return _demo(args.repeat, args.markdown, args.report)
        if args.action == "run":
            return _run(args.uri, args.command, args.timeout)
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


def _demo(repeat: int, markdown: bool, report: str = "") -> int:
    session = trainlab.connect("local://?mode=shell")
    platform = session.platform
    print(
        f"trainlab {trainlab.__version__} demo on {platform.pretty_name or platform.name} "
        f"({platform.arch}), the local machine\n"
    )
    commands = ["true", "uname -r", "cat /etc/hostname"]
    result = trainlab.bench.compare("local://", commands, repeat=repeat, warmup=5)
    _print_bench(result, markdown)
    median = {str(k): float(v) for k, v in result.summary["median_ms"].items()}
    shell, reused = median["shell"], median["reused"]
    print(
        f"\nA kept shell answers in {shell:.3f} ms, {reused / shell:.1f}x faster than a "
        f"process per command ({reused:.3f} ms); a batch costs "
        f"{median['batched']:.3f} ms per command; a cached answer "
        f"{median['cached'] * 1000:.1f} us."
    )
    results = [result]
    ssh = _demo_ssh(repeat, markdown)
    if ssh is not None:
        results.append(ssh)
    if report:
        from trainlab.report import to_html

        to_html(results, report)
        print(f"\nReport: {report} (self-contained HTML: tables, plots, environment)")
    return 0


def _demo_ssh(repeat: int, markdown: bool) -> trainlab.bench.BenchResult | None:
    from trainlab.sandbox.sshd import INSTALL_HINT, SSHServer, sshd_path

    print()
    if sshd_path() is None:
        print(f"SSH: skipped, OpenSSH's server is not installed ({INSTALL_HINT}).")
        return None
    try:
        import paramiko  # noqa: F401
    except ImportError:
        print("SSH: skipped, paramiko is not installed (pip install 'trainlab[ssh]').")
        return None
    with SSHServer() as server:
        print(f"SSH: a private OpenSSH server on 127.0.0.1:{server.port} (sandbox)\n")
        result = trainlab.bench.compare(
            server.uri,
            ["true", "uname -r"],
            repeat=max(10, repeat // 2),
            warmup=3,
            **server.client_options,
        )
        _print_bench(result, markdown)
        median = {str(k): float(v) for k, v in result.summary["median_ms"].items()}
        print(
            f"\nOver SSH a fresh connection per command costs {median['fresh']:.1f} ms; "
            f"a kept connection {median['reused']:.2f} ms, a kept shell {median['shell']:.2f} ms "
            f"({median['fresh'] / median['shell']:.0f}x less)."
        )
    return result


def _run(uri: str, command: list[str], timeout: float | None) -> int:
    if not command:
        print("trainlab: give a command after the target", file=sys.stderr)
        return 2
    text = command[0] if len(command) == 1 else " ".join(command)
    result = trainlab.connect(uri).run(text, timeout=timeout)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.exit_status


def _fleet(args: argparse.Namespace) -> int:
    """One row per target and command; exit status 1 when any failed."""
    fleet = trainlab.Fleet(
        args.uris, timeout=args.timeout, deadline=args.deadline, max_workers=args.max_workers
    )
    commands: list[str] = args.command
    if len(commands) == 1:
        result = fleet.run(commands[0])
    else:
        result = fleet.run_many(commands)
    frame = result.frame
    frame["stdout"] = frame["stdout"].str.rstrip("\n").where(frame["error"] == "", frame["error"])
    shown = frame[["target", "command", "exit_status", "duration_s", "stdout"]]
    if args.markdown:
        print(shown.to_markdown(index=False))
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
