"""The paramiko patches hold for the paramiko installed: its version is in their range, and
every paramiko internal they use still exists (a release that drops one fails here, by name)."""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import paramiko.auth_handler
import paramiko.transport
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from trainlab.transports.ssh._paramiko import PRIVATE_API, SUPPORTED

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_paramiko_is_in_the_supported_range() -> None:
    assert Version(paramiko.__version__) in SpecifierSet(SUPPORTED)


def test_the_locked_paramiko_is_in_the_supported_range() -> None:
    pins = [
        line.split("==", 1)[1].strip()
        for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines()
        if line.startswith("paramiko==")
    ]
    assert len(pins) == 1
    assert Version(pins[0]) in SpecifierSet(SUPPORTED)


def test_the_extras_ask_for_the_supported_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    wanted = [
        Requirement(line).specifier
        for name in ("ssh", "sandbox")
        for line in extras[name]
        if Requirement(line).name == "paramiko"
    ]
    assert wanted == [SpecifierSet(SUPPORTED)] * 2


@pytest.fixture(scope="module")
def owners() -> Iterator[dict[str, Any]]:
    """What each PRIVATE_API owner names; paramiko.Transport's are on an instance."""
    ours, theirs = socket.socketpair()
    try:
        yield {
            "paramiko.Transport": paramiko.Transport(ours),  # not started: no thread, no I/O
            "paramiko.transport.ChannelMap": paramiko.transport.ChannelMap,
            "paramiko.auth_handler.AuthHandler": paramiko.auth_handler.AuthHandler,
            "paramiko.Channel": paramiko.Channel,
        }
    finally:
        ours.close()
        theirs.close()


def test_every_owner_of_a_private_name_is_checked(owners: dict[str, Any]) -> None:
    assert set(PRIVATE_API) == set(owners)


@pytest.mark.parametrize(
    ("owner", "name"), [(owner, name) for owner, names in PRIVATE_API.items() for name in names]
)
def test_paramiko_still_has(owners: dict[str, Any], owner: str, name: str) -> None:
    assert hasattr(owners[owner], name), (
        f"{owner}.{name} is gone from paramiko {paramiko.__version__}; "
        "trainlab/transports/ssh/_paramiko.py relies on it"
    )
