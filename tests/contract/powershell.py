"""Where PowerShell transports differ from the contract, by design, and say so."""

from __future__ import annotations

import pytest

import trainlab


class PowerShellContract:
    """Mixed in before ``TransportContract`` by the pwsh:// and winrm:// contract runs."""

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
