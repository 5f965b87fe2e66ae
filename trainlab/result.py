"""Results as data: ``CommandResult`` for one command, ``BatchResult`` for a batch.

A non-zero exit is data, not an exception, unless the caller asks (``check()``).
Tabular views (``table()``, ``frame``) build pandas DataFrames on demand, so
importing this module does not import pandas.
"""

from __future__ import annotations

import html
import json
import re
import stat as stat_module
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, overload

from trainlab.errors import CommandFailed, OutputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BatchResult", "CommandResult", "FileStat"]

_REPR_WIDTH = 60
T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class CommandResult:
    """What one command produced.

    ``stdout``/``stderr`` are decoded as UTF-8 with invalid bytes replaced;
    ``stdout_bytes``/``stderr_bytes`` keep the raw bytes. ``duration`` is the time
    the command took when it ran (a cached answer keeps it; ``cached`` says so).
    ``truncated`` says output was not all kept (``max_output``: the middle of a
    stream is dropped, head and tail kept); ``stdout_dropped``/``stderr_dropped``
    count the bytes left out.

    >>> r = CommandResult("echo hi", b"hi\\n", b"", 0, duration=0.002, target="local://")
    >>> r
    <CommandResult cmd='echo hi' exited=0 on local:// 2.0 ms>
    >>> r.ok, r.stdout, r.lines
    (True, 'hi\\n', ['hi'])
    """

    command: str
    stdout_bytes: bytes
    stderr_bytes: bytes
    exit_status: int
    duration: float = 0.0
    target: str = ""
    cached: bool = False
    started: datetime | None = None
    truncated: bool = False
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @cached_property
    def stdout(self) -> str:
        """Standard output as text (UTF-8, invalid bytes replaced)."""
        return self.stdout_bytes.decode("utf-8", "replace")

    @cached_property
    def stderr(self) -> str:
        """Standard error as text (UTF-8, invalid bytes replaced)."""
        return self.stderr_bytes.decode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.exit_status == 0

    @property
    def nbytes(self) -> int:
        """Bytes held by this result (output, error and command), for cache bounds."""
        return len(self.stdout_bytes) + len(self.stderr_bytes) + len(self.command) + 200

    @property
    def lines(self) -> list[str]:
        """Standard output split into lines, without line endings."""
        return self.stdout.splitlines()

    def check(self) -> CommandResult:
        """Return ``self`` when the command succeeded; raise ``CommandFailed`` otherwise."""
        if not self.ok:
            raise CommandFailed(self)
        return self

    def json(self) -> Any:
        """Parse standard output as JSON; ``OutputError`` says where it is invalid."""
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            snippet = self.stdout[max(0, exc.pos - 20) : exc.pos + 20]
            raise OutputError(
                f"output of {self.command!r} is not JSON: {exc.msg} at line {exc.lineno} "
                f"column {exc.colno} (near {snippet!r})"
            ) from None

    def table(
        self,
        *,
        header: bool = True,
        columns: Sequence[str] | None = None,
        sep: str | None = None,
        skip: int = 0,
        numeric: bool = True,
    ) -> pd.DataFrame:
        """Column-aligned output (``ps aux``, ``df -h``, ``ss -tlnp``) as a DataFrame.

        Column boundaries are the positions blank in every row; the header line
        names them (``Mounted on`` stays one name) and the last column keeps the
        rest of each line (``ps``'s COMMAND). Numeric columns become numbers.
        ``sep`` splits on a fixed separator instead; ``skip`` drops leading lines;
        ``columns`` names the columns (with ``header=False`` for headerless output).
        """
        return parse_table(
            self.stdout,
            header=header,
            columns=columns,
            sep=sep,
            skip=skip,
            numeric=numeric,
            what=self.command,
        )

    def __repr__(self) -> str:
        cmd = self.command if len(self.command) <= _REPR_WIDTH else self.command[:57] + "..."
        where = f" on {self.target}" if self.target else ""
        flags = " cached" if self.cached else ""
        if self.truncated:
            dropped = self.stdout_dropped + self.stderr_dropped
            flags += f" truncated ({dropped:,} bytes dropped)" if dropped else " truncated"
        return (
            f"<CommandResult cmd={cmd!r} exited={self.exit_status}{where} "
            f"{self.duration * 1e3:.1f} ms{flags}>"
        )

    def _repr_html_(self) -> str:
        status = "ok" if self.ok else f"exit {self.exit_status}"
        dropped = self.stdout_dropped + self.stderr_dropped
        cut = f" · truncated, {dropped:,} bytes dropped" if self.truncated else ""
        color = "#1a7f37" if self.ok else "#cf222e"
        parts = [
            "<div class='trainlab-result'>",
            f"<code>{html.escape(self.command)}</code> "
            f"<span style='color:{color}'>{status}</span> "
            f"<small>{html.escape(self.target)} · {self.duration * 1e3:.1f} ms"
            f"{' · cached' if self.cached else ''}"
            f"{cut}"
            "</small>",
        ]
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            if text:
                shown, note = clip(text)
                parts.append(
                    f"<details {'open' if name == 'stdout' else ''}><summary>{name}{note}</summary>"
                    f"<pre>{html.escape(shown)}</pre></details>"
                )
        parts.append("</div>")
        return "".join(parts)

    def to_record(self) -> dict[str, Any]:
        """One row for a DataFrame."""
        return {
            "target": self.target,
            "command": self.command,
            "exit_status": self.exit_status,
            "ok": self.ok,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "duration_s": self.duration,
            "cached": self.cached,
        }


