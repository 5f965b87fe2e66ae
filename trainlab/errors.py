"""The exception tree: every failure trainlab raises is a ``TrainlabError``.

Backend exceptions (``OSError``, paramiko, botocore, requests) are translated at
the transport boundary and re-raised ``from`` the original, so callers catch one
family and still see the cause::

    TrainlabError
    ├── TargetError        bad URI, unknown scheme, bad option, missing extra (ValueError)
    ├── InvalidCommand     a command that cannot be sent: NUL bytes, empty (ValueError)
    ├── ConnectError       could not connect or authenticate (after bounded retries)
    │   ├── HostKeyError   unknown or changed host key under the chosen policy
    │   ├── ConnectTimeout no answer while connecting, within the timeout (TimeoutError)
    │   └── SkippedRecentlyFailed  not tried: it failed to connect within a fleet's cool-down
    ├── TransportError     the connection broke during an operation
    │   └── SessionClosed  the session was closed; connect() opens a new one
    ├── CommandTimeout     a command exceeded its deadline (TimeoutError); session usable
    ├── CommandFailed      non-zero exit when check=True; carries the CommandResult
    ├── HTTPError          a 4xx or 5xx answer when check=True; .status and a trimmed .body
    ├── AWSError           an AWS API error with no more specific name; .code is AWS's
    ├── OutputError        output could not be parsed as asked (json(), table()) (ValueError)
    ├── FileError          a file on the target could not be read (OSError, with errno)
    │   └── FileMissing    it does not exist (also a FileNotFoundError)
    └── FleetError         some targets failed; carries every per-target result

Messages name the problem and the fix, and never contain a secret. Warnings (not
errors: nothing failed) are ``TrainlabWarning`` instances, and ``UserWarning`` ones, so
one filter (``warnings.simplefilter("ignore", TrainlabWarning)``) covers them all::

    TrainlabWarning (UserWarning)
    ├── StrayOutputWarning       output arrived outside every command's answer (a
    │                            background job's late output); kept in ``Session.stray_output``
    ├── InsecureHostKeyWarning   host_key_policy=off: a server's identity is not checked
    │                            (trainlab.transports.ssh)
    ├── InsecureTLSWarning       verify=False: a server's certificate is not checked
    │                            (trainlab.transports.rest)
    ├── FleetWarning             targets left out of a fleet, or more kept connections than
    │                            the open-file limit allows (trainlab.fleet)
    └── PartialInventoryWarning  an EC2 inventory without the regions that failed
                                 (trainlab.aws.inventory)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainlab.result import BatchResult, CommandResult

__all__ = [
    "AWSError",
    "CommandFailed",
    "CommandTimeout",
    "ConnectError",
    "ConnectTimeout",
    "FileError",
    "FileMissing",
    "FleetError",
    "HTTPError",
    "HostKeyError",
    "InvalidCommand",
    "OutputError",
    "SessionClosed",
    "SkippedRecentlyFailed",
    "StrayOutputWarning",
    "TargetError",
    "TrainlabError",
    "TrainlabWarning",
    "TransportError",
]


class TrainlabError(Exception):
    """Base class of every error trainlab raises."""


class TargetError(TrainlabError, ValueError):
    """A target URI, scheme or option is invalid, or its extra is not installed."""


class InvalidCommand(TrainlabError, ValueError):
    """A command cannot be sent as given (NUL bytes, empty, wrong type)."""


class ConnectError(TrainlabError):
    """The transport could not connect or authenticate.

    ``failure`` names the kind of failure when the transport knows it and no socket
    error says it (``"undeliverable"``: SSM's agent did not take the command).
    """

    failure: str = ""


class HostKeyError(ConnectError):
    """The host key is unknown or has changed, under the chosen host key policy."""


class ConnectTimeout(ConnectError, TimeoutError):
    """No answer while connecting (TCP, or the protocol's greeting) within the timeout."""


class SkippedRecentlyFailed(ConnectError):
    """A fleet did not try the target: it failed to connect within the fleet's cool-down.

    The message says when, and the error it failed with; ``retry_failed=True``
    (or ``cooldown=0``) tries it again.
    """


class TransportError(TrainlabError):
    """The connection broke during an operation; the next call reconnects."""


class SessionClosed(TransportError):
    """The session was closed; ``trainlab.connect()`` returns a new one."""


class CommandTimeout(TrainlabError, TimeoutError):
    """A command ran past its deadline; what it started was stopped.

    The session stays usable. ``stdout``/``stderr`` hold what arrived before the
    deadline; for a batch, ``partial`` holds the commands that finished.
    """

    def __init__(
        self,
        message: str,
        *,
        command: str = "",
        timeout: float | None = None,
        stdout: bytes = b"",
        stderr: bytes = b"",
        partial: BatchResult | None = None,
    ) -> None:
        super().__init__(message)
        self.command = command
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr
        self.partial = partial


class CommandFailed(TrainlabError):
    """A command exited non-zero and the caller asked for ``check=True``."""

    def __init__(self, result: CommandResult) -> None:
        self.result = result
        tail_out = _tail(result.stdout)
        tail_err = _tail(result.stderr)
        lines = [f"command {result.command!r} exited {result.exit_status} on {result.target}"]
        if tail_err:
            lines.append(f"stderr (last lines):\n{tail_err}")
        if tail_out:
            lines.append(f"stdout (last lines):\n{tail_out}")
        super().__init__("\n".join(lines))


class HTTPError(TrainlabError):
    """An HTTP answer with a 4xx or 5xx status, raised when the caller asks (``check``)."""

    def __init__(self, status: int, method: str, url: str, body: str) -> None:
        self.status = status
        self.method = method
        self.url = url
        self.body = body[:500]
        kind = "client error" if status < 500 else "server error"
        super().__init__(f"{method} {url} answered {status} ({kind}): {self.body[:200]}")


class AWSError(TrainlabError):
    """An AWS API error trainlab has no more specific name for; ``code`` is AWS's."""

    def __init__(self, code: str, message: str, what: str) -> None:
        super().__init__(f"AWS refused {what}: {code}: {message}")
        self.code = code


class OutputError(TrainlabError, ValueError):
    """Command output could not be parsed as asked (``json()``, ``table()``)."""


class FileError(TrainlabError, OSError):
    """A file on the target could not be read or stat'ed; ``errno`` says why."""


class FileMissing(FileError, FileNotFoundError):
    """The file does not exist on the target."""


class FleetError(TrainlabError):
    """Some targets of a fan-out failed; ``results`` keeps every target's outcome."""

    def __init__(self, message: str, results: Any = None) -> None:
        super().__init__(message)
        self.results = results


class TrainlabWarning(UserWarning):
    """Something a user should know that did not fail (``warnings`` filters apply)."""


class StrayOutputWarning(TrainlabWarning):
    """A background job wrote after its command ended. That output is in no result;
    ``Session.stray_output`` keeps its end."""


def _tail(text: str, lines: int = 5, width: int = 400) -> str:
    kept = text.rstrip("\n").splitlines()[-lines:]
    out = "\n".join(kept)
    return out[-width:]
