"""Login: the keys to try (given, ssh_config's, the agent's, ~/.ssh's), then a password.

Imports paramiko, trainlab.errors and the ssh package's errors and parsed modules.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import paramiko

from trainlab.errors import ConnectError
from trainlab.transports.ssh import parsed
from trainlab.transports.ssh.errors import map_errors

__all__ = ["authenticate", "candidate_keys", "load_key", "load_plain_key"]

_DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")


def authenticate(
    client: paramiko.Transport,
    user: str,
    where: str,
    keys: Iterable[tuple[str, paramiko.PKey]],
    password: str | None,
) -> None:
    """Log in with each of ``keys`` in turn (labelled), then ``password``; else raise.

    A key the server accepts only in part (another method must follow) is not
    counted as tried. The error names what was tried and what the server accepts.
    """
    tried: list[str] = []
    allowed: list[str] | None = None
    for label, key in keys:
        if allowed is not None and "publickey" not in allowed:
            break
        refused, named = _attempt(client, where, partial(client.auth_publickey, user, key))
        if named is not None:
            allowed = named
        if refused:
            tried.append(label)
            continue
        if client.is_authenticated():
            return
    if password is not None and (allowed is None or "password" in allowed):
        _, named = _attempt(client, where, partial(client.auth_password, user, password))
        if named is not None:
            allowed = named
        tried.append("password")
        if client.is_authenticated():
            return
    accepts = f"; the server accepts {', '.join(allowed)}" if allowed else ""
    what = ", ".join(tried) if tried else "nothing (no key file, agent key or password)"
    raise ConnectError(
        f"authentication as {where} failed; tried {what}{accepts}. "
        "Pass key_file= (and passphrase=), password=, or load a key into ssh-agent"
    )


def _attempt(
    client: paramiko.Transport, where: str, login: Callable[[], object]
) -> tuple[bool, list[str] | None]:
    """One login: (whether the server refused it, the methods it allows if it named them)."""
    with map_errors(f"login to {where} failed", error=ConnectError):
        try:
            login()
        except paramiko.BadAuthenticationType as exc:
            return True, list(exc.allowed_types)
        except paramiko.AuthenticationException as exc:
            if not client.is_active():
                raise ConnectError(f"the connection to {where} closed during login") from exc
            return True, None
    return False, None


def candidate_keys(
    settings: Mapping[str, Any], config_keys: list[str]
) -> Iterator[tuple[str, paramiko.PKey]]:
    """(label, key) to try, loaded as they are reached: ``key_file``, ssh_config's
    IdentityFile, the agent's keys, then ~/.ssh's default keys (unreadable ones skipped)."""
    seen: set[str] = set()
    passphrase = settings.get("passphrase")
    explicit = settings.get("key_file")
    files = [str(Path(explicit).expanduser())] if explicit else []
    files += config_keys
    for path in files:
        if path not in seen:
            seen.add(path)
            yield f"key {path}", load_key(path, passphrase)
    if settings["agent"]:
        agent = paramiko.Agent()
        try:
            for index, key in enumerate(agent.get_keys()):
                yield f"agent key {index + 1} ({key.get_name()})", key
        finally:
            agent.close()
    if settings["look_for_keys"]:
        for name in _DEFAULT_KEYS:
            path = str(Path("~/.ssh", name).expanduser())
            if path not in seen and os.path.isfile(path):
                seen.add(path)
                with contextlib.suppress(ConnectError):
                    yield f"key {path}", load_key(path, passphrase)


def load_key(path: str, passphrase: str | None) -> paramiko.PKey:
    """The private key at ``path``; ``ConnectError`` says why it cannot be loaded."""
    # bytes, as cryptography (which loads the key) wants, whatever paramiko's stubs say
    secret: Any = passphrase.encode() if passphrase is not None else None
    try:
        if secret is None:  # a decrypted key is never kept: only plain ones are cached
            return load_plain_key(path)
        return paramiko.PKey.from_path(path, secret)
    except FileNotFoundError as exc:
        raise ConnectError(f"key file {path} does not exist") from exc
    except paramiko.PasswordRequiredException as exc:
        raise ConnectError(f"key file {path} is encrypted: pass passphrase=") from exc
    except (paramiko.SSHException, ValueError, TypeError, OSError) as exc:
        if passphrase is None and "password" in str(exc).lower():
            raise ConnectError(f"key file {path} is encrypted: pass passphrase=") from exc
        hint = "wrong passphrase, or " if passphrase else ""
        raise ConnectError(
            f"cannot load key file {path}: {hint}not an OpenSSH/PEM private key"
        ) from exc


def load_plain_key(path: str) -> paramiko.PKey:
    """An unencrypted private key, parsed once per content of the key and its certificate.

    ``PKey.from_path`` also loads ``<key>-cert.pub`` when there is one (or the
    key beside a ``-cert.pub`` path), so both files are part of the version.
    """
    suffix = "-cert.pub"
    key_path = Path(path.removesuffix(suffix)).expanduser()
    cert_path = Path(f"{key_path}{suffix}")
    try:
        cert = cert_path.read_bytes()
    except FileNotFoundError:
        cert = b""
    data = key_path.read_bytes()
    key = parsed.version("key", len(data).to_bytes(8, "big") + data + cert)
    cached: paramiko.PKey | None = parsed.lookup(key)
    if cached is None:
        cached = paramiko.PKey.from_path(path, None)
        parsed.remember(key, cached)
    return cached
