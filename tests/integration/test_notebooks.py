"""Every notebook in notebooks/ runs top to bottom in a real kernel against the sandbox.

The outputs are checked cell by cell (cells carry tags), so a notebook that runs
but shows the wrong thing fails too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.servers import _need_sshd

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"

pytestmark = [
    pytest.mark.notebook,
    pytest.mark.ssh,
    pytest.mark.aws,
    pytest.mark.rest,
    pytest.mark.slow,
    pytest.mark.timeout(300),
]


def execute(name: str, cwd: Path) -> dict[str, list[dict[str, Any]]]:
    """Run the notebook in a fresh python3 kernel; its outputs by cell tag."""
    import nbformat
    from nbclient import NotebookClient

    _need_sshd()
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    client = NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()  # raises CellExecutionError, with the traceback, if any cell fails
    by_tag: dict[str, list[dict[str, Any]]] = {}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for tag in cell.metadata.get("tags", []):
                by_tag[tag] = cell.outputs
    return by_tag


def text(outputs: list[dict[str, Any]]) -> str:
    """Everything a cell showed as text, HTML or Markdown, and printed."""
    parts = []
    for output in outputs:
        if output["output_type"] == "stream":
            parts.append(output["text"])
        data = output.get("data", {})
        parts += [data.get(k, "") for k in ("text/plain", "text/html", "text/markdown")]
    return "\n".join(parts)


def mimes(outputs: list[dict[str, Any]]) -> set[str]:
    return {m for output in outputs for m in output.get("data", {})}


def html(outputs: list[dict[str, Any]]) -> str:
    return "\n".join(output.get("data", {}).get("text/html", "") for output in outputs)


def widget_cells(out: dict[str, list[dict[str, Any]]]) -> set[str]:
    """The cells whose saved outputs still hold a widget view (live only in a kernel)."""
    return {tag for tag, outputs in out.items() if WIDGET in mimes(outputs)}


def progress_line(outputs: list[dict[str, Any]]) -> str:
    """The one line a finished progress bar left in the cell's outputs."""
    lines = [
        output["data"]["text/plain"]
        for output in outputs
        if "trainlab-progress" in output.get("data", {}).get("text/html", "")
    ]
    assert len(lines) == 1, lines
    return str(lines[0])


def test_notebooks_are_committed_without_outputs() -> None:
    import nbformat

    names = [p.name for p in NOTEBOOKS]
    for wanted in ("quickstart", "ec2_inventory", "benchmark_report", "fleet", "powershell"):
        assert any(wanted in n for n in names), f"no {wanted} notebook in {names}"
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name}: a cell was committed with outputs"
                assert cell.execution_count is None, path.name


def test_quickstart(tmp_path: Path) -> None:
    out = execute("01_quickstart.ipynb", tmp_path)
    assert "running=['ssh'] missing=[]" in text(out["sandbox"])
    assert "exited=0 on local://" in text(out["local-run"])
    assert "Filesystem" in text(out["table"])
    batch = text(out["batch"])
    assert "echo after" in batch
    assert re.search(r"exit 3\s+\S*\s*3", batch)  # its own exit status, the others still ran
    assert "\\n" not in html(out["batch"])  # stdout shown with its line breaks, not a literal
    assert "(False,\n True," in text(out["cache"])
    assert "exited=0 on ssh://" in text(out["ssh-run"])
    # Output at any size: the head and tail kept, the middle counted; steps printed live
    output = text(out["output"])
    assert "True 22824896 ['1', '2', '3', '4'] ['2999999', '3000000']" in output
    live = "".join(o["text"] for o in out["output"] if o["output_type"] == "stream")
    assert "step 1\nstep 2\nstep 3\n" in live
    assert output.rstrip().endswith("0")
    # A job's late output: not in the later result, in the session's stray output
    assert "('SECOND\\n', b'LATE\\n')" in text(out["stray"])
    posix = text(out["posix-host"])
    assert re.search(r"echo bash \|\| echo sh\s+0\s+sh\n", posix)  # the POSIX host is sh
    assert re.search(r"exit 3\s+3\s", posix)
    assert re.search(r"echo after\s+0\s+after", posix)
    assert "'/bin/bash',\n 'os-release')" in posix  # the sandbox's login shell, the probe
    # %train run printed the file live (one line, the hostname), then the cell's value
    streamed = "".join(o["text"] for o in out["magic-run"] if o["output_type"] == "stream")
    assert streamed.strip()
    assert streamed.count("\n") == 1
    assert text(out["magic-run"]).strip().endswith("True")
    assert "test -d /nonexistent" in text(out["magic-cell"])
    assert text(out["magic-error"]).startswith("UsageError no session named 'nosuch'")
    bench = text(out["bench"])
    assert "data:image/png;base64," in bench  # the table comes with its plot
    for strategy in ("fresh", "reused", "shell", "batched", "cached"):
        assert strategy in bench
    metrics = html(out["metrics"])
    assert "<th>exit_status</th>" in metrics
    assert widget_cells(out) == {"dashboard"}  # the one live widget; no stale bars
    assert "ssh://" in text(out["sessions"])


