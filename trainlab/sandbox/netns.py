"""A far host on this machine: a network namespace behind a delay line.

A TCP proxy (``LatencyProxy``) delays the bytes it relays, but the kernel answers
each side's segments with ACKs at once, so effects that hang on ACKs do not
show: a server with Nagle's algorithm on (sshd, for sessions without a pty)
sends its second small packet only once the first is acknowledged, and a
client's delayed ACK can hold it up to 40 ms. ``DelayLine`` holds every IP
packet, ACKs included, for ``rtt / 2`` each way, as a real link would:

>>> with DelayLine(rtt=0.05) as line, FarSSH(server, line) as far:   # doctest: +SKIP
...     trainlab.connect(far.uri, **far.client_options).run("uptime")

It needs root, ``ip`` (iproute2) and ``/dev/net/tun``. The namespace holds a
TUN device with two addresses (``line.far``); its twin stays here with
``line.near``; a forwarding process (which dies with this one) moves packets
between the two. Nothing is reachable from outside the machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import os
import re
import secrets
import select
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from trainlab.errors import TrainlabError
from trainlab.sandbox._base import Background
from trainlab.sandbox.sshd import SSHServer, answers_ssh, die_with_parent, end_process

__all__ = ["DelayLine", "FarSSH", "delay_line_missing"]

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000


def delay_line_missing() -> str | None:
    """Why a ``DelayLine`` cannot start here, with the fix; None when it can."""
    if os.geteuid() != 0:
        return "a delay line makes a network namespace and TUN devices: run as root"
    if shutil.which("ip") is None:
        return "a delay line needs ip: apt-get install -y iproute2"
    if not os.path.exists("/dev/net/tun"):
        return "a delay line needs /dev/net/tun (the tun kernel module: modprobe tun)"
    return None


def _ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", *args] if netns is None else ["ip", "netns", "exec", netns, "ip", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TrainlabError(f"{' '.join(command)} failed: {done.stderr.strip()}")


class DelayLine(Background):
    """A network namespace whose every packet to and from here waits ``rtt / 2``."""

    def __init__(self, rtt: float) -> None:
        if rtt < 0:
            raise ValueError("rtt must be >= 0")
        self.rtt = rtt
        token = secrets.token_hex(3)
        self.netns = f"trainlab-{token}"
        self._devices = (f"tln{token}", f"tlf{token}")
        subnet = 1 + secrets.randbelow(250)
        self.near = f"10.213.{subnet}.1"
        self.far = (f"10.213.{subnet}.2", f"10.213.{subnet}.3")
        self._forwarder: subprocess.Popen[bytes] | None = None
        self._started = False

    def start(self) -> DelayLine:
        why = delay_line_missing()
        if why is not None:
            raise TrainlabError(why)
        near, far = self._devices
        self._started = True
        try:
            _ip("netns", "add", self.netns)
            for device in self._devices:
                _ip("tuntap", "add", "dev", device, "mode", "tun")
            self._forwarder = subprocess.Popen(
                [sys.executable, "-m", "trainlab.sandbox.netns", str(self.rtt), near, far],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl runs before exec
            )
            assert self._forwarder.stdout is not None
            if self._forwarder.stdout.readline().strip() != b"ready":
                raise TrainlabError("the delay line's forwarder did not start")
            _ip("link", "set", far, "netns", self.netns)  # the forwarder holds it open
            _ip("addr", "add", self.near, "peer", self.far[0], "dev", near)
            _ip("link", "set", near, "up")
            _ip("route", "add", f"{self.far[1]}/32", "dev", near)
            for address in self.far:
                _ip("addr", "add", address, "peer", self.near, "dev", far, netns=self.netns)
            _ip("link", "set", far, "up", netns=self.netns)
            _ip("link", "set", "lo", "up", netns=self.netns)
        except BaseException:
            self.stop()
            raise
        return self

    def popen(self, argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        """Start a process inside the namespace (it dies with this one)."""
        return subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *argv],
            preexec_fn=die_with_parent,  # noqa: PLW1509
            **options,
        )

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._forwarder is not None:
            with contextlib.suppress(OSError):
                assert self._forwarder.stdin is not None
                self._forwarder.stdin.close()  # its signal to stop
            try:
                self._forwarder.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._forwarder.kill()
                self._forwarder.wait(timeout=5)
            if self._forwarder.stdout is not None:
                self._forwarder.stdout.close()
            self._forwarder = None
        for command in (
            ["ip", "netns", "del", self.netns],  # takes the far device with it
            ["ip", "tuntap", "del", "dev", self._devices[0], "mode", "tun"],
            ["ip", "tuntap", "del", "dev", self._devices[1], "mode", "tun"],
        ):
            subprocess.run(command, capture_output=True, check=False)


class FarSSH(Background):
    """sshd for ``server``'s keys and users, in ``line``'s namespace.

    It listens on both far addresses and on ``server``'s ports (one sshd per 16
    of those sockets, sshd's limit), so ``targets()`` hands out up to 4 distinct
    (URI, host, port) per port.
    """

    def __init__(self, server: SSHServer, line: DelayLine) -> None:
        self.server = server
        self.line = line
        self.ports = list(server.ports)
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def uri(self) -> str:
        return f"ssh://{self.server.user}@{self.line.far[0]}:{self.ports[0]}"

    @property
    def client_options(self) -> dict[str, Any]:
        return self.server.client_options

    def targets(self, count: int) -> list[tuple[str, str, int]]:
        """``count`` distinct ``(uri, host, port)``, spread over the ports."""
        found = [
            (f"ssh://{user}{host}:{port}", host, port)
            for user in (f"{self.server.user}@", "")
            for host in self.line.far
            for port in self.ports
        ]
        if count > len(found):
            raise TrainlabError(f"at most {len(found)} far targets on {len(self.ports)} ports")
        return found[:count]

    def start(self, timeout: float = 10.0) -> FarSSH:
        base = (self.server.dir / "sshd_config").read_text()
        base = re.sub(r"(?m)^(ListenAddress|PidFile) .*\n", "", base)
        sockets = [(address, port) for address in self.line.far for port in self.ports]
        self.server.trust(*sockets)
        log = open(self.server.dir / "far-sshd.log", "ab")  # noqa: SIM115 - closed in stop()
        self._log = log
        for index in range(0, len(sockets), 16):
            path = Path(self.server.dir / f"far_sshd_config_{index // 16}")
            path.write_text(
                "".join(f"ListenAddress {a}:{p}\n" for a, p in sockets[index : index + 16])
                + f"PidFile {self.server.dir / f'far-sshd-{index // 16}.pid'}\n"
                + base
            )
            self.processes.append(
                self.line.popen(
                    [self.server.executable, "-D", "-e", "-f", str(path)],
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + timeout
        waiting = [sockets[index] for index in range(0, len(sockets), 16)]
        while waiting and time.monotonic() < deadline:
            if any(process.poll() is not None for process in self.processes):
                text = (self.server.dir / "far-sshd.log").read_text(errors="replace")
                self.stop()
                raise TrainlabError(f"a far sshd exited at start: {text[-1000:]}")
            if answers_ssh(waiting[0], timeout=1):
                waiting.pop(0)
                continue
            time.sleep(0.05)
        if waiting:
            self.stop()
            raise TrainlabError(f"the far sshd did not answer within {timeout} s")
        return self

    def stop(self) -> None:
        for process in self.processes:
            end_process(process)
        self.processes = []
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    return fd


def _forward(rtt: float, near: str, far: str) -> None:
    """The forwarding process: every packet one way waits ``rtt / 2``, in order."""
    fds = (_open_tun(near), _open_tun(far))
    print("ready", flush=True)
    other = {fds[0]: fds[1], fds[1]: fds[0]}
    queue: list[tuple[float, int, int, bytes]] = []  # (due, order, destination, packet)
    order = 0
    delay = rtt / 2
    stdin = sys.stdin.fileno()
    while True:
        wait = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        ready, _, _ = select.select([*fds, stdin], [], [], wait)
        for fd in ready:
            if fd == stdin:
                if not os.read(stdin, 1024):
                    return  # the parent closed the pipe, or died
                continue
            packet = os.read(fd, 65535)
            order += 1
            heapq.heappush(queue, (time.monotonic() + delay, order, other[fd], packet))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, destination, packet = heapq.heappop(queue)
            with contextlib.suppress(OSError):  # a device going away at the end
                os.write(destination, packet)


if __name__ == "__main__":
    _forward(float(sys.argv[1]), sys.argv[2], sys.argv[3])
