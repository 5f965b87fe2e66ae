"""A PowerShell host stand-in that speaks PSRP's out-of-process protocol on stdio.

``pwsh -s`` reads one XML packet a line on stdin (``<Data>``, ``<Command>``,
``<Signal>``, ``<Close>``) and answers with ``<Data>`` and the matching ``...Ack``
packets on stdout. This server does the same on psrpcore's server classes, so
``pwsh://`` is tested through a real subprocess::

    trainlab.connect("pwsh://", executable=sys.executable,
                     arguments="-m trainlab.sandbox.psrp_stdio")

It runs each pipeline's scripts with /bin/sh (``trainlab.sandbox._shell_pipeline``):
it proves protocol and lifecycle handling, not PowerShell semantics. With
``--lines`` (``PSRPStdioHost(lines=True)``) each line a script writes is its own
record, sent as it is written.

sshd serves it as its ``powershell`` subsystem for ``pwsh+ssh://``, in place of
``pwsh -sshs``, with the line ``sshd_subsystem()`` writes::

    SSHServer(config=sshd_subsystem())   # then pwsh+ssh://user@127.0.0.1:PORT
"""

from __future__ import annotations

import sys
import threading
import uuid
from pathlib import Path
from typing import BinaryIO, ClassVar, Self
from xml.etree import ElementTree

import psrpcore

from trainlab.errors import TrainlabError
from trainlab.sandbox._base import Background
from trainlab.sandbox._shell_pipeline import ShellPipeline, handle_pool_events
from trainlab.transports import psrp
from trainlab.transports.psrp import packet

__all__ = ["PSRPStdioHost", "main", "serve", "sshd_subsystem"]


class _Server:
    def __init__(self, out: BinaryIO, *, lines: bool = False) -> None:
        self.out = out
        self.lines = lines
        self.pool = psrpcore.ServerRunspacePool()
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.pipelines: dict[uuid.UUID, ShellPipeline] = {}

    def write(self, data: bytes) -> None:
        with self.write_lock:
            self.out.write(data)
            self.out.flush()

    def flush(self) -> None:
        # Drain under the pool lock and write under the write lock, in that order
        # for every writer, so packets leave in the order psrpcore queued them.
        with self.lock, self.write_lock:
            for data in psrp.data_packets(self.pool):
                self.out.write(data)
            self.out.flush()

    def handle(self, line: bytes) -> bool:
        """Process one packet; False when the pool was closed."""
        element = ElementTree.fromstring(line)  # noqa: S314 - from the client that started us
        pipeline_id = psrp.packet_guid(element)
        tag = element.tag
        if tag == "Data":
            with self.lock:
                self.pool.receive_data(psrp.packet_payload(element))
                handle_pool_events(self.pool, self.pipelines)
            self.write(packet("DataAck", pipeline_id))
            self.flush()
        elif tag == "Command" and pipeline_id is not None:
            with self.lock:
                pipeline = psrpcore.ServerPipeline(self.pool, pipeline_id)
                self.pipelines[pipeline_id] = ShellPipeline(
                    pipeline, self.lock, self.flush, lines=self.lines
                )
            self.write(packet("CommandAck", pipeline_id))
        elif tag == "Signal" and pipeline_id is not None:
            runner = self.pipelines.get(pipeline_id)
            if runner is not None:
                runner.stop()
                runner.finished.wait(10)
            self.write(packet("SignalAck", pipeline_id))
        elif tag == "Close":
            if pipeline_id is not None:
                self.close_pipeline(pipeline_id)
            else:
                self.close_all()
                with self.lock:
                    if self.pool.state == psrpcore.types.RunspacePoolState.Opened:
                        self.pool.close()
            self.flush()
            self.write(packet("CloseAck", pipeline_id))
            return pipeline_id is not None
        return True

    def close_pipeline(self, pipeline_id: uuid.UUID) -> None:
        runner = self.pipelines.pop(pipeline_id, None)
        if runner is None:
            return
        runner.stop()
        runner.join()
        with self.lock:
            if runner.pipeline.state != psrpcore.types.PSInvocationState.Running:
                runner.pipeline.close()

    def close_all(self) -> None:
        for pipeline_id in list(self.pipelines):
            self.close_pipeline(pipeline_id)


def serve(stdin: BinaryIO, stdout: BinaryIO, *, lines: bool = False) -> int:
    """Answer packets from ``stdin`` until it closes or the pool is closed."""
    server = _Server(stdout, lines=lines)
    try:
        for line in stdin:
            if line.strip() and not server.handle(line):
                break
    finally:
        server.close_all()
    return 0


def main() -> int:
    return serve(sys.stdin.buffer, sys.stdout.buffer, lines="--lines" in sys.argv[1:])


def sshd_subsystem(name: str = "powershell", *, lines: bool = False) -> str:
    """The ``sshd_config`` line that serves this host as sshd's subsystem ``name``.

    sshd runs a subsystem through the user's shell with a minimal environment, so
    the line names this interpreter and sets ``PYTHONPATH`` to this copy of trainlab.

    >>> sshd_subsystem().split()[:3]
    ['Subsystem', 'powershell', '/usr/bin/env']
    """
    root = str(Path(__file__).resolve().parents[2])
    argv = ["/usr/bin/env", f"PYTHONPATH={root}", sys.executable, "-m", PSRPStdioHost.module]
    if lines:
        argv.append("--lines")
    if any(not part or part.split() != [part] for part in (name, *argv)):
        # sshd_config splits the line at spaces and drops quotes: no quoting survives.
        raise TrainlabError(
            f"sshd cannot run the PowerShell test host from a path with spaces ({argv}); "
            "install trainlab and Python under paths without spaces"
        )
    return f"Subsystem {name} {' '.join(argv)}"


class PSRPStdioHost(Background):
    """The options that make ``pwsh://`` start this server instead of PowerShell.

    There is nothing to start ahead: each ``pwsh://`` session starts (and keeps)
    its own server process. ``lines=True`` makes it send each line a script writes
    as its own record, as it is written.

    >>> from trainlab.sandbox.psrp_stdio import PSRPStdioHost
    >>> sorted(PSRPStdioHost().start().client_options)
    ['arguments', 'executable']
    """

    module: ClassVar[str] = "trainlab.sandbox.psrp_stdio"

    def __init__(self, *, lines: bool = False) -> None:
        self.lines = lines

    def start(self) -> Self:
        arguments = f"-m {self.module}" + (" --lines" if self.lines else "")
        self.client_options = {"executable": sys.executable, "arguments": arguments}
        return self

    def stop(self) -> None:
        """Nothing to stop: each session ends its own process on close."""


if __name__ == "__main__":
    sys.exit(main())
