"""Platform facts from uname and os-release."""

from __future__ import annotations

import pytest

from trainlab.platform import (
    DETECT_COMMAND,
    FALLBACK_FILES,
    PROBES,
    detect,
    from_facts,
    parse_facts,
)

UBUNTU = """Linux 5.15.0-91-generic x86_64
NAME="Ubuntu"
VERSION_ID="22.04"
ID=ubuntu
ID_LIKE=debian
PRETTY_NAME="Ubuntu 22.04.3 LTS"
"""

AMAZON = """Linux 6.1.61-85.141.amzn2023.aarch64 aarch64
NAME="Amazon Linux"
VERSION_ID="2023"
ID="amzn"
ID_LIKE="fedora"
"""


def test_ubuntu_is_debian_family() -> None:
    p = parse_facts(UBUNTU)
    assert (p.name, p.family, p.release, p.arch) == ("ubuntu", "debian", "22.04", "x86_64")
    assert p.families == ("debian", "linux", "unix", "os")
    assert p.is_a("ubuntu")
    assert p.is_a("debian")
    assert p.is_a("unix")
    assert not p.is_a("redhat")
    assert p.pretty_name == "Ubuntu 22.04.3 LTS"
    assert p.kernel_release == "5.15.0-91-generic"


def test_amazon_linux_is_redhat_family() -> None:
    p = parse_facts(AMAZON)
    assert (p.name, p.family, p.arch) == ("amzn", "redhat", "aarch64")


def test_macos_without_os_release() -> None:
    p = parse_facts("Darwin 23.1.0 arm64\n")
    assert (p.name, p.family, p.release) == ("darwin", "darwin", "23.1.0")
    assert p.families == ("darwin", "bsd", "unix", "os")


@pytest.mark.parametrize("text", ["", "garbage"])
def test_unparseable_output_still_gives_a_platform(text: str) -> None:
    p = parse_facts(text)
    assert p.name
    assert "os" in p.families


def test_windows_facts() -> None:
    p = from_facts({"kernel": "Windows", "id": "windows", "release": "10.0.20348", "arch": "AMD64"})
    assert (p.name, p.family, p.release) == ("windows", "windows", "10.0.20348")
    assert p.families == ("windows", "os")


# -- hosts without /etc/os-release: the fallback release files, then uname ------------------

BUSYBOX_ALPINE = """Linux 6.6.32-0-lts x86_64
==> /etc/alpine-release <==
3.20.3

"""

OPENWRT = """Linux 5.15.150 mips
==> /etc/openwrt_release <==
DISTRIB_ID='OpenWrt'
DISTRIB_RELEASE='23.05.3'
DISTRIB_REVISION='r23809-234f1a2efa'
DISTRIB_TARGET='ramips/mt7621'
DISTRIB_ARCH='mipsel_24kc'
DISTRIB_DESCRIPTION='OpenWrt 23.05.3 r23809-234f1a2efa'
DISTRIB_TAINTS=''

"""

# CentOS 6: no os-release; redhat-lsb's lsb-release names no distribution.
CENTOS_6 = """Linux 2.6.32-754.35.1.el6.x86_64 x86_64
==> /etc/lsb-release <==
LSB_VERSION=base-4.0-amd64:base-4.0-noarch:core-4.0-amd64:core-4.0-noarch
==> /etc/redhat-release <==
CentOS release 6.10 (Final)

"""

UBUNTU_LSB = """Linux 3.2.0-126-generic i686
==> /etc/lsb-release <==
DISTRIB_ID=Ubuntu
DISTRIB_RELEASE=12.04
DISTRIB_CODENAME=precise
DISTRIB_DESCRIPTION="Ubuntu 12.04.5 LTS"
==> /etc/debian_version <==
wheezy/sid

"""

DEBIAN_6 = """Linux 2.6.32-5-amd64 x86_64
==> /etc/debian_version <==
6.0.10

"""


def test_os_release_decides_when_present() -> None:
    assert parse_facts(UBUNTU).probe == "os-release"
    assert parse_facts(AMAZON).probe == "os-release"
    assert "from os-release" in repr(parse_facts(UBUNTU))


def test_busybox_alpine_without_os_release() -> None:
    p = parse_facts(BUSYBOX_ALPINE)
    assert (p.name, p.family, p.release, p.arch) == ("alpine", "alpine", "3.20.3", "x86_64")
    assert p.families == ("alpine", "linux", "unix", "os")
    assert (p.kernel, p.kernel_release) == ("Linux", "6.6.32-0-lts")
    assert p.probe == "alpine-release"
    assert p.pretty_name == "Alpine Linux 3.20.3"
    assert repr(p) == (
        "<Platform alpine 3.20.3 (alpine) x86_64, kernel Linux 6.6.32-0-lts, from alpine-release>"
    )


def test_openwrt_release() -> None:
    p = parse_facts(OPENWRT)
    assert (p.name, p.family, p.release, p.arch) == ("openwrt", "linux", "23.05.3", "mips")
    assert p.families == ("linux", "unix", "os")
    assert p.pretty_name == "OpenWrt 23.05.3 r23809-234f1a2efa"
    assert p.probe == "openwrt_release"


