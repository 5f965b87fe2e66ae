"""Timing records: every connect, command, batch and file read, in a bounded buffer.

``Metrics.frame()`` is a DataFrame; ``summary()`` gives count, median and p95 per
operation. ``ok`` means what ``CommandResult.ok`` means: the operation did its work
and, for a command, exited 0 (``exit_status``); ``transport_ok`` says only that the
transport carried it out (a command that exits 1 is ``transport_ok`` and not ``ok``).
Operations slower than a per-operation threshold are logged, and the process's
resident memory growth across each operation is noted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Metrics", "Record", "rss_bytes"]

log = logging.getLogger("trainlab.metrics")

DEFAULT_THRESHOLDS: dict[str, float] = {
    "connect": 5.0,
    "run": 10.0,
    "batch": 30.0,
    "read": 5.0,
    "stat": 5.0,
}
#: Resident memory growth over one operation that is worth a log line.
MEMORY_GROWTH_NOTE = 64 * 1024 * 1024

COLUMNS = (
    "operation",
    "target",
    "transport",
    "started",
    "duration_s",
    "cached",
    "ok",
    "exit_status",
    "transport_ok",
    "bytes",
    "reconnected",
    "mem_delta",
    "command",
    "error",
    "detail",
)


@dataclass
class Record:
    """One timed operation. ``command`` is clipped to 200 characters.

    ``ok``: it succeeded (a command exited 0, a batch's commands all did, a REST
    call got a 2xx); ``exit_status``: a command's, else ``None``; ``transport_ok``:
    no error was raised, whatever the command's exit status.
    """

    operation: str
    target: str
    transport: str
    started: datetime
    duration_s: float = 0.0
    cached: bool = False
    ok: bool = True
    exit_status: int | None = None
    transport_ok: bool = True
    bytes: int = 0
    reconnected: bool = False
    mem_delta: int | None = None
    command: str = ""
    error: str = ""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def note(self, outcome: Any) -> Record:
        """Take ``ok`` and ``exit_status`` from what the operation returned; returns ``self``.

        A command's result (anything with an integer ``exit_status`` and ``ok``) sets
        both; a list of them (a batch) is ok when every one is, and names its failures
        in ``detail``; anything else leaves the record as it is.
        """
        if _is_result(outcome):
            self.exit_status = int(outcome.exit_status)
            self.ok = self.transport_ok and bool(outcome.ok)
        elif isinstance(outcome, list | tuple) and outcome and all(map(_is_result, outcome)):
            failed = sum(1 for result in outcome if not result.ok)
            self.ok = self.transport_ok and not failed
            if failed:
                note = f"{failed} of {len(outcome)} failed"
                self.detail = f"{self.detail}; {note}" if self.detail else note
        return self


class Metrics:
    """A bounded, thread-safe buffer of ``Record`` with threshold logging.

    Parameters
    ----------
    maxlen
        Records kept; the oldest go first.
    thresholds
        Seconds per operation above which a warning is logged.
    clock
        Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        *,
        maxlen: int = 10_000,
        thresholds: dict[str, float] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        memory: Callable[[], int | None] | None = None,
    ) -> None:
        self._records: deque[Record] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.thresholds = dict(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
        self._clock = clock
        self._memory = memory if memory is not None else rss_bytes
        self.total = 0

    def begin(
        self, operation: str, *, target: str, transport: str, command: str = ""
    ) -> tuple[Record, float, int | None]:
        """Start timing an operation; hand the triple to ``end``."""
        record = Record(operation, target, transport, datetime.now(UTC), command=command[:200])
        return record, self._clock(), self._memory()

    def end(
        self,
        begun: tuple[Record, float, int | None],
        error: BaseException | None = None,
        outcome: Any = None,
    ) -> None:
        """Finish timing: duration, memory growth, failure, the ``outcome``'s exit status
        (see ``Record.note``); then record it."""
        record, start, rss_before = begun
        record.duration_s = self._clock() - start
        if error is not None:
            record.ok = record.transport_ok = False
            record.error = type(error).__name__
        else:
            record.note(outcome)
        rss_after = self._memory()
        if rss_before is not None and rss_after is not None:
            record.mem_delta = rss_after - rss_before
        self.add(record)

    @contextmanager
    def measure(
        self, operation: str, *, target: str, transport: str, command: str = ""
    ) -> Iterator[Record]:
        """Time the body; the yielded ``Record`` can be annotated; failures are recorded."""
        begun = self.begin(operation, target=target, transport=transport, command=command)
        try:
            yield begun[0]
        except BaseException as exc:
            self.end(begun, exc)
            raise
        self.end(begun)

    def add(self, record: Record) -> None:
        """Append a record and log it if it crossed a threshold."""
        with self._lock:
            self._records.append(record)
            self.total += 1
        limit = self.thresholds.get(record.operation)
        if limit is not None and record.duration_s > limit:
            log.warning(
                "slow %s on %s: %.3fs (threshold %.3fs) %s",
                record.operation,
                record.target,
                record.duration_s,
                limit,
                record.command,
            )
        if record.mem_delta is not None and record.mem_delta > MEMORY_GROWTH_NOTE:
            log.info(
                "%s on %s grew resident memory by %.1f MiB (%s bytes of output)",
                record.operation,
                record.target,
                record.mem_delta / 2**20,
                f"{record.bytes:,}",
            )

    def records(self) -> list[Record]:
        """A copy of the buffered records, oldest first."""
        with self._lock:
            return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()

    def frame(self) -> pd.DataFrame:
        """The records as a DataFrame, one row per operation."""
        return records_frame(self.records())

    def summary(self) -> pd.DataFrame:
        """Per operation: count, cached count, failures, median and p95 seconds, total."""
        return summarize(self.frame())


def records_frame(records: list[Record]) -> pd.DataFrame:
    """Records to a DataFrame (a ``trainlab.tables.Table``) with stable columns and dtypes."""
    from trainlab.tables import Table

    rows = []
    for record in records:
        row = asdict(record)
        row.pop("extra", None)
        rows.append(row)
    frame = Table(rows, columns=list(COLUMNS))
    return frame.astype(
        {
            "duration_s": "float64",
            "cached": "bool",
            "ok": "bool",
            "exit_status": "Int64",
            "transport_ok": "bool",
            "bytes": "int64",
            "reconnected": "bool",
            "mem_delta": "Int64",
        }
    )


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """count, cached, failed, median_s, p95_s and total_s per operation (exact; shown
    rounded, as a ``trainlab.tables.Table``)."""
    from trainlab.tables import Table

    if frame.empty:
        return Table(columns=["count", "cached", "failed", "median_s", "p95_s", "total_s"])
    grouped = frame.groupby("operation", sort=True)
    return Table(
        {
            "count": grouped.size(),
            "cached": grouped["cached"].sum(),
            "failed": grouped["ok"].apply(lambda s: int((~s).sum())),
            "median_s": grouped["duration_s"].median(),
            "p95_s": grouped["duration_s"].quantile(0.95),
            "total_s": grouped["duration_s"].sum(),
        }
    )


def _is_result(value: Any) -> bool:
    status = getattr(value, "exit_status", None)
    return isinstance(status, int) and not isinstance(status, bool) and hasattr(value, "ok")


# -------------------------------------------------------------- memory probe

_STATM_FD: int | None = None
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM_LOCK = threading.Lock()


def _forget_statm_fd() -> None:
    # A forked child must open its own /proc/self/statm, not read its parent's.
    global _STATM_FD  # noqa: PLW0603
    _STATM_FD = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_statm_fd)


def rss_bytes() -> int | None:
    """Resident set size of this process in bytes (Linux), or ``None`` elsewhere.

    Reads ``/proc/self/statm`` through one kept descriptor: a couple of microseconds,
    cheap enough to take around every operation.
    """
    global _STATM_FD  # noqa: PLW0603 - one descriptor per process, opened on first use
    try:
        if _STATM_FD is None:
            with _STATM_LOCK:
                if _STATM_FD is None:
                    _STATM_FD = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        data = os.pread(_STATM_FD, 128, 0)
        return int(data.split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None
