"""Shared fixtures: an injectable clock, no session outliving its test, the real home untouched."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import trainlab

pytest_plugins = ["tests.servers", "tests.shells"]


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped by SIGTERM (``timeout``, a CI limit, scripts/drift.py) still tears
    down, as on Ctrl-C: the fixtures that create system users, a chroot and a sudoers
    file remove them."""

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut teardown short
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


class FakeClock:
    """A monotonic clock that moves only when told (cachetools' Timer.tick idea)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _close_sessions() -> Iterator[None]:
    yield
    trainlab.close_all()


@pytest.fixture(scope="session", autouse=True)
def _real_home_untouched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The run leaves the real ``~/.ssh/known_hosts`` and ``~/.ansible`` as it found them.

    A session made without ``known_hosts=`` learns new host keys into the real file, as
    OpenSSH does: every test passes its own file (or sets ``HOME``), and this checks it
    after the run. Ansible's own directories and config point into the run's temporary
    directory (ansible-core creates ``~/.ansible/tmp`` when it is imported).
    """
    watched = [Path.home() / ".ssh" / "known_hosts", Path.home() / ".ansible"]
    before = [_file_state(path) for path in watched]
    ansible = tmp_path_factory.mktemp("ansible")
    (ansible / "ansible.cfg").write_text("")  # no ~/.ansible.cfg or /etc/ansible's either
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANSIBLE_HOME", str(ansible))
        patch.setenv("ANSIBLE_LOCAL_TEMP", str(ansible / "tmp"))
        patch.setenv("ANSIBLE_CONFIG", str(ansible / "ansible.cfg"))
        yield
    changed = [str(p) for p, was in zip(watched, before, strict=True) if _file_state(p) != was]
    assert not changed, (
        f"the tests changed {changed} in the real home: a test connected without "
        "known_hosts= (or imported ansible outside this fixture's settings)"
    )


@pytest.fixture(scope="session", autouse=True)
def _multiplexer_directories_removed() -> Iterator[None]:
    """Remove what the SSH output multiplexers of killed test shells left in /tmp.

    A multiplexer removes its directory when its shell ends, and the next one removes
    those of multiplexers that were killed (a timeout kills the shell's process group);
    the run's last killed ones have no next one, so the run removes them here.
    """
    before = set(Path("/tmp").glob("trainlab-mux-*"))
    yield
    until = time.monotonic() + 5  # closed sessions' multiplexers are ending by themselves
    for path in sorted(set(Path("/tmp").glob("trainlab-mux-*")) - before):
        pid = int(path.name.split("-")[2])
        while _running(pid) and time.monotonic() < until:
            time.sleep(0.05)
        if not _running(pid):
            shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _file_state(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size
