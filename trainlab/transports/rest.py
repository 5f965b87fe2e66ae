"""``http://`` and ``https://``: a REST API over one kept-alive ``requests.Session``.

Paths join the base URL and can never leave it; every call has connect and read
timeouts; idempotent methods are retried on connection errors, 429 and 5xx with
backoff and ``Retry-After`` (urllib3's ``Retry``), except a refused, unresolvable or
unreachable host (``trainlab.transports.retry``) or an untrusted certificate, which fail
at once; auth is basic, a bearer token, or a token endpoint whose token is renewed once
on ``401 invalid_token``.
Answers become DataFrames with ``frame()``; the session verbs (``get``, ``get_all``, ...)
are ``trainlab.rest.RESTSession``'s.
"""

from __future__ import annotations

import html
import json
import posixpath
import re
import threading
import time
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urljoin, urlsplit

from trainlab.errors import (
    ConnectError,
    ConnectTimeout,
    HTTPError,
    OutputError,
    TargetError,
    TrainlabWarning,
    TransportError,
)
from trainlab.options import Option
from trainlab.result import CommandResult
from trainlab.transports.base import Transport
from trainlab.transports.retry import DEFINITE, FAILURE_WORDS, attempts_made, connect_failure

if TYPE_CHECKING:
    import pandas as pd
    import requests

__all__ = ["APIResponse", "InsecureTLSWarning", "RESTTransport"]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_warned_insecure: set[str] = set()


class InsecureTLSWarning(TrainlabWarning):
    """``verify=False``: the server's certificate is not checked."""


class APIResponse:
    """One HTTP answer: status, headers, elapsed, ``json()``, ``frame()``."""

    def __init__(self, response: requests.Response, *, reused: bool, cached: bool = False) -> None:
        self.status: int = response.status_code
        self.headers: dict[str, str] = dict(response.headers)
        self.url: str = response.url
        self.method: str = response.request.method or "GET"
        self.content: bytes = response.content
        self.elapsed: float = response.elapsed.total_seconds()
        self.reused = reused
        self.cached = cached
        self.links: dict[str, Any] = dict(response.links)

    @property
    def ok(self) -> bool:
        """True for a status below 400."""
        return self.status < 400

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.content.decode("utf-8", "replace")

    @property
    def nbytes(self) -> int:
        """The body's size plus a flat 512 bytes for the headers, for the cache's byte bound."""
        return len(self.content) + 512

    def json(self) -> Any:
        """The body as JSON; ``OutputError`` says where it is not."""
        try:
            return json.loads(self.content)
        except json.JSONDecodeError as exc:
            raise OutputError(
                f"{self.method} {self.url} answered {self.status} with a body that is not JSON: "
                f"{exc.msg} at character {exc.pos} ({self.text[:80]!r})"
            ) from None

    def frame(self, record_path: str | list[str] | None = None, **normalize: Any) -> pd.DataFrame:
        """The JSON records as a DataFrame (``pandas.json_normalize``).

        Without ``record_path`` a list is taken as is, and a dict's ``results``,
        ``items``, ``data`` or ``records`` list is used when there is one.
        """
        import pandas as pd

        data = self.json()
        if record_path is None:
            data = records_of(data)
        return pd.json_normalize(data, record_path=record_path, **normalize)

    def check(self) -> APIResponse:
        """Return ``self`` for a status below 400; else raise ``HTTPError``."""
        if not self.ok:
            raise HTTPError(self.status, self.method, self.url, self.text)
        return self

    def __repr__(self) -> str:
        flags = " cached" if self.cached else ""
        return (
            f"<APIResponse {self.method} {self.url} {self.status} "
            f"{len(self.content):,} bytes {self.elapsed * 1e3:.1f} ms{flags}>"
        )

    def _repr_html_(self) -> str:
        body = self.text[:5000]
        return (
            f"<div><code>{html.escape(self.method)} {html.escape(self.url)}</code> "
            f"<b>{self.status}</b><pre>{html.escape(body)}</pre></div>"
        )


def records_of(data: Any) -> Any:
    if isinstance(data, dict):
        for key in ("results", "items", "data", "records"):
            if isinstance(data.get(key), list):
                return data[key]
    return data


def json_dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str) if value is not None else ""


def copy_response(answer: APIResponse, *, cached: bool) -> APIResponse:
    """A copy of ``answer`` to hand out or keep, so no caller edits another's."""
    clone = object.__new__(APIResponse)
    clone.__dict__.update(answer.__dict__)
    clone.headers = dict(answer.headers)
    clone.links = dict(answer.links)
    clone.cached = cached
    return clone


