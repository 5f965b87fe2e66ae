"""CommandResult and BatchResult: decoding, checks, JSON, tables, reprs."""

from __future__ import annotations

import pandas as pd
import pytest

import trainlab
from trainlab.result import BatchResult, CommandResult

PS_AUX = """\
USER       PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND
root         1  0.2  0.0  38932 10268 ?        S<Ll 08:16   0:02 /sbin/init --log-level=info splash
root       812  0.0  0.1  15432  9120 ?        Ss   08:16   0:00 sshd: /usr/sbin/sshd -D [listener]
www-data  1024  1.5  2.0 812344 65536 ?        Sl   08:17   1:10 nginx: worker process
"""

DF_H = """\
Filesystem               Size  Used Avail Use% Mounted on
devtmpfs                  12G     0   12G   0% /dev
tmpfs                     24G     0   24G   0% /dev/shm
/dev/vda                 252G   23G   80G  23% /
"""

SS_TLNP = """\
State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess
LISTEN 0      128          0.0.0.0:22        0.0.0.0:*    users:(("sshd",pid=812,fd=3))
LISTEN 0      511          0.0.0.0:80        0.0.0.0:*    users:(("nginx",pid=1000,fd=6))
"""


def result(stdout: str | bytes, exit_status: int = 0, stderr: bytes = b"") -> CommandResult:
    data = stdout.encode() if isinstance(stdout, str) else stdout
    return CommandResult("cmd", data, stderr, exit_status, duration=0.0015, target="local://")


def test_text_is_decoded_with_invalid_bytes_replaced_and_raw_kept() -> None:
    r = result(b"caf\xc3\xa9 \xff\xfe end")
    assert r.stdout == "café \ufffd\ufffd end"
    assert r.stdout_bytes == b"caf\xc3\xa9 \xff\xfe end"


def test_ok_check_and_command_failed_message() -> None:
    good = result("fine\n")
    assert good.ok
    assert good.check() is good
    bad = CommandResult(
        "systemctl is-active nginx",
        b"inactive\n",
        b"line1\nline2\nUnit nginx.service could not be found.\n",
        3,
        target="ssh://web1",
    )
    with pytest.raises(trainlab.CommandFailed) as info:
        bad.check()
    message = str(info.value)
    assert "'systemctl is-active nginx' exited 3 on ssh://web1" in message
    assert "Unit nginx.service could not be found." in message
    assert "inactive" in message
    assert info.value.result is bad


def test_lines_and_json() -> None:
    assert result("a\nb\r\nc").lines == ["a", "b", "c"]
    assert result('{"a": [1, 2]}').json() == {"a": [1, 2]}
    with pytest.raises(trainlab.OutputError, match=r"not JSON: Expecting value at line 1 column 7"):
        result('{"a": nope}').json()


def test_repr_is_invoke_style() -> None:
    r = result("x")
    assert repr(r) == "<CommandResult cmd='cmd' exited=0 on local:// 1.5 ms>"
    long = CommandResult("echo " + "x" * 100, b"", b"", 1, cached=True)
    text = repr(long)
    assert "..." in text
    assert text.endswith("cached>")


def test_html_repr_escapes_and_clips() -> None:
    r = CommandResult("echo <b>", b"<script>" + b"x" * 30_000, b"", 0)
    page = r._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "first 20,000 of" in page


def test_ps_aux_table_keeps_the_command_column_whole() -> None:
    frame = result(PS_AUX).table()
    assert list(frame.columns) == [
        "USER",
        "PID",
        "%CPU",
        "%MEM",
        "VSZ",
        "RSS",
        "TTY",
        "STAT",
        "START",
        "TIME",
        "COMMAND",
    ]
    assert frame["PID"].tolist() == [1, 812, 1024]
    assert frame.loc[1, "COMMAND"] == "sshd: /usr/sbin/sshd -D [listener]"
    assert frame["%CPU"].dtype == "float64"


def test_df_table_merges_two_word_header() -> None:
    frame = result(DF_H).table()
    assert list(frame.columns) == ["Filesystem", "Size", "Used", "Avail", "Use%", "Mounted on"]
    assert frame["Mounted on"].tolist() == ["/dev", "/dev/shm", "/"]


def test_ss_table_keeps_every_field() -> None:
    frame = result(SS_TLNP).table()
    assert frame.shape == (2, 6)
    assert frame.iloc[0, 0] == "LISTEN"
    assert frame.iloc[1, 3] == "0.0.0.0:80"
    assert frame.iloc[1, 5] == 'users:(("nginx",pid=1000,fd=6))'


def test_table_with_separator_columns_and_skip() -> None:
    passwd = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n"
    frame = result(passwd).table(
        sep=":", header=False, columns=["user", "pw", "uid", "gid", "gecos", "home", "shell"]
    )
    assert frame["uid"].tolist() == [0, 1]
    listing = "total 8\nNAME SIZE\na 1\nb 2\n"
    assert result(listing).table(skip=1)["SIZE"].tolist() == [1, 2]


def test_empty_output_is_an_empty_frame() -> None:
    assert result("").table().empty


def batch() -> BatchResult:
    return BatchResult(
        [result("a\n"), CommandResult("false", b"", b"no\n", 1)],
        duration=0.01,
        round_trips=1,
        skipped=["echo never"],
        target="local://",
    )


def test_batch_result_sequence_frame_and_repr() -> None:
    b = batch()
    assert len(b) == 2
    assert b[0].stdout == "a\n"
    assert not b.ok
    assert [r.command for r in b.failed] == ["false"]
    frame = b.frame
    assert isinstance(frame, pd.DataFrame)
    assert frame["exit_status"].tolist() == [0, 1]
    assert frame["exit_status"].dtype == "int64"
    assert repr(b) == "<BatchResult 2 commands, 1 failed, 1 round trip, 10.0 ms, 1 skipped>"
    assert "skipped" in b._repr_html_()
    with pytest.raises(trainlab.CommandFailed):
        b.check()


def test_empty_batch_frame_has_columns() -> None:
    frame = BatchResult([]).frame
    assert list(frame.columns)[:3] == ["target", "command", "exit_status"]


def test_file_stat_permissions() -> None:
    stat = trainlab.FileStat("/etc/passwd", "file", 10, 0o100644 & 0o7777, 0, 0, 0.0)
    assert stat.permissions == "0644"
