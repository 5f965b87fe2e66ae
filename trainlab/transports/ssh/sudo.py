"""Commands through sudo: the wrapped command line, the prompt answered once, refusals named.

Imports trainlab.framing and trainlab.errors (paramiko for types only).
"""

from __future__ import annotations

import contextlib
import shlex
from typing import TYPE_CHECKING

from trainlab import framing
from trainlab.errors import ConnectError

if TYPE_CHECKING:
    import paramiko

__all__ = ["SUDO_OK", "NeedsTTY", "Sudo"]

# Printed by the command's own shell once sudo has let it start: everything on
# stderr before it is sudo's (prompts, "Sorry, try again"), everything after the command's.
SUDO_OK = b"__tl_sudo_ok\n"


class NeedsTTY(ConnectError):
    """sudo refused for want of a tty; the caller retries on a pty (never leaves the transport)."""


class Sudo:
    """How commands go through sudo: a unique prompt to watch for, and the password.

    The password is written to the channel only when sudo's own prompt appears,
    once; it is never part of a command line.
    """

    def __init__(self, user: str, password: str | None) -> None:
        self.user = user
        self._password = password
        self.prompt = f"[trainlab-sudo:{framing.new_nonce().decode()}]".encode()
        # Set once sudo says it must have a tty (sudoers requiretty): from then on
        # sudo runs on a pty channel and stderr comes back through a FIFO.
        self.tty = False

    def command(self, inner: str) -> str:
        """``inner`` (a shell command line) run by sudo as ``user``, prompting with ``prompt``."""
        return (
            f"sudo -S -p {shlex.quote(self.prompt.decode())} -H -u {shlex.quote(self.user)} "
            f"-- {inner}"
        )

    def answer(self, chan: paramiko.Channel, stderr: bytes, answered: int) -> int:
        """Answer each new prompt in ``stderr``; returns how many prompts were answered."""
        prompts = stderr.count(self.prompt)
        while answered < prompts:
            answered += 1
            if self._password is None or answered > 1:
                with contextlib.suppress(Exception):
                    chan.shutdown_write()  # no (or a refused) password: let sudo fail
            else:
                chan.sendall(self._password.encode() + b"\n")
        return answered

    def refusal(self, stderr: bytes, where: str) -> ConnectError:
        """The error for sudo's refusal in ``stderr``, naming the fix."""
        text = stderr.replace(self.prompt, b"").decode(errors="replace").strip()
        lines = [line for line in text.splitlines() if line.strip()]
        said = lines[-1] if lines else "no reason given"
        if "must have a tty" in text:
            return NeedsTTY(f"sudo on {where} needs a tty (requiretty)")
        elif "not found" in text:
            fix = "sudo is not installed there"
        elif self._password is not None and (
            "incorrect password" in text or "Sorry, try again" in text
        ):
            fix = "sudo_password is wrong"
        elif "password" in text:
            fix = "pass sudo_password="
        else:
            fix = f"check the sudoers rules for this user and sudo_user={self.user}"
        return ConnectError(f"sudo on {where} refused: {said} ({fix})")

    def forget(self) -> None:
        """Drop the password (the session is closed)."""
        self._password = None