def _connections(adapter: Any) -> int:
    """TCP connections the adapter's pools have opened so far (to tell reuse)."""
    pools = adapter.poolmanager.pools
    return sum(pools[key].num_connections for key in list(pools.keys()) if key in pools)


class RESTTransport(Transport):
    """A kept-alive ``requests.Session`` for one API base URL."""

    scheme: ClassVar[str] = "https"
    session_class: ClassVar[str | None] = "trainlab.rest:RESTSession"
    options: ClassVar[Mapping[str, Option]] = {
        "token": Option(str, None, "bearer token", secret=True),
        "username": Option(str, None, "basic auth user", affects_result=True),
        "password": Option(str, None, "basic auth password", secret=True),
        "token_url": Option(str, None, "OAuth2 client-credentials token endpoint"),
        "client_id": Option(str, None, "client id for token_url", affects_result=True),
        "client_secret": Option(str, None, "client secret for token_url", secret=True),
        "verify": Option(bool, True, "check the server's certificate (False warns)"),
        "ca_bundle": Option(str, None, "CA file for a private CA"),
        "timeout": Option(float, 10.0, "connect timeout, seconds", minimum=0.001, maximum=86_400),
        "read_timeout": Option(float, 60.0, "read timeout, seconds", minimum=0.001, maximum=86_400),
        "retries": Option(
            int, 3, "retries on connection errors, 429 and 5xx", minimum=0, maximum=100
        ),
        "backoff": Option(float, 0.3, "retry backoff factor, seconds", minimum=0, maximum=60),
        "pool": Option(int, 32, "connections kept per host", minimum=1, maximum=10_000),
        "headers": Option(dict, None, "headers sent with every request"),
    }

    def __init__(self, target: Any, options: Mapping[str, Any]) -> None:
        super().__init__(target, options)
        if not target.host:
            raise TargetError(f"{target.scheme}:// needs a host: {target.scheme}://api.example.com")
        path = target.path.rstrip("/") + "/"
        port = f":{target.port}" if target.port else ""
        host = f"[{target.host}]" if ":" in target.host else target.host
        self.base = f"{target.scheme}://{host}{port}{path}"
        self._session: requests.Session | None = None
        self._adapter: Any = None
        self._extra: dict[str, tuple[requests.Session, Any]] = {}
        # Passed with every request: requests lets REQUESTS_CA_BUNDLE in the
        # environment override a Session's own verify setting, not a request's.
        self._verify: bool | str = (
            False if not self.settings["verify"] else (self.settings.get("ca_bundle") or True)
        )
        self._token: str | None = self.settings.get("token")
        self._lock = threading.Lock()
        if self.settings.get("token_url") and not self.settings.get("client_secret"):
            raise TargetError("token_url needs client_id= and client_secret=")

    def identity(self) -> tuple[Any, ...]:
        from trainlab.options import frozen_items

        secrets_in_key = frozen_items(
            self.options,
            {k: self.settings.get(k) for k in ("token", "password", "client_secret")},
        )
        return ("rest", self.base, self.settings.get("username"), secrets_in_key)

    @property
    def mode(self) -> str:
        return "api"

    @property
    def concurrent(self) -> bool:
        return True

    def url_for(self, path: str) -> str:
        """``base + path``, refusing anything that would leave the base URL.

        The check runs on the decoded path (``%2e%2e`` is ``..`` to a server), and
        any ``scheme:`` prefix must be the base URL itself.
        """
        if not isinstance(path, str):
            raise TargetError(f"a path is a string, got {type(path).__name__}")
        if "\r" in path or "\n" in path:
            raise TargetError("a path cannot contain line breaks")
        if re.match(r"^[a-z][a-z0-9+.-]*:", path, re.I):
            if not path.startswith(self.base) and path.rstrip("/") + "/" != self.base:
                raise TargetError(f"{path} is outside the session's base URL {self.base}")
            url = path
        else:
            url = urljoin(self.base, path.lstrip("/"))
        parts = urlsplit(url)
        base = urlsplit(self.base)
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            raise TargetError(f"{path!r} leaves the base URL {self.base}")
        decoded = unquote(parts.path).replace("\\", "/")
        normal = posixpath.normpath(decoded) + ("/" if decoded.endswith("/") else "")
        if not (normal + "/").startswith(base.path) and normal + "/" != base.path:
            raise TargetError(f"{path!r} leaves the base URL {self.base}")
        return url

    # ----------------------------------------------------------- lifecycle
    def open(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            self._session, self._adapter = self._new_session("idempotent")
            if not self.settings["verify"] and self.base not in _warned_insecure:
                _warned_insecure.add(self.base)
                warnings.warn(
                    f"verify=False: the certificate of {self.base} is not checked",
                    InsecureTLSWarning,
                    stacklevel=4,
                )
            if self.settings.get("token_url") and self._token is None:
                self._renew_token()

    def _new_session(self, policy: str) -> tuple[requests.Session, Any]:
        """A requests.Session whose adapter retries as ``policy`` says.

        ``idempotent``: connection errors always (nothing was sent), 429 and 5xx
        for idempotent methods only; ``all``: also POST and PATCH (asked for with
        ``retry=True``); ``none``: never (``retry=False``).
        """
        try:
            import requests
            from requests.adapters import HTTPAdapter
        except ImportError as exc:  # pragma: no cover
            raise TargetError("REST needs requests: pip install 'trainlab[rest]'") from exc
        count = 0 if policy == "none" else self.settings["retries"]
        retry = _connect_aware_retry()(
            total=count,
            connect=count,
            read=0,  # a request that got no answer in time is a timeout, not retried
            status=count,
            backoff_factor=self.settings["backoff"],
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=None if policy == "all" else IDEMPOTENT,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(
            max_retries=retry, pool_connections=4, pool_maxsize=self.settings["pool"]
        )
        session = requests.Session()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"User-Agent": "trainlab", **(self.settings.get("headers") or {})})
        if not self.settings["verify"]:
            session.verify = False
        elif self.settings.get("ca_bundle"):
            session.verify = self.settings["ca_bundle"]
        if self.settings.get("username"):
            session.auth = (self.settings["username"], self.settings.get("password") or "")
        return session, adapter

    def _session_for(self, method: str, retry: bool | None) -> tuple[requests.Session, Any]:
        if retry is None or (retry and method in IDEMPOTENT):
            if self._session is None:
                raise TransportError("the REST session is closed")
            return self._session, self._adapter
        policy = "all" if retry else "none"
        with self._lock:
            found = self._extra.get(policy)
            if found is None:
                found = self._extra[policy] = self._new_session(policy)
            return found

    def alive(self) -> bool:
        return self._session is not None

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
            for session, _ in self._extra.values():
                session.close()
            self._extra.clear()

    def forget_secrets(self) -> None:
        super().forget_secrets()
        self._token = None

    # -------------------------------------------------------------- calls
    def _renew_token(self) -> None:
        import requests

        if self._session is None:
            raise TransportError("the REST session is closed")
        try:
            answer = self._session.post(
                self.settings["token_url"],
                verify=self._verify,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.settings.get("client_id") or "",
                    "client_secret": self.settings.get("client_secret") or "",
                },
                timeout=(self.settings["timeout"], self.settings["read_timeout"]),
            )
        except requests.exceptions.SSLError as exc:
            raise _tls_failed(f"the token endpoint {self.settings['token_url']}", exc) from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise _timed_out(
                f"the token endpoint {self.settings['token_url']}", exc, self.settings["timeout"]
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            raise _unreachable(f"the token endpoint {self.settings['token_url']}", exc) from exc
        except requests.RequestException as exc:
            raise ConnectError(
                f"the token endpoint {self.settings['token_url']} failed: {_short(exc)}"
            ) from exc
        if answer.status_code != 200:
            raise ConnectError(
                f"the token endpoint refused the client credentials ({answer.status_code}); "
                "check client_id and client_secret"
            )
        try:
            self._token = answer.json()["access_token"]
        except (ValueError, KeyError) as exc:
            raise ConnectError("the token endpoint's answer has no access_token") from exc

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Any,
        headers: Mapping[str, str] | None,
        timeout: float | None,
        retry: bool | None,
    ) -> APIResponse:
        """Send one request under the session's auth, renewing a token once on 401."""
        renewed = False
        own_auth = any(k.lower() == "authorization" for k in (headers or {}))
        while True:
            used = self._token
            answer = self._send_once(method, url, params, json, data, headers, timeout, retry)
            if answer.status == 401 and not own_auth and self._renewable(answer) and not renewed:
                with self._lock:
                    if self._token == used:  # not renewed by another thread meanwhile
                        self._renew_token()
                renewed = True
                continue  # replay once with the new token
            if answer.status == 401 and renewed:
                raise ConnectError(
                    f"{method} {url}: the API refused a freshly renewed token; check the "
                    "client's permissions"
                )
            return answer

    def _renewable(self, answer: APIResponse) -> bool:
        if not self.settings.get("token_url"):
            return False
        challenge = answer.headers.get("WWW-Authenticate", "")
        return "invalid_token" in challenge or b"invalid_token" in answer.content[:200]

    def _send_once(  # noqa: PLR0917 - the one internal call site passes them in order
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        data: Any,
        headers: Mapping[str, str] | None,
        timeout: float | None,
        retry: bool | None,
        redirects: int = 0,
    ) -> APIResponse:
        import requests

        session, adapter = self._session_for(method, retry)
        merged = dict(headers or {})
        if self._token:
            merged.setdefault("Authorization", f"Bearer {self._token}")
        read = timeout if timeout is not None else self.settings["read_timeout"]
        before = _connections(adapter)
        try:
            with warnings.catch_warnings():
                if self._verify is False:  # our own warning said it, once
                    warnings.simplefilter("ignore")
                response = session.request(
                    method,
                    url,
                    verify=self._verify,
                    params=params,
                    json=json_body,
                    data=data,
                    headers=merged,
                    timeout=(self.settings["timeout"], read),
                    allow_redirects=False,  # followed below, only inside the base URL
                )
        except (UnicodeError, TypeError, ValueError) as exc:
            raise TargetError(
                f"{method} {url}: the request cannot be sent as given: {exc}"
            ) from exc
        except requests.exceptions.SSLError as exc:
            raise _tls_failed(self.base, exc) from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise _timed_out(self.base, exc, self.settings["timeout"]) from exc
        except requests.exceptions.ReadTimeout as exc:
            from trainlab.errors import CommandTimeout

            raise CommandTimeout(
                f"{method} {url} got no answer within {read:g} s", command=url, timeout=read
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            if "Read timed out" in str(exc):
                from trainlab.errors import CommandTimeout

                raise CommandTimeout(
                    f"{method} {url} got no answer within {read:g} s", command=url, timeout=read
                ) from exc
            raise _unreachable(self.base, exc) from exc
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"{method} {url} failed: {_short(exc)}") from exc
        reused = _connections(adapter) == before
        location = response.headers.get("Location")
        if response.is_redirect and location and redirects < 5:
            target = urljoin(url, location)
            try:
                target = self.url_for(target)
            except TargetError:
                return APIResponse(response, reused=reused)  # not followed out of the base
            follow = "GET" if response.status_code in (301, 302, 303) else method
            return self._send_once(
                follow,
                target,
                None,
                None if follow == "GET" else json_body,
                None if follow == "GET" else data,
                headers,
                timeout,
                retry,
                redirects + 1,
            )
        return APIResponse(response, reused=reused)

    # ------------------------------------------------- the command seam
    def run(self, command: str, timeout: float | None) -> CommandResult:
        """``run("GET /path")``: a request as a command, for uniformity with hosts.

        Its output (the response body) cannot stream (``supports_output`` stays False):
        ``on_output`` and the ``max_output`` cap get the body once it is read.
        """
        method, _, path = command.strip().partition(" ")
        if method.upper() not in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}:
            raise TargetError(f"a REST command is 'METHOD /path' (GET /items), got {command!r}")
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        answer = self.send(
            method.upper(),
            self.url_for(path.strip()),
            params=None,
            json=None,
            data=None,
            headers=None,
            timeout=timeout,
            retry=None,
        )
        status = 0 if answer.ok else answer.status
        return CommandResult(
            command,
            answer.content,
            b"",
            status,
            duration=time.perf_counter() - t0,
            target=self.target.address,
            started=started,
        )

    def read_file(self, path: str) -> bytes:
        answer = self.send(
            "GET",
            self.url_for(path),
            params=None,
            json=None,
            data=None,
            headers=None,
            timeout=None,
            retry=None,
        )
        if answer.status == 404:
            from trainlab.errors import FileMissing

            raise FileMissing(2, f"{path}: 404 at {answer.url}")
        return answer.check().content


