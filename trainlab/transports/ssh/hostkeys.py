"""Host keys: known_hosts read as OpenSSH reads it, the policy applied, new hosts learned.

Imports paramiko, trainlab.errors and the ssh package's parsed cache.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import paramiko

from trainlab.errors import ConnectError, HostKeyError, TrainlabWarning
from trainlab.transports.ssh import parsed

__all__ = ["InsecureHostKeyWarning", "KnownHosts"]


class InsecureHostKeyWarning(TrainlabWarning):
    """``host_key_policy=off``: the server's identity is not checked."""


# Hosts already warned about (host_key_policy=off warns once per host and process).
_warned_hosts: set[str] = set()

# A key type in known_hosts -> the host key algorithms that prove it.
_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}

_KnownEntry = tuple[str, tuple[str, ...], paramiko.PKey]


class KnownHosts:
    """What one known_hosts file says of one host, and the policy that applies it.

    ``policy`` is ``strict`` (known hosts only), ``accept-new`` (learn new hosts,
    refuse changed keys) or ``off`` (no check, with a warning).
    """

    def __init__(self, path: str, policy: str, host: str, port: int) -> None:
        self._path = path  # expanded on each use, as the user's home may change
        self.policy = policy
        self.host = host
        self.port = port
        self.host_id = host if port == 22 else f"[{host}]:{port}"

    @property
    def path(self) -> Path:
        """The known_hosts file."""
        return Path(self._path).expanduser()

    def keys(self) -> tuple[list[paramiko.PKey], list[paramiko.PKey]]:
        """(keys, revoked keys) that the known_hosts file lists for this host.

        Read line by line as OpenSSH does: a host may have several keys of one
        type, ``@revoked`` keys are refused, ``@cert-authority`` and unreadable
        lines are skipped rather than failing the connection.
        """
        path = self.path
        if not path.exists():
            return [], []
        if not path.is_file():
            raise ConnectError(f"known_hosts {path} is not a file")
        digest, entries = _parsed_known_hosts(path)
        key = (f"hosts:{self.host_id}", digest)
        found: tuple[list[paramiko.PKey], list[paramiko.PKey]] | None = parsed.lookup(key)
        if found is None:
            keys: list[paramiko.PKey] = []
            revoked: list[paramiko.PKey] = []
            for marker, hostnames, host_key in entries:
                if any(_host_matches(pattern, self.host_id) for pattern in hostnames):
                    (revoked if marker == "@revoked" else keys).append(host_key)
            found = (keys, revoked)
            parsed.remember(key, found)
        return list(found[0]), list(found[1])

    def key_types(self) -> list[str]:
        """The host key algorithms that prove a known key, to offer first (none when off)."""
        if self.policy == "off":
            return []
        keys, _ = self.keys()
        names: list[str] = []
        for key in keys:
            for name in _ALGORITHMS.get(key.get_name(), (key.get_name(),)):
                if name not in names:
                    names.append(name)
        return names

    def check(self, key: paramiko.PKey) -> None:
        """Accept the server's ``key`` under the policy, learning it if new; else raise."""
        fingerprint = str(key.fingerprint)
        if self.policy == "off":
            if self.host_id not in _warned_hosts:
                _warned_hosts.add(self.host_id)
                warnings.warn(
                    f"host_key_policy=off: the identity of {self.host_id} ({fingerprint}) "
                    "is not checked; anyone in the path can pose as it",
                    InsecureHostKeyWarning,
                    stacklevel=2,
                )
            return
        path = self.path
        keys, revoked = self.keys()
        if any(key == bad for bad in revoked):
            raise HostKeyError(
                f"the host key of {self.host_id} ({fingerprint}) is marked @revoked in {path}"
            )
        if any(key == good for good in keys):
            return
        if any(good.get_name() == key.get_name() for good in keys):
            raise HostKeyError(
                f"the {key.get_name()} host key of {self.host_id} has CHANGED "
                f"(now {fingerprint}); this may be an attack, or a reinstalled host. "
                f"If you trust the change: ssh-keygen -R '{self.host_id}' -f {path}"
            )
        if self.policy == "strict":
            raise HostKeyError(
                f"{self.host_id} is not in {path} ({key.get_name()} {fingerprint}); "
                f"add it (ssh-keyscan -p {self.port} {self.host} >> {path}) or connect "
                "with host_key_policy=accept-new"
            )
        _append_known_host(path, self.host_id, key)


def _parsed_known_hosts(path: Path) -> tuple[bytes, list[_KnownEntry]]:
    """The file's digest, and (marker, host patterns, key) of each readable line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConnectError(f"cannot read known_hosts {path}: {exc.strerror}") from exc
    key = parsed.version("known_hosts", data)
    cached: list[_KnownEntry] | None = parsed.lookup(key)
    if cached is not None:
        return key[1], cached
    text = data.decode("utf-8", "replace")
    entries: list[_KnownEntry] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker = ""
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
            if marker != "@revoked":
                continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except (
            paramiko.SSHException,
            paramiko.hostkeys.InvalidHostKey,
            ValueError,
            TypeError,
        ):
            continue  # OpenSSH skips what it cannot read
        if entry is None or entry.key is None:
            continue
        entries.append((marker, tuple(entry.hostnames), entry.key))
    parsed.remember(key, entries)
    return key[1], entries


def _host_matches(pattern: str, host_id: str) -> bool:
    """An OpenSSH known_hosts host field: plain, or hashed as |1|salt|hash."""
    if pattern.startswith("|1|"):
        try:
            salt = pattern.split("|")[2]
            return paramiko.HostKeys.hash_host(host_id, salt) == pattern
        except (IndexError, ValueError, TypeError):
            return False
    return pattern == host_id


def _append_known_host(path: Path, host_id: str, key: paramiko.PKey) -> None:
    """Learn a new host (accept-new): append one line, as OpenSSH does."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{host_id} {key.get_name()} {key.get_base64()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
