"""SSH over paramiko: ``SSHTransport`` (the ``ssh://`` scheme) and its host key warning.

The package splits the transport by reason to change: ``_paramiko`` (the patched
library internals, with their supported version range), ``hostkeys``, ``auth``,
``sudo``, ``channel`` (a command per exec channel), ``shell`` (the kept shell),
``device`` (network device CLIs), ``files`` (SFTP), ``jump`` (jump hosts), ``errors``
(one ``map_errors``), ``parsed`` (parsed key files by content), and ``transport``,
which composes them.
"""

from __future__ import annotations

from trainlab.transports.ssh.hostkeys import InsecureHostKeyWarning
from trainlab.transports.ssh.transport import SSHTransport

__all__ = ["InsecureHostKeyWarning", "SSHTransport"]