@cache
def _connect_aware_retry() -> type[Any]:
    """urllib3's ``Retry``, giving up at once on a refused, unresolvable or unreachable host,
    and on a certificate that fails verification.

    When it gives up, the ``MaxRetryError`` it raises carries ``attempts``, the
    requests made (urllib3 keeps the history but puts no count in its error).
    """
    from urllib3.exceptions import MaxRetryError
    from urllib3.util.retry import Retry

    class CountedMaxRetryError(MaxRetryError):
        def __init__(self, pool: Any, url: str, reason: Exception | None, attempts: int = 1):
            super().__init__(pool, url, reason)
            self.attempts = attempts

    class ConnectAwareRetry(Retry):
        def increment(  # type: ignore[override]
            self,
            method: Any = None,
            url: Any = None,
            response: Any = None,
            error: Any = None,
            _pool: Any = None,
            _stacktrace: Any = None,
        ) -> Retry:
            attempts = len(self.history) + 1  # the failed one included
            if error is not None and _is_an_answer(error):
                raise CountedMaxRetryError(_pool, url, error, attempts) from error
            try:
                return super().increment(method, url, response, error, _pool, _stacktrace)
            except MaxRetryError as exc:
                raise CountedMaxRetryError(_pool, url, exc.reason, attempts) from exc.reason

    return ConnectAwareRetry