def test_ec2_inventory(tmp_path: Path) -> None:
    out = execute("02_ec2_inventory.ipynb", tmp_path)
    assert "instance_id" in text(out["inventory"])
    assert "stopped" in text(out["by-state"])
    assert "image/png" in mimes(out["plot"])
    assert re.search(r"cached inventory: [\d.]+ ms for 72 instances", text(out["cached"]))
    assert "db-eu-west-1-" in text(out["magic-ec2"])
    assert widget_cells(out) == {"explorer"}  # the progress bar of ssm-run left text
    picked = text(out["explorer-filtered"])
    assert "prod" in picked
    assert "dev" not in picked
    answers = text(out["ssm-run"])
    assert "Success" in answers
    assert "Undeliverable" in answers  # the stopped web instances are rows too
    assert re.fullmatch(
        r"ssm_run uname -r: \d+/\d+ instances in [\d.]+ m?s, \d+ failed",
        progress_line(out["ssm-run"]),
    )
    assert "exit 4" in text(out["ssm-session"])


def test_benchmark_report(tmp_path: Path) -> None:
    out = execute("03_benchmark_report.ipynb", tmp_path)
    assert "median_ms" in text(out["near"])
    for tag in ("near", "rest", "overview"):  # shown to four significant digits, kept exact
        cells = re.findall(r"<td>-?(\d*\.\d+)(?:e[-+]\d+)?</td>", html(out[tag]))
        assert cells, tag
        assert all(len(c.replace(".", "").lstrip("0")) <= 4 for c in cells), (tag, cells)
    for tag in ("box", "far", "overview-plot"):
        assert "image/png" in mimes(out[tag]), tag
    assert "ssh, +20 ms" in text(out["overview"])
    assert "7 embedded plots" in text(out["report"])
    page = (tmp_path / "benchmark-report.html").read_text()
    assert "<h2>Overview</h2>" in page
    assert "| strategy |" in text(out["markdown"])


def test_powershell(tmp_path: Path) -> None:
    out = execute("05_powershell.ipynb", tmp_path)
    assert "running=['winrm', 'pwsh', 'ssh'] missing=[]" in text(out["sandbox"])
    assert "exited=0 on winrm://" in text(out["winrm-run"])
    batch = text(out["winrm-batch"])
    assert "two" in batch
    assert re.search(r"false\s+\S*\s*two\s+1\n", batch)  # its stderr and its own exit status
    assert "Spooler" in text(out["run-ps"])
    assert text(out["pwsh-reuse"]).strip() == "True"
    assert "timed out: command 'sleep 30'" in text(out["pwsh-timeout"])
    assert "usable again" in text(out["pwsh-timeout"])
    over_ssh = text(out["pwsh-ssh"])
    assert re.search(r"echo over ssh\s+over ssh\s+0\n", over_ssh)
    assert re.search(r"exit 3\s+oops\s+3", over_ssh)  # its stderr and its own exit status
    assert "pwsh+ssh" in text(out["bench"])
    assert "winrm, +20 ms" in text(out["bench"])
    assert "image/png" in mimes(out["bench-plot"])


def test_fleet(tmp_path: Path) -> None:
    out = execute("04_fleet.ipynb", tmp_path)
    assert text(out["sandbox"]).strip() == "25"
    assert "25 targets: 24 ok, 1 failed" in text(out["run"])
    assert widget_cells(out) == set()  # every bar closed and replaced by its line
    assert re.fullmatch(
        r"fleet uptime: 25/25 targets in [\d.]+ m?s, 1 failed", progress_line(out["run"])
    )
    for tag in ("warm", "run-many", "ssm", "dask"):
        assert progress_line(out[tag]).startswith("fleet "), tag
    assert "ConnectError" in text(out["failed"])
    assert "24 answered, 1 failed" in text(out["failed"])
    assert text(out["fleet-error"]).startswith("FleetError 1 of 25 targets failed")
    report = text(out["report"])
    assert "25 targets: 24 ok, 1 ConnectError (refused); slowest ssh://" in report
    assert "cannot connect to 127.0.0.1" in report  # the group's example message
    assert "total_s" in text(out["slowest"])
    assert "reused: 24 of 24" in text(out["warm"])
    cooldown = text(out["cooldown"])
    assert "SkippedRecentlyFailed | skipped: failed to connect" in cooldown
    assert "25 targets: 24 ok, 1 skipped as recently failed (refused)" in cooldown
    assert "ConnectError when tried again" in cooldown
    assert "a cold command waits 4 round trips, a warm one 1" in text(out["round-trips"])
    assert "id -un" in text(out["run-many"])
    assert "image/png" in mimes(out["plot"])
    ssm = text(out["ssm"])
    assert "Linux" in ssm
    assert "False" in ssm  # stopped instances are failure rows, not lost
    assert re.search(r"0\s+24\n<NA>\s+1", text(out["dask"]))
