"""%train and %%train through a real IPython InteractiveShell."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import trainlab
from trainlab.fleet import Fleet, FleetResult
from trainlab.sandbox.sshd import SSHServer


@pytest.fixture
def ip() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "trainlab")
    yield shell
    shell.reset()


def cell(shell: InteractiveShell, code: str) -> Any:
    result = shell.run_cell(code)
    result.raise_error()
    return result.result


def test_connect_run_and_assign(ip: InteractiveShell) -> None:
    session = ip.run_line_magic("train", "connect local://?mode=shell --as box")
    assert isinstance(session, trainlab.Session)
    cell(ip, "out = %train run -s box echo hi; echo err >&2")
    out = ip.user_ns["out"]
    assert (out.stdout, out.stderr) == ("hi\n", "err\n")
    assert ip.run_line_magic("train", "run uname -s").stdout.strip() == "Linux"  # current session


def test_run_streams_output_live_and_returns_the_result(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("train", "connect local://?mode=shell --as box")
    cell(ip, "out = %train run -s box echo live; echo oops >&2")
    printed = capsys.readouterr()
    assert "live\n" in printed.out
    assert "oops\n" in printed.err
    out = ip.user_ns["out"]
    assert (out.stdout, out.stderr) == ("live\n", "oops\n")


def test_no_stream_flag_and_config_keep_output_in_the_result(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("train", "connect local:// --as box")
    capsys.readouterr()
    quiet = ip.run_line_magic("train", "run --no-stream echo quiet-flag")
    assert quiet.stdout == "quiet-flag\n"
    ip.run_line_magic("config", "TrainMagics.stream = False")
    try:
        configured = ip.run_line_magic("train", "run echo quiet-config")
    finally:
        ip.run_line_magic("config", "TrainMagics.stream = True")
    assert configured.stdout == "quiet-config\n"
    printed = capsys.readouterr().out
    assert "quiet-flag" not in printed
    assert "quiet-config" not in printed


def test_variables_expand(ip: InteractiveShell) -> None:
    ip.run_line_magic("train", "connect local:// --as box")
    ip.user_ns["word"] = "expanded"
    assert cell(ip, "%train run echo {word}").stdout == "expanded\n"


def test_cell_is_one_batch_as_a_frame(ip: InteractiveShell) -> None:
    ip.run_line_magic("train", "connect local://?mode=shell --as box")
    ip.user_ns["n"] = 3
    frame = cell(ip, "%%train box\nhostname\n# a comment\nexit {n}\necho done\n")
    assert isinstance(frame, pd.DataFrame)
    assert frame["exit_status"].tolist() == [0, 3, 0]
    assert frame["command"].tolist()[1] == "exit 3"


def test_errors_are_one_line(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match=r"TargetError: unknown option 'mdoe'"):
        ip.run_line_magic("train", "connect local://?mdoe=shell")
    with pytest.raises(UsageError, match="no session"):
        ip.run_line_magic("train", "run -s nope true")
    with pytest.raises(UsageError, match="unknown %train subcommand"):
        ip.run_line_magic("train", "frobnicate")
    ip.run_line_magic("train", "connect local:// --as box")
    with pytest.raises(UsageError, match="CommandFailed"):
        ip.run_line_magic("train", "run --check exit 5")


def test_config_defaults(ip: InteractiveShell) -> None:
    ip.run_line_magic("config", "TrainMagics.ttl = 60")
    ip.run_line_magic("train", "connect local:// --as box")
    ip.run_line_magic("train", "run date +%N")
    assert ip.run_line_magic("train", "run date +%N").cached
    ip.run_line_magic("config", "TrainMagics.ttl = 0")


def test_sessions_use_close_metrics(ip: InteractiveShell) -> None:
    ip.run_line_magic("train", "connect local:// --as a")
    ip.run_line_magic("train", "connect local://?mode=shell --as b")
    ip.run_line_magic("train", "use a")
    assert ip.run_line_magic("train", "run echo x").target == "local://"
    frame = ip.run_line_magic("train", "sessions")
    assert len(frame) >= 2
    assert "run" in ip.run_line_magic("train", "metrics a")["operation"].tolist()
    ip.run_line_magic("train", "close b")
    with pytest.raises(UsageError, match="no session named 'b'"):
        ip.run_line_magic("train", "run -s b true")


def test_bench_on_an_alias(ip: InteractiveShell) -> None:
    ip.run_line_magic("train", "connect local:// --as box")
    result = ip.run_line_magic("train", 'bench box "true" --repeat 3 --warmup 1')
    assert set(result.summary.index) == {"fresh", "reused", "shell", "batched", "cached"}


def test_dashboard_widget(ip: InteractiveShell) -> None:
    from trainlab.widgets import Dashboard

    ip.run_line_magic("train", "connect local://?mode=shell --as box")
    ip.run_line_magic("train", "run echo one")
    board = cell(ip, "%train dashboard")
    assert isinstance(board, Dashboard)
    assert "local://" in board.sessions_view.value
    assert "echo one" in board.operations_view.value


def test_connect_aliases_a_session_made_in_python(ip: InteractiveShell) -> None:
    made = trainlab.connect("local://?mode=shell", reuse=False)
    ip.user_ns["made"] = made
    assert cell(ip, "%train connect made --as here") is made
    assert ip.run_line_magic("train", "run -s here echo ok").stdout == "ok\n"
    with pytest.raises(UsageError, match="drop the -o options"):
        ip.run_line_magic("train", "connect made -o ttl=5")
    made.close()


def test_connect_refuses_a_closed_session_variable(ip: InteractiveShell) -> None:
    gone = trainlab.connect("local://", reuse=False)
    gone.close()
    ip.user_ns["gone"] = gone
    with pytest.raises(UsageError, match="closed"):
        ip.run_line_magic("train", "connect gone --as old")
    with pytest.raises(UsageError, match="no session named 'old'"):
        ip.run_line_magic("train", "use old")


# ------------------------------------------------------------------ fleets
def test_fleet_from_an_ansible_inventory_runs_and_returns_rows(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    boxes:\n      hosts:\n        box[1:2]:\n"
        "          ansible_connection: local\n"
        "    remote:\n      hosts:\n        far:\n"
    )
    ip.user_ns["inventory"] = str(inventory)
    result = cell(ip, "%train fleet --ansible {inventory} --pattern 'boxes:!box2' -c 'echo hi'")
    assert isinstance(result, FleetResult)
    assert [(o.target, o.stdout) for o in result] == [("box1", "hi\n")]
    fleet = cell(
        ip,
        "%train fleet --ansible {inventory} --pattern boxes -o ttl=5 --timeout 9 "
        "--max-workers 1 -o deadline=30",
    )
    assert isinstance(fleet, Fleet)
    assert (fleet.uris, fleet.timeout) == (["box1", "box2"], 9.0)
    assert (fleet.max_workers, fleet.deadline) == (1, 30.0)  # -o text made numbers
    batch = cell(ip, "%train fleet --ansible {inventory} --pattern boxes -c 'echo a' -c 'exit 3'")
    assert batch.frame["exit_status"].tolist() == [0, 3, 0, 3]


@pytest.mark.ssh
def test_fleet_from_an_ssh_config(ip: InteractiveShell, sshd: SSHServer, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host lab1 lab2 other\n  HostName 127.0.0.1\n  Port {sshd.port}\n"
        f"  IdentityFile {sshd.key_file}\n"
    )
    known = tmp_path / "known_hosts"
    known.write_text(Path(sshd.known_hosts).read_text())
    ip.user_ns.update(config=str(config), known=str(known))
    fleet = cell(
        ip,
        "fleet = %train fleet --ssh-config {config} --pattern 'lab*' "
        "-o known_hosts={known} -o agent=false -o look_for_keys=false",
    )
    assert fleet is None  # assigned
    fleet = ip.user_ns["fleet"]
    assert fleet.uris == ["lab1", "lab2"]
    result = fleet.run("echo via-config", progress=False, check=True)
    assert [(o.target, o.stdout) for o in result] == [
        ("lab1", "via-config\n"),
        ("lab2", "via-config\n"),
    ]
    fleet.close()


def test_fleet_from_uris_and_its_errors_are_one_line(ip: InteractiveShell, tmp_path: Path) -> None:
    result = ip.run_line_magic("train", "fleet local:// mock://a -c hostname -o mode=exec")
    assert result.targets == ["local://", "mock://a"]
    # The same checks and words as `trainlab fleet` (trainlab.arguments): one line each.
    with pytest.raises(UsageError, match=r"^TargetError: no targets: give URIs, --ansible PATH"):
        ip.run_line_magic("train", "fleet")
    with pytest.raises(
        UsageError, match=r"^TargetError: --ansible and --ssh-config given together"
    ):
        ip.run_line_magic("train", f"fleet --ansible {tmp_path} --ssh-config")
    with pytest.raises(UsageError, match="not of URIs"):
        ip.run_line_magic("train", "fleet local:// --pattern web")
    with pytest.raises(UsageError, match="option 'ttl' is not KEY=VALUE"):
        ip.run_line_magic("train", "fleet local:// -o ttl")
    with pytest.raises(UsageError, match=r"^TargetError: no Ansible inventory at \S+nope\.ini$"):
        ip.run_line_magic("train", f"fleet --ansible {tmp_path}/nope.ini")
    with pytest.raises(UsageError, match="TargetError: no OpenSSH client config at"):
        ip.run_line_magic("train", f"fleet --ssh-config {tmp_path}/nope")


def test_fleet_cells_share_one_cool_down(ip: InteractiveShell, closed_port: int) -> None:
    """A target that failed to connect in one %train fleet cell is skipped by the next."""
    dead = f"ssh://nobody@127.0.0.1:{closed_port}"
    first = ip.run_line_magic("train", f"fleet {dead} local:// -c true")
    second = ip.run_line_magic("train", f"fleet {dead} local:// -c true")
    assert list(first.frame["error_type"].fillna("")) == ["ConnectError", ""]
    assert list(second.frame["error_type"].fillna("")) == ["SkippedRecentlyFailed", ""]
    own = ip.run_line_magic("train", f"fleet {dead} -c true -o cooldown=0")
    assert list(own.frame["error_type"]) == ["ConnectError"]
    with pytest.raises(UsageError, match="option 'cooldown' takes a number, got 'soon'"):
        ip.run_line_magic("train", f"fleet {dead} -c true -o cooldown=soon")
