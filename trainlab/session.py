"""The session: policy over one transport, and ``connect``, which finds or makes one.

A ``Session`` opens its transport lazily, keeps it, checks it is alive before
each call and reopens it after a drop (marking the next record ``reconnected``);
it caches answers under honest keys, times every operation, batches commands and
turns non-zero exits into errors only when asked. ``connect()`` returns the live
session for a target and options if one exists, so re-running a notebook cell
reuses the connection.
"""

from __future__ import annotations

import contextlib
import html
import importlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from trainlab import live, registry
from trainlab.cache import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, ResultCache
from trainlab.capture import (
    DEFAULT_MAX_OUTPUT,
    CallOutput,
    OnOutput,
    StrayOutput,
    resolve_max_output,
)
from trainlab.commands import command_text, non_negative, path_text
from trainlab.errors import (
    InvalidCommand,
    SessionClosed,
    TargetError,
    TrainlabError,
    TransportError,
)
from trainlab.live import (  # re-exported: trainlab.session is where users find them
    close_all,
    close_quietly,
    live_sessions,
    recent_operations,
    session_state,
    sessions,
)
from trainlab.metrics import Metrics, Record
from trainlab.options import Option, frozen_items, resolve_options
from trainlab.output import (
    SESSION_SETTING,
    UseSession,
    call_output,
    command_capture,
    fallback_detail,
)
from trainlab.progress import failures, progress_bar
from trainlab.result import BatchResult, CommandResult, FileStat
from trainlab.transports.base import Transport
from trainlab.uri import Target, parse_target

if TYPE_CHECKING:
    import pandas as pd

    from trainlab.platform import Platform

__all__ = [
    "SESSION_OPTIONS",
    "Session",
    "close_all",
    "close_quietly",
    "connect",
    "live_sessions",
    "recent_operations",
    "sessions",
]

T = TypeVar("T")

#: Options every session takes, whatever its transport.
SESSION_OPTIONS: dict[str, Option] = {
    "ttl": Option(float, 0.0, "default cache lifetime in seconds (0: no caching)", minimum=0),
    "command_timeout": Option(
        float, 600.0, "default deadline of a command in seconds", minimum=0.001
    ),
    "cache_entries": Option(int, DEFAULT_MAX_ENTRIES, "most cached answers kept", minimum=1),
    "cache_bytes": Option(int, DEFAULT_MAX_BYTES, "most bytes of cached answers kept", minimum=1),
    "cache_failures": Option(bool, False, "also cache answers with a non-zero exit"),
    "max_output": Option(
        int,
        DEFAULT_MAX_OUTPUT,
        "most bytes kept of a command's stdout, and of its stderr (head and tail); 0: all",
        minimum=0,
    ),
}


