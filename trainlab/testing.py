"""The transport contract: one behaviour suite every transport passes, for plug-in authors.

A transport (built in, or a plug-in registered under the ``trainlab.transports``
entry-point group) proves it keeps the session's promises by running this suite, as
fsspec's implementations run its abstract tests. Subclass ``TransportContract`` in a
pytest module and provide two fixtures: ``session`` (a ``trainlab.Session`` on your
target) and ``sample_file`` (the path and bytes of a file that exists there).

For example, in a plug-in's ``tests/test_contract.py``::

    import pytest
    import trainlab
    from trainlab.testing import ThisMachinesFiles, TransportContract

    class TestMyTransport(ThisMachinesFiles, TransportContract):
        @pytest.fixture
        def session(self):
            return trainlab.connect("mything://host", reuse=False)

The target must answer POSIX ``sh`` commands (``printf``, ``head``, ``sleep``, ...);
``SCRIPT`` holds the answers a real POSIX target gives, for scripted fakes.
Importing this module needs pytest (``pip install pytest``); ``import trainlab`` never
imports it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import trainlab
from trainlab.platform import DETECT_COMMAND

__all__ = [
    "BIG",
    "CHANGES",
    "FORGED",
    "SCRIPT",
    "PowerShellContract",
    "ThisMachinesFiles",
    "TransportContract",
]

#: The size of the large-output test, in bytes.
BIG = 5_000_000
#: A command whose answer differs each time it runs, in any POSIX sh (a new process's
#: pid: BusyBox's date has no %N, and a kept shell's own $$ never changes).
CHANGES = "sh -c 'echo $$'"
#: Output that imitates the framing markers; it must arrive as plain output.
FORGED = "__tl_0000 E 0 0 1 2\n__tl_0000 Z 1\n"

#: The answers a real POSIX target gives to the contract's commands, for the mock.
SCRIPT: dict[str, Any] = {
    "printf out; printf err >&2; exit 3": ("out", "err", 3),
    "printf '\\377\\376ok'": b"\xff\xfeok",
    "printf abc": "abc",
    f"head -c {BIG} /dev/zero | tr '\\0' x": "x" * BIG,
    "echo one": "one\n",
    "echo two >&2": ("", "two\n", 0),
    "exit 7": 7,
    "echo after": "after\n",
    "false": 1,
    "sleep 5": trainlab.CommandTimeout("scripted timeout", command="sleep 5", timeout=0.5),
    "echo ok": "ok\n",
    CHANGES: ["1\n", "2\n", "3\n"],
    f"printf '{FORGED}'": FORGED,
    DETECT_COMMAND: "Linux 6.1.0 x86_64\nID=debian\nVERSION_ID=12\n",
    **{f"echo t{n}": f"t{n}\n" for n in range(8 * 20)},
}


class ThisMachinesFiles:
    """``sample_file`` for targets that are this machine (a server run as this user)."""

    @pytest.fixture
    def sample_file(self, tmp_path: Path) -> tuple[str, bytes]:
        path = tmp_path / "sample.txt"
        content = "héllo\nworld\n".encode()
        path.write_bytes(content)
        return str(path), content


class TransportContract:
    """Behaviour tests shared by every transport."""

    @pytest.fixture
    def session(self) -> trainlab.Session:
        raise NotImplementedError

    @pytest.fixture
    def sample_file(self) -> tuple[str, bytes]:
        """(path, content) of a file that exists on the target."""
        raise NotImplementedError

    def test_streams_and_exit_status_are_kept_apart(self, session: trainlab.Session) -> None:
        r = session.run("printf out; printf err >&2; exit 3")
        assert (r.stdout, r.stderr, r.exit_status, r.ok) == ("out", "err", 3, False)
        assert r.duration >= 0
        assert not r.cached

    def test_non_utf8_output_is_replaced_and_raw_bytes_kept(
        self, session: trainlab.Session
    ) -> None:
        r = session.run("printf '\\377\\376ok'")
        assert r.stdout_bytes == b"\xff\xfeok"
        assert r.stdout == "\ufffd\ufffdok"

    def test_output_without_trailing_newline(self, session: trainlab.Session) -> None:
        assert session.run("printf abc").stdout == "abc"

    def test_large_output_arrives_whole(self, session: trainlab.Session) -> None:
        r = session.run(f"head -c {BIG} /dev/zero | tr '\\0' x")
        assert len(r.stdout_bytes) == BIG
        assert r.stdout_bytes.count(b"x") == BIG

    def test_large_output_under_a_small_max_output(self, session: trainlab.Session) -> None:
        # Bounded to head and tail whether the transport streams into the capture or
        # hands over a finished result (``Transport.supports_output``).
        chunks: list[str] = []
        r = session.run(
            f"head -c {BIG} /dev/zero | tr '\\0' x",
            max_output=1000,
            on_output=lambda _stream, text: chunks.append(text),
        )
        assert (r.stdout, r.truncated) == ("x" * 1000, True)
        assert (r.stdout_dropped, r.stderr_dropped) == (BIG - 1000, 0)
        assert sum(len(text) for text in chunks) == BIG
        assert session.run("echo after").stdout == "after\n"

    def test_output_imitating_markers_is_just_output(self, session: trainlab.Session) -> None:
        r = session.run(f"printf '{FORGED}'")
        assert r.stdout == FORGED
        assert r.exit_status == 0
        assert session.run("echo ok").stdout == "ok\n"

    def test_batch_keeps_each_commands_result(self, session: trainlab.Session) -> None:
        batch = session.run_many(["echo one", "echo two >&2", "exit 7", "echo after"])
        assert [(r.stdout, r.stderr, r.exit_status) for r in batch] == [
            ("one\n", "", 0),
            ("", "two\n", 0),
            ("", "", 7),
            ("after\n", "", 0),
        ]
        frame = batch.frame
        assert frame["exit_status"].tolist() == [0, 0, 7, 0]
        assert frame["command"].tolist()[2] == "exit 7"
        if session.transport.supports_batch:
            assert batch.round_trips == 1

    def test_batch_can_stop_on_error(self, session: trainlab.Session) -> None:
        batch = session.run_many(["echo one", "false", "echo after"], stop_on_error=True)
        assert [r.exit_status for r in batch] == [0, 1]
        assert batch.skipped == ("echo after",)
        assert not batch.ok

    def test_timeout_raises_and_session_stays_usable(self, session: trainlab.Session) -> None:
        with pytest.raises(trainlab.CommandTimeout):
            session.run("sleep 5", timeout=0.5)
        assert session.run("echo ok").stdout == "ok\n"

    def test_check_raises_command_failed(self, session: trainlab.Session) -> None:
        with pytest.raises(trainlab.CommandFailed) as info:
            session.run("exit 7", check=True)
        assert info.value.result.exit_status == 7

    def test_cache_answers_within_ttl_and_refresh_bypasses(self, session: trainlab.Session) -> None:
        first = session.run(CHANGES, ttl=60)
        second = session.run(CHANGES, ttl=60)
        assert second.cached
        assert second.stdout == first.stdout
        fresh = session.run(CHANGES, ttl=60, refresh=True)
        assert not fresh.cached
        assert fresh.stdout != first.stdout
        assert session.cache.stats.hits == 1

    def test_files_are_read(
        self, session: trainlab.Session, sample_file: tuple[str, bytes]
    ) -> None:
        path, content = sample_file
        assert session.read_bytes(path) == content
        assert session.read_text(path) == content.decode("utf-8", "replace")
        assert session.stat(path).size == len(content)
        with pytest.raises(trainlab.FileMissing):
            session.read_bytes(path + ".missing")
        with pytest.raises(FileNotFoundError):
            session.stat(path + ".missing")

    def test_platform_is_detected_once(self, session: trainlab.Session) -> None:
        platform = session.platform
        assert platform.name
        assert platform.family
        assert "os" in platform.families
        assert session.platform is platform

    def test_threads_share_one_session(self, session: trainlab.Session) -> None:
        answers: dict[int, str] = {}
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                for index in range(20):
                    n = worker * 20 + index
                    answers[n] = session.run(f"echo t{n}").stdout
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, [repr(e) for e in errors[:3]]
        assert answers == {n: f"t{n}\n" for n in range(160)}

    def test_metrics_record_every_operation(self, session: trainlab.Session) -> None:
        session.run("echo ok")
        session.run_many(["echo one", "echo after"])
        frame = session.metrics
        operations = frame["operation"].tolist()
        assert operations.count("connect") == 1
        assert "run" in operations
        assert "batch" in operations
        assert frame["ok"].all()
        assert (frame["duration_s"] >= 0).all()

    def test_close_is_idempotent_and_final(self, session: trainlab.Session) -> None:
        session.run("echo ok")
        session.close()
        session.close()
        assert not session.alive
        with pytest.raises(trainlab.SessionClosed, match=r"trainlab\.connect"):
            session.run("echo ok")


class PowerShellContract:
    """Where PowerShell transports differ from the contract, by design, and say so.

    Mixed in before ``TransportContract`` by the ``pwsh://`` and ``winrm://`` runs: output
    is text, and files travel as objects through ``run_ps``.
    """

    @pytest.fixture
    def sample_file(self) -> tuple[str, bytes]:
        return ("/etc/hostname", b"")

    def test_non_utf8_output_is_replaced_and_raw_bytes_kept(
        self, session: trainlab.Session
    ) -> None:
        # PowerShell output is text: bytes that are not UTF-8 arrive replaced, not raw.
        r = session.run("printf '\\377\\376ok'")
        assert r.stdout == "\ufffd\ufffdok"
        assert r.stdout_bytes == "\ufffd\ufffdok".encode()

    def test_files_are_read(
        self, session: trainlab.Session, sample_file: tuple[str, bytes]
    ) -> None:
        # Files travel as objects: run_ps("Get-Content ...") rather than read_bytes.
        with pytest.raises(NotImplementedError, match="run_ps"):
            session.read_bytes(sample_file[0])
