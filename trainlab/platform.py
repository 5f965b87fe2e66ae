"""Operating system detection: one round trip of ``uname`` and ``/etc/os-release``.

The answer is cached on the session. Transports that know the platform without
running commands (PowerShell, SSM) answer through ``Transport.platform_facts``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainlab.session import Session

__all__ = ["Platform", "detect", "parse_facts"]

DETECT_COMMAND = "uname -srm; cat /etc/os-release 2>/dev/null || true"

_KERNEL_FAMILIES = {
    "linux": ("linux", "unix"),
    "darwin": ("darwin", "bsd", "unix"),
    "freebsd": ("freebsd", "bsd", "unix"),
    "openbsd": ("openbsd", "bsd", "unix"),
    "netbsd": ("netbsd", "bsd", "unix"),
    "sunos": ("solaris", "unix"),
    "aix": ("aix", "unix"),
    "windows": ("windows",),
}
# Distribution families, as os-release's ID_LIKE spells them.
_DISTRO_FAMILY = {
    "debian": "debian",
    "ubuntu": "debian",
    "rhel": "redhat",
    "centos": "redhat",
    "fedora": "redhat",
    "rocky": "redhat",
    "almalinux": "redhat",
    "amzn": "redhat",
    "ol": "redhat",
    "suse": "suse",
    "opensuse": "suse",
    "sles": "suse",
    "alpine": "alpine",
    "arch": "arch",
}


@dataclass(frozen=True)
class Platform:
    """What a target runs.

    ``name`` is the distribution id (``debian``, ``ubuntu``, ``amzn``) or the kernel
    name in lower case where there is none (``darwin``); ``family`` the broad family
    (``debian``, ``redhat``, ``windows``); ``families`` every family from the most
    to the least specific, ending in ``os``.
    """

    name: str
    family: str
    release: str
    arch: str
    kernel: str
    kernel_release: str = ""
    pretty_name: str = ""
    families: tuple[str, ...] = field(default_factory=tuple)

    def is_a(self, family: str) -> bool:
        """True when ``family`` is this platform's name or one of its families."""
        return family == self.name or family in self.families

    def __repr__(self) -> str:
        head = " ".join(part for part in (self.name, self.release) if part)
        tail = " ".join(part for part in (self.arch,) if part)
        kernel = " ".join(part for part in (self.kernel, self.kernel_release) if part)
        text = f"<Platform {head} ({self.family})"
        if tail:
            text += f" {tail}"
        if kernel and kernel != self.name:
            text += f", kernel {kernel}"
        return text + ">"


def detect(session: Session) -> Platform:
    """Ask the target once; transports with native facts skip the command."""
    session.open()  # a transport knows its native facts once connected
    facts = session.transport.platform_facts()
    if facts is not None:
        return from_facts(facts)
    result = session.run(DETECT_COMMAND, ttl=0)
    return parse_facts(result.stdout)


def parse_facts(text: str) -> Platform:
    """Parse the output of ``DETECT_COMMAND``.

    >>> p = parse_facts("Linux 6.1.0-18-amd64 x86_64\\nID=debian\\nVERSION_ID=\\"12\\"\\n")
    >>> p.name, p.family, p.release, p.arch, p.families
    ('debian', 'debian', '12', 'x86_64', ('debian', 'linux', 'unix', 'os'))
    """
    lines = text.splitlines()
    uname = lines[0].split() if lines else []
    kernel = uname[0] if uname else "unknown"
    kernel_release = uname[1] if len(uname) > 1 else ""
    arch = uname[2] if len(uname) > 2 else ""
    release: dict[str, str] = {}
    for line in lines[1:]:
        key, sep, value = line.partition("=")
        if sep and key.strip():
            try:
                parsed = shlex.split(value)
            except ValueError:
                parsed = [value]
            release[key.strip()] = parsed[0] if parsed else ""
    return from_facts(
        {
            "kernel": kernel,
            "kernel_release": kernel_release,
            "arch": arch,
            "id": release.get("ID", ""),
            "id_like": release.get("ID_LIKE", ""),
            "release": release.get("VERSION_ID", ""),
            "pretty_name": release.get("PRETTY_NAME", ""),
        }
    )


def from_facts(facts: dict[str, str]) -> Platform:
    """Build a ``Platform`` from raw facts (kernel, arch, id, id_like, release, ...)."""
    kernel = facts.get("kernel", "unknown")
    kernel_key = kernel.lower()
    name = (facts.get("id") or kernel_key).lower()
    like = [token.lower() for token in facts.get("id_like", "").split()]
    family = _DISTRO_FAMILY.get(name) or next(
        (_DISTRO_FAMILY[token] for token in like if token in _DISTRO_FAMILY), None
    )
    kernel_families = _KERNEL_FAMILIES.get(kernel_key, (kernel_key,))
    if family is None:
        family = kernel_families[0]
    chain: list[str] = []
    for item in (family, *kernel_families, "os"):
        if item and item not in chain and item != name:
            chain.append(item)
    if family == name:
        chain.insert(0, name)
    release = facts.get("release") or facts.get("kernel_release", "")
    return Platform(
        name=name,
        family=family,
        release=release,
        arch=facts.get("arch", ""),
        kernel=kernel,
        kernel_release=facts.get("kernel_release", ""),
        pretty_name=facts.get("pretty_name", ""),
        families=tuple(chain),
    )
