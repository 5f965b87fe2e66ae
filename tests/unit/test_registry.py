"""Scheme registry: third-party transports by entry point, missing extras named."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import trainlab
from trainlab import registry

PLUGIN = """
from trainlab.options import Option
from trainlab.session import Session
from trainlab.result import CommandResult
from trainlab.transports.base import Transport


class EchoTransport(Transport):
    scheme = "echo"
    options = {"prefix": Option(str, ">", "prefix for every answer")}
    opened = False

    def open(self):
        self.opened = True

    def run(self, command, timeout):
        text = f"{self.settings['prefix']} {command}\\n".encode()
        return CommandResult(command, text, b"", 0, target=self.target.address)

    def read_file(self, path):
        raise NotImplementedError

    def alive(self):
        return self.opened

    def close(self):
        self.opened = False


class NotATransport:
    pass


class EchoSession(Session):
    def shout(self, text):
        return self.run(text).stdout.upper()


class LoudTransport(EchoTransport):
    scheme = "loud"
    session_class = "echo_plugin:EchoSession"


class WrongSessionTransport(EchoTransport):
    scheme = "wrongsession"
    session_class = "echo_plugin:NotATransport"
"""


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "echo_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "echo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [trainlab.transports]
            echo = echo_plugin:EchoTransport
            notatransport = echo_plugin:NotATransport
            loud = echo_plugin:LoudTransport
            wrongsession = echo_plugin:WrongSessionTransport
            broken = echo_plugin_missing:Thing
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    registry.refresh_plugins()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("echo_plugin", None)
        registry.refresh_plugins()


def test_plugin_registers_by_entry_point(plugin_dir: Path) -> None:
    assert "echo" in trainlab.available_schemes()
    s = trainlab.connect("echo://anywhere?prefix=%23")
    assert s.run("hello").stdout == "# hello\n"
    with pytest.raises(trainlab.TargetError, match=r"unknown option 'prefx'.*'prefix'"):
        trainlab.connect("echo://anywhere?prefx=1")


def test_plugin_names_its_session_class_without_importing_it(plugin_dir: Path) -> None:
    s = trainlab.connect("loud://anywhere")
    assert type(s).__name__ == "EchoSession"
    assert s.shout("hello") == "> HELLO\n"


def test_plugin_whose_session_class_is_no_session_is_refused(plugin_dir: Path) -> None:
    with pytest.raises(trainlab.TargetError, match="is not a trainlab Session subclass"):
        trainlab.connect("wrongsession://x")


def test_plugin_that_is_not_a_transport_is_refused(plugin_dir: Path) -> None:
    with pytest.raises(trainlab.TargetError, match="not a trainlab Transport subclass"):
        trainlab.connect("notatransport://x")


def test_plugin_that_cannot_import_names_the_distribution(plugin_dir: Path) -> None:
    with pytest.raises(trainlab.TargetError, match="from echo-plugin could not be imported"):
        trainlab.connect("broken://x")


def test_missing_extra_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_missing.py").write_text("import not_a_real_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        registry.BUILTIN, "fake", registry._Known("needs_missing", "FakeTransport", "fake")
    )
    with pytest.raises(trainlab.TargetError) as info:
        trainlab.connect("fake://host")
    message = str(info.value)
    assert "the fake:// transport needs not_a_real_package_xyz" in message
    assert "pip install 'trainlab[fake]'" in message


def test_pwsh_over_ssh_without_psrpcore_names_both_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    # pwsh+ssh:// needs paramiko (the [ssh] extra) and psrpcore (the [winrm] extra).
    monkeypatch.setitem(sys.modules, "psrpcore", None)  # import psrpcore -> ImportError
    for name in ("trainlab.transports.pwsh_ssh", "trainlab.transports.out_of_process"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delitem(registry._loaded, "pwsh+ssh", raising=False)
    with pytest.raises(trainlab.TargetError) as info:
        trainlab.connect("pwsh+ssh://admin@win1", reuse=False)
    message = str(info.value)
    assert "the pwsh+ssh:// transport needs psrpcore" in message
    assert "pip install 'trainlab[ssh,winrm]'" in message
