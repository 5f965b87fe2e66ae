"""REST sessions: ``get``, ``post``, ... over a kept ``requests.Session``, answers cached.

The session policy (cache, metrics, open and reopen) for ``http://`` and ``https://``
targets; the I/O is ``trainlab.transports.rest``'s. Created by ``trainlab.connect``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from trainlab.commands import non_negative
from trainlab.errors import TargetError, TransportError
from trainlab.metrics import Record
from trainlab.session import Session
from trainlab.transports.rest import APIResponse, RESTTransport, copy_response, json_dumps

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RESTSession"]


class RESTSession(Session):
    """A session on a REST API: ``get``, ``post``, ... and ``get_all`` for every page."""

    def request(
        self,
        method: str,
        path: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
        refresh: bool = False,
        check: bool = False,
        retry: bool | None = None,
    ) -> APIResponse:
        """Send one request. ``ttl`` caches GET answers; ``check`` raises ``HTTPError``.

        Per-request ``headers`` apply to this request only. Non-idempotent methods
        are not retried unless ``retry=True``.
        """
        transport = self.transport
        if not isinstance(transport, RESTTransport):  # pragma: no cover - by construction
            raise TargetError("not a REST session")
        method = method.upper()
        url = transport.url_for(path)
        lifetime = self._ttl if ttl is None else non_negative(ttl, "ttl")
        key = None
        if method == "GET" and lifetime > 0:
            key = self._key("GET", url + "?" + json_dumps(params) + json_dumps(headers))
            if not refresh:
                hit: APIResponse | None = self.cache.get(key)
                if hit is not None:
                    self._record_hit(method, url, hit.nbytes)
                    answer = copy_response(hit, cached=True)
                    return answer.check() if check else answer

        def describe(answer: APIResponse, record: Record) -> None:
            record.ok = answer.ok
            record.detail = f"{answer.status}{' reused' if answer.reused else ' new connection'}"
            record.extra["status"] = answer.status

        answer = self._call(
            method,
            url,
            lambda: transport.send(
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=headers,
                timeout=timeout,
                retry=retry,
            ),
            lambda answer: len(answer.content),
            annotate=describe,
        )
        self.commands += 1
        if key is not None and answer.ok:  # a copy: the caller may edit theirs
            self.cache.put(
                key, copy_response(answer, cached=False), ttl=lifetime, cost=answer.elapsed
            )
        return answer.check() if check else answer

    def get(self, path: str = "", **options: Any) -> APIResponse:
        """``request("GET", path, **options)``: see ``request`` for the options."""
        return self.request("GET", path, **options)

    def post(self, path: str = "", **options: Any) -> APIResponse:
        """``request("POST", path, **options)``: see ``request`` for the options."""
        return self.request("POST", path, **options)

    def put(self, path: str = "", **options: Any) -> APIResponse:
        """``request("PUT", path, **options)``: see ``request`` for the options."""
        return self.request("PUT", path, **options)

    def patch(self, path: str = "", **options: Any) -> APIResponse:
        """``request("PATCH", path, **options)``: see ``request`` for the options."""
        return self.request("PATCH", path, **options)

    def delete(self, path: str = "", **options: Any) -> APIResponse:
        """``request("DELETE", path, **options)``: see ``request`` for the options."""
        return self.request("DELETE", path, **options)

    def pages(
        self,
        path: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        cursor_param: str = "cursor",
        max_pages: int = 1000,
        **options: Any,
    ) -> Iterator[APIResponse]:
        """Every page: a ``Link: rel="next"`` header, a ``next`` URL, or a ``next_cursor``."""
        current: str | None = path
        query: dict[str, Any] | None = dict(params or {})
        for _ in range(max_pages):
            if current is None:
                return
            answer = self.request("GET", current, params=query, check=True, **options)
            yield answer
            nxt = answer.links.get("next", {}).get("url")
            body: Any = None
            if nxt is None and answer.content[:1] in (b"{", b"["):
                body = answer.json()
            if nxt is None and isinstance(body, dict):
                if isinstance(body.get("next"), str):
                    nxt = body["next"]
                else:
                    token = body.get("next_cursor") or body.get("nextToken") or body.get("cursor")
                    if token:
                        query = {**(query or {}), cursor_param: token}
                        continue
            if nxt is None:
                return
            current, query = nxt, None  # the next URL carries its own query
        raise TransportError(f"{path} had more than {max_pages} pages; raise max_pages=")

    def get_all(
        self, path: str = "", *, record_path: str | list[str] | None = None, **options: Any
    ) -> pd.DataFrame:
        """Every page of a collection as one DataFrame."""
        import pandas as pd

        frames = [page.frame(record_path) for page in self.pages(path, **options)]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)
