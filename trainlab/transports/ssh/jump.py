"""Jump hosts: which hop to go through, and the login options it takes from its user.

Imports trainlab.uri only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainlab.uri import parse_target

__all__ = ["jump_login"]

# Login options a jump host takes from the session that goes through it.
_JUMP_INHERITS = (
    "key_file",
    "passphrase",
    "password",
    "agent",
    "look_for_keys",
    "host_key_policy",
    "known_hosts",
    "ssh_config",
    "timeout",
    "connect_retries",
    "retry_backoff",
    "retry_refused",
    "keepalive",
    "ciphers",
    "kex",
)


def jump_login(spec: str, settings: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The URI of the last hop in ``spec`` and the options to open it with.

    ``spec`` is ``proxy_jump``: hops as ``user@host[:port]`` or ``ssh://`` URIs,
    comma-separated. The last hop takes the login options in ``settings`` that its
    URI does not give, and goes through the hops before it (none: ssh_config's
    ProxyJump is not read again for it).

    >>> jump_login("ops@bastion:2222", {"timeout": 5.0, "sudo": True})
    ('ssh://ops@bastion:2222', {'timeout': 5.0, 'proxy_jump': 'none'})
    """
    hops = [hop.strip() for hop in spec.split(",") if hop.strip()]
    last = hops[-1] if "://" in hops[-1] else f"ssh://{hops[-1]}"
    own = set(parse_target(last).query)
    inherited: dict[str, Any] = {
        name: settings[name]
        for name in _JUMP_INHERITS
        if settings.get(name) is not None and name not in own
    }
    if "proxy_jump" not in own:
        inherited["proxy_jump"] = ",".join(hops[:-1]) or "none"
    return last, inherited