def _is_an_answer(error: BaseException) -> bool:
    """Whether a failed attempt is an answer another attempt would get again: a refused,
    unresolvable or unreachable host, or a certificate that fails verification."""
    import ssl

    if connect_failure(error) in DEFINITE:
        return True
    return _chain_has(error, ssl.SSLCertVerificationError) or any(
        type(e).__name__ == "CertificateError" for e in _chain(error)
    )


# The usual fix for each kind of connect failure (``connect_failure``).
_FIXES = {
    "refused": "is the service up? check the URL's host and port",
    "unresolvable": "check the host name in the URL",
    "unreachable": "check the URL, and the network path to it (VPN, firewall)",
    "timeout": "is the host up and the port open? check the URL",
    "reset": "is it an HTTP service on that port? check the URL's scheme and port",
}


def _unreachable(where: str, exc: BaseException) -> ConnectError:
    """The error for a request that found no server to answer it at ``where``."""
    kind = connect_failure(exc)
    what = FAILURE_WORDS.get(kind) or _innermost_reason(exc)
    fix = _FIXES.get(kind, "check the URL")
    # Refused, unresolvable, unreachable, timed out: no connection; reset and the
    # rest: a connection that dropped before an answer came.
    verb = "cannot connect to" if kind in DEFINITE | {"timeout"} else "no answer from"
    return ConnectError(f"{verb} {where}: {what} ({_tried(exc, kind)}): {fix}")


