"""The latency proxy: bytes pass unchanged, in order, no sooner than the delay allows;
the round-trip counter: one count per wait, not per message."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from trainlab.sandbox.proxy import LatencyProxy, RoundTripCounter


@pytest.fixture
def echo_server() -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join(timeout=5)


def test_bytes_pass_in_order(echo_server: int) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    with LatencyProxy("127.0.0.1", echo_server, rtt=0.0) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
            sender = threading.Thread(target=sock.sendall, args=(payload,))
            sender.start()
            received = bytearray()
            while len(received) < len(payload):
                received += sock.recv(65536)
            sender.join(timeout=10)
        assert bytes(received) == payload
        assert proxy.connections == 1


def test_a_round_trip_costs_at_least_the_rtt(echo_server: int) -> None:
    # A lower bound only: the proxy may not deliver before the delay has passed.
    with (
        LatencyProxy("127.0.0.1", echo_server, rtt=0.05) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port)) as sock,
    ):
        t0 = time.monotonic()
        sock.sendall(b"ping")
        assert sock.recv(16) == b"ping"
        assert time.monotonic() - t0 >= 0.05


def test_negative_rtt_is_refused() -> None:
    with pytest.raises(ValueError, match="rtt"):
        LatencyProxy("127.0.0.1", 1, rtt=-1)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the relay closed early"
        data += chunk
    return data


def test_round_trip_counter_counts_waits_not_messages(echo_server: int) -> None:
    with RoundTripCounter("127.0.0.1", echo_server, quiet=0.2) as relay:
        with socket.create_connection(("127.0.0.1", relay.port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle waits
            for word in (b"one", b"two", b"three"):  # each waits for its echo
                sock.sendall(word)
                assert _read_exactly(sock, len(word)) == word
            assert relay.flights == [3]
            # Sent together: one wait (the quiet time is long enough that a busy
            # machine cannot slip a flight in between the writes).
            for word in (b"four", b"five", b"six"):
                sock.sendall(word)
            assert _read_exactly(sock, 11) == b"fourfivesix"
            assert relay.flights == [4]
        with socket.create_connection(("127.0.0.1", relay.port)) as sock:
            sock.sendall(b"x")
            assert _read_exactly(sock, 1) == b"x"
        assert relay.flights == [4, 1]  # counted per connection
