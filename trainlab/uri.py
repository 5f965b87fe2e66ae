"""Target URIs: ``scheme://user@host:port/path?key=value`` parsed into a ``Target``.

The query keys are kept as raw strings here; each transport validates its own keys
(``trainlab.options``). A password in the URI is moved out of the visible fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from trainlab.errors import TargetError

__all__ = ["Target", "parse_target"]

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")


@dataclass(frozen=True)
class Target:
    """A parsed target. ``str(target)`` is its normalized URI, without secrets.

    >>> t = parse_target("SSH://Deploy@Web1.Example.com:2222/?sudo=true")
    >>> t.scheme, t.user, t.host, t.port, t.query
    ('ssh', 'Deploy', 'web1.example.com', 2222, {'sudo': 'true'})
    >>> str(parse_target("ssh://u:hunter2@h"))
    'ssh://u@h'
    """

    scheme: str
    host: str = ""
    user: str | None = None
    port: int | None = None
    path: str = ""
    query: dict[str, str] = field(default_factory=dict, compare=False)
    password: str | None = field(default=None, repr=False, compare=False)

    @cached_property
    def address(self) -> str:
        """``scheme://user@host:port/path`` with no query and no secret."""
        netloc = ""
        if self.user:
            netloc += quote(self.user, safe="") + "@"
        if ":" in self.host:
            netloc += f"[{self.host}]"
        else:
            netloc += self.host
        if self.port is not None:
            netloc += f":{self.port}"
        path = self.path if self.path not in ("", "/") else ""
        return f"{self.scheme}://{netloc}{path}"

    def __str__(self) -> str:
        if not self.query:
            return self.address
        query = "&".join(
            f"{key}={quote(value, safe='')}" for key, value in sorted(self.query.items())
        )
        return f"{self.address}?{query}"


def parse_target(uri: str) -> Target:
    """Parse ``uri`` or raise ``TargetError`` saying what is wrong and how to write it."""
    if not isinstance(uri, str):
        raise TargetError(f"a target is a URI string such as 'local://', got {type(uri).__name__}")
    text = uri.strip()
    if not text:
        raise TargetError("empty target: write a URI such as 'local://' or 'ssh://user@host'")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in text) or " " in text:
        raise TargetError(f"target {redact(text)!r} contains spaces or control characters")
    if "://" not in text:
        shown = redact(text)
        # A scheme's own name suggests 'local://' for 'local'; a host name, 'ssh://web1'.
        from trainlab.registry import available_schemes

        is_scheme = text.lower() in available_schemes()
        example = f"{shown.lower()}://" if is_scheme else f"ssh://{shown}"
        raise TargetError(f"target {shown!r} has no scheme; write it as {example!r}")
    scheme = text.split("://", 1)[0].lower()
    if not _SCHEME.match(scheme):
        raise TargetError(f"target {text!r} has an invalid scheme {scheme!r}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        # The parser's own message may quote part of a password: not repeated here.
        raise TargetError(
            f"target {redact(text)!r} is malformed: check the port (1-65535) and any "
            "'[' ']' around an IPv6 address"
        ) from None
    if parts.fragment:
        raise TargetError(f"target {redact(text)!r} has a '#' fragment; remove it")
    query: dict[str, str] = {}
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise TargetError(f"target {redact(text)!r} has a malformed query: {exc}") from None
    if port == 0:
        raise TargetError(f"target {redact(text)!r} has port 0; ports are 1 to 65535")
    for key, value in pairs:
        if key in query:
            raise TargetError(f"option {key!r} is given twice in {redact(text)!r}")
        query[key] = value
    return Target(
        scheme=scheme,
        host=(parts.hostname or "").lower(),
        user=unquote(parts.username) if parts.username else None,
        port=port,
        path=unquote(parts.path),
        query=query,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def redact(text: str) -> str:
    """Hide the password of ``user:password@host`` in text for an error message.

    The password may hold '/', ' ' or '@': everything between the first ':' of the
    user part and the last '@' goes.
    """
    start = text.find("://")
    start = start + 3 if start >= 0 else 0
    at = text.rfind("@")
    if at < start:
        return text
    colon = text.find(":", start, at)
    if colon < 0:
        return text
    return text[: colon + 1] + "***" + text[at:]
