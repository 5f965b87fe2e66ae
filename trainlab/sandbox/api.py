"""A small HTTPS API on 127.0.0.1 with a certificate from a throwaway CA (trustme).

It issues short-lived tokens, pages three ways (Link headers, ``next`` URLs,
cursors), answers slowly or fails on request, and counts the TCP connections it
accepted, so keep-alive can be proven rather than assumed.

>>> with APIServer() as api:                                  # doctest: +SKIP
...     s = trainlab.connect(api.url, ca_bundle=api.ca_file, token_url=api.token_url,
...                          client_id="lab", client_secret=api.client_secret)
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from trainlab.errors import TrainlabError
from trainlab.sandbox._base import Background, tls_context

__all__ = ["APIServer"]

DEVICES: list[dict[str, Any]] = [
    {
        "id": n,
        "name": f"{role}-{n:03d}",
        "site": {"slug": site, "name": site.upper()},
        "role": role,
        "status": "active" if n % 7 else "offline",
        "ip": f"10.{n // 250}.{n % 250}.1",
    }
    for n, (role, site) in enumerate(
        (r, s) for s in ("ams1", "fra1", "lon1") for r in ("leaf", "spine", "border") * 9
    )
]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: APIServer, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # or 40 ms per request
        with self.owner.lock:
            self.owner.connections += 1
        return sock, address


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- plumbing ---------------------------------------------------------------
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self) -> bool:
        owner = self.server.owner
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            expiry = owner.tokens.get(auth[7:])
            if expiry is not None and expiry > time.monotonic():
                return True
            self._send(
                401,
                {"error": "invalid_token"},
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            return False
        if auth.startswith("Basic "):
            import base64

            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if user == "lab" and password == owner.password:
                return True
        self._send(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
        return False

    # -- routes -----------------------------------------------------------------
    def do_POST(self) -> None:
        url = urlparse(self.path)
        owner = self.server.owner
        body = self._body()
        if url.path == "/token":
            form = parse_qs(body.decode())
            if form.get("client_secret", [""])[0] != owner.client_secret:
                self._send(401, {"error": "invalid_client"})
                return
            token = secrets.token_hex(16)
            owner.tokens[token] = time.monotonic() + owner.token_lifetime
            owner.issued += 1
            self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 60})
            return
        if not self._authorized():
            return
        if url.path == "/api/echo":
            self._send(
                201, {"received": json.loads(body or b"null"), "headers": dict(self.headers)}
            )
            return
        if url.path == "/api/flaky-post":
            owner.hits["flaky-post"] = owner.hits.get("flaky-post", 0) + 1
            self._send(503, {"error": "busy"}, {"Retry-After": "0"})
            return
        self._send(404, {"error": "no such path"})

    @property
    def _base(self) -> str:
        """The address the client used (a proxy's, when it came through one)."""
        return f"https://{self.headers.get('Host') or f'127.0.0.1:{self.server.owner.port}'}"

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        owner = self.server.owner
        if not self._authorized():
            return
        path = url.path
        if path == "/api/devices/":  # NetBox style: count, next, results
            offset = int(query.get("offset", ["0"])[0])
            limit = int(query.get("limit", ["25"])[0])
            site = query.get("site", [None])[0]
            rows = [d for d in DEVICES if site is None or d["site"]["slug"] == site]
            page = rows[offset : offset + limit]
            more = offset + limit < len(rows)
            following = f"{self._base}/api/devices/?offset={offset + limit}&limit={limit}"
            if site:
                following += f"&site={site}"
            self._send(
                200, {"count": len(rows), "next": following if more else None, "results": page}
            )
        elif path == "/api/linked":  # GitHub style: a Link header
            number = int(query.get("page", ["1"])[0])
            rows = DEVICES[(number - 1) * 20 : number * 20]
            headers = {}
            if number * 20 < len(DEVICES):
                headers["Link"] = f'<{self._base}/api/linked?page={number + 1}>; rel="next"'
            self._send(200, rows, headers)
        elif path == "/api/cursor":  # a cursor token
            cursor = int(query.get("cursor", ["0"])[0])
            rows = DEVICES[cursor : cursor + 30]
            nxt = str(cursor + 30) if cursor + 30 < len(DEVICES) else None
            self._send(200, {"data": rows, "next_cursor": nxt})
        elif path == "/api/slow":
            time.sleep(float(query.get("seconds", ["1"])[0]))
            self._send(200, {"slept": True})
        elif path == "/api/flaky":
            key = query.get("key", ["default"])[0]
            count = owner.hits.get(key, 0) + 1
            owner.hits[key] = count
            if count <= int(query.get("fail", ["2"])[0]):
                self._send(503, {"error": "busy"}, {"Retry-After": "0"})
            else:
                self._send(200, {"attempts": count})
        elif path.startswith("/api/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._send(code, {"error": f"status {code}", "detail": "x" * 2000})
        elif path == "/api/bad-json":
            self._send(200, b"{not json")
        elif path == "/api/headers":
            self._send(200, dict(self.headers))
        elif path == "/api/redirect-in":
            self._send(302, {}, {"Location": f"{self._base}/api/time"})
        elif path == "/api/redirect-out":
            self._send(302, {}, {"Location": f"{self._base}/token"})
        elif path == "/api/time":
            self._send(200, {"now": time.time()})
        else:
            self._send(404, {"error": "no such path"})


class APIServer(Background):
    """The HTTPS test API, in threads of this process, stopped by ``stop()``."""

    def __init__(self, *, token_lifetime: float = 3600.0) -> None:
        self.token_lifetime = token_lifetime
        self.client_secret = secrets.token_urlsafe(16)
        self.password = secrets.token_urlsafe(12)
        self.tokens: dict[str, float] = {}
        self.hits: dict[str, int] = {}
        self.issued = 0
        self.connections = 0
        self.lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="trainlab-api-"))
        try:
            context, self.ca_file = tls_context(self._dir, "the sandbox API")
        except TrainlabError:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._server = _Server(self, ("127.0.0.1", 0))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The API root (``/api``)."""
        return f"{self.base}/api"

    @property
    def token_url(self) -> str:
        return f"{self.base}/token"

    @property
    def client_options(self) -> dict[str, Any]:
        """Options for ``trainlab.connect(server.url, **server.client_options)``."""
        return {
            "ca_bundle": self.ca_file,
            "token_url": self.token_url,
            "client_id": "lab",
            "client_secret": self.client_secret,
        }

    def issue_token(self, lifetime: float | None = None) -> str:
        token = secrets.token_hex(16)
        self.tokens[token] = time.monotonic() + (lifetime or self.token_lifetime)
        return token

    def expire_tokens(self) -> None:
        for token in self.tokens:
            self.tokens[token] = 0.0

    def start(self) -> APIServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)
