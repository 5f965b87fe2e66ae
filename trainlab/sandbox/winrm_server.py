"""A WSMan endpoint on 127.0.0.1 that serves PowerShell remoting (PSRP) to ``winrm://``.

It answers the WS-Management shell actions pypsrp sends (Create, Command, Send,
Receive with the OperationTimeout fault, Signal, Delete, Get) with runspace pools
and pipelines from psrpcore's server classes. Authentication is Basic or NTLM
(pyspnego's acceptor, with WinRM message encryption on plain HTTP), over HTTP or
HTTPS with a certificate from a throwaway CA. Credentials are generated per run.

It runs each pipeline's scripts with /bin/sh (``trainlab.sandbox._shell_pipeline``):
it proves protocol and lifecycle handling, not PowerShell semantics. With
``lines=True`` each line a script writes is its own record, sent as it is written.

>>> with WinRMServer() as server:                                # doctest: +SKIP
...     s = trainlab.connect(server.uri, **server.client_options)
"""

from __future__ import annotations

import base64
import collections
import contextlib
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import psrpcore

from trainlab.sandbox._base import Background, tls_context
from trainlab.sandbox._shell_pipeline import ShellPipeline, handle_pool_events

__all__ = ["WinRMServer"]

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "p": "http://schemas.microsoft.com/powershell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
_TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
_DONE = _SHELL + "CommandState/Done"
_RUNNING = _SHELL + "CommandState/Running"
_TERMINATE = _SHELL + "signal/Terminate"
# WSMan fault codes, as Windows sends them.
TIMED_OUT = 2150858793  # ERROR_WSMAN_OPERATION_TIMEDOUT
SHELL_NOT_FOUND = 2150858843  # the shell is gone (idle timeout, deleted, service restart)
_FRAGMENT = 32 * 1024  # bytes of PSRP data per fragment
_RECEIVE_BUDGET = 150 * 1024  # bytes of PSRP data per Receive answer (MaxEnvelopeSize)
_ENV_LOCK = threading.Lock()  # NTLM_USER_FILE is read from the environment


