"""Local targets the kit starts itself, so nothing else is needed to try it.

Every server listens on 127.0.0.1 only, with keys generated per run, and stops
with the context manager that started it.
"""

from __future__ import annotations

from trainlab.sandbox.lab import Sandbox
from trainlab.sandbox.proxy import LatencyProxy, RoundTripCounter
from trainlab.sandbox.sshd import SSHServer, sshd_path

__all__ = ["LatencyProxy", "RoundTripCounter", "SSHServer", "Sandbox", "sshd_path"]
