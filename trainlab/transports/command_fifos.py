"""Each command of a kept shell on this machine writes to FIFOs of its own.

A kept shell's commands share its stdout and stderr, so a background job that
outlives its command (``(sleep 1; echo LATE) &``) would write into whatever
command runs next. The local host therefore runs each command with its stdout
and stderr on a fresh pair of FIFOs (``framing.Dialect.with_split_outputs``),
which this module makes and reads; the host's own streams carry only the
markers. After a command's markers arrive its FIFOs are drained once more (the
command wrote everything before its marker, and a FIFO holds at most its
capacity), then whoever still holds them open is a job the command left behind:
what it writes later goes to the session's stray output, never to a later
command. A FIFO is closed when its last writer closes it.

The FIFOs live in a private directory (mode 0700), a pair a command slot, and
serve the next request again; a pair a job still holds loses its names (the job
keeps writing to the open inode) and new FIFOs take them.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import tempfile
from collections.abc import Callable

__all__ = ["CommandFifos"]

_READ_SIZE = 256 * 1024
_IN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR

#: Read ends open at once ahead of the running command (the host waits in open()
#: for the next ones): a batch of any length holds at most twice this many.
WINDOW = 32
#: Left-behind jobs whose output is still read; past this the oldest one's FIFOs
#: are closed (its next write gets SIGPIPE, as when a command's channel closes).
MAX_LINGERING = 64
#: Reads of a finished command's FIFOs after its marker: one read takes all a FIFO
#: holds (its capacity is 64 KiB by default, 1 MiB at most unless root raised it).
_DRAIN_ROUNDS = 8

Route = Callable[[int, str, bytes], None]
Stray = Callable[[str, bytes], None]


class CommandFifos:
    """The FIFO pairs of one kept shell's requests, and of the jobs they left behind.

    ``poller`` is the shell's own poll object: the FIFOs are registered there too,
    so one ``poll()`` waits on the markers and every command's output.
    """

    def __init__(self, poller: select.poll) -> None:
        self.dir = tempfile.mkdtemp(prefix="trainlab-out-")
        self.prefix = self.dir + os.sep
        self._poller = poller
        self._own = select.poll()  # the FIFOs alone, for drains
        self._made = 0  # command slots 0..made-1 have FIFOs no job holds
        self._count = 0  # commands of the current request
        self._ready = 0  # of them, whose read ends are open
        self._held: set[int] = set()  # slots a left-behind job holds: made anew
        self.active: dict[int, tuple[int, str]] = {}  # fd -> (command index, stream)
        self.lingering: dict[int, str] = {}  # fd -> stream, oldest first
        # Read ends opened so far: a poll's answer is only about the descriptors that were
        # open before it (a number closed and opened again since names a FIFO without a
        # writer yet, whose read would say end of file).
        self.opened = 0
        self._born: dict[int, int] = {}

    # -- a request --------------------------------------------------------------
    def prepare(self, count: int) -> str:
        """Have FIFOs for a request of ``count`` commands; their path prefix.

        Command ``i`` writes to ``<prefix><i>.o`` and ``<prefix><i>.e``. A slot is
        used again by the next request unless a job its command left behind still
        holds it: then its name is given to a new FIFO.
        """
        self.finish()
        while self._made < count:
            for path in self._paths(self._made):
                os.mkfifo(path, 0o600)
            self._made += 1
        self._count, self._ready = count, 0
        self.open_window(0)
        return self.prefix

    def _paths(self, index: int) -> tuple[str, str]:
        return f"{self.prefix}{index}.o", f"{self.prefix}{index}.e"

    def open_window(self, finished: int) -> None:
        """Open the read ends of the commands up to ``finished + WINDOW``."""
        stop = min(self._count, finished + WINDOW)
        while self._ready < stop:
            index = self._ready
            for path, stream in zip(self._paths(index), ("stdout", "stderr"), strict=True):
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                self.opened += 1
                self._born[fd] = self.opened
                self.active[fd] = (index, stream)
                self._poller.register(fd, _IN)
                self._own.register(fd, _IN)
            self._ready += 1

    def owns(self, fd: int, polled: int | None = None) -> bool:
        """``fd`` is one of these FIFOs (and, given ``polled``, the value of ``opened``
        when the poll that named it began, the same one that poll saw)."""
        if fd not in self.active and fd not in self.lingering:
            return False
        return polled is None or self._born.get(fd, 0) <= polled

    def read(self, fd: int, route: Route, stray: Stray | None) -> None:
        """Read once from ``fd`` (poll said it is ready): to its command, or stray."""
        try:
            chunk = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        if not chunk:  # every writer closed it
            self._forget(fd)
            return
        where = self.active.get(fd)
        if where is not None:
            route(where[0], where[1], chunk)
        elif stray is not None:
            stray(self.lingering[fd], chunk)

    def drain(self, route: Route, stray: Stray | None) -> None:
        """Read what the FIFOs hold now (bounded: a flooding job is read next time).

        Called after a chunk of the host's markers was read and before it is
        parsed: a command whose marker it holds has written everything by then.
        """
        for _ in range(_DRAIN_ROUNDS):
            polled = self.opened
            ready = self._own.poll(0)
            if not ready:
                return
            for fd, _event in ready:
                if self.owns(fd, polled):
                    self.read(fd, route, stray)

    def settle(self, finished: int) -> None:
        """The first ``finished`` commands are answered: a FIFO of theirs that is
        still open is held by a job they left behind; its output is stray from now."""
        for fd, (index, stream) in list(self.active.items()):
            if index < finished:
                del self.active[fd]
                self.lingering[fd] = stream
                self._held.add(index)
        while len(self.lingering) > 2 * MAX_LINGERING:
            self._forget(next(iter(self.lingering)))

    def finish(self, *, clean: bool = True) -> None:
        """The request is over: close the read ends of commands that never ran, and
        take the names of FIFOs a job still holds (all of them unless ``clean``, the
        request answered) from them, so no later command shares a FIFO with it."""
        for fd in list(self.active):
            self._forget(fd)
        if not clean:
            self._held.update(range(self._ready))
        if self._held:  # slots from the lowest held one on are made anew
            low = min(self._held)
            for index in range(low, self._made):
                for path in self._paths(index):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            self._made = min(self._made, low)
            self._held.clear()
        self._count = self._ready = 0

    def pass_on(self, stray: Stray | None) -> None:
        """Hand what left-behind jobs wrote since the last request to ``stray``."""
        if self.lingering:
            self.drain(lambda _index, _stream, _data: None, stray)

    def close(self) -> None:
        """Close every FIFO (a job left behind gets SIGPIPE) and remove the directory."""
        self.finish()
        for fd in list(self.lingering):
            self._forget(fd)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _forget(self, fd: int) -> None:
        self.active.pop(fd, None)
        self.lingering.pop(fd, None)
        self._born.pop(fd, None)
        for poller in (self._poller, self._own):
            with contextlib.suppress(KeyError, ValueError):
                poller.unregister(fd)
        os.close(fd)
