"""Operating system detection: one round trip of ``uname`` and the release files.

``/etc/os-release`` first; where it is missing (BusyBox hosts, routers, old
distributions) the older release files, then ``uname`` alone. The answer is cached
on the session. Transports that know the platform without running commands
(PowerShell, SSM) answer through ``Transport.platform_facts``.
"""

from __future__ import annotations

import html
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainlab.session import Session

__all__ = ["PROBES", "Platform", "detect", "parse_facts"]

# Release files older than os-release (or beside it on minimal systems), in the
# order they are believed: each names its distribution more surely than the next
# (Ubuntu has debian_version too; CentOS may have an lsb-release with no DISTRIB_ID).
FALLBACK_FILES = (
    "/etc/alpine-release",
    "/etc/openwrt_release",
    "/etc/lsb-release",
    "/etc/debian_version",
    "/etc/redhat-release",
)
#: What can decide a ``Platform`` (its ``probe``), in the order believed: a release file's
#: name, ``"uname"`` when none answered (``"transport"`` when the transport knew without a
#: command).
PROBES = ("os-release", *(path.rsplit("/", 1)[1] for path in FALLBACK_FILES), "uname")

# One round trip, in POSIX sh that BusyBox's ash, dash and mksh run as bash does.
# With an os-release the output is what it always was: uname's line, then the file.
# Without one, every fallback file present follows, each after a "==> PATH <==" line
# (head's multi-file header), so the parser chooses; `echo` ends an unterminated file.
DETECT_COMMAND = (
    "uname -srm; "
    "if [ -r /etc/os-release ]; then cat /etc/os-release; "
    "elif [ -r /usr/lib/os-release ]; then cat /usr/lib/os-release; "
    f"else for f in {' '.join(FALLBACK_FILES)}; do "
    'if [ -r "$f" ]; then echo "==> $f <=="; cat "$f"; echo; fi; '
    "done; fi"
)
_HEADER = re.compile(r"==> (/\S+) <==")

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
# redhat-release's first words -> os-release's ID for the same distribution.
_REDHAT_IDS = (
    ("red hat", "rhel"),
    ("centos", "centos"),
    ("fedora", "fedora"),
    ("rocky", "rocky"),
    ("almalinux", "almalinux"),
    ("oracle", "ol"),
    ("scientific", "scientific"),
    ("cloudlinux", "cloudlinux"),
)
_REDHAT_RELEASE = re.compile(r"\brelease\s+(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class Platform:
    """What a target runs.

    ``name`` is the distribution id (``debian``, ``ubuntu``, ``amzn``) or the kernel
    name in lower case where there is none (``darwin``); ``family`` the broad family
    (``debian``, ``redhat``, ``windows``); ``families`` every family from the most
    to the least specific, ending in ``os``; ``probe`` what decided: the release file
    read (``os-release``, ``alpine-release``, ... see ``PROBES``), ``uname`` when
    there was none, ``transport`` when the transport knew without a command.
    """

    name: str
    family: str
    release: str
    arch: str
    kernel: str
    kernel_release: str = ""
    pretty_name: str = ""
    families: tuple[str, ...] = field(default_factory=tuple)
    probe: str = ""

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
        if self.probe:
            text += f", from {self.probe}"
        return text + ">"

    def _repr_html_(self) -> str:
        rows = {
            "name": self.pretty_name or self.name,
            "release": self.release,
            "family": " > ".join((self.name, *self.families)),
            "arch": self.arch,
            "kernel": " ".join(part for part in (self.kernel, self.kernel_release) if part),
            "detected from": self.probe,
        }
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in rows.items()
            if v
        )
        return f"<table class='trainlab-platform'>{body}</table>"


def detect(session: Session) -> Platform:
    """Ask the target once; transports with native facts skip the command."""
    session.open()  # a transport knows its native facts once connected
    facts = session.transport.platform_facts()
    if facts is not None:
        return from_facts({"probe": "transport", **facts})
    result = session.run(DETECT_COMMAND, ttl=0)
    return parse_facts(result.stdout)