def _timed_out(where: str, exc: BaseException, timeout: float) -> ConnectTimeout:
    """The error for a connect that got no answer within ``timeout`` seconds."""
    return ConnectTimeout(
        f"connecting to {where} timed out within {timeout:g} s ({_tried(exc, 'timeout')}): "
        "is the host up and the port open? check the URL, or raise timeout="
    )


def _tls_failed(where: str, exc: BaseException) -> ConnectError:
    """The error for a TLS handshake that failed: a certificate not trusted, or no TLS at all."""
    import ssl

    reason = _innermost_reason(exc)
    if _chain_has(exc, ssl.SSLCertVerificationError) or "certificate" in reason.lower():
        tried = _tried(exc, "certificate")
        return ConnectError(
            f"TLS verification of {where} failed: {reason} ({tried}): pass ca_bundle= for a "
            "private CA (or verify=False, which warns)"
        )
    return ConnectError(
        f"TLS handshake with {where} failed: {reason} ({_tried(exc, 'tls')}): is it an HTTPS "
        "service on that port? check the URL's scheme and port"
    )


def _tried(exc: BaseException, kind: str) -> str:
    """``1 attempt`` or ``N attempts``, from the count ``CountedMaxRetryError`` carries."""
    counted = [getattr(e, "attempts", None) for e in _chain(exc)]
    attempts = next((n for n in counted if isinstance(n, int)), 1)
    return attempts_made(attempts, an_answer=kind in DEFINITE or kind == "certificate")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (cause, urllib3's ``reason``, an exception argument), outermost
    first, a bounded number of links."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 8:
        found.append(current)
        reason = getattr(current, "reason", None)
        inner = [a for a in current.args if isinstance(a, BaseException)]
        current = (
            current.__cause__
            or (reason if isinstance(reason, BaseException) else None)
            or (inner[0] if inner else None)
        )
    return found


def _chain_has(exc: BaseException, kind: type[BaseException]) -> bool:
    return any(isinstance(e, kind) for e in _chain(exc))


def _innermost_reason(exc: BaseException) -> str:
    """The deepest wrapped exception's own words, without urllib3's pool and OpenSSL's tags."""
    inner = _chain(exc)[-1]
    if isinstance(inner, OSError) and inner.strerror and not inner.filename:
        text = inner.strerror
    else:
        text = str(inner) or type(inner).__name__
    text = re.sub(r"^\[SSL: [A-Z0-9_]+\] ", "", text)  # OpenSSL's reason code, said again
    text = re.sub(r" \(_ssl\.c:\d+\)$", "", text)
    return _short(text.rstrip("."))


def _short(exc: BaseException | str) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:297] + "..."


class HTTPTransport(RESTTransport):
    """The same over plain HTTP (for local services; prefer https)."""

    scheme: ClassVar[str] = "http"
