"""%train and %%train through a real IPython InteractiveShell."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import trainlab


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