RESULT_COLUMNS = (
    "target",
    "command",
    "exit_status",
    "ok",
    "stdout",
    "stderr",
    "duration_s",
    "cached",
)


class Items(Sequence[T]):
    """A read-only sequence over a tuple, ``_items``: what result collections share."""

    _items: tuple[T, ...] = ()

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...
    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)


class BatchResult(Items[CommandResult]):
    """Results of ``run_many``: one ``CommandResult`` per command that ran, in order.

    ``skipped`` lists the commands not run after a failure with ``stop_on_error``;
    ``round_trips`` says how many exchanges with the target the batch took.
    """

    def __init__(
        self,
        results: Sequence[CommandResult],
        *,
        duration: float = 0.0,
        round_trips: int = 1,
        skipped: Sequence[str] = (),
        target: str = "",
    ) -> None:
        self._items = tuple(results)
        self.duration = duration
        self.round_trips = round_trips
        self.skipped = tuple(skipped)
        self.target = target

    @property
    def ok(self) -> bool:
        """True when every command ran and exited 0."""
        return not self.skipped and all(r.ok for r in self._items)

    @property
    def failed(self) -> list[CommandResult]:
        """The results that exited non-zero."""
        return [r for r in self._items if not r.ok]

    @property
    def frame(self) -> pd.DataFrame:
        """One row per command: target, command, exit_status, ok, stdout, stderr,
        duration_s, cached."""
        return results_frame(
            [r.to_record() for r in self._items],
            RESULT_COLUMNS,
            {"exit_status": "int64", "ok": "bool", "cached": "bool"},
        )

    def check(self) -> BatchResult:
        """Return ``self`` when every command succeeded; raise for the first failure."""
        for result in self._items:
            result.check()
        return self

    def __repr__(self) -> str:
        failed = len(self.failed)
        text = (
            f"<BatchResult {len(self)} commands, {failed} failed, "
            f"{self.round_trips} round trip{'s' if self.round_trips != 1 else ''}, "
            f"{self.duration * 1e3:.1f} ms"
        )
        if self.skipped:
            text += f", {len(self.skipped)} skipped"
        return text + ">"

    def _repr_html_(self) -> str:
        rows = []
        for r in self._items:
            shown, _ = clip(r.stdout, 400)
            rows.append(
                f"<tr><td><code>{html.escape(r.command)}</code></td><td>{r.exit_status}</td>"
                f"<td><pre style='margin:0'>{html.escape(shown)}</pre></td>"
                f"<td><pre style='margin:0'>{html.escape(clip(r.stderr, 200)[0])}</pre></td>"
                f"<td>{r.duration * 1e3:.1f}</td></tr>"
            )
        for cmd in self.skipped:
            rows.append(
                f"<tr><td><code>{html.escape(cmd)}</code></td><td colspan=4>skipped</td></tr>"
            )
        return (
            f"<div><small>{html.escape(repr(self))}</small><table>"
            "<tr><th>command</th><th>exit</th><th>stdout</th><th>stderr</th><th>ms</th></tr>"
            + "".join(rows)
            + "</table></div>"
        )