class Session:
    """Commands and files on one target over one kept connection.

    Create sessions with ``trainlab.connect(uri, **options)``. Every method is
    safe to call from several threads.

    >>> import trainlab
    >>> s = trainlab.connect("mock://box", responses={"uptime": "up 3 days\\n"}, reuse=False)
    >>> s.run("uptime", ttl=60).cached, s.run("uptime", ttl=60).cached
    (False, True)
    >>> s.cache.stats.hits
    1
    >>> s.close()
    """

    def __init__(
        self,
        transport: Transport,
        *,
        options: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        settings = resolve_options(SESSION_OPTIONS, dict(options or {}), where="a session")
        self.transport = transport
        self.target: Target = transport.target
        self._ttl: float = settings["ttl"]
        self._timeout: float | None = settings["command_timeout"]
        self._cache_failures: bool = settings["cache_failures"]
        self.max_output: int | None = resolve_max_output(settings["max_output"])
        self.cache = ResultCache(
            max_entries=settings["cache_entries"],
            max_bytes=settings["cache_bytes"],
            clock=clock,
            sizeof=_sizeof,
        )
        self.recorder = metrics if metrics is not None else Metrics()
        self.opened: datetime | None = None
        self.closed = False
        self.commands = 0
        self.reconnects = 0
        self._open_lock = threading.RLock()
        self._io_lock = threading.RLock()
        self._platform: Platform | None = None
        self._reconnected_pending = False
        self._registry_key: tuple[Any, ...] | None = None
        self._result_options = frozen_items(
            transport.options,
            {k: v for k, v in transport.settings.items() if _affects(transport, k)},
        )

    # ------------------------------------------------------------ properties
    @property
    def uri(self) -> str:
        """The target URI, without secrets."""
        return self.target.address

    @property
    def transport_name(self) -> str:
        """The transport's scheme (``local``, ``ssh``, ...)."""
        return type(self.transport).scheme

    @property
    def stray_output(self) -> StrayOutput:
        """What background jobs wrote after their commands ended (see the output guide's
        "Whose output is it?"): in no result, its end kept here (``.stdout``,
        ``.stderr``, ``.total``). A ``StrayOutputWarning`` says so once."""
        return self.transport.stray

    @property
    def alive(self) -> bool:
        """True when open and the connection answers a local health check."""
        return not self.closed and self.opened is not None and self.transport.alive()

    @property
    def metrics(self) -> pd.DataFrame:
        """Every recorded operation as a DataFrame (see ``trainlab.metrics``)."""
        return self.recorder.frame()

    def summary(self) -> pd.DataFrame:
        """Per operation: count, cached, failed, median, p95 and total seconds."""
        return self.recorder.summary()

    @property
    def platform(self) -> Platform:
        """Operating system facts (name, family, release, arch, kernel), detected once."""
        if self._platform is None:
            from trainlab.platform import detect

            self._platform = detect(self)
        return self._platform

    # ------------------------------------------------------------- lifecycle
    def open(self) -> Session:
        """Connect now rather than on first use. Returns the session."""
        self._ensure_open()
        return self

    def _ensure_open(self) -> bool:
        """Open or reopen the transport; True when this call reconnected."""
        if self.closed:
            raise SessionClosed(
                f"the session to {self.uri} is closed; "
                f"trainlab.connect({self.uri!r}) opens a new one"
            )
        if self.opened is not None and self.transport.alive():
            return False
        with self._open_lock:
            if self.closed:
                raise SessionClosed(f"the session to {self.uri} is closed")
            if self.opened is not None and self.transport.alive():
                return False
            again = self.opened is not None
            with self.recorder.measure(
                "connect", target=self.uri, transport=self.transport_name
            ) as record:
                record.reconnected = again
                record.detail = "reconnect" if again else "open"
                self.transport.open()
            if again:
                self.reconnects += 1
                self._reconnected_pending = True
            else:
                self.opened = datetime.now(UTC)
            return again

    def close(self) -> None:
        """Release every socket, thread and process, and forget secrets. Idempotent."""
        with self._open_lock:
            if self.closed:
                return
            self.closed = True
            try:
                self.transport.close()
            finally:
                self.transport.forget_secrets()
                self.cache.clear()
                live.forget(self)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- commands
    def run(
        self,
        command: str | Sequence[Any],
        *,
        timeout: float | None = None,
        ttl: float | None = None,
        refresh: bool = False,
        check: bool = False,
        max_output: int | UseSession | None = SESSION_SETTING,
        output_file: str | os.PathLike[str] | None = None,
        on_output: OnOutput | None = None,
        stream: bool = False,
    ) -> CommandResult:
        """Run one command and return its ``CommandResult``.

        A transport that cannot stream (``supports_output`` False) hands its output
        over when the command ends. A cached answer's output is handed over at once;
        a truncated result is never cached.

        Parameters
        ----------
        command
            A shell command line, or a list of arguments that is quoted safely.
        timeout
            Deadline in seconds (default: the session's ``command_timeout``). On
            expiry ``CommandTimeout`` is raised, what the command started is
            stopped, and the session stays usable.
        ttl
            Cache the answer this many seconds (default: the session's ``ttl``).
        refresh
            Run even if a cached answer exists, and cache the new one.
        check
            Raise ``CommandFailed`` on a non-zero exit.
        max_output
            Most bytes kept of stdout, and of stderr: the first half and the last half,
            the middle dropped (``truncated``, ``stdout_dropped``). Default: the
            session's ``max_output`` (64 MiB); ``None`` or 0 keeps everything.
        output_file
            A path that receives all of stdout, byte for byte; stderr goes to
            ``<path>.stderr``. The result stays bounded.
        on_output
            ``on_output(stream, text)`` with each chunk as it arrives (``stream`` is
            ``"stdout"`` or ``"stderr"``; text decoded as UTF-8, invalid bytes replaced).
        stream
            Print output live (stdout to ``sys.stdout``, stderr to ``sys.stderr``, as
            ``!cmd`` does in IPython); the result is the same either way.
        """
        text = command_text(command)
        deadline = self._deadline(timeout)
        lifetime = self._ttl if ttl is None else non_negative(ttl, "ttl")
        key = self._key("run", text) if lifetime > 0 else None
        capture = command_capture(
            self.max_output, max_output, output_file=output_file, on_output=on_output, stream=stream
        )
        with contextlib.closing(capture):
            hit: CommandResult | None = None if key is None or refresh else self.cache.get(key)
            if hit is not None:
                answer = capture.take(replace(hit, cached=True))
                self._record_hit("run", text, answer.nbytes, answer)
                return answer.check() if check else answer
            result: CommandResult = self._call(
                "run",
                text,
                lambda: self.transport.run_captured(text, deadline, capture),
                lambda r: r.nbytes,
                detail=fallback_detail(self.transport, capture.streams),
            )
        self.commands += 1
        if key is not None and not result.truncated and (result.ok or self._cache_failures):
            self.cache.put(key, result, ttl=lifetime, cost=result.duration)
        return result.check() if check else result

    def run_many(
        self,
        commands: Sequence[str | Sequence[Any]],
        *,
        timeout: float | None = None,
        stop_on_error: bool = False,
        ttl: float | None = None,
        refresh: bool = False,
        check: bool = False,
        progress: bool = False,
        max_output: int | UseSession | None = SESSION_SETTING,
        on_output: Callable[[int, str, str], None] | None = None,
        stream: bool = False,
    ) -> BatchResult:
        """Run ``commands`` in one round trip; each keeps its own stdout, stderr and exit status.

        ``timeout`` is the deadline of the whole batch. With ``stop_on_error`` the
        commands after the first failure are not run and are listed in
        ``BatchResult.skipped``. Cached answers (``ttl``) are taken from the cache
        and only the rest are sent. A transport that cannot batch runs the
        commands one at a time; ``round_trips`` and the metrics say so.
        ``progress=True`` shows a bar (tqdm.auto) that moves per command when the
        commands go one at a time, and per batch otherwise. ``max_output`` and
        ``stream`` are ``run``'s, per command; ``on_output(index, stream, text)`` gets
        the command's index in ``commands`` first.
        """
        if isinstance(commands, str):
            raise InvalidCommand("run_many takes a list of commands; use run() for one command")
        texts = [command_text(c) for c in commands]
        deadline = self._deadline(timeout)
        lifetime = self._ttl if ttl is None else non_negative(ttl, "ttl")
        keys = [self._key("run", t) if lifetime > 0 else None for t in texts]
        found: dict[int, CommandResult] = {}
        output = call_output(self.max_output, max_output, on_output=on_output, stream=stream)
        if not refresh:
            for index, key in enumerate(keys):
                if key is not None:
                    hit = self.cache.get(key)
                    if hit is not None:
                        found[index] = (
                            output.subset([index]).for_command(0).take(replace(hit, cached=True))
                        )
                        self._record_hit("run", texts[index], hit.nbytes, hit)
        limit = len(texts)
        if stop_on_error:
            failed_hit = [i for i, r in sorted(found.items()) if not r.ok]
            if failed_hit:
                limit = failed_hit[0] + 1
        pending = [i for i in range(limit) if i not in found]
        started = time.perf_counter()
        fresh: list[CommandResult] = []
        round_trips = 0
        bar = progress_bar(progress, total=len(texts), desc=f"run_many {self.uri}", unit="cmd")
        bar.update(len(texts) - len(pending))
        try:
            if pending:
                batch = [texts[i] for i in pending]
                sink = output.subset(pending)
                if self.transport.supports_batch:
                    round_trips = 1
                    fresh = self._call(
                        "batch",
                        f"{len(batch)} commands",
                        lambda: self.transport.run_many_captured(
                            batch, deadline, stop_on_error, sink
                        ),
                        lambda rs: sum(r.nbytes for r in rs),
                        detail=f"{len(batch)} commands, 1 round trip",
                    )
                    bar.update(len(fresh))
                else:
                    fresh, round_trips = self._run_one_by_one(
                        batch, deadline, stop_on_error, bar, sink
                    )
        finally:
            output.close()
            bar.close(failures(r.ok for r in fresh))
        self.commands += len(fresh)
        for index, result in zip(pending, fresh, strict=False):
            found[index] = result
            key = keys[index]
            if key is not None and not result.truncated and (result.ok or self._cache_failures):
                self.cache.put(key, result, ttl=lifetime, cost=result.duration)
        ordered: list[CommandResult] = []
        skipped: list[str] = []
        stopped = False
        for index, text in enumerate(texts):
            result_or_none = found.get(index)
            if stopped or result_or_none is None:
                skipped.append(text)
                continue
            ordered.append(result_or_none)
            if stop_on_error and not result_or_none.ok:
                stopped = True
        batch_result = BatchResult(
            ordered,
            duration=time.perf_counter() - started,
            round_trips=round_trips,
            skipped=skipped,
            target=self.uri,
        )
        return batch_result.check() if check else batch_result

    def _run_one_by_one(
        self,
        batch: list[str],
        deadline: float | None,
        stop_on_error: bool,
        bar: Any,
        output: CallOutput,
    ) -> tuple[list[CommandResult], int]:
        results: list[CommandResult] = []
        end = None if deadline is None else time.monotonic() + deadline
        with self.recorder.measure(
            "batch",
            target=self.uri,
            transport=self.transport_name,
            command=f"{len(batch)} commands",
        ) as record:
            for position, text in enumerate(batch):
                remaining = None if end is None else max(0.001, end - time.monotonic())
                result = self._call(
                    "run",
                    text,
                    partial(
                        self.transport.run_captured, text, remaining, output.for_command(position)
                    ),
                    lambda r: r.nbytes,
                )
                results.append(result)
                bar.update(1)
                if stop_on_error and not result.ok:
                    break
            record.bytes = sum(r.nbytes for r in results)
            record.detail = f"fallback: {len(results)} commands, {len(results)} round trips"
            record.note(results)
        return results, len(results)

    # ----------------------------------------------------------------- files
    def read_bytes(self, path: str, *, ttl: float | None = None, refresh: bool = False) -> bytes:
        """The bytes of a file on the target (cached when ``ttl`` > 0)."""
        path = path_text(path)
        lifetime = self._ttl if ttl is None else non_negative(ttl, "ttl")
        key = self._key("read", path) if lifetime > 0 else None
        if key is not None and not refresh:
            hit = self.cache.get(key)
            if hit is not None:
                self._record_hit("read", path, len(hit))
                return bytes(hit)
        data = self._call("read", path, lambda: self.transport.read_file(path), len)
        if key is not None:
            self.cache.put(key, data, ttl=lifetime)
        return data

    def read_text(
        self,
        path: str,
        *,
        encoding: str = "utf-8",
        errors: str = "replace",
        ttl: float | None = None,
        refresh: bool = False,
    ) -> str:
        """A file on the target as text (invalid bytes replaced unless ``errors`` says)."""
        return self.read_bytes(path, ttl=ttl, refresh=refresh).decode(encoding, errors)

    def stat(self, path: str) -> FileStat:
        """Type, size, mode, owner and mtime of a path on the target."""
        path = path_text(path)
        return self._call("stat", path, lambda: self.transport.stat(path), lambda _s: 0)

    def upload(self, local: str | os.PathLike[str], remote: str) -> int:
        """Copy a local file to the target; cached reads of ``remote`` are dropped."""
        source, destination = os.fspath(local), path_text(remote)
        try:
            written: int = self._call(
                "upload",
                destination,
                lambda: self.transport.upload(source, destination),
                lambda n: n,
            )
        except NotImplementedError:
            raise TargetError(f"{self.transport_name}:// cannot transfer files") from None
        self.cache.invalidate(
            lambda key: isinstance(key, tuple) and key[2:] == ("read", destination)
        )
        return written

    def download(self, remote: str, local: str | os.PathLike[str]) -> int:
        """Copy a file from the target to ``local``; returns the bytes written."""
        source, destination = path_text(remote), os.fspath(local)
        try:
            written: int = self._call(
                "download",
                source,
                lambda: self.transport.download(source, destination),
                lambda n: n,
            )
        except NotImplementedError:
            raise TargetError(f"{self.transport_name}:// cannot transfer files") from None
        return written

    def invalidate(self, command: str | Sequence[Any] | None = None) -> int:
        """Drop cached answers: one command's, or all of them. Returns how many."""
        if command is None:
            return self.cache.invalidate(None)
        return self.cache.invalidate(self._key("run", command_text(command)))

    # -------------------------------------------------------------- plumbing
    def _key(self, operation: str, subject: str) -> tuple[Any, ...]:
        return (self.transport.identity(), self._result_options, operation, subject)

    def _deadline(self, timeout: float | None) -> float | None:
        if timeout is None:
            return self._timeout
        number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
        if not number or not 0 < timeout < float("inf"):  # NaN compares false: refused
            raise InvalidCommand(f"timeout must be a positive number of seconds, got {timeout!r}")
        return float(timeout)

    def _call(
        self,
        operation: str,
        subject: str,
        action: Callable[[], T],
        size: Callable[[T], int],
        *,
        detail: str = "",
        annotate: Callable[[T, Record], None] | None = None,
    ) -> T:
        """Run ``action`` as one recorded operation on the open transport.

        ``size`` gives the record's byte count; ``annotate`` may fill in more of the
        record from the value (a status, a detail) before it is closed.
        """
        # A transport that serves one call at a time is checked and reopened under
        # the same lock as the call, so another thread's timeout in between cannot
        # leave this call facing a dead connection.
        concurrent = self.transport.concurrent
        lock = contextlib.nullcontext() if concurrent else self._io_lock
        with lock:
            reconnected = self._ensure_open()
            begun = self.recorder.begin(
                operation, target=self.uri, transport=self.transport_name, command=subject
            )
            record = begun[0]
            if reconnected or self._reconnected_pending:
                record.reconnected = True
                self._reconnected_pending = False
            record.detail = detail
            try:
                value = action()
            except TrainlabError as exc:
                self.recorder.end(begun, exc)
                raise
            except OSError as exc:  # a transport that let one through: still ours to name
                self.recorder.end(begun, exc)
                raise TransportError(f"{operation} on {self.uri} failed: {exc}") from exc
            except BaseException as exc:
                self.recorder.end(begun, exc)
                raise
            record.bytes = size(value)
            if annotate is not None:
                annotate(value, record)
            self.recorder.end(begun, outcome=value)
            return value

    def _record_hit(self, operation: str, subject: str, nbytes: int, outcome: Any = None) -> None:
        self.recorder.add(
            Record(
                operation=operation,
                target=self.uri,
                transport=self.transport_name,
                started=datetime.now(UTC),
                duration_s=0.0,
                cached=True,
                bytes=nbytes,
                command=subject[:200],
                detail="cache hit",
            ).note(outcome)
        )

    # ---------------------------------------------------------------- display
    def __repr__(self) -> str:
        state = "closed" if self.closed else ("open" if self.opened else "opens on first use")
        stats = self.cache.stats
        return (
            f"<Session {self.uri} mode={self.transport.mode} {state}, {self.commands} commands, "
            f"cache {stats.hits}/{stats.hits + stats.misses} hits>"
        )

    def _repr_html_(self) -> str:
        stats = self.cache.stats
        rows = {
            "target": self.uri,
            "transport": f"{self.transport_name} ({self.transport.mode})",
            "state": session_state(self.closed, self.opened is not None, self.alive),
            "opened": self.opened.isoformat(timespec="seconds") if self.opened else "not yet",
            "commands": str(self.commands),
            "reconnects": str(self.reconnects),
            "cache": f"{stats.hits} hits / {stats.misses} misses, {stats.entries} entries, "
            f"{stats.bytes:,} bytes",
        }
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in rows.items()
        )
        return f"<table class='trainlab-session'>{body}</table>"


