"""REST sessions against a real HTTPS server on loopback with a test CA's certificate."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import trainlab
from tests.servers import listening
from trainlab.sandbox.api import APIServer
from trainlab.transports.rest import InsecureTLSWarning

pytestmark = pytest.mark.rest


@pytest.fixture
def api(api_server: APIServer, api_options: dict[str, Any]) -> trainlab.Session:
    return trainlab.connect(api_server.url, reuse=False, **api_options)


def test_one_connection_for_many_requests(api: Any, api_server: APIServer) -> None:
    before = api_server.connections
    for _ in range(20):
        assert api.get("/time").status == 200
    assert api_server.connections == before + 1  # the token request and 20 GETs, one socket
    details = api.metrics["detail"].tolist()
    assert details[-1] == "200 reused"


@pytest.mark.parametrize("path", ["/devices/", "/linked", "/cursor"])
def test_every_paging_style_gives_one_frame(api: Any, path: str) -> None:
    frame = api.get_all(path)
    assert len(frame) == 81
    assert frame["id"].tolist() == list(range(81))
    assert {"site.slug", "site.name"} <= set(frame.columns)


def test_frame_of_one_page_and_params(api: Any) -> None:
    page = api.get("/devices/", params={"site": "fra1", "limit": 4})
    frame = page.frame()
    assert len(frame) == 4
    assert set(frame["site.slug"]) == {"fra1"}
    assert page.json()["count"] == 27


def test_expired_token_is_renewed_once_and_replayed(api: Any, api_server: APIServer) -> None:
    api.get("/time")
    issued = api_server.issued
    api_server.expire_tokens()
    assert api.get("/time").status == 200
    assert api_server.issued == issued + 1


def test_a_renewed_token_refused_again_is_an_error() -> None:
    with APIServer(token_lifetime=0.0) as short:
        s = trainlab.connect(
            short.url,
            reuse=False,
            ca_bundle=short.ca_file,
            token_url=short.token_url,
            client_id="lab",
            client_secret=short.client_secret,
        )
        with pytest.raises(trainlab.ConnectError, match="refused a freshly renewed token"):
            s.get("/time")
        assert short.issued == 2  # renewed once, never looping


def test_wrong_client_secret(api_server: APIServer) -> None:
    s = trainlab.connect(
        api_server.url,
        reuse=False,
        ca_bundle=api_server.ca_file,
        token_url=api_server.token_url,
        client_id="lab",
        client_secret="not-the-secret",
    )
    with pytest.raises(trainlab.ConnectError, match="refused the client credentials") as info:
        s.get("/time")
    assert "not-the-secret" not in str(info.value)


def test_basic_auth(api_server: APIServer) -> None:
    s = trainlab.connect(
        api_server.url,
        reuse=False,
        ca_bundle=api_server.ca_file,
        username="lab",
        password=api_server.password,
    )
    assert s.get("/time").status == 200
    assert api_server.password not in repr(s) + s.metrics.to_csv()


def test_idempotent_requests_are_retried_others_not(api: Any, api_server: APIServer) -> None:
    assert api.get("/flaky", params={"key": "g", "fail": 2}).json() == {"attempts": 3}
    assert api.post("/flaky-post").status == 503
    assert api_server.hits["flaky-post"] == 1
    api.post("/flaky-post", retry=True)
    assert api_server.hits["flaky-post"] == 1 + 4  # asked: the first try and three retries


def test_read_timeout(api: Any) -> None:
    with pytest.raises(trainlab.CommandTimeout, match=r"no answer within 0\.3 s"):
        api.get("/slow", params={"seconds": 2}, timeout=0.3)


def test_tls_is_verified(api_server: APIServer) -> None:
    s = trainlab.connect(api_server.url, reuse=False, token=api_server.issue_token())
    with pytest.raises(trainlab.ConnectError, match="ca_bundle="):
        s.get("/time")
    from trainlab.transports import rest

    rest._warned_insecure.clear()
    insecure = trainlab.connect(
        api_server.url, reuse=False, verify=False, token=api_server.issue_token()
    )
    with pytest.warns(InsecureTLSWarning, match="not checked"):
        answer = insecure.get("/time")
    assert answer.status == 200


def test_paths_cannot_leave_the_base(api: Any, api_server: APIServer) -> None:
    for bad in ("../token", "/devices/../../token", "https://example.com/api/x"):
        with pytest.raises(trainlab.TargetError):
            api.get(bad)
    assert api.get(f"{api_server.url}/time").status == 200  # absolute, but inside the base


def test_per_request_headers_do_not_leak(api: Any) -> None:
    assert api.get("/headers", headers={"X-Once": "1"}).json()["X-Once"] == "1"
    assert "X-Once" not in api.get("/headers").json()


def test_errors_when_asked(api: Any) -> None:
    assert api.get("/status/404").status == 404  # data by default
    with pytest.raises(trainlab.HTTPError) as info:
        api.get("/status/404", check=True)
    assert info.value.status == 404
    assert len(info.value.body) <= 500
    with pytest.raises(trainlab.OutputError, match="not JSON"):
        api.get("/bad-json").json()


def test_get_answers_are_cached_with_ttl(api: Any) -> None:
    first = api.get("/time", ttl=60)
    second = api.get("/time", ttl=60)
    assert second.cached
    assert second.json() == first.json()
    assert not api.get("/time", ttl=60, refresh=True).cached


def test_secrets_never_show(api: Any, api_server: APIServer) -> None:
    api.get("/time")
    shown = repr(api) + api._repr_html_() + api.metrics.to_csv() + trainlab.sessions().to_csv()
    assert api_server.client_secret not in shown
    token = api.transport._token  # type: ignore[attr-defined]
    assert token
    assert token not in shown


def test_run_is_a_request(api: Any) -> None:
    r = api.run("GET /time")
    assert r.ok
    assert "now" in r.json()
    with pytest.raises(trainlab.TargetError, match="METHOD /path"):
        api.run("uptime")


# ------------------------------------------------- regressions from a review


@pytest.mark.parametrize("path", ["%2e%2e/token", "x/%2e%2e/%2E%2E/token", "http:/api/x", "ftp:/x"])
def test_encoded_and_scheme_tricks_cannot_leave_the_base(api: Any, path: str) -> None:
    with pytest.raises(trainlab.TargetError):
        api.get(path)


def test_redirects_are_followed_only_inside_the_base(api: Any) -> None:
    assert api.get("/redirect-in").json()["now"] > 0
    out = api.get("/redirect-out")
    assert out.status == 302  # handed back, not followed to /token


def test_token_endpoint_tls_failure_names_the_fix(api_server: APIServer) -> None:
    s = trainlab.connect(
        api_server.url,
        reuse=False,
        token_url=api_server.token_url,
        client_id="lab",
        client_secret=api_server.client_secret,
    )
    with pytest.raises(trainlab.ConnectError, match="ca_bundle="):
        s.get("/time")


def test_own_authorization_header_is_not_renewed(api: Any, api_server: APIServer) -> None:
    api.get("/time")
    issued = api_server.issued
    assert api.get("/time", headers={"Authorization": "Bearer bogus"}).status == 401
    assert api_server.issued == issued


def test_reuse_is_reported_truthfully(api: Any, api_server: APIServer) -> None:
    api.get("/time")
    before = api_server.connections
    api.get("/time", retry=False)  # a separate, no-retry connection pool
    assert api_server.connections == before + 1
    assert api.metrics["detail"].tolist()[-1] == "200 new connection"
    assert api.metrics["detail"].tolist()[-2] == "200 reused"


def test_cached_answers_are_copies(api: Any) -> None:
    first = api.get("/time", ttl=60)
    first.headers["X-Mine"] = "1"
    assert "X-Mine" not in api.get("/time", ttl=60).headers


def test_requests_that_cannot_be_sent(api: Any) -> None:
    with pytest.raises(trainlab.TargetError, match="cannot be sent"):
        api.get("/time", headers={"X-Euro": "€"})


# -- connect failures, in trainlab's words -----------------------------------------------


def test_a_refused_connect_names_the_attempts_and_the_fix(closed_port: int) -> None:
    import requests

    api = trainlab.connect(f"http://127.0.0.1:{closed_port}/", reuse=False, retries=3)
    with pytest.raises(trainlab.ConnectError) as info:
        api.get("/items")
    message = str(info.value)
    assert message.startswith(f"cannot connect to http://127.0.0.1:{closed_port}/: ")
    assert "connection refused (1 attempt, not retried" in message
    assert message.endswith("is the service up? check the URL's host and port")
    assert "Max retries exceeded" not in message
    assert isinstance(info.value.__cause__, requests.ConnectionError)  # the original, chained


def test_an_untrusted_certificate_names_the_attempts_and_the_fix(api_server: APIServer) -> None:
    import requests

    s = trainlab.connect(api_server.url, reuse=False, token=api_server.issue_token(), retries=3)
    with pytest.raises(trainlab.ConnectError) as info:
        s.get("/time")
    message = str(info.value)
    assert message.startswith(f"TLS verification of {api_server.url}/ failed: ")
    assert "certificate verify failed" in message
    assert "(1 attempt, not retried" in message  # an untrusted certificate is an answer
    assert "pass ca_bundle= for a private CA (or verify=False, which warns)" in message
    assert "Max retries exceeded" not in message
    assert "_ssl.c" not in message
    assert isinstance(info.value.__cause__, requests.exceptions.SSLError)


def test_an_unreachable_token_endpoint_says_so(api_server: APIServer, closed_port: int) -> None:
    s = trainlab.connect(
        api_server.url,
        reuse=False,
        ca_bundle=api_server.ca_file,
        token_url=f"http://127.0.0.1:{closed_port}/token",
        client_id="lab",
        client_secret=api_server.client_secret,
    )
    with pytest.raises(trainlab.ConnectError) as info:
        s.get("/time")
    message = str(info.value)
    assert message.startswith(
        f"cannot connect to the token endpoint http://127.0.0.1:{closed_port}"
    )
    assert "connection refused (1 attempt" in message
    assert "Max retries exceeded" not in message


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    """A plain-HTTP server on loopback: a TLS client hello gets an HTTP 400 back."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Quiet(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_https_to_a_plain_http_port_names_the_fix(plain_http_port: int) -> None:
    api = trainlab.connect(f"https://127.0.0.1:{plain_http_port}/", reuse=False, backoff=0.01)
    with pytest.raises(trainlab.ConnectError) as info:
        api.get("/items")
    message = str(info.value)
    assert message.startswith(f"TLS handshake with https://127.0.0.1:{plain_http_port}/ failed: ")
    assert "attempt" in message
    assert message.endswith("is it an HTTPS service on that port? check the URL's scheme and port")
    assert "Max retries exceeded" not in message


