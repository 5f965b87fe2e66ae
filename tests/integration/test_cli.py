"""The trainlab command, run as a user runs it: a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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


def test_demo_prints_the_strategy_table_and_writes_a_report(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    out = trainlab("demo", "--repeat", "10", "--report", str(report))
    assert out.returncode == 0, out.stderr
    for strategy in ("fresh", "reused", "shell", "batched", "cached"):
        assert strategy in out.stdout
    assert "A kept shell answers in" in out.stdout
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 2
    assert "local://" in page


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
