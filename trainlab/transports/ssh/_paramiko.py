"""paramiko, patched for fewer round trips: quick ACKs, an early login, a pipelined channel.

Every use of paramiko's private API lives here (listed in ``PRIVATE_API``, checked by a unit
test against the installed paramiko); imports paramiko and the standard library only.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

import paramiko
from paramiko.auth_handler import AuthHandler
from paramiko.common import (
    MSG_UNIMPLEMENTED,
    cMSG_CHANNEL_CLOSE,
    cMSG_CHANNEL_OPEN,
    cMSG_CHANNEL_REQUEST,
    cMSG_IGNORE,
)
from paramiko.message import Message

__all__ = [
    "PRIVATE_API",
    "SUPPORTED",
    "PipelinedTransport",
    "invoke_subsystem",
    "quick_ack",
    "send_channel_request",
    "send_pty_request",
]

# The paramiko releases the patches below are written for: pyproject's lower bound, up to
# the next major after the locked 5.1.0. tests/unit/test_ssh_paramiko.py checks the installed
# paramiko against it.
SUPPORTED = ">=3.4,<6"

# What the patches use of paramiko beyond its documented API, by owner: a paramiko release
# that drops one fails tests/unit/test_ssh_paramiko.py with its name. Transport's are
# instance attributes (set in __init__), the others class attributes.
PRIVATE_API: dict[str, tuple[str, ...]] = {
    "paramiko.Transport": (
        "_handler_table",
        "_parse_global_request",
        "_parse_channel_open_success",
        "_parse_debug",
        "_send_message",
        "_send_user_message",
        "_sanitize_window_size",
        "_sanitize_packet_size",
        "_next_channel",
        "_channels",
        "channel_events",
        "channels_seen",
        "initial_kex_done",
        "auth_handler",
        "server_mode",
        "channel_timeout",
        "lock",
        "logger",
    ),
    "paramiko.transport.ChannelMap": ("put", "get", "delete"),
    "paramiko.auth_handler.AuthHandler": (
        "_request_auth",
        "_parse_service_accept",
        "auth_publickey",
        "wait_for_response",
    ),
    "paramiko.Channel": ("_set_transport", "_set_window", "_event_pending"),
}

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class _QuickAckSocket(socket.socket):
    """A TCP socket that acknowledges what it reads at once (Linux's TCP_QUICKACK).

    sshd leaves Nagle's algorithm on for sessions without a pty, so its second
    small packet in a row waits for the ACK of the first, which the kernel here
    would delay by up to 40 ms when we have nothing to send back: after an
    early login, the channel's confirmation would wait so. The kernel clears
    the flag as it goes, so it is set again before every read (a system call
    of about a microsecond).
    """

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        with contextlib.suppress(OSError):
            self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[arg-type]
        return super().recv(bufsize, flags)


def quick_ack(sock: socket.socket, timeout: float) -> socket.socket:
    """``sock`` as a socket that acknowledges at once, where the kernel can (Linux)."""
    if _QUICKACK is None:
        return sock
    quick = _QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    quick.settimeout(timeout)
    return quick


class _EarlyLogin(AuthHandler):
    """Sends a key login right behind the ``ssh-userauth`` service request.

    The server handles packets in order, so the login needs no wait for the
    service accept: a cold connection saves a round trip. Used only where that
    is known to hold (OpenSSH), where the signature does not depend on the
    server's ``server-sig-algs`` (not RSA keys), which may not have arrived yet,
    and on a socket that acknowledges at once (see _QuickAckSocket): sshd sends
    the accept and the login's answer as two packets, and Nagle's algorithm
    holds the second until the first is acknowledged. Through a jump host the
    jump's kernel acknowledges, so the login waits for the accept there.
    """

    _sent_early = False

    def _request_auth(self) -> None:
        # Set first: the accept may be read (on paramiko's thread) before the
        # login is sent, and must not send a second one.
        self._sent_early = True
        super()._request_auth()  # type: ignore[misc]
        accept = Message()
        accept.add_string("ssh-userauth")
        accept.rewind()
        super()._parse_service_accept(accept)  # type: ignore[misc]

    def _parse_service_accept(self, m: Message) -> None:
        if not self._sent_early:
            super()._parse_service_accept(m)  # type: ignore[misc]


def _early_login_ok(client: paramiko.Transport, key: paramiko.PKey) -> bool:
    """Whether a key login may go out before the service accept (see _EarlyLogin)."""
    return (
        isinstance(client.sock, _QuickAckSocket)
        and client.remote_version.startswith("SSH-2.0-OpenSSH_")
        and "rsa" not in key.get_name()
    )


class PipelinedTransport(paramiko.Transport):
    """paramiko's Transport, with a faster login and a first channel sent behind it.

    OpenSSH sends ``hostkeys-00@openssh.com`` (no reply wanted) right after
    authentication; with Nagle on its side, its next packet then waits for our
    ACK, which the kernel delays by about 40 ms. Any small packet from us
    carries the ACK at once, so an ``SSH_MSG_IGNORE`` answers it.

    Where the login goes out early (see _EarlyLogin), the first session
    channel can follow it in the same flight (``early_channel``): OpenSSH keeps
    what it has read across its post-login process change and opens the
    channel once the login succeeds, so the channel's confirmation comes back
    with the login's. If the login fails, the server only answers the
    channel's packet with UNIMPLEMENTED, and the channel is forgotten.
    """

    early_channel = False

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        # The channel is held here: paramiko's channel map holds only weak references.
        self._spare: tuple[paramiko.Channel, threading.Event] | None = None
        self._handler_table = {
            **self._handler_table,  # type: ignore[has-type]
            MSG_UNIMPLEMENTED: lambda m: None,  # an early channel of a failed login
        }

    def _parse_global_request(self, m: Message) -> None:
        super()._parse_global_request(m)  # type: ignore[misc]
        if not self.server_mode:
            ignore = Message()
            ignore.add_byte(cMSG_IGNORE)
            ignore.add_string(b"")
            self._send_message(ignore)  # type: ignore[attr-defined]

    def auth_publickey(
        self, username: str, key: paramiko.PKey, event: threading.Event | None = None
    ) -> list[str]:
        if event is not None or not _early_login_ok(self, key):
            return super().auth_publickey(username, key, event)
        if not self.is_active() or not self.initial_kex_done:
            raise paramiko.SSHException("No existing session")
        done = threading.Event()
        self.auth_handler = _EarlyLogin(self)
        self.auth_handler.auth_publickey(username, key, done)
        if self.early_channel and self._spare is None:
            self._open_early()
        try:
            rest: list[str] = self.auth_handler.wait_for_response(done)
        except BaseException:
            self._forget_spare()
            raise
        if not self.is_authenticated():  # partial: another method follows
            self._forget_spare()
        return rest

    def _open_early(self) -> None:
        """Send a session channel's open without waiting for its confirmation."""
        with self.lock:
            window = self._sanitize_window_size(None)  # type: ignore[attr-defined]
            packet = self._sanitize_packet_size(None)  # type: ignore[attr-defined]
            chanid = self._next_channel()  # type: ignore[attr-defined]
            message = Message()
            message.add_byte(cMSG_CHANNEL_OPEN)
            message.add_string("session")
            message.add_int(chanid)
            message.add_int(window)
            message.add_int(packet)
            chan = paramiko.Channel(chanid)
            self._channels.put(chanid, chan)  # type: ignore[attr-defined]
            self.channel_events[chanid] = event = threading.Event()
            self.channels_seen[chanid] = True
            chan._set_transport(self)  # type: ignore[attr-defined]
            chan._set_window(window, packet)  # type: ignore[attr-defined]
            self._spare = (chan, event)
        self._send_user_message(message)  # type: ignore[attr-defined]

    def _forget_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            with self.lock:
                self._channels.delete(spare[0].chanid)  # type: ignore[attr-defined]
                self.channel_events.pop(spare[0].chanid, None)

    def open_session(
        self,
        window_size: int | None = None,
        max_packet_size: int | None = None,
        timeout: float | None = None,
    ) -> paramiko.Channel:
        """The channel opened early, once confirmed, else a new one."""
        spare, self._spare = self._spare, None
        if spare is None or window_size is not None or max_packet_size is not None:
            if spare is not None:
                self._spare = spare
            return super().open_session(window_size, max_packet_size, timeout)
        chan, event = spare
        deadline = time.monotonic() + (self.channel_timeout if timeout is None else timeout)
        while not event.wait(0.1):
            if not self.is_active():
                raise self.get_exception() or paramiko.SSHException("Unable to open channel.")
            if time.monotonic() > deadline:
                raise paramiko.SSHException("Timeout opening channel.")
        if self._channels.get(chan.chanid) is None:  # type: ignore[attr-defined]
            # refused: paramiko dropped it and saved the reason
            raise self.get_exception() or paramiko.SSHException("Unable to open channel.")
        return chan

    def _parse_channel_open_success(self, m: Message) -> None:
        """A channel whose open timed out (its object is gone) is closed at the server
        when the server opens it after all, so it does not count against MaxSessions."""
        chanid = m.get_int()
        server_chanid = m.get_int()
        if self._channels.get(chanid) is None:  # type: ignore[attr-defined]
            close = Message()
            close.add_byte(cMSG_CHANNEL_CLOSE)
            close.add_int(server_chanid)
            self._send_user_message(close)  # type: ignore[attr-defined]
            return
        m.rewind()
        super()._parse_channel_open_success(m)  # type: ignore[misc]

    def _parse_debug(self, m: Message) -> None:
        # paramiko builds a log line from each debug message one character at a
        # time even when nobody logs DEBUG; OpenSSH sends some after every key login.
        if self.logger.isEnabledFor(logging.DEBUG):
            super()._parse_debug(m)  # type: ignore[misc]
            return
        m.get_boolean()
        m.get_string()
        m.get_string()


def send_channel_request(
    chan: paramiko.Channel, kind: str, value: str | bytes, *, want_reply: bool
) -> None:
    """Send an RFC 4254 channel request with one string field, not waiting for the reply.

    A ``str`` value goes as UTF-8 with surrogate escapes, so a command holding bytes
    that are not UTF-8 (as Python decodes them: lone surrogates) travels as those bytes.
    """
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    message = Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(chan.remote_chanid)
    message.add_string(kind)
    message.add_boolean(want_reply)
    message.add_string(value)
    transport: Any = chan.transport
    transport._send_user_message(message)


def send_pty_request(chan: paramiko.Channel, term: str, width: int = 80, height: int = 24) -> None:
    """``Channel.get_pty`` without waiting for the reply (a refusal closes the channel)."""
    message = Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(chan.remote_chanid)
    message.add_string("pty-req")
    message.add_boolean(True)
    message.add_string(term)
    message.add_int(width)
    message.add_int(height)
    message.add_int(0)
    message.add_int(0)
    message.add_string(b"")
    transport: Any = chan.transport
    transport._send_user_message(message)


def invoke_subsystem(chan: paramiko.Channel, name: str, timeout: float) -> bool:
    """``Channel.invoke_subsystem`` with a bound on the wait (paramiko's waits forever).

    True when the server started the subsystem, False when it refused it (or the
    channel closed); ``TimeoutError`` when it did not answer within ``timeout``.
    The reply sets the channel's ``event``, with ``event_ready`` for a success.
    """
    chan._event_pending()  # type: ignore[attr-defined]
    send_channel_request(chan, "subsystem", name, want_reply=True)
    if not chan.event.wait(timeout):
        raise TimeoutError(f"no answer to the subsystem request within {timeout:g} s")
    return bool(chan.event_ready)
