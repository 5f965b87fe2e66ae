"""``winrm://`` and ``winrms://``: PowerShell remoting over WSMan with one kept runspace pool.

pypsrp's ``WSMan`` carries the session (HTTP keep-alive, Negotiate/NTLM/Kerberos/
Basic/CredSSP auth, message encryption, certificate validation); one
``RunspacePool`` per session stays open (``no_profile``) and each command is a
``PowerShell`` on it, so a command costs a Command and a Receive round trip
rather than a pool's open and close. A pool idle longer than
``health_check_idle`` is asked ``is_alive()`` before use and reopened when the
server dropped it (pypsrp #21, #203). Option names follow ``WSMan``'s keywords.
The records of each Receive go into their commands' captures as they come back
(``psrp.PipelineOutput``), so output shows live and stays bounded.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, cast

from trainlab.errors import (
    ConnectError,
    TargetError,
    TrainlabError,
    TransportError,
)
from trainlab.options import Option, to_bool
from trainlab.transports import psrp
from trainlab.transports.psrp import PipelineOutput, PowerShellTransport

__all__ = ["WinRMSTransport", "WinRMTransport"]

# WSMan fault codes (as Windows sends them).
_TIMED_OUT = 2150858793  # the OperationTimeout passed with nothing to say: poll again
_SHELL_GONE = (2150858843, 0x8033805B)  # the shell is not on the server any more
_OUTPUT, _ERROR = 0x00041004, 0x00041005
_STREAMS = {  # message type: the stream, named alike in pypsrp and in the result
    0x00041007: "debug",
    0x00041008: "verbose",
    0x00041009: "warning",
    0x00041011: "information",
}


class WinRMTransport(PowerShellTransport):
    """PowerShell on a Windows host over WinRM (HTTP, port 5985 by default).

    >>> import trainlab
    >>> win = trainlab.connect("winrm://admin@win1", password="...")  # doctest: +SKIP
    >>> win.run_ps("Get-Service | Select-Object Name,Status", as_frame=True)  # doctest: +SKIP
    """

    scheme: ClassVar[str] = "winrm"
    ssl: ClassVar[bool] = False
    options: ClassVar[Mapping[str, Option]] = {
        "password": Option(str, None, "the user's password", secret=True),
        "auth": Option(
            str,
            "negotiate",
            "authentication: negotiate (Kerberos, else NTLM), ntlm, kerberos, basic, credssp",
            choices=("negotiate", "ntlm", "kerberos", "basic", "credssp"),
        ),
        "encryption": Option(
            str,
            "auto",
            "WinRM message encryption: auto (on plain HTTP), always, never",
            choices=("auto", "always", "never"),
        ),
        "cert_validation": Option(
            str, "true", "verify the server's certificate: true, false, or a CA bundle path"
        ),
        "operation_timeout": Option(
            int,
            20,
            "seconds the server may hold a request before answering",
            minimum=1,
            maximum=86_400,
        ),
        "read_timeout": Option(
            float,
            30.0,
            "seconds to wait for an HTTP answer (more than operation_timeout)",
            minimum=0.001,
            maximum=86_400,
        ),
        "connection_timeout": Option(
            float, 30.0, "seconds to wait for a TCP connection", minimum=0.001, maximum=86_400
        ),
        "path": Option(str, "wsman", "the WSMan path on the server"),
        "configuration_name": Option(
            str,
            "Microsoft.PowerShell",
            "the session configuration (a JEA endpoint name)",
            affects_result=True,
        ),
        "no_profile": Option(bool, True, "open the runspace pool without the user profile"),
        "health_check_idle": Option(
            float,
            30.0,
            "seconds idle after which the pool is checked with is_alive() before use",
            minimum=0,
            maximum=86_400,
        ),
    }

    def __init__(self, target: Any, options: Mapping[str, Any]) -> None:
        super().__init__(target, options)
        if not target.host:
            raise TargetError(f"{self.scheme}:// needs a host: {self.scheme}://user@host")
        if self.settings["read_timeout"] <= self.settings["operation_timeout"]:
            raise TargetError(
                "read_timeout must be longer than operation_timeout, or every quiet poll "
                f"ends in an HTTP timeout; got {self.settings['read_timeout']:g} <= "
                f"{self.settings['operation_timeout']}"
            )
        self._wsman: Any = None
        self._pool: Any = None
        self._broken = False
        self._interrupted = False  # broken by Ctrl-C: the shell is still on the server
        self._last_used = 0.0
        self._lock = threading.Lock()
        self._busy = threading.Lock()  # held while a pipeline talks to the pool

    @property
    def mode(self) -> str:
        return "pool"

    @property
    def port(self) -> int:
        """The URI's port, else 5985 (``winrm://``) or 5986 (``winrms://``)."""
        return self.target.port or (5986 if self.ssl else 5985)

    @property
    def endpoint(self) -> str:
        """The WSMan URL the client talks to."""
        scheme = "https" if self.ssl else "http"
        return f"{scheme}://{self.target.host}:{self.port}/{self.settings['path']}"

    def identity(self) -> tuple[Any, ...]:
        return ("winrm", self.target.user, self.target.host, self.port)

    # -- lifecycle ------------------------------------------------------------
    def open(self) -> None:
        from pypsrp.powershell import RunspacePool
        from pypsrp.wsman import WSMan

        with self._lock:
            if self._pool is not None and not self._broken:
                return
            self._discard()
            settings = self.settings
            try:
                wsman = WSMan(
                    self.target.host,
                    port=self.port,
                    username=self.target.user,
                    password=settings["password"],
                    ssl=self.ssl,
                    path=settings["path"],
                    auth=settings["auth"],
                    cert_validation=cast(bool, _cert_validation(settings["cert_validation"])),
                    encryption=settings["encryption"],
                    operation_timeout=settings["operation_timeout"],
                    read_timeout=settings["read_timeout"],
                    connection_timeout=settings["connection_timeout"],
                )
            except ValueError as exc:  # pypsrp's check of auth against encryption
                raise TargetError(_config_hint(str(exc), settings["auth"], self.ssl)) from None
            # pypsrp retries a Receive whose answer timed out five times with backoff,
            # minutes past a command's deadline: here a Receive is sent once.
            wsman.receive = functools.partial(_receive_once, wsman)  # type: ignore[method-assign]
            pool = RunspacePool(
                wsman,
                configuration_name=settings["configuration_name"],
                no_profile=settings["no_profile"],
            )
            try:
                with self._map_errors(opening=True):
                    pool.open()
            except BaseException:
                wsman.close()
                raise
            self._wsman, self._pool = wsman, pool
            self._broken = False
            self._last_used = time.monotonic()

    def alive(self) -> bool:
        pool = self._pool
        if pool is None or self._broken:
            return False
        if time.monotonic() - self._last_used < self.settings["health_check_idle"]:
            return True
        if not self._busy.acquire(blocking=False):
            return True  # a command is using the pool right now: a probe would only race it
        try:
            ok = bool(pool.is_alive(timeout=5))
        except Exception:  # any failure of the probe means: reopen
            ok = False
        finally:
            self._busy.release()
        if ok:
            self._last_used = time.monotonic()
        else:
            self._broken = True
        return ok

    def close(self) -> None:
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        pool, wsman = self._pool, self._wsman
        self._pool = self._wsman = None
        deletable = pool is not None and (self._interrupted or not self._broken)
        self._interrupted = False
        if deletable:
            with contextlib.suppress(Exception):  # the server may be gone already
                pool.close()
        if wsman is not None:
            wsman.close()

    def platform_facts(self) -> dict[str, str] | None:
        """WinRM serves Windows: no command needed (``uname`` would not run there)."""
        return {"kernel": "Windows", "id": "windows", "pretty_name": "Windows (WinRM)"}

    # -- commands -------------------------------------------------------------
    def _invoke(self, request: psrp.Request, timeout: float | None, output: PipelineOutput) -> None:
        from pypsrp.powershell import PowerShell

        pool = self._pool
        if pool is None or self._broken:
            raise TransportError(f"the runspace pool on {self.target.address} is not open")
        deadline = None if timeout is None else time.monotonic() + timeout
        ps = PowerShell(pool)
        psrp.add_scripts(ps, request)
        with self._busy, self._map_errors():
            try:
                ps.begin_invoke()
                self._collect(ps, output, deadline, timeout)
            finally:
                self._last_used = time.monotonic()
                # Windows forgets a command once its Done state is read; so does pypsrp here.
                pool.pipelines.pop(ps.id, None)

    def _collect(
        self, ps: Any, output: PipelineOutput, deadline: float | None, timeout: float | None
    ) -> None:
        """Receive until the pipeline ends, each message into ``output`` as it comes."""
        from pypsrp.complex_objects import PSInvocationState
        from pypsrp.exceptions import WSManFaultError

        while ps.state == PSInvocationState.RUNNING:
            wait = float(self.settings["operation_timeout"])
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    ps.stop()
                    raise psrp.timeout_error(
                        output,
                        self.target.address,
                        timeout,
                        "the pipeline was stopped and the runspace pool stays open",
                    )
                wait = min(wait, max(0.05, round(remaining, 3)))
            try:
                # pypsrp's own poll_invoke keeps output only; its _receive returns every
                # message in arrival order, which is what splits a batch at its markers.
                responses = ps.runspace_pool._receive(ps.id, timeout=wait)
            except WSManFaultError as exc:
                if exc.code == _TIMED_OUT:
                    continue
                raise
            try:
                _hand_over(ps, responses, output)
            except Exception:
                self._abandon(ps)
                raise

    def _abandon(self, ps: Any) -> None:
        """Stop a pipeline whose reader failed (an ``on_output`` that raised), so the
        pool is free for the next command; a pool that cannot stop it is reopened."""
        try:
            ps.stop()
        except Exception:  # the server or the connection is gone: start afresh
            self._broken = True

    @contextlib.contextmanager
    def _map_errors(self, *, opening: bool = False) -> Iterator[None]:
        """Every pypsrp and requests failure as a TrainlabError naming the fix."""
        import requests
        from pypsrp.exceptions import AuthenticationError, WinRMError, WSManFaultError
        from spnego.exceptions import SpnegoError

        where = self.endpoint
        user = self.target.user or "(no user)"
        try:
            yield
        except TrainlabError:
            raise
        except KeyboardInterrupt:
            self._broken = True  # interrupted mid-exchange: the pool's state is unknown
            self._interrupted = True  # ... but its shell can still be deleted
            raise
        except ImportError as exc:  # pypsrp imports Kerberos and CredSSP support on first use
            auth = self.settings["auth"]
            extra = "credssp" if auth == "credssp" else "kerberos"
            raise TargetError(
                f"auth={auth} needs a package that is not installed ({exc}): "
                f"pip install 'pypsrp[{extra}]'"
            ) from None
        except (ValueError, SpnegoError) as exc:
            if not opening:
                raise
            # pypsrp builds its auth on first use: no user or password for this auth.
            raise TargetError(
                f"{where} needs credentials for auth={self.settings['auth']} and has none "
                f"usable ({exc}): pass password= and a user in the URI (winrm://user@host)"
            ) from None
        except AuthenticationError:
            raise ConnectError(
                f"{where} refused the credentials of {user!r} (auth={self.settings['auth']}): "
                "check the user name and password=, and that the endpoint allows this auth"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise ConnectError(
                f"the TLS certificate of {where} could not be verified ({_reason(exc)}): pass "
                "cert_validation=<path to the CA bundle that signed it>, or use winrm:// on port "
                "5985 where message encryption protects the traffic"
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            self._broken = True
            if opening:
                raise ConnectError(
                    f"could not reach WinRM at {where} ({_reason(exc)}): is the host up, the "
                    "port open, and remoting enabled (Enable-PSRemoting; 5985 http, 5986 https)?"
                ) from None
            raise TransportError(
                f"the connection to {where} broke during the command ({_reason(exc)}); the "
                "command is not re-run, and the next call opens a new runspace pool"
            ) from None
        except WSManFaultError as exc:
            if exc.code in _SHELL_GONE:
                self._broken = True
                raise TransportError(
                    f"the runspace pool on {where} is gone (the server dropped its shell: idle "
                    "timeout or restart); the command is not re-run, and the next call opens a "
                    "new pool"
                ) from None
            kind = ConnectError if opening else TransportError
            raise kind(f"WinRM at {where} answered with fault {exc.code}: {exc.reason}") from None
        except WinRMError as exc:
            self._broken = True
            kind = ConnectError if opening else TransportError
            raise kind(f"WinRM at {where} failed: {exc}") from None


class WinRMSTransport(WinRMTransport):
    """PowerShell on a Windows host over WinRM on HTTPS (port 5986 by default)."""

    scheme: ClassVar[str] = "winrms"
    ssl: ClassVar[bool] = True


def _receive_once(
    wsman: Any,
    resource_uri: str,
    resource: Any,
    *,
    option_set: Any = None,
    selector_set: Any = None,
    timeout: int | None = None,
) -> Any:
    """``WSMan.receive`` without its retries: a Receive that gets no answer in time fails."""
    from pypsrp.wsman import NAMESPACES, WSManAction

    answer = wsman.invoke(
        WSManAction.RECEIVE, resource_uri, resource, option_set, selector_set, timeout
    )
    return answer.find("s:Body", namespaces=NAMESPACES)


def _cert_validation(value: str) -> bool | str:
    """true/false, or the path of a CA bundle."""
    try:
        return to_bool(value)
    except ValueError:
        return value


def _config_hint(message: str, auth: str, ssl: bool) -> str:
    if "encrypt" in message.lower() and not ssl:
        return (
            f"auth={auth} cannot encrypt WinRM messages on plain HTTP: use winrms:// (HTTPS), "
            "auth=ntlm/negotiate/kerberos, or encryption=never on a trusted lab network"
        )
    return message


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("certificate verify failed", "Connection refused", "timed out"):
        if marker in text:
            return marker
    return type(exc).__name__


def _error_text(record: Any) -> str:
    """An ErrorRecord as PowerShell shows it: the details message, else the exception's."""
    message = getattr(record, "details_message", None)
    if message is None:
        exception = getattr(record, "exception", None)
        properties = getattr(exception, "adapted_properties", None) or {}
        message = properties.get("Message") or getattr(record, "message", None)
    return psrp.text(message if message is not None else record)


def _hand_over(ps: Any, responses: list[tuple[int, Any]], output: PipelineOutput) -> None:
    """One Receive's messages into ``output``, in order; then let pypsrp's copies go.

    pypsrp appends every record it parses to ``ps.streams`` (and the state message's
    terminating error last); they are read here by position and cleared, so a flood
    of records is not kept twice.
    """
    from pypsrp.complex_objects import PSInvocationState

    streams = ps.streams
    seen = dict.fromkeys(("error", "debug", "verbose", "warning", "information"), 0)
    for message_type, value in responses:
        if message_type == _OUTPUT:
            output.add("output", psrp.text(value.data.data))
        elif message_type == _ERROR:
            output.add("error", _error_text(streams.error[seen["error"]]))
            seen["error"] += 1
        elif message_type in _STREAMS:
            stream = _STREAMS[message_type]
            record = getattr(streams, stream)[seen[stream]]
            seen[stream] += 1
            text = getattr(record, "message_data", None)
            output.add(stream, psrp.text(text if text is not None else record.message))
    if ps.state != PSInvocationState.RUNNING:
        # pypsrp has parsed the whole answer, so the state is the final one; a
        # terminating error is the record its state message appended last.
        output.finished = True
        if len(streams.error) > seen["error"]:
            output.failure = _error_text(streams.error[-1])
    for name in (*seen, "progress"):
        getattr(streams, name).clear()
