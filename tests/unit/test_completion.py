"""Tab completion of %train lines, through a real IPython shell's completer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell

import trainlab
from trainlab.completion import MATCHER_ID, aws_regions, complete


@pytest.fixture
def ip() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "trainlab")
    shell.run_line_magic("reload_ext", "trainlab")  # fresh magics: no aliases of other tests
    yield shell
    trainlab.close_all()
    shell.reset()


def tab(shell: InteractiveShell, text: str) -> list[str]:
    """What Tab at the end of ``text`` offers, each applied to the line as a front end does."""
    with provisionalcompleter():
        found = list(shell.Completer.completions(text, len(text)))
    return [text[: c.start] + c.text + text[c.end :] for c in found]


def test_subcommands_not_ipythons_magics(ip: InteractiveShell) -> None:
    assert tab(ip, "%train c") == ["%train close", "%train connect"]
    assert tab(ip, "%train d") == ["%train dashboard"]
    everything = tab(ip, "%train ")
    assert [line.split()[1] for line in everything] == sorted(
        [
            "connect",
            "run",
            "use",
            "sessions",
            "close",
            "fleet",
            "ec2",
            "bench",
            "metrics",
            "dashboard",
        ]
    )


def test_options_of_each_subcommand(ip: InteractiveShell) -> None:
    assert tab(ip, "%train run --") == [
        "%train run --session",
        "%train run --ttl",
        "%train run --timeout",
        "%train run --check",
        "%train run --no-stream",
    ]
    assert tab(ip, "%train connect ssh://h -") == [
        "%train connect ssh://h --as",
        "%train connect ssh://h -o",
        "%train connect ssh://h --option",
    ]
    assert "%train ec2 --endpoint-url" in tab(ip, "%train ec2 --e")
    assert "%train fleet --ssh-config" in tab(ip, "%train fleet --ss")
    assert tab(ip, "%train bench web --r") == ["%train bench web --repeat"]


def test_session_aliases_after_s_and_where_a_session_is_named(ip: InteractiveShell) -> None:
    ip.run_line_magic("train", "connect mock://one --as web")
    ip.run_line_magic("train", "connect mock://two --as db")
    assert tab(ip, "%train run -s ") == ["%train run -s db", "%train run -s web"]
    assert tab(ip, "%train run --session w") == ["%train run --session web"]
    assert tab(ip, "out = %train run -s d") == ["out = %train run -s db"]
    assert tab(ip, "%train close ") == ["%train close db", "%train close web"]
    assert tab(ip, "%train use w") == ["%train use web"]
    assert tab(ip, "%%train ") == ["%%train db", "%%train web"]
    # the command of %train run is not ours to complete: no alias appears in it
    assert not any(line.endswith("web") for line in tab(ip, "%train run -s web echo w"))


def test_regions_from_botocore_offline(ip: InteractiveShell) -> None:
    offered = tab(ip, "%train ec2 --region eu-west-")
    assert "%train ec2 --region eu-west-1" in offered
    assert all(line.startswith("%train ec2 --region eu-west-") for line in offered)
    assert tab(ip, "%train ec2 --region al") == ["%train ec2 --region all"]
    assert "us-east-1" in aws_regions()


def test_hosts_of_the_ssh_config_after_ssh_scheme(
    ip: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(
        "Host web1 web2\n  User deploy\nHost db1\n  Port 2222\nHost *.internal !x\n  User x\n"
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    assert tab(ip, "%train connect ssh://we") == [
        "%train connect ssh://web1",
        "%train connect ssh://web2",
    ]
    assert tab(ip, "%train connect ssh://root@d") == ["%train connect ssh://root@db1"]
    assert "%train connect ssh://" in tab(ip, "%train connect ")


def test_connect_offers_session_variables(ip: InteractiveShell) -> None:
    ip.user_ns["box"] = trainlab.connect("mock://var", reuse=False)
    assert "%train connect box" in tab(ip, "%train connect b")


def test_loading_twice_keeps_one_matcher(ip: InteractiveShell) -> None:
    ip.run_line_magic("reload_ext", "trainlab")
    ours = [
        m
        for m in ip.Completer.custom_matchers
        if getattr(m, "matcher_identifier", "") == MATCHER_ID
    ]
    assert len(ours) == 1


def test_other_lines_are_left_to_ipython() -> None:
    subcommands = {"run": [("-s", True)]}
    assert complete("print(1)", subcommands=subcommands) is None
    assert complete("%trainx", subcommands=subcommands) is None
    assert complete("%train", subcommands=subcommands) is None  # the magic's own name
    unknown = complete("%train nosuch -", subcommands=subcommands)
    assert unknown is not None
    assert unknown.texts == []


def test_connect_offers_every_built_in_scheme() -> None:
    from trainlab.completion import SCHEMES
    from trainlab.registry import BUILTIN

    offered = {scheme.removesuffix("://") for scheme in SCHEMES}
    assert set(BUILTIN) - {"mock"} <= offered
