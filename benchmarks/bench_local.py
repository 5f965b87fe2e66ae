"""Local transport against its raw floor, side by side in one run.

Floors, in plain Python with no kit code:
  raw persistent bash   one bash on pipes, `echo hi; echo MARK` per command
  raw framed bash       the same, keeping stdout, stderr and the exit status apart
                        behind markers: the least the kit's job needs
  raw spawn sh -c true  subprocess.run(["sh", "-c", "true"])
  raw spawn bash -c     subprocess.run(["bash", "-c", "echo hi"])
The kit:
  kit shell             trainlab.connect("local://?mode=shell").run("echo hi")
  kit exec              trainlab.connect("local://").run("echo hi")
  kit batch of 10       run_many of 10 x "echo hi" on the shell, per command
  kit cached            run("echo hi", ttl=60) after the first call

Targets (issue 2): kit shell within 1.5x of the raw framed bash; kit shell at
least 4x faster than kit exec. Run: python benchmarks/bench_local.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
from collections.abc import Callable

from _timing import blocks_ms

import trainlab


def raw_bash() -> tuple[Callable[[], bytes], Callable[[], None]]:
    proc = subprocess.Popen(
        ["bash", "--noprofile", "--norc"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert proc.stdin is not None and proc.stdout is not None
    in_fd, out_fd = proc.stdin.fileno(), proc.stdout.fileno()

    def ask() -> bytes:
        os.write(in_fd, b"echo hi; echo __MARK__\n")
        buf = b""
        while not buf.endswith(b"__MARK__\n"):
            buf += os.read(out_fd, 65536)
        return buf

    def stop() -> None:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait()

    return ask, stop


def raw_framed_bash() -> tuple[Callable[[], tuple[bytes, bytes, int]], Callable[[], None]]:
    """The least a persistent shell must do for the kit's job, in plain Python: the
    command's stdout and stderr kept apart and its exit status, behind a marker."""
    proc = subprocess.Popen(
        ["bash", "--noprofile", "--norc"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    in_fd, out_fd, err_fd = proc.stdin.fileno(), proc.stdout.fileno(), proc.stderr.fileno()
    poller = select.poll()
    poller.register(out_fd, select.POLLIN)
    poller.register(err_fd, select.POLLIN)
    line = b"echo hi </dev/null; printf '\\n__M %d\\n' $?; printf '\\n__M\\n' >&2\n"

    def ask() -> tuple[bytes, bytes, int]:
        os.write(in_fd, line)
        out = err = b""
        out_done = err_done = False
        while not (out_done and err_done):
            for fd, _ in poller.poll():
                if fd == out_fd:
                    out += os.read(out_fd, 65536)
                    out_done = out.endswith(b"\n") and b"\n__M " in out
                else:
                    err += os.read(err_fd, 65536)
                    err_done = err.endswith(b"\n__M\n")
        cut = out.rindex(b"\n__M ")
        return out[:cut], err[: -len(b"\n__M\n")], int(out[cut + 5 : -1])

    def stop() -> None:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait()

    return ask, stop


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    n = args.repeat
    spawn_n = max(50, n // 10)
    figures: dict[str, float] = {}

    ask, stop = raw_bash()
    framed, stop_framed = raw_framed_bash()
    assert framed() == (b"hi\n", b"", 0)
    shell = trainlab.connect("local://?mode=shell", reuse=False)
    batch = ["echo hi"] * 10
    fast = blocks_ms(
        {
            "raw persistent bash": ask,
            "raw framed bash (stdout, stderr, exit status)": framed,
            "kit shell": lambda: shell.run("echo hi"),
            "kit cached": lambda: shell.run("echo hi", ttl=60),
        },
        n,
    )
    figures.update(fast)
    figures["kit shell, subshell path (cd /)"] = blocks_ms(
        {"cd": lambda: shell.run("cd / && echo hi")}, n // 4
    )["cd"]
    figures["kit batch of 10, per command"] = (
        blocks_ms({"batch": lambda: shell.run_many(batch)}, n // 10)["batch"] / 10
    )
    stop()
    stop_framed()
    shell.close()
    exe = trainlab.connect("local://", reuse=False)
    spawn = blocks_ms(
        {
            "raw spawn sh -c true": lambda: subprocess.run(["sh", "-c", "true"], check=True),
            "raw spawn bash -c": lambda: subprocess.run(
                ["bash", "-c", "echo hi"], check=True, capture_output=True
            ),
            "kit exec": lambda: exe.run("echo hi"),
        },
        spawn_n,
        10,
    )
    figures.update(spawn)
    exe.close()

    width = max(len(k) for k in figures)
    print(f"{'pattern':<{width}}  median ms  (repeat {n}, spawns {spawn_n})")
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:9.4f}")
    floor = figures["raw framed bash (stdout, stderr, exit status)"]
    ratios = {
        "kit shell / raw framed bash (target <= 1.5)": figures["kit shell"] / floor,
        "kit shell / raw persistent bash, echo only": figures["kit shell"]
        / figures["raw persistent bash"],
        "kit exec / kit shell (target >= 4)": figures["kit exec"] / figures["kit shell"],
        "kit exec / raw spawn bash -c": figures["kit exec"] / figures["raw spawn bash -c"],
    }
    print()
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"median_ms": figures, "ratios": ratios}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
