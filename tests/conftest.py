"""Shared fixtures: an injectable clock, no session outliving its test, the real home untouched."""

from __future__ import annotations

import signal
import threading
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


def _file_state(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size