def results_frame(
    records: Sequence[dict[str, Any]], columns: Sequence[str], dtypes: dict[str, str]
) -> pd.DataFrame:
    """Rows of results (``to_record()``) as a DataFrame (a ``trainlab.tables.Table``: it
    shows text with its line breaks) with these columns and types."""
    from trainlab.tables import Table

    return Table(list(records), columns=list(columns)).astype(dtypes)


@dataclass(frozen=True)
class FileStat:
    """``stat`` of a path on a target."""

    path: str
    type: str  # file, directory, symlink, fifo, socket, char, block, other
    size: int
    mode: int
    uid: int
    gid: int
    mtime: float

    @property
    def permissions(self) -> str:
        """Octal permission bits, such as ``'0644'``."""
        return f"{self.mode & 0o7777:04o}"

    @classmethod
    def from_stat_line(cls, path: str, line: str) -> FileStat:
        """Parse what ``stat -L -c STAT_FORMAT`` printed for ``path``."""
        raw_mode, size, uid, gid, mtime = line.split()
        mode = int(raw_mode, 16)
        return cls(
            path,
            file_type(mode),
            int(size),
            stat_module.S_IMODE(mode),
            int(uid),
            int(gid),
            float(mtime),
        )


# ``stat -L -c`` format read by FileStat.from_stat_line: raw mode (hex), size, uid,
# gid, mtime; for targets reached through a shell rather than a file protocol.
STAT_FORMAT = "%f %s %u %g %Y"


def file_type(mode: int) -> str:
    """The FileStat.type name of an ``st_mode``."""
    for test, name in (
        (stat_module.S_ISREG, "file"),
        (stat_module.S_ISDIR, "directory"),
        (stat_module.S_ISLNK, "symlink"),
        (stat_module.S_ISFIFO, "fifo"),
        (stat_module.S_ISSOCK, "socket"),
        (stat_module.S_ISCHR, "char"),
        (stat_module.S_ISBLK, "block"),
    ):
        if test(mode):
            return name
    return "other"


def clip(text: str, limit: int = 20_000) -> tuple[str, str]:
    """The first ``limit`` characters of ``text``, and a note saying how much was cut."""
    if len(text) <= limit:
        return text, ""
    return text[:limit], f" (first {limit:,} of {len(text):,} characters)"


# ---------------------------------------------------------------- table parsing

_WS = re.compile(r"\S+")


