"""A network device's CLI on one interactive pty channel: prompts, paging, error lines.

Imports paramiko, trainlab.errors, the deadline signal and the ssh package's channel and
errors modules.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping
from typing import Any

import paramiko

from trainlab.errors import CommandTimeout, TargetError, TransportError
from trainlab.transports._deadline import DeadlinePassed
from trainlab.transports.ssh.channel import READ, wait
from trainlab.transports.ssh.errors import map_errors

__all__ = ["DEVICES", "DeviceCLI", "cli_settings"]

# Device CLI families: paging off, a failed command's lines, the prompt (last line).
DEVICES: dict[str, dict[str, Any]] = {
    "generic": {
        "paging": [],
        "error": r"^\s*(% ?\S|error\b|syntax error|invalid input|unknown command)",
        "prompt": r"^[^\s]*[>#%$] ?$",
    },
    "junos": {
        "paging": ["set cli screen-length 0"],
        "error": r"^\s*(syntax error|error:|unknown command)",
        "prompt": r"^([\w.\-]+@)?[\w.\-]+[>#%] ?$",
    },
    "ios": {
        "paging": ["terminal length 0"],
        "error": r"^\s*% ",
        "prompt": r"^[\w.\-()]+[>#] ?$",
    },
    "eos": {
        "paging": ["terminal length 0"],
        "error": r"^\s*% ",
        "prompt": r"^[\w.\-()]+[>#] ?$",
    },
}
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")


def cli_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``DeviceCLI``'s keyword arguments from the transport's ``device`` and ``cli_*`` options."""
    preset = DEVICES[settings["device"]]
    paging = settings.get("cli_paging")
    commands = (
        preset["paging"] if paging is None else [c.strip() for c in paging.split(";") if c.strip()]
    )
    try:
        prompt = re.compile(settings.get("cli_prompt") or preset["prompt"])
        error = re.compile(settings.get("cli_error") or preset["error"], re.I | re.M)
    except re.error as exc:
        raise TargetError(f"cli_prompt or cli_error is not a valid regex: {exc}") from exc
    return {
        "prompt": prompt,
        "error": error,
        "paging": commands,
        "timeout": settings["timeout"],
    }


class DeviceCLI:
    """A network device's CLI on one interactive channel (a pty, as devices expect).

    Each command's output is what arrives between its echo and the next prompt;
    there is no exit status, so a line matching the device's error pattern makes
    the result fail (exit status 1, the error lines on stderr).
    """

    def __init__(
        self,
        client: paramiko.Transport,
        where: str,
        *,
        prompt: re.Pattern[str],
        error: re.Pattern[str],
        paging: list[str],
        timeout: float,
    ) -> None:
        self.where = where
        self.prompt = prompt
        self.error = error
        self.broken = False
        with map_errors(f"cannot open a CLI session on {where}"):
            self.chan = client.open_session(timeout=timeout)
            self.chan.get_pty(term="vt100", width=511, height=1000)
            self.chan.invoke_shell()
        self.banner = self._until_prompt(time.monotonic() + timeout, what="the first prompt")
        for command in paging:
            self.send(command, timeout)

    def _break(self) -> None:
        self.broken = True

    def alive(self) -> bool:
        """True while the CLI can take a command."""
        chan = self.chan
        return not (self.broken or chan.closed or chan.eof_received or chan.exit_status_ready())

    def _until_prompt(self, deadline: float | None, *, what: str) -> str:
        buffer = b""
        while True:
            while self.chan.recv_ready():
                buffer += self.chan.recv(READ)
            while self.chan.recv_stderr_ready():
                buffer += self.chan.recv_stderr(READ)
            text = _ANSI.sub(b"", buffer).decode("utf-8", "replace").replace("\r", "")
            last = text.rsplit("\n", 1)[-1]
            if last and self.prompt.search(last):
                return text
            if self.chan.closed or self.chan.eof_received or self.chan.exit_status_ready():
                self.broken = True
                raise TransportError(f"the CLI on {self.where} closed while waiting for {what}")
            pause = 1.0
            if deadline is not None:
                pause = deadline - time.monotonic()
                if pause <= 0:
                    raise DeadlinePassed
            wait(self.chan, min(pause, 1.0))

    def send(self, command: str, timeout: float | None) -> tuple[bytes, bytes, int]:
        """Run one command line; (output, error lines, 1 if there were any else 0)."""
        if "\n" in command or "\r" in command:
            raise TargetError("mode=cli takes one line per command; use run_many for several")
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with map_errors(f"the CLI on {self.where} is gone", cleanup=self._break):
                self.chan.sendall(command.encode() + b"\n")
                text = self._until_prompt(deadline, what=f"the prompt after {command[:60]!r}")
        except DeadlinePassed:
            self._interrupt()
            raise CommandTimeout(
                f"command {command[:80]!r} ran past its {timeout:g} s deadline on the CLI of "
                f"{self.where}; it was interrupted (Ctrl-C)",
                command=command,
                timeout=timeout,
            ) from None
        lines = text.split("\n")
        if lines and lines[0].strip().endswith(command.strip()):
            lines = lines[1:]  # the device's echo of the command
        output = "\n".join(lines[:-1])  # the last line is the next prompt
        output = output + "\n" if output else ""
        errors = [line for line in lines[:-1] if self.error.search(line)]
        status = 1 if errors else 0
        stderr = ("\n".join(errors) + "\n") if errors else ""
        return output.encode(), stderr.encode(), status

    def _interrupt(self) -> None:
        """Ctrl-C, then wait briefly for the prompt; a CLI that does not come back is closed."""
        try:
            self.chan.sendall(b"\x03")
            self._until_prompt(time.monotonic() + 5, what="the prompt after Ctrl-C")
        except (DeadlinePassed, TransportError, OSError, EOFError, paramiko.SSHException):
            self.broken = True
            self.close()

    def close(self) -> None:
        """Close the channel (idempotent)."""
        with contextlib.suppress(Exception):
            self.chan.close()