class _Fault(Exception):
    def __init__(self, code: int, subcode: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.subcode = subcode
        self.reason = reason


class _Shell:
    """One runspace pool and the PSRP data waiting for each Receive."""

    def __init__(self, shell_id: str, owner: str, *, lines: bool = False) -> None:
        self.id = shell_id
        self.owner = owner
        self.lines = lines
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        self.pool = psrpcore.ServerRunspacePool()
        self.pipelines: dict[Any, ShellPipeline] = {}
        self.queues: dict[uuid.UUID | None, collections.deque[bytes]] = {None: collections.deque()}
        self.closed = False

    def flush(self) -> None:
        with self.lock:
            while True:
                payload = self.pool.data_to_send(_FRAGMENT)
                if payload is None:
                    break
                queue = self.queues.setdefault(payload.pipeline_id, collections.deque())
                queue.append(payload.data)
            self.ready.notify_all()

    def feed(self, data: bytes, pipeline_id: uuid.UUID | None, prompt: bool = False) -> None:
        stream = psrpcore.StreamType.prompt_response if prompt else psrpcore.StreamType.default
        with self.lock:
            self.pool.receive_data(psrpcore.PSRPPayload(data, stream, pipeline_id))
            handle_pool_events(self.pool, self.pipelines)
        self.flush()

    def add_command(self, command_id: uuid.UUID) -> None:
        with self.lock:
            pipeline = psrpcore.ServerPipeline(self.pool, command_id)
            self.pipelines[command_id] = ShellPipeline(
                pipeline, self.lock, self.flush, lines=self.lines
            )
            self.queues[command_id] = collections.deque()

    def receive(self, command_id: uuid.UUID | None, wait: float) -> tuple[list[bytes], bool]:
        """PSRP data for ``command_id`` (or the pool), waiting up to ``wait`` seconds."""
        with self.ready:
            queue = self.queues.get(command_id)
            if queue is None:
                raise _Fault(SHELL_NOT_FOUND, "w:InvalidSelectors", "unknown command id")
            runner = self.pipelines.get(command_id) if command_id is not None else None

            def done() -> bool:
                return runner is not None and runner.finished.is_set()

            self.ready.wait_for(lambda: bool(queue) or done() or self.closed, timeout=wait)
            if self.closed:
                raise _Fault(SHELL_NOT_FOUND, "w:InvalidSelectors", "the shell was closed")
            chunks: list[bytes] = []
            size = 0
            while queue and size < _RECEIVE_BUDGET:
                chunk = queue.popleft()
                chunks.append(chunk)
                size += len(chunk)
            finished = done() and not queue
            if finished and runner is not None:  # Windows forgets a command once Done is read
                self.pipelines.pop(command_id, None)
                self.queues.pop(command_id, None)
                with contextlib.suppress(psrpcore.PSRPCoreError):
                    runner.pipeline.close()
            if not chunks and not finished:
                raise _Fault(
                    TIMED_OUT,
                    "w:TimedOut",
                    "The WS-Management service cannot complete the operation within the time "
                    "specified in OperationTimeout.",
                )
            return chunks, finished

    def signal(self, command_id: uuid.UUID, code: str) -> None:
        runner = self.pipelines.get(command_id)
        if runner is not None:
            runner.stop()
            runner.finished.wait(10)
        if code == _TERMINATE:
            with self.lock:
                self.pipelines.pop(command_id, None)
                self.queues.pop(command_id, None)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            runners = list(self.pipelines.values())
            self.ready.notify_all()
        for runner in runners:
            runner.stop()
            runner.join(5)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: WinRMServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Nagle's algorithm and delayed ACKs would stall every round trip ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.owner.lock:
            self.owner.connections.add(sock)
            self.owner.accepted += 1
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self.owner.lock:
            self.owner.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hangs up or fails TLS is not the server's error


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: NTLM authenticates the connection
    server: _HTTPServer
    timeout = 120

    def setup(self) -> None:
        super().setup()
        self.user: str | None = None
        self.context: Any = None  # the NTLM acceptor of this connection
        self.final_token: bytes | None = None

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        if self.final_token:
            token = base64.b64encode(self.final_token).decode()
            self.send_header("WWW-Authenticate", f"Negotiate {token}")
            self.final_token = None
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _challenge(self, token: bytes | None = None) -> None:
        owner = self.server.owner
        offers = []
        if "ntlm" in owner.auth:
            offers.append("Negotiate" + (f" {base64.b64encode(token).decode()}" if token else ""))
        if "basic" in owner.auth and token is None:
            offers.append('Basic realm="WSMAN"')
        self.send_response(401)
        for offer in offers:
            self.send_header("WWW-Authenticate", offer)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _authenticate(self) -> bool:
        owner = self.server.owner
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic" and "basic" in owner.auth:
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:  # not base64 or not UTF-8: a refusal like any other
                user = password = ""
            if user == owner.user and secrets.compare_digest(password, owner.password):
                self.user = user
                return True
            owner.failed_logins += 1
            self._challenge()
            return False
        if scheme.lower() in ("negotiate", "ntlm") and "ntlm" in owner.auth:
            import spnego

            if self.context is None or self.context.complete:
                self.context = spnego.server(protocol="negotiate")
            try:
                with _ENV_LOCK:
                    previous = os.environ.get("NTLM_USER_FILE")
                    os.environ["NTLM_USER_FILE"] = owner.ntlm_user_file
                    try:
                        out = self.context.step(base64.b64decode(value))
                    finally:
                        if previous is None:
                            del os.environ["NTLM_USER_FILE"]
                        else:
                            os.environ["NTLM_USER_FILE"] = previous
            except spnego.exceptions.SpnegoError:
                owner.failed_logins += 1
                self.context = None
                self._challenge()
                return False
            if not self.context.complete:
                self._challenge(out)
                return False
            self.final_token = out  # SPNEGO's mechListMIC: the client completes with it
            self.user = owner.user
            return True
        if self.user is not None:  # this connection authenticated earlier
            return True
        self._challenge()
        return False

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not self._authenticate():
            return
        content_type = self.headers.get("Content-Type", "")
        encrypted = content_type.startswith("multipart/encrypted")
        if encrypted:
            from pypsrp.encryption import WinRMEncryption

            match = re.search(r'boundary="([^"]+)"', content_type)
            boundary = match.group(1) if match else "Encrypted Boundary"
            body = WinRMEncryption(self.context, WinRMEncryption.SPNEGO).unwrap_message(
                body, boundary
            )
            owner.encrypted_requests += 1
        elif body and "ntlm" in owner.auth and not owner.allow_unencrypted:
            self._reply(400, b"", {})  # WinRM refuses plain text unless AllowUnencrypted
            return
        if not body:  # the empty request that sets up the security context
            self._reply(200, b"", {})
            return
        status, answer = owner.answer(body, self.user or "")
        if encrypted:
            from pypsrp.encryption import WinRMEncryption

            kind, wrapped = WinRMEncryption(self.context, WinRMEncryption.SPNEGO).wrap_message(
                answer
            )
            headers = {
                "Content-Type": f'{kind};protocol="{WinRMEncryption.SPNEGO}";'
                'boundary="Encrypted Boundary"'
            }
            self._reply(status, wrapped, headers)
        else:
            self._reply(status, answer, {"Content-Type": "application/soap+xml;charset=UTF-8"})


class WinRMServer(Background):
    """The WSMan test endpoint, in threads of this process.

    Parameters
    ----------
    auth
        ``"basic"``, ``"ntlm"`` or ``"basic,ntlm"``: what the endpoint accepts.
    https
        Serve TLS with a certificate from a throwaway CA (``ca_file``).
    allow_unencrypted
        Accept NTLM requests without message encryption (WinRM's AllowUnencrypted).
    lines
        Send each line a script writes as its own record, as it is written (by
        default a script's whole stdout is one record, sent when it ends).
    """

    def __init__(
        self,
        *,
        auth: str = "basic",
        https: bool = False,
        allow_unencrypted: bool = True,
        lines: bool = False,
    ) -> None:
        self.lines = lines
        self.auth = {part.strip() for part in auth.split(",")}
        self.https = https
        self.allow_unencrypted = allow_unencrypted
        self.user = "trainlab"
        self.password = secrets.token_urlsafe(16)
        self.lock = threading.Lock()
        self.shells: dict[str, _Shell] = {}
        self.connections: set[Any] = set()
        self.accepted = 0
        self.failed_logins = 0
        self.encrypted_requests = 0
        self.creates = 0
        self._dir = Path(tempfile.mkdtemp(prefix="trainlab-winrm-"))
        self.ntlm_user_file = str(self._dir / "ntlm_users")
        Path(self.ntlm_user_file).write_text(f":{self.user}:{self.password}\n")
        os.chmod(self.ntlm_user_file, 0o600)
        self.ca_file: str | None = None
        self._server = _HTTPServer(self)
        if https:
            context, self.ca_file = tls_context(self._dir, "the WinRM test endpoint over HTTPS")
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    # -- what clients need ------------------------------------------------------
    @property
    def uri(self) -> str:
        scheme = "winrms" if self.https else "winrm"
        return f"{scheme}://{self.user}@127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.https else 'http'}://127.0.0.1:{self.port}/wsman"

    @property
    def client_options(self) -> dict[str, Any]:
        """Options for ``trainlab.connect(server.uri, **server.client_options)``."""
        auth = "basic" if "basic" in self.auth else "negotiate"  # SPNEGO, falling back to NTLM
        options: dict[str, Any] = {"password": self.password, "auth": auth}
        if auth == "basic" and not self.https:
            options["encryption"] = "never"
        if self.ca_file is not None:
            options["cert_validation"] = self.ca_file
        return options

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="winrm-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self.drop_shells()
        self.drop_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)

    def drop_shells(self) -> int:
        """Forget every shell, as WinRM does when a shell's idle timeout passes."""
        with self.lock:
            shells = list(self.shells.values())
            self.shells.clear()
        for shell in shells:
            shell.close()
        return len(shells)

    def drop_connections(self) -> int:
        """Hang up every client connection (a restarted service, a proxy's idle cut)."""
        with self.lock:
            connections = list(self.connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(connections)

    # -- WS-Management ----------------------------------------------------------
    def answer(self, request: bytes, user: str) -> tuple[int, bytes]:
        """(HTTP status, SOAP envelope) for one request."""
        envelope = ElementTree.fromstring(request)  # noqa: S314 - loopback test clients only
        header = envelope.find("s:Header", NS)
        body = envelope.find("s:Body", NS)
        if header is None or body is None:
            return 400, b""
        action = header.findtext("a:Action", "", NS)
        message_id = header.findtext("a:MessageID", "", NS)
        shell_id = ""
        for selector in header.iterfind("w:SelectorSet/w:Selector", NS):
            if selector.get("Name") == "ShellId":
                shell_id = (selector.text or "").upper()
        wait = _duration(header.findtext("w:OperationTimeout", "PT20S", NS))
        try:
            handler = {
                _TRANSFER + "Create": self._create,
                _TRANSFER + "Get": self._get,
                _TRANSFER + "Delete": self._delete,
                _SHELL + "Command": self._command,
                _SHELL + "Send": self._send,
                _SHELL + "Receive": self._receive,
                _SHELL + "Signal": self._signal,
            }.get(action)
            if handler is None:
                raise _Fault(2150858817, "w:ActionNotSupported", f"unsupported action {action}")
            content = handler(body, shell_id, wait, user)
        except _Fault as fault:
            return 500, _fault_envelope(message_id, fault)
        return 200, _envelope(action + "Response", message_id, content)

    def _shell(self, shell_id: str) -> _Shell:
        with self.lock:
            shell = self.shells.get(shell_id)
        if shell is None:
            raise _Fault(
                SHELL_NOT_FOUND,
                "w:InvalidSelectors",
                f"The request for the Windows Remote Shell with ShellId {shell_id} failed "
                "because the shell was not found on the server.",
            )
        return shell

    def _create(self, body: ElementTree.Element, _: str, wait: float, user: str) -> str:
        spec = body.find("rsp:Shell", NS)
        if spec is None:
            raise _Fault(2150858817, "w:SchemaValidationError", "Create needs a Shell")
        shell_id = (spec.get("ShellId") or str(uuid.uuid4())).upper()
        shell = _Shell(shell_id, user, lines=self.lines)
        with self.lock:
            self.shells[shell_id] = shell
            self.creates += 1
        creation = spec.findtext("p:creationXml", "", NS)
        shell.feed(base64.b64decode(creation), None)
        resource = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
        return (
            f"<x:ResourceCreated><a:Address>{self.endpoint}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{resource}</w:ResourceURI><w:SelectorSet>"
            f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
            f"</a:ReferenceParameters></x:ResourceCreated>{_shell_xml(shell, resource)}"
        )

    def _get(self, body: ElementTree.Element, shell_id: str, wait: float, user: str) -> str:
        shell = self._shell(shell_id)
        return _shell_xml(shell, "http://schemas.microsoft.com/powershell/Microsoft.PowerShell")

    def _delete(self, body: ElementTree.Element, shell_id: str, wait: float, user: str) -> str:
        shell = self._shell(shell_id)
        with self.lock:
            self.shells.pop(shell_id, None)
        shell.close()
        return ""

    def _command(self, body: ElementTree.Element, shell_id: str, wait: float, user: str) -> str:
        shell = self._shell(shell_id)
        line = body.find("rsp:CommandLine", NS)
        if line is None:
            raise _Fault(2150858817, "w:SchemaValidationError", "Command needs a CommandLine")
        command_id = uuid.UUID(line.get("CommandId") or str(uuid.uuid4()))
        shell.add_command(command_id)
        arguments = line.findtext("rsp:Arguments", "", NS)
        if arguments:
            shell.feed(base64.b64decode(arguments), command_id)
        return (
            f"<rsp:CommandResponse><rsp:CommandId>{str(command_id).upper()}</rsp:CommandId>"
            "</rsp:CommandResponse>"
        )

    def _send(self, body: ElementTree.Element, shell_id: str, wait: float, user: str) -> str:
        shell = self._shell(shell_id)
        for stream in body.iterfind("rsp:Send/rsp:Stream", NS):
            command = stream.get("CommandId")
            command_id = uuid.UUID(command) if command else None
            data = base64.b64decode(stream.text or "")
            shell.feed(data, command_id, prompt=stream.get("Name") == "pr")
        return "<rsp:SendResponse/>"

    def _receive(self, body: ElementTree.Element, shell_id: str, wait: float, user: str) -> str:
        shell = self._shell(shell_id)
        desired = body.find("rsp:Receive/rsp:DesiredStream", NS)
        command = desired.get("CommandId") if desired is not None else None
        command_id = uuid.UUID(command) if command else None
        chunks, finished = shell.receive(command_id, wait)
        attribute = f' CommandId="{str(command_id).upper()}"' if command_id else ""
        streams = "".join(
            f'<rsp:Stream Name="stdout"{attribute}>{base64.b64encode(c).decode()}</rsp:Stream>'
            for c in chunks
        )
        state = ""
        if command_id is not None:
            state = (
                f'<rsp:CommandState{attribute} State="{_DONE if finished else _RUNNING}">'
                + ("<rsp:ExitCode>0</rsp:ExitCode>" if finished else "")
                + "</rsp:CommandState>"
            )
        return f"<rsp:ReceiveResponse>{streams}{state}</rsp:ReceiveResponse>"

    def _signal(self, body: ElementTree.Element, shell_id: str, wait: float, user: str) -> str:
        shell = self._shell(shell_id)
        signal = body.find("rsp:Signal", NS)
        if signal is None:
            raise _Fault(2150858817, "w:SchemaValidationError", "Signal needs a CommandId")
        shell.signal(uuid.UUID(signal.get("CommandId", "")), signal.findtext("rsp:Code", "", NS))
        return "<rsp:SignalResponse/>"


def _duration(text: str) -> float:
    match = re.fullmatch(r"PT(\d+(?:\.\d+)?)S", text.strip())
    return float(match.group(1)) if match else 20.0


def _shell_xml(shell: _Shell, resource: str) -> str:
    return (
        f"<rsp:Shell><rsp:ShellId>{shell.id}</rsp:ShellId>"
        f"<rsp:ResourceUri>{resource}</rsp:ResourceUri>"
        f"<rsp:Owner>{escape(shell.owner)}</rsp:Owner><rsp:ClientIP>127.0.0.1</rsp:ClientIP>"
        "<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>"
        "<rsp:InputStreams>stdin pr</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams>"
        "<rsp:State>Connected</rsp:State></rsp:Shell>"
    )


def _namespaces() -> str:
    return " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    return (
        f'<s:Envelope xml:lang="en-US" {_namespaces()}><s:Header>'
        f"<a:Action>{action}</a:Action><a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _fault_envelope(relates_to: str, fault: _Fault) -> bytes:
    body = (
        "<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode>"
        f"<s:Value>{fault.subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(fault.reason)}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault Code="{fault.code}" Machine="127.0.0.1">'
        f"<f:Message>{escape(fault.reason)}</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    return _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)