def parse_table(
    text: str,
    *,
    header: bool = True,
    columns: Sequence[str] | None = None,
    sep: str | None = None,
    skip: int = 0,
    numeric: bool = True,
    what: str = "output",
) -> pd.DataFrame:
    """Parse column-aligned text into a DataFrame; see ``CommandResult.table``.

    Without ``sep`` the columns are found from the rows: a column boundary is a
    character position that is blank in every row. Each header word names the
    column it overlaps (or the nearest one), so ``Mounted on`` stays one name; a
    column no header word reaches belongs to the column on its left (``ps``'s
    COMMAND arguments).
    """
    import pandas as pd

    lines = [line.expandtabs() for line in text.splitlines()[skip:] if line.strip()]
    if not lines:
        return pd.DataFrame(columns=list(columns or []))
    head = lines[0] if header else None
    body = lines[1:] if header else lines
    if sep is not None:
        rows = [[cell.strip() for cell in line.split(sep)] for line in body]
        names = (
            list(columns)
            if columns
            else ([cell.strip() for cell in head.split(sep)] if head is not None else [])
        )
        if not names:
            names = [f"col{i}" for i in range(max((len(r) for r in rows), default=0))]
    elif not body:
        names = list(columns) if columns else (head.split() if head else [])
        rows = []
    else:
        spans = _column_spans(body)
        if head is not None and not columns:
            names, spans = _name_columns(head, spans)
        elif columns:
            names = list(columns)
            if len(spans) > len(names):  # the last named column takes the rest
                spans = [*spans[: len(names) - 1], (spans[len(names) - 1][0], spans[-1][1])]
        else:
            names = [f"col{i}" for i in range(len(spans))]
        starts = [start for start, _ in spans]
        rows = []
        for line in body:
            cells = []
            for index, start in enumerate(starts):
                end = starts[index + 1] if index + 1 < len(starts) else len(line)
                cells.append(line[start:end].strip())
            rows.append(cells)
    if not names:
        raise OutputError(f"cannot find columns in the output of {what!r}")
    width = len(names)
    padded: list[list[str | None]] = []
    joiner = sep if sep is not None else " "
    for row in rows:
        cells_out: list[str | None] = [cell if cell != "" else None for cell in row]
        if len(cells_out) > width:
            cells_out = [*cells_out[: width - 1], joiner.join(row[width - 1 :])]
        padded.append(cells_out + [None] * (width - len(cells_out)))
    frame = pd.DataFrame(padded, columns=_unique(names))
    if numeric:
        for name in frame.columns:
            present = frame[name].notna()
            converted = pd.to_numeric(frame[name], errors="coerce")
            if present.any() and converted[present].notna().all():
                frame[name] = converted
    return frame


def _column_spans(body: list[str]) -> list[tuple[int, int]]:
    """(start, end) of each run of positions that are non-blank in some row."""
    width = max(len(line) for line in body)
    used = [False] * width
    for line in body:
        for index, char in enumerate(line):
            if char != " ":
                used[index] = True
    spans: list[tuple[int, int]] = []
    start = None
    for index, flag in enumerate([*used, False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            spans.append((start, index))
            start = None
    return spans


def _name_columns(
    head: str, spans: list[tuple[int, int]]
) -> tuple[list[str], list[tuple[int, int]]]:
    """Give each column the header words over it; fold unnamed columns leftwards."""
    words: list[list[str]] = [[] for _ in spans]
    reach: list[int] = [-1] * len(spans)  # the rightmost header word end over a column
    for match in _WS.finditer(head):
        start, end = match.start(), match.end()
        overlapping = [i for i, (a, b) in enumerate(spans) if a < end and start < b]
        if overlapping:
            target = overlapping[0]
            for i in overlapping:
                reach[i] = max(reach[i], end)
        else:
            target = min(
                range(len(spans)),
                key=lambda i: min(abs(spans[i][0] - end), abs(spans[i][1] - start)),
            )
        words[target].append(match.group())
    names: list[str] = []
    merged: list[tuple[int, int]] = []
    for index, span in enumerate(spans):
        if words[index]:
            names.append(" ".join(words[index]))
            merged.append(span)
        elif reach[index] >= 0 and names:
            names.append(f"{names[-1]}.1")  # a header word runs over two columns
            merged.append(span)
        elif merged:
            merged[-1] = (merged[-1][0], span[1])
        else:
            names.append("col0")
            merged.append(span)
    return names, merged


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}.{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out