# -------------------------------------------------------------------- helpers


def _sizeof(value: Any) -> int:
    if isinstance(value, CommandResult):
        return value.nbytes
    if isinstance(value, bytes | bytearray | str):
        return len(value) + 64
    return 256


def _affects(transport: Transport, name: str) -> bool:
    option = transport.options.get(name)
    return option is not None and option.affects_result


def connect(uri: str, /, *, reuse: bool = True, **options: Any) -> Session:
    """Open (lazily) a session to ``uri``, or return the live one for the same target.

    >>> import trainlab
    >>> a = trainlab.connect("local://?mode=shell")
    >>> a is trainlab.connect("local://", mode="shell")
    True
    >>> a.close()

    Parameters
    ----------
    uri
        ``local://``, ``local://?mode=shell``, ``mock://name``, and the schemes of
        installed extras and plugins (``trainlab.available_schemes()``).
    reuse
        Return the live session for the same normalized target and options if
        there is one (the default), so re-running a notebook cell reuses it.
        ``False`` always creates a new, unregistered session.
    **options
        Transport and session options; they win over URI query keys.
    """
    target = parse_target(uri)
    cls = registry.transport_class(target.scheme)
    given: dict[str, Any] = {**target.query, **options}
    declared: dict[str, Option] = {**SESSION_OPTIONS, **cls.options}
    if target.password is not None:
        if "password" not in cls.options:
            raise TargetError(f"{target.scheme}:// takes no password; remove it from the URI")
        given.setdefault("password", target.password)
    clash = set(SESSION_OPTIONS) & set(cls.options)
    if clash:  # a plugin that shadows a session option would be ambiguous
        raise TargetError(f"transport option(s) {sorted(clash)} clash with session options")
    resolved = resolve_options(declared, given, where=f"{target.scheme}://")
    session_options = {k: resolved[k] for k in SESSION_OPTIONS}
    transport_options = {k: resolved[k] for k in cls.options}
    plain_target = replace(target, query={}, password=None)
    key = (cls.__module__, cls.__qualname__, plain_target.address, frozen_items(declared, resolved))
    with live.registry_lock:
        if reuse:
            existing = live.find(key)
            if existing is not None and not existing.closed:
                if existing.opened is None or existing.transport.alive():
                    return existing
                existing.close()  # dead: replace it
        transport = cls(plain_target, transport_options)
        transport.peer_opener = _open_peer
        session = session_class_of(cls)(transport, options=session_options)
        live.register(session, key if reuse else None)
        if not reuse:
            weakref.finalize(session, close_quietly, transport)
        return session


def session_class_of(cls: type[Transport]) -> type[Session]:
    """The ``Session`` subclass a transport asks for by name (``module:Class``), or ``Session``.

    A transport names it rather than importing it, so the transports never import the
    session layer above them.
    """
    path = cls.session_class
    if path is None:
        return Session
    module, _, name = path.partition(":")
    found = getattr(importlib.import_module(module), name, None)
    if not (isinstance(found, type) and issubclass(found, Session)):
        raise TargetError(
            f"{cls.__qualname__}.session_class = {path!r} is not a trainlab Session subclass"
        )
    return found


def _open_peer(uri: str, options: Mapping[str, Any]) -> Transport:
    """The open transport of the live session to ``uri``, shared: a host to go through."""
    return connect(uri, **options).open().transport