def _read_then_close(conn: socket.socket) -> None:
    with conn, contextlib.suppress(OSError):
        conn.settimeout(5)
        conn.recv(1024)  # the request, read so the close is not a reset of unread data


@pytest.fixture
def hang_up_port() -> Iterator[int]:
    """A loopback port that accepts each connection and closes it at once, unanswered."""
    with listening(_read_then_close) as port:
        yield port


def test_a_server_that_hangs_up_says_so(hang_up_port: int) -> None:
    api = trainlab.connect(f"http://127.0.0.1:{hang_up_port}/", reuse=False, backoff=0.01)
    with pytest.raises(trainlab.ConnectError) as info:
        api.get("/items")
    message = str(info.value)
    assert message.startswith(f"no answer from http://127.0.0.1:{hang_up_port}/: ")
    assert "the connection was reset (1 attempt)" in message  # a read error: not retried
    assert message.endswith("is it an HTTP service on that port? check the URL's scheme and port")
    assert "Max retries exceeded" not in message


def test_a_connect_timeout_names_the_attempts_and_the_fix(full_port: int) -> None:
    api = trainlab.connect(
        f"http://127.0.0.1:{full_port}/", reuse=False, timeout=0.2, retries=1, backoff=0.01
    )
    with pytest.raises(trainlab.ConnectTimeout) as info:
        api.get("/items")
    message = str(info.value)
    assert message.startswith(f"connecting to http://127.0.0.1:{full_port}/ timed out within ")
    assert "(2 attempts)" in message  # a timeout may pass: retried, as many times as asked
    assert message.endswith("is the host up and the port open? check the URL, or raise timeout=")
    assert "Max retries exceeded" not in message
