"""The registry of live sessions: which are open, closing them all at exit.

``trainlab.session.connect`` registers each session here; ``Session.close`` forgets
it. Imports nothing of the session layer at run time, so the session imports it.
"""

from __future__ import annotations

import atexit
import contextlib
import heapq
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from trainlab.session import Session

__all__ = [
    "SESSION_COLUMNS",
    "close_all",
    "close_quietly",
    "find",
    "forget",
    "live_sessions",
    "recent_operations",
    "register",
    "registry_lock",
    "session_state",
    "sessions",
]

_live: dict[tuple[Any, ...], Session] = {}
_every: weakref.WeakSet[Session] = weakref.WeakSet()
#: Held while looking up and registering a session, so one target gets one session.
registry_lock = threading.RLock()
_atexit_registered = False


def find(key: tuple[Any, ...]) -> Session | None:
    """The registered session for ``key``, if any (closed or not)."""
    return _live.get(key)


def register(session: Session, key: tuple[Any, ...] | None) -> None:
    """Count ``session`` as live; with a ``key``, ``find(key)`` returns it."""
    with registry_lock:
        _ensure_atexit()
        _every.add(session)
        if key is not None:
            _live[key] = session
            session._registry_key = key


def close_quietly(closable: Any) -> None:
    """``closable.close()``, ignoring its failure: for cleanup that must go on."""
    with contextlib.suppress(Exception):
        closable.close()


def forget(session: Session) -> None:
    """``session`` is closed: no longer live, nor found by its key."""
    key = session._registry_key
    with registry_lock:
        if key is not None and _live.get(key) is session:
            del _live[key]
        _every.discard(session)


def session_state(closed: bool, opened: bool, alive: bool) -> str:
    """A session's state as its reader needs it: what happens on its next use.

    >>> session_state(False, False, False)
    'not open yet: opens on first use'
    """
    if closed:
        return "closed"
    if alive:
        return "alive"
    if not opened:
        return "not open yet: opens on first use"
    return "connection lost: reopens on next use"


def live_sessions() -> list[Session]:
    """Every session that is not closed, oldest first."""
    with registry_lock:
        return [s for s in list(_every) if not s.closed]


def sessions() -> pd.DataFrame:
    """The open sessions as a DataFrame.

    Columns: target, transport, mode, opened, commands, cache_hits, cache_misses,
    cache_hit_rate, cache_saved_s, alive, state (``session_state``: what the next use does).
    """
    from trainlab.result import results_frame

    rows = []
    for s in live_sessions():
        stats, alive = s.cache.stats, s.alive
        rows.append(
            {
                "target": s.uri,
                "transport": s.transport_name,
                "mode": s.transport.mode,
                "opened": s.opened,
                "commands": s.commands,
                "cache_hits": stats.hits,
                "cache_misses": stats.misses,
                "cache_hit_rate": stats.hit_rate,
                "cache_saved_s": stats.seconds_saved,
                "alive": alive,
                "state": session_state(s.closed, s.opened is not None, alive),
            }
        )
    return results_frame(rows, SESSION_COLUMNS, _SESSION_DTYPES)


SESSION_COLUMNS = (
    "target",
    "transport",
    "mode",
    "opened",
    "commands",
    "cache_hits",
    "cache_misses",
    "cache_hit_rate",
    "cache_saved_s",
    "alive",
    "state",
)
_SESSION_DTYPES = {
    "commands": "int64",
    "cache_hits": "int64",
    "cache_misses": "int64",
    "cache_hit_rate": "float64",
    "cache_saved_s": "float64",
    "alive": "bool",
}


def recent_operations(limit: int = 20) -> pd.DataFrame:
    """The last ``limit`` operations of every open session, newest first (metrics rows)."""
    from trainlab.metrics import records_frame

    records = (r for s in live_sessions() for r in s.recorder.records())
    # The newest few of up to 10,000 records a session: no full sort (a dashboard
    # refreshes this every few seconds); nlargest keeps sorted()'s order for ties.
    return records_frame(heapq.nlargest(max(0, limit), records, key=lambda r: r.started))


def close_all() -> int:
    """Close every session; returns how many were open."""
    doomed = live_sessions()
    for session in doomed:
        close_quietly(session)
    return len(doomed)


def _ensure_atexit() -> None:
    global _atexit_registered  # noqa: PLW0603
    if not _atexit_registered:
        atexit.register(close_all)
        _atexit_registered = True
