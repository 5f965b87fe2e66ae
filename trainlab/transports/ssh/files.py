"""Files over one SFTP channel per session: read, stat, upload, download, and their errors.

Imports paramiko, trainlab.errors, trainlab.result and the ssh package's _paramiko and
errors modules.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_module
import threading
from collections.abc import Callable
from typing import TypeVar

import paramiko

from trainlab.errors import FileError, FileMissing, TransportError
from trainlab.result import FileStat, file_type
from trainlab.transports.ssh._paramiko import send_channel_request
from trainlab.transports.ssh.errors import map_errors

__all__ = ["SFTPFiles", "command_file_error"]

_T = TypeVar("_T")


class SFTPFiles:
    """One SFTP client, opened on first use, used by one thread at a time.

    paramiko's SFTP client hangs when threads share it, so every operation holds
    one lock. ``connection`` gives the open connection (or raises), ``client_gone``
    whether it has closed since. Every wait for the server (the channel's open, each
    answer) lasts at most ``timeout`` seconds; then the operation fails with
    ``TransportError`` and the next one opens a new SFTP channel.
    """

    def __init__(
        self,
        where: str,
        connection: Callable[[], paramiko.Transport],
        client_gone: Callable[[], bool],
        timeout: float = 10.0,
    ) -> None:
        self.where = where
        self.timeout = timeout
        self._connection = connection
        self._client_gone = client_gone
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.RLock()

    def read(self, path: str) -> bytes:
        """The bytes of the file at ``path``."""

        def read(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(path, "rb") as handle:
                handle.prefetch()
                data: bytes = handle.read()
                return data

        return self._call("reading", path, read)

    def stat(self, path: str) -> FileStat:
        """``stat`` of ``path``, following links."""
        info = self._call("stat of", path, lambda sftp: sftp.stat(path))
        mode = info.st_mode or 0
        return FileStat(
            path=path,
            type=file_type(mode),
            size=info.st_size or 0,
            mode=stat_module.S_IMODE(mode),
            uid=info.st_uid or 0,
            gid=info.st_gid or 0,
            mtime=float(info.st_mtime or 0),
        )

    def upload(self, local: str, remote: str) -> int:
        """Copy a local file to ``remote``; returns the bytes written."""
        if not os.path.isfile(local):
            raise FileMissing(errno.ENOENT, f"{local}: no such local file")
        attrs = self._call("uploading to", remote, lambda sftp: sftp.put(local, remote))
        return int(attrs.st_size or 0)

    def download(self, remote: str, local: str) -> int:
        """Copy ``remote`` to a local file; returns the bytes written."""
        self._call("downloading", remote, lambda sftp: sftp.get(remote, local))
        return os.path.getsize(local)

    def close(self) -> None:
        """Close the SFTP channel, if open; the next operation opens a new one."""
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            with contextlib.suppress(Exception):
                sftp.close()

    def _client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            client = self._connection()
            chan: paramiko.Channel | None = None

            def drop() -> None:
                if chan is not None:
                    chan.close()

            with map_errors(f"cannot open SFTP on {self.where}", cleanup=drop):
                chan = client.open_session(timeout=self.timeout)
                chan.settimeout(self.timeout)  # every SFTP answer, the version's first
                # Not waiting for the reply (paramiko would wait without a limit): a
                # refusal closes the channel, and the version exchange then fails.
                send_channel_request(chan, "subsystem", "sftp", want_reply=True)
                try:
                    self._sftp = paramiko.SFTPClient(chan)
                except TimeoutError as exc:
                    chan.close()
                    raise TransportError(
                        f"cannot open SFTP on {self.where}: no answer within {self.timeout:g} s"
                    ) from exc
        return self._sftp

    def _call(self, what: str, path: str, action: Callable[[paramiko.SFTPClient], _T]) -> _T:
        """One SFTP operation, with failures sorted: the file's own, or a broken connection."""
        with self._lock:
            sftp = self._client()
            with map_errors(f"{what} {path} on {self.where} failed", cleanup=self.close):
                try:
                    return action(sftp)
                except TimeoutError as exc:
                    self.close()
                    raise TransportError(
                        f"{what} {path} on {self.where}: the server did not answer within "
                        f"{self.timeout:g} s; the next file operation opens a new SFTP channel"
                    ) from exc
                except OSError as exc:
                    channel = sftp.get_channel()
                    if not self._client_gone() and channel is not None and not channel.closed:
                        if exc.errno is not None:
                            raise _file_error(exc, path, self.where) from exc
                        # The server's SSH_FX_FAILURE (paramiko gives no errno): a file's
                        # own failure, such as reading a directory.
                        raise self._failure(sftp, exc, path) from exc
                    self.close()
                    raise TransportError(
                        f"{what} {path} on {self.where} failed: the connection broke ({exc})"
                    ) from exc

    def _failure(self, sftp: paramiko.SFTPClient, exc: OSError, path: str) -> FileError:
        """A file error for SFTP's generic failure: EISDIR for a directory, else EIO."""
        try:
            mode = sftp.stat(path).st_mode or 0
        except (OSError, paramiko.SSHException, EOFError):
            mode = 0
        if stat_module.S_ISDIR(mode):
            return FileError(errno.EISDIR, f"{path} on {self.where} is a directory, not a file")
        return FileError(errno.EIO, f"{path} on {self.where}: {exc}")


def command_file_error(stderr: bytes, path: str, where: str) -> FileError:
    """The error for a failed ``cat`` or ``stat`` command (the sudo path), from its stderr."""
    text = stderr.decode(errors="replace").strip()
    if "No such file" in text:
        return FileMissing(errno.ENOENT, f"{path}: no such file on {where}")
    if "Is a directory" in text:
        return FileError(errno.EISDIR, f"{path} on {where} is a directory, not a file")
    code = errno.EACCES if "ermission denied" in text else errno.EIO
    return FileError(code, f"{path} on {where}: {text or 'failed'}")


def _file_error(exc: OSError, path: str, where: str) -> FileError:
    code = exc.errno or 0
    if code == errno.ENOENT or isinstance(exc, FileNotFoundError):
        return FileMissing(errno.ENOENT, f"{path}: no such file on {where}")
    reason = exc.strerror or str(exc) or "failed"
    return FileError(code, f"{path} on {where}: {reason}")
