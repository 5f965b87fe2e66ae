"""A TCP proxy on loopback that delays every chunk: a WAN in a box (no netem needed).

>>> with LatencyProxy("127.0.0.1", 22, rtt=0.010) as proxy:   # doctest: +SKIP
...     trainlab.connect(f"ssh://user@127.0.0.1:{proxy.port}")
"""

from __future__ import annotations

import contextlib
import heapq
import selectors
import socket
import threading
import time
from typing import Self

from trainlab.sandbox._base import Background

__all__ = ["LatencyProxy", "RoundTripCounter"]


class _Relay(Background):
    """A listener on 127.0.0.1:``port`` that connects each client to ``upstream``
    (both sockets with ``TCP_NODELAY``: the relay adds no waits of its own);
    subclasses move the bytes in ``_serve``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> Self:
        self._listener.listen(128)
        self._spawn(self._accept)
        return self

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        with self._lock:
            self._threads.append(thread)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # stop() closed the listener
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, upstream]
            self._serve(client, upstream)

    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        raise NotImplementedError  # pragma: no cover - every relay defines it

    def stop(self) -> None:
        """Close the listener (which wakes the blocked accept), every socket, then
        wait a little for the threads."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for thread in list(self._threads):
            thread.join(timeout=2)


class LatencyProxy(_Relay):
    """Forward 127.0.0.1:``port`` to ``upstream``, adding ``rtt`` seconds per round trip.

    Each direction delays every chunk by ``rtt / 2`` and keeps the order of
    chunks, so a request-response exchange costs ``rtt`` more, as on a real link
    (bandwidth is not limited). Both sockets have ``TCP_NODELAY``.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, rtt: float) -> None:
        if rtt < 0:
            raise ValueError("rtt must be >= 0")
        super().__init__(upstream_host, upstream_port)
        self.rtt = rtt
        self.connections = 0

    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        with self._lock:
            self.connections += 1
        self._pipe(client, upstream)
        self._pipe(upstream, client)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        queue: list[tuple[float, int, bytes]] = []
        ready = threading.Condition()
        counter = [0]
        delay = self.rtt / 2

        def reader() -> None:
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    data = b""
                with ready:
                    counter[0] += 1
                    heapq.heappush(queue, (time.monotonic() + delay, counter[0], data))
                    ready.notify()
                if not data:
                    return

        def writer() -> None:
            while True:
                with ready:
                    while not queue:
                        ready.wait()
                    due, _, data = queue[0]
                    wait = due - time.monotonic()
                    if wait > 0:
                        ready.wait(wait)
                        continue
                    heapq.heappop(queue)
                if not data:
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)
                    return
                try:
                    sink.sendall(data)
                except OSError:
                    return

        self._spawn(reader)
        self._spawn(writer)


class RoundTripCounter(_Relay):
    """Forward 127.0.0.1:``port`` to ``upstream``, counting the round trips a client waits.

    What the client sends goes on at once; what the server sends is held until
    the server has been quiet for ``quiet`` seconds, then released as one
    flight. Whatever a client can send without waiting has gone out by then,
    so each flight is one round trip it waited for. ``flights[i]`` counts the
    flights of the i-th connection so far; protocol chatter that needs no
    answer adds none. (A client without ``TCP_NODELAY`` may also wait for the
    acknowledgement of its own small writes, as it would on a real link; such
    a wait counts too.)
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, quiet: float = 0.1) -> None:
        super().__init__(upstream_host, upstream_port)
        self.quiet = quiet
        self.flights: list[int] = []

    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        with self._lock:
            index = len(self.flights)
            self.flights.append(0)
        self._spawn(self._relay, client, upstream, index)

    def _relay(self, client: socket.socket, upstream: socket.socket, index: int) -> None:
        held = bytearray()
        last = 0.0
        selector = selectors.DefaultSelector()
        try:
            selector.register(client, selectors.EVENT_READ)
            selector.register(upstream, selectors.EVENT_READ)
            while True:
                wait = None if not held else max(0.0, last + self.quiet - time.monotonic())
                events = selector.select(wait)
                if not events and held:  # the server went quiet: one flight
                    with self._lock:
                        self.flights[index] += 1
                    client.sendall(held)
                    held.clear()
                    continue
                for key, _ in events:
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = sock.recv(65536)
                    if not data:
                        if held:
                            client.sendall(held)
                        return
                    if sock is client:
                        upstream.sendall(data)
                    else:
                        held += data
                        last = time.monotonic()
        except OSError:
            return
        finally:
            selector.close()
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()
