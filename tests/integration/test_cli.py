"""The trainlab command, run as a user runs it: a subprocess."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def trainlab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("trainlab", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "trainlab.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_run_passes_output_and_exit_status_through() -> None:
    out = trainlab("run", "local://?mode=shell", "echo hi; echo err >&2; exit 3")
    assert (out.stdout, out.stderr, out.returncode) == ("hi\n", "err\n", 3)


def test_bad_target_is_one_clear_line() -> None:
    out = trainlab("run", "local://?mdoe=shell", "true")
    assert out.returncode == 2
    assert out.stderr.startswith("trainlab: unknown option 'mdoe' for local://")
    assert "Traceback" not in out.stderr


@pytest.mark.ssh
@pytest.mark.aws
@pytest.mark.rest
@pytest.mark.slow
def test_demo_measures_every_sandbox_target_near_and_far(tmp_path: Path, sshd: Any) -> None:
    # ``sshd`` makes a machine without OpenSSH fail here with the install command.
    report = tmp_path / "report.html"
    out = trainlab("demo", "--repeat", "10", "--report", str(report))
    assert out.returncode == 0, out.stderr
    assert not re.search(r"^\w+: left out", out.stdout, re.M), out.stdout
    summary = out.stdout[out.stdout.index("Summary") :]
    parts = ("ssh", "aws", "rest", "winrm")
    labels = [
        "local",
        "pwsh +0 ms",
        "fleet of 24 (ssh +0 ms)",
        *(f"{p} +{ms} ms" for ms in (0, 20) for p in parts),
    ]
    for label in labels:
        assert f"\n{label}" in summary
    for strategy in ("fresh", "reused", "shell", "batched", "cached"):
        assert strategy in summary
    # The sandbox's sshd is OpenSSH here: the login and first channel go out early.
    trips = "round trips waited for (counted by a relay, no clock): 4 for a cold command"
    assert f"note: {trips}" in out.stdout
    assert "1 for a warm one in shell mode" in out.stdout
    page = report.read_text()
    assert trips in page
    assert "<h2>Overview</h2>" in page
    for label in labels:
        assert f"<h2>{label}</h2>" in page
    # An overview plot, then a bar and a box plot per result, all embedded.
    assert page.count("data:image/png;base64,") == 1 + 2 * len(labels)
    assert "http://" not in page.replace("http://127.0.0.1", "")
    # Every sandbox server and proxy is gone afterwards: nothing listens on their ports.
    for port in re.findall(r"127\.0\.0\.1:(\d+)", out.stdout):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", int(port))) != 0, port


@pytest.mark.aws
def test_inventory_prints_the_fleet(moto_server: Any) -> None:
    out = trainlab(
        "inventory",
        "--region",
        "eu-west-1",
        "--filter",
        "tag:role=web",
        "--endpoint-url",
        moto_server.endpoint_url,
        "--csv",
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("region,instance_id,")
    role = lines[0].split(",").index("tag:role")
    assert len(lines) > 1
    assert all(line.split(",")[role] == "web" for line in lines[1:])


def test_inventory_rejects_a_bad_filter() -> None:
    out = trainlab("inventory", "--filter", "role")
    assert out.returncode == 2
    assert "is not NAME=VALUE" in out.stderr


def test_bench_markdown() -> None:
    out = trainlab("bench", "local://", "-c", "true", "--repeat", "3", "--markdown")
    assert out.returncode == 0, out.stderr
    assert "| strategy |" in out.stdout


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = ".venv/bin/python -m pytest"
    assert f"`{command}`" in readme
    assert f"\n{command}" in ci
