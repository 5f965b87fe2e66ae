"""SSH: the kit against raw paramiko, asyncssh and OpenSSH's ControlMaster, in one run.

Everything talks to one private sshd on loopback (trainlab.sandbox.SSHServer),
directly and through the latency proxy at 10 ms RTT (and 50 ms with --wan); with
--far, through a delay line to a network namespace instead, which delays ACKs too
(trainlab.sandbox.netns; needs root).
Medians of --repeat calls (at least 30) of `echo hi` after warm-up.

Patterns
  raw paramiko fresh         socket + Transport + auth + channel + close, TCP_NODELAY
  raw paramiko channel       one Transport, a channel per command, TCP_NODELAY
  raw paramiko default       the same with paramiko's defaults (Nagle on)
  asyncssh conn.run          one asyncssh connection, conn.run per command
  openssh controlmaster      `ssh -S ctl host cmd` through a kept master
  raw framed shell           one paramiko channel running bash: stdout, stderr and
                             the exit status behind markers, in plain paramiko
  kit fresh / exec / shell   trainlab.connect(...).run("echo hi")
  kit batch of 10            run_many of 10 commands, the whole batch
  kit shell, POSIX host      shell=sh: the kept shell on /bin/sh (dash here), as on a
                             host without bash (BusyBox, dash-only images)
  raw 10 channels            10 channels one after another, the whole batch

Targets (issue 3): exec within 1.2x raw paramiko channel and no slower than
asyncssh; shell within 1.5x the raw framed shell on loopback and at most 1.2 round
trips per command at 10 ms; a batch of 10 at most 1.5 round trips at 10 ms.

Run: python benchmarks/bench_ssh.py [--repeat 40] [--wan] [--far] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import _timing
import paramiko

import trainlab
from trainlab.sandbox.asshd import import_asyncssh
from trainlab.sandbox.proxy import LatencyProxy
from trainlab.sandbox.sshd import SSHServer

warnings.simplefilter("ignore")  # host_key_policy=off through the proxy's changing ports

median_ms = functools.partial(_timing.median_ms, warmup=3)


def raw_transport(
    where: tuple[str, int], server: SSHServer, nodelay: bool = True
) -> paramiko.Transport:
    sock = socket.create_connection(where)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    transport.start_client(timeout=10)
    transport.auth_publickey(server.user, paramiko.PKey.from_path(server.key_file))
    return transport


def raw_exec(transport: paramiko.Transport, command: str = "echo hi") -> bytes:
    chan = transport.open_session()
    chan.exec_command(command)
    out = b""
    while True:
        data = chan.recv(65536)
        if not data:
            break
        out += data
    chan.recv_exit_status()
    chan.close()
    return out


def raw_fresh(where: tuple[str, int], server: SSHServer) -> None:
    transport = raw_transport(where, server)
    raw_exec(transport)
    transport.close()


@contextlib.contextmanager
def raw_framed_shell(transport: paramiko.Transport) -> Iterator[Callable[[], bytes]]:
    chan = transport.open_session()
    chan.exec_command("exec bash --noprofile --norc")

    def ask() -> bytes:
        # The least the kit's job needs: stdout and stderr kept apart, the exit status.
        chan.sendall(b"echo hi </dev/null; printf '__M %d\\n' $?; printf '__M\\n' >&2\n")
        out = err = b""
        while not (out.endswith(b"__M 0\n") and err.endswith(b"__M\n")):
            select.select([chan], [], [], 5)
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
        return out

    yield ask
    chan.close()


@contextlib.contextmanager
def asyncssh_conn(
    where: tuple[str, int], server: SSHServer
) -> Iterator[Callable[[], object] | None]:
    try:
        asyncssh = import_asyncssh()
    except ImportError:
        yield None
        return
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(
        asyncssh.connect(
            where[0],
            port=where[1],
            username=server.user,
            client_keys=[server.key_file],
            known_hosts=None,
        )
    )

    def call() -> object:
        return loop.run_until_complete(conn.run("echo hi", check=True))

    yield call
    conn.close()
    loop.run_until_complete(conn.wait_closed())
    loop.close()


@contextlib.contextmanager
def control_master(
    where: tuple[str, int], server: SSHServer
) -> Iterator[Callable[[], object] | None]:
    if shutil.which("ssh") is None:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="tl-cm-")
    base = [
        "ssh",
        "-p",
        str(where[1]),
        "-i",
        server.key_file,
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        f"UserKnownHostsFile={folder}/kh",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ControlPath={folder}/ctl",
        "-o",
        "ControlMaster=auto",
        "-o",
        "ControlPersist=60",
        f"{server.user}@{where[0]}",
    ]

    def call() -> object:
        return subprocess.run([*base, "echo hi"], capture_output=True, check=True)

    call()
    yield call
    subprocess.run(
        [*base[:-1], "-O", "exit", base[-1]],
        capture_output=True,
        check=False,
    )
    shutil.rmtree(folder, ignore_errors=True)


def measure(
    where: tuple[str, int], server: SSHServer, repeat: int, slow_repeat: int
) -> dict[str, float]:
    uri = f"ssh://{server.user}@{where[0]}:{where[1]}"
    options: dict[str, Any] = {**server.client_options, "host_key_policy": "off"}
    figures: dict[str, float] = {}
    figures["raw paramiko fresh"] = median_ms(lambda: raw_fresh(where, server), slow_repeat)
    figures["kit fresh (connect + run + close)"] = median_ms(
        lambda: _kit_fresh(uri, options), slow_repeat
    )
    kept = raw_transport(where, server)
    default = raw_transport(where, server, nodelay=False)
    exe = trainlab.connect(uri, reuse=False, **options)
    shell = trainlab.connect(uri, mode="shell", reuse=False, **options)
    posix = trainlab.connect(uri, mode="shell", shell="sh", reuse=False, **options)
    shared = trainlab.connect(uri, mode="shell", isolate="off", reuse=False, **options)
    exe.open()
    shell.open()
    posix.open()
    shared.open()
    ten = ["echo hi"] * 10
    figures["raw paramiko channel"] = median_ms(lambda: raw_exec(kept), repeat)
    figures["kit exec"] = median_ms(lambda: exe.run("echo hi"), repeat)
    figures["raw paramiko default (Nagle on)"] = median_ms(lambda: raw_exec(default), slow_repeat)
    with asyncssh_conn(where, server) as call:
        if call is not None:
            figures["asyncssh conn.run"] = median_ms(call, repeat)
    with control_master(where, server) as call:
        if call is not None:
            figures["openssh controlmaster"] = median_ms(call, repeat)
    with raw_framed_shell(kept) as ask:
        figures["raw framed shell"] = median_ms(ask, repeat)
    figures["kit shell"] = median_ms(lambda: shell.run("echo hi"), repeat)
    figures["kit shell, isolate=off"] = median_ms(lambda: shared.run("echo hi"), repeat)
    figures["kit cached"] = median_ms(lambda: shell.run("echo hi", ttl=60), repeat)
    figures["raw 10 channels (batch)"] = median_ms(
        lambda: [raw_exec(kept) for _ in range(10)], slow_repeat
    )
    figures["kit batch of 10, shell (batch)"] = median_ms(lambda: shell.run_many(ten), repeat)
    figures["kit batch of 10, exec (batch)"] = median_ms(lambda: exe.run_many(ten), repeat)
    figures["kit shell, POSIX host"] = median_ms(lambda: posix.run("echo hi"), repeat)
    figures["kit batch of 10, POSIX host (batch)"] = median_ms(lambda: posix.run_many(ten), repeat)
    for closable in (exe, shell, posix, shared):
        closable.close()
    kept.close()
    default.close()
    return figures


def _kit_fresh(uri: str, options: dict[str, Any]) -> None:
    session = trainlab.connect(uri, reuse=False, **options)
    session.run("echo hi")
    session.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--wan", action="store_true", help="also measure at 50 ms RTT")
    parser.add_argument(
        "--far",
        action="store_true",
        help="delay with a delay line to a namespace (ACKs too; root), not the latency proxy",
    )
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    repeat = max(30, args.repeat)
    rtts = [0.0, 0.010] + ([0.050] if args.wan else [])
    results: dict[str, dict[str, float]] = {}
    with SSHServer(key_types=("ed25519",)) as server:
        for rtt in rtts:
            label = "loopback" if rtt == 0 else f"{rtt * 1000:.0f} ms RTT"
            if rtt == 0:
                results[label] = measure(("127.0.0.1", server.port), server, repeat, 30)
            elif args.far:
                from trainlab.sandbox.netns import DelayLine, FarSSH

                with DelayLine(rtt=rtt) as line, FarSSH(server, line):
                    results[label] = measure((line.far[0], server.port), server, repeat, 30)
            else:
                with LatencyProxy("127.0.0.1", server.port, rtt=rtt) as proxy:
                    results[label] = measure(("127.0.0.1", proxy.port), server, repeat, 30)
    _timing.print_columns("pattern (median ms, echo hi)", results)
    print()
    for column, fig in results.items():
        rtt_ms = 0.0 if column == "loopback" else float(column.split()[0])
        print(f"[{column}]")
        ratio = fig["kit exec"] / fig["raw paramiko channel"]
        print(f"  kit exec / raw paramiko channel: {ratio:.2f} (target <= 1.2)")
        if "asyncssh conn.run" in fig:
            ratio = fig["kit exec"] / fig["asyncssh conn.run"]
            print(f"  kit exec / asyncssh: {ratio:.2f} (target <= 1.0)")
        ratio = fig["kit shell, isolate=off"] / fig["raw framed shell"]
        print(
            f"  kit shell, isolate=off / raw framed shell: {ratio:.2f} (target <= 1.5 on loopback)"
        )
        ratio = fig["kit shell"] / fig["raw framed shell"]
        print(f"  kit shell (each command's output apart) / raw framed shell: {ratio:.2f}")
        fresh_ratio = fig["kit fresh (connect + run + close)"] / fig["kit shell"]
        print(f"  fresh / reused shell: {fresh_ratio:.1f}x;", end=" ")
        fresh_exec = fig["kit fresh (connect + run + close)"] / fig["kit exec"]
        print(f"fresh / reused exec: {fresh_exec:.1f}x")
        if rtt_ms:
            print(f"  kit shell round trips per command: {fig['kit shell'] / rtt_ms:.2f} (<= 1.2)")
            batch = fig["kit batch of 10, shell (batch)"] / rtt_ms
            print(f"  kit batch of 10 round trips: {batch:.2f} (<= 1.5)")
            batch = fig["kit batch of 10, exec (batch)"] / rtt_ms
            print(f"  kit batch of 10 (exec mode) round trips: {batch:.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