def test_centos_6_redhat_release_past_an_lsb_release_without_an_id() -> None:
    p = parse_facts(CENTOS_6)
    assert (p.name, p.family, p.release, p.arch) == ("centos", "redhat", "6.10", "x86_64")
    assert p.families == ("redhat", "linux", "unix", "os")
    assert p.pretty_name == "CentOS release 6.10 (Final)"
    assert p.probe == "redhat-release"


@pytest.mark.parametrize(
    ("line", "name", "release"),
    [
        ("Red Hat Enterprise Linux Server release 6.10 (Santiago)", "rhel", "6.10"),
        ("CentOS Linux release 7.9.2009 (Core)", "centos", "7.9.2009"),
        ("Fedora release 20 (Heisenbug)", "fedora", "20"),
        ("Scientific Linux release 6.5 (Carbon)", "scientific", "6.5"),
        ("Oracle Linux Server release 6.10", "ol", "6.10"),
        # No version in the line: the release is the kernel's, as for any platform without one.
        ("Acme Enterprise OS", "acme", "2.6.32"),
    ],
)
def test_redhat_release_lines(line: str, name: str, release: str) -> None:
    p = parse_facts(f"Linux 2.6.32 x86_64\n==> /etc/redhat-release <==\n{line}\n\n")
    assert (p.name, p.family, p.release, p.probe) == (name, "redhat", release, "redhat-release")


def test_lsb_release_before_debian_version() -> None:
    p = parse_facts(UBUNTU_LSB)
    assert (p.name, p.family, p.release, p.arch) == ("ubuntu", "debian", "12.04", "i686")
    assert p.pretty_name == "Ubuntu 12.04.5 LTS"
    assert p.probe == "lsb-release"


def test_debian_version_alone() -> None:
    p = parse_facts(DEBIAN_6)
    assert (p.name, p.family, p.release, p.probe) == (
        "debian",
        "debian",
        "6.0.10",
        "debian_version",
    )


def test_uname_only() -> None:
    p = parse_facts("Linux 6.1.0 armv7l\n")
    assert (p.name, p.family, p.release, p.arch) == ("linux", "linux", "6.1.0", "armv7l")
    assert p.families == ("linux", "unix", "os")
    assert p.probe == "uname"
    assert repr(p) == "<Platform linux 6.1.0 (linux) armv7l, kernel Linux 6.1.0, from uname>"
    assert parse_facts("Darwin 23.1.0 arm64\n").probe == "uname"


def test_the_probe_order_decides_not_the_output_order() -> None:
    text = "Linux 6.1.0 x86_64\n==> /etc/debian_version <==\n12.5\n"
    text += "==> /etc/alpine-release <==\n3.19.1\n"
    p = parse_facts(text)
    assert (p.name, p.release, p.probe) == ("alpine", "3.19.1", "alpine-release")
    assert PROBES == (
        "os-release",
        "alpine-release",
        "openwrt_release",
        "lsb-release",
        "debian_version",
        "redhat-release",
        "uname",
    )


def test_a_release_file_without_a_final_newline_keeps_the_next_header() -> None:
    # DETECT_COMMAND's `echo` after each file puts the next header on a line of its own.
    text = "Linux 6.1.0 x86_64\n==> /etc/lsb-release <==\nLSB_VERSION=core-4.0\n\n"
    text += "==> /etc/redhat-release <==\nCentOS release 6.10 (Final)\n"
    assert parse_facts(text).probe == "redhat-release"


def test_the_detect_command_is_one_posix_command_reading_every_probe() -> None:
    assert DETECT_COMMAND.startswith("uname -srm; ")
    for path in ("/etc/os-release", *FALLBACK_FILES):
        assert path in DETECT_COMMAND
    for bashism in ("[[", "$(", "function ", "local ", "==", "source ", "<(", "{a,b}"):
        assert bashism not in DETECT_COMMAND.replace('"==> $f <=="', ""), bashism
    assert [path.rsplit("/", 1)[1] for path in FALLBACK_FILES] == list(PROBES[1:-1])


def test_platform_html_names_the_probe() -> None:
    page = parse_facts(BUSYBOX_ALPINE)._repr_html_()
    assert "<th style='text-align:left'>detected from</th><td>alpine-release</td>" in page
    assert "alpine &gt; alpine &gt; linux &gt; unix &gt; os" in page
    assert "Alpine Linux 3.20.3" in page


class _Transport:
    def platform_facts(self) -> dict[str, str]:
        return {"kernel": "Windows", "id": "windows", "release": "10.0.20348", "arch": "AMD64"}


class _Session:
    transport = _Transport()

    def open(self) -> None:
        pass

    def run(self, command: str, ttl: float = 0) -> None:  # pragma: no cover - never called
        raise AssertionError("a transport with native facts needs no command")


def test_native_facts_are_from_the_transport() -> None:
    p = detect(_Session())  # type: ignore[arg-type]
    assert (p.name, p.probe) == ("windows", "transport")
