"""trainlab's SSH transport on every login shell and on the BusyBox-only host.

One test per operation and host. Where the transport does not support a host yet,
the test is marked ``xfail(strict=True)`` with the reason (``UNSUPPORTED_TODAY``):
it runs, it must fail, and it fails the suite as soon as it passes, so whoever
makes the transport support that host removes its entry here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import trainlab
from tests.shells import ALPINE_RELEASE, BUSYBOX_FILE, BUSYBOX_FILE_TEXT, LOGIN_SHELLS, ShellHost
from trainlab.platform import parse_facts

pytestmark = pytest.mark.ssh
HOSTS = [*LOGIN_SHELLS, "busybox"]

# (host, operation) -> why the transport fails there today (issue 15).
UNSUPPORTED_TODAY: dict[tuple[str, str], str] = {}


@pytest.fixture(params=HOSTS)
def host(request: pytest.FixtureRequest) -> ShellHost:
    if request.param == "busybox":
        found: ShellHost = request.getfixturevalue("busybox_host")
    else:
        found = request.getfixturevalue("shell_hosts")[request.param]
    return found


def _today(request: pytest.FixtureRequest, host: ShellHost, operation: str) -> None:
    why = UNSUPPORTED_TODAY.get((host.name, operation))
    if why is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"enable when fixed: {why}"))


def _session(host: ShellHost, mode: str = "exec") -> trainlab.Session:
    return trainlab.connect(host.uri, mode=mode, reuse=False, timeout=10, **host.options)


def test_unsupported_today_names_known_hosts_and_operations() -> None:
    operations = {"exec", "batch", "shell", "read", "stat", "platform"}
    assert {name for name, _ in UNSUPPORTED_TODAY} <= set(HOSTS)
    assert {operation for _, operation in UNSUPPORTED_TODAY} <= operations


def test_exec_run(request: pytest.FixtureRequest, host: ShellHost) -> None:
    _today(request, host, "exec")
    r = _session(host).run("echo hi; exit 3", timeout=20)  # the same in every shell
    assert (r.stdout, r.stderr, r.exit_status) == ("hi\n", "", 3)


def test_batch(request: pytest.FixtureRequest, host: ShellHost) -> None:
    _today(request, host, "batch")
    batch = _session(host).run_many(["echo a", "exit 4"], timeout=20)
    assert [(r.stdout, r.stderr, r.exit_status) for r in batch] == [("a\n", "", 0), ("", "", 4)]


def test_shell_mode_run(request: pytest.FixtureRequest, host: ShellHost) -> None:
    _today(request, host, "shell")
    r = _session(host, mode="shell").run("echo hi", timeout=20)
    assert (r.stdout, r.exit_status) == ("hi\n", 0)


def _sample(host: ShellHost) -> tuple[str, str]:
    if host.name == "busybox":
        return BUSYBOX_FILE, BUSYBOX_FILE_TEXT
    return "/etc/os-release", Path("/etc/os-release").read_text()


def test_read_text(request: pytest.FixtureRequest, host: ShellHost) -> None:
    _today(request, host, "read")
    path, text = _sample(host)
    s = _session(host)
    assert s.read_text(path) == text
    assert s.read_bytes(path) == text.encode()
    with pytest.raises(trainlab.FileMissing):
        s.read_text(path + ".missing")


def test_stat(request: pytest.FixtureRequest, host: ShellHost) -> None:
    _today(request, host, "stat")
    path, text = _sample(host)
    info = _session(host).stat(path)
    assert (info.type, info.size) == ("file", len(text.encode()))


def test_platform(request: pytest.FixtureRequest, host: ShellHost) -> None:
    _today(request, host, "platform")
    p = _session(host).platform
    if host.name == "busybox":
        assert (p.name, p.release, p.probe) == ("alpine", ALPINE_RELEASE, "alpine-release")
    else:
        here = parse_facts("Linux x y\n" + Path("/etc/os-release").read_text())
        assert (p.name, p.release, p.probe) == (here.name, here.release, "os-release")


@pytest.mark.filterwarnings("ignore::trainlab.errors.StrayOutputWarning")
def test_shell_mode_keeps_a_jobs_late_output_out_of_later_results(host: ShellHost) -> None:
    """Where the host has perl, the multiplexer; BusyBox has none: one shared channel."""
    with _session(host, mode="shell") as s:
        s.run("(sleep 0.3; echo LATE) &", timeout=20)
        later = s.run("sleep 1; echo SECOND", timeout=20)
        muxed = s.transport._shell.mux  # type: ignore[attr-defined]
    if host.name == "busybox":
        assert not muxed
        assert later.stdout == "LATE\nSECOND\n"  # documented: the job wrote while it ran
    else:
        assert muxed
        assert (later.stdout, s.stray_output.stdout) == ("SECOND\n", b"LATE\n")
