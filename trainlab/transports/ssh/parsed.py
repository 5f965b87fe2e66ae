"""Parsed known_hosts files and unencrypted private keys, cached by content.

A fan-out over many hosts would otherwise parse every known_hosts line and the key
file again for each connection (a third of the client's CPU per connect). Reading a
file is cheap; parsing its keys is not. Imports the standard library only.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

__all__ = ["lookup", "remember", "version"]

_parsed: dict[tuple[str, bytes], Any] = {}
_lock = threading.Lock()
_MAX = 4096


def version(kind: str, data: bytes) -> tuple[str, bytes]:
    """The cache key of ``data`` parsed as ``kind``: a digest of the content."""
    return kind, hashlib.blake2b(data, digest_size=16).digest()


def lookup(key: tuple[str, bytes]) -> Any:
    """What was remembered under ``key``, or ``None``."""
    return _parsed.get(key)


def remember(key: tuple[str, bytes], value: Any) -> None:
    """Keep ``value`` under ``key``; a full cache starts over."""
    with _lock:
        if len(_parsed) >= _MAX:
            _parsed.clear()
        _parsed[key] = value
