"""Platform facts from uname and os-release."""

from __future__ import annotations

import pytest

from trainlab.platform import from_facts, parse_facts

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