def parse_facts(text: str) -> Platform:
    """Parse the output of ``DETECT_COMMAND``.

    >>> p = parse_facts("Linux 6.1.0-18-amd64 x86_64\\nID=debian\\nVERSION_ID=\\"12\\"\\n")
    >>> p.name, p.family, p.release, p.arch, p.families, p.probe
    ('debian', 'debian', '12', 'x86_64', ('debian', 'linux', 'unix', 'os'), 'os-release')
    >>> parse_facts("Linux 6.6.32-0-lts x86_64\\n==> /etc/alpine-release <==\\n3.20.3\\n")
    <Platform alpine 3.20.3 (alpine) x86_64, kernel Linux 6.6.32-0-lts, from alpine-release>
    """
    lines = text.splitlines()
    uname = lines[0].split() if lines else []
    facts = {
        "kernel": uname[0] if uname else "unknown",
        "kernel_release": uname[1] if len(uname) > 1 else "",
        "arch": uname[2] if len(uname) > 2 else "",
    }
    files = _release_files(lines[1:])
    for probe in PROBES[:-1]:
        found = files.get(probe)
        if found is not None:
            release = _READERS[probe](found)
            if release is not None:
                return from_facts({**facts, **release, "probe": probe})
    return from_facts({**facts, "probe": "uname"})


def _release_files(lines: list[str]) -> dict[str, list[str]]:
    """The output after uname's line, by release file name: what comes before any
    ``==> PATH <==`` header is os-release's (the output without fallbacks)."""
    files: dict[str, list[str]] = {"os-release": []}
    current = files["os-release"]
    for line in lines:
        header = _HEADER.fullmatch(line.strip())
        if header:
            current = files.setdefault(header.group(1).rsplit("/", 1)[1], [])
        else:
            current.append(line)
    return files


def _assignments(lines: list[str]) -> dict[str, str]:
    """``KEY=value`` lines, values unquoted as sh would (os-release, lsb-release, ...)."""
    values: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip():
            try:
                parsed = shlex.split(value)
            except ValueError:
                parsed = [value]
            values[key.strip()] = parsed[0] if parsed else ""
    return values


def _first_line(lines: list[str]) -> str:
    return next((line.strip() for line in lines if line.strip()), "")


def _from_os_release(lines: list[str]) -> dict[str, str] | None:
    release = _assignments(lines)
    if not release:
        return None
    return {
        "id": release.get("ID", ""),
        "id_like": release.get("ID_LIKE", ""),
        "release": release.get("VERSION_ID", ""),
        "pretty_name": release.get("PRETTY_NAME", ""),
    }


def _from_alpine_release(lines: list[str]) -> dict[str, str] | None:
    version = _first_line(lines)
    return {"id": "alpine", "release": version, "pretty_name": f"Alpine Linux {version}".strip()}


def _from_openwrt_release(lines: list[str]) -> dict[str, str] | None:
    release = _assignments(lines)
    return {
        "id": (release.get("DISTRIB_ID") or "openwrt").lower(),
        "release": release.get("DISTRIB_RELEASE", ""),
        "pretty_name": release.get("DISTRIB_DESCRIPTION", ""),
    }


def _from_lsb_release(lines: list[str]) -> dict[str, str] | None:
    release = _assignments(lines)
    if not release.get("DISTRIB_ID"):  # CentOS's redhat-lsb writes only LSB_VERSION
        return None
    return {
        "id": release["DISTRIB_ID"].lower(),
        "release": release.get("DISTRIB_RELEASE", ""),
        "pretty_name": release.get("DISTRIB_DESCRIPTION", ""),
    }


def _from_debian_version(lines: list[str]) -> dict[str, str] | None:
    return {"id": "debian", "release": _first_line(lines)}


def _from_redhat_release(lines: list[str]) -> dict[str, str] | None:
    line = _first_line(lines)
    if not line:
        return None
    lowered = line.lower()
    name = next(
        (id_ for prefix, id_ in _REDHAT_IDS if lowered.startswith(prefix)), lowered.split()[0]
    )
    version = _REDHAT_RELEASE.search(line)
    return {
        "id": name,
        "id_like": "rhel",
        "release": version.group(1) if version else "",
        "pretty_name": line,
    }


_READERS = {
    "os-release": _from_os_release,
    "alpine-release": _from_alpine_release,
    "openwrt_release": _from_openwrt_release,
    "lsb-release": _from_lsb_release,
    "debian_version": _from_debian_version,
    "redhat-release": _from_redhat_release,
}


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
        probe=facts.get("probe", ""),
    )
