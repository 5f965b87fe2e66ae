"""Against a real Windows host, opt-in: set TRAINLAB_WINRM_HOST, TRAINLAB_WINRM_USER and
TRAINLAB_WINRM_PASSWORD (and TRAINLAB_WINRM_SCHEME=winrms for HTTPS, TRAINLAB_WINRM_AUTH).
Without them these tests are deselected, not skipped."""

from __future__ import annotations

import os

import pytest

import trainlab

pytestmark = pytest.mark.windows


@pytest.fixture
def win(windows_host: dict[str, str]) -> trainlab.Session:
    scheme = os.environ.get("TRAINLAB_WINRM_SCHEME", "winrm")
    uri = f"{scheme}://{windows_host['TRAINLAB_WINRM_USER']}@{windows_host['TRAINLAB_WINRM_HOST']}"
    return trainlab.connect(
        uri,
        reuse=False,
        password=windows_host["TRAINLAB_WINRM_PASSWORD"],
        auth=os.environ.get("TRAINLAB_WINRM_AUTH", "negotiate"),
    )


def test_powershell_output_and_exit_status(win: trainlab.Session) -> None:
    assert win.run("'hello'").stdout == "hello"
    assert win.run("cmd /c exit 3").exit_status == 3
    assert win.run("Get-Item C:\\does-not-exist").exit_status == 1
    assert win.run("throw 'boom'").exit_status == 1


def test_batch_and_objects(win: trainlab.Session) -> None:
    batch = win.run_many(["'a'", "cmd /c exit 2", "'c'"])
    assert [r.exit_status for r in batch] == [0, 2, 0]
    frame = win.run_ps("Get-Service | Select-Object -First 3 Name,Status", as_frame=True)
    assert list(frame.columns) == ["Name", "Status"]


def test_deadline_keeps_the_pool(win: trainlab.Session) -> None:
    with pytest.raises(trainlab.CommandTimeout):
        win.run("Start-Sleep -Seconds 30", timeout=2)
    assert win.run("'still here'").stdout == "still here"
