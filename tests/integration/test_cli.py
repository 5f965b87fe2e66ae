"""The trainlab command, run as a user runs it: a subprocess."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainlab.sandbox.sshd import SSHServer

ROOT = Path(__file__).resolve().parents[2]


def trainlab(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("trainlab", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "trainlab.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )


def markdown_rows(text: str) -> list[list[str]]:
    """The body rows of the Markdown table in ``text``, as lists of cells."""
    lines = [line for line in text.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


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


# --------------------------------------------------------------- trainlab fleet
# Reach the test sshd with nothing of this machine's own SSH setup.
NO_USER_KEYS = ("-o", "agent=false", "-o", "look_for_keys=false")


@pytest.mark.ssh
def test_fleet_from_an_ansible_inventory_runs_on_the_sshd(sshd: SSHServer, tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[lab]\n"
        "alpha ansible_host=127.0.0.1\n"
        "beta ansible_host=localhost ansible_connection=paramiko\n"
        "[lab:vars]\n"
        f"ansible_port={sshd.port}\n"
        f"ansible_user={sshd.user}\n"
        f"ansible_ssh_private_key_file={sshd.key_file}\n"
        "[control]\n"
        "here ansible_connection=local\n"
    )
    known = tmp_path / "known_hosts"
    known.write_text(Path(sshd.known_hosts).read_text())
    out = trainlab(
        "fleet",
        "--ansible",
        str(inventory),
        "--pattern",
        "all:!beta",
        "-o",
        f"known_hosts={known}",
        "-o",
        "ssh_config=",
        *NO_USER_KEYS,
        "-c",
        "echo $((6 * 7)) $(id -un)",
        "--markdown",
    )
    assert out.returncode == 0, out.stderr
    rows = markdown_rows(out.stdout)
    assert [(r[0], r[2], r[4]) for r in rows] == [
        ("alpha", "0", f"42 {getpass.getuser()}"),
        ("here", "0", f"42 {getpass.getuser()}"),
    ]
    assert "2 ok, 0 failed" in out.stderr


@pytest.mark.ssh
def test_fleet_from_an_ssh_config_given_or_in_home(sshd: SSHServer, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host lab1 lab2 other\n  HostName 127.0.0.1\n  Port {sshd.port}\n"
        f"  IdentityFile {sshd.key_file}\n"
    )
    known = tmp_path / "known_hosts"
    known.write_text(Path(sshd.known_hosts).read_text())
    out = trainlab(
        "fleet",
        "--ssh-config",
        str(config),
        "--pattern",
        "lab*",
        "-o",
        f"known_hosts={known}",
        *NO_USER_KEYS,
        "-c",
        "echo via-config",
        "-c",
        "exit 3",
        "--markdown",
    )
    assert out.returncode == 1, out.stderr  # a command failed: a row, and status 1
    rows = markdown_rows(out.stdout)
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        ("lab1", "echo via-config", "0", "via-config"),
        ("lab1", "exit 3", "3", ""),
        ("lab2", "echo via-config", "0", "via-config"),
        ("lab2", "exit 3", "3", ""),
    ]
    # A bare --ssh-config reads ~/.ssh/config: here a private HOME, whose known_hosts
    # learns the key (as OpenSSH does), never the real one.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(config.read_text())
    out = trainlab(
        "fleet",
        "--ssh-config",
        "--pattern",
        "*,!lab2",
        *NO_USER_KEYS,
        "-c",
        "echo home",
        env={"HOME": str(home)},
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"^\s*lab1\s+echo home\s+0\s+\S+\s+home$", out.stdout, re.M), out.stdout
    assert re.search(r"^\s*other\s+echo home\s+0\s+\S+\s+home$", out.stdout, re.M), out.stdout
    learned = (home / ".ssh" / "known_hosts").read_text()
    assert learned.startswith(f"[127.0.0.1]:{sshd.port} ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "true"], "no targets: give URIs, --ansible PATH or --ssh-config [PATH]"),
        (
            ["local://", "--ansible", "hosts.ini", "-c", "true"],
            "URIs and --ansible given together: take the targets from one of URIs, ",
        ),
        (["--ansible", "{tmp}/nope.ini", "-c", "true"], "no Ansible inventory at {tmp}/nope.ini"),
        (["--ssh-config", "{tmp}/nope", "-c", "true"], "no OpenSSH client config at {tmp}/nope"),
        (["local://", "--pattern", "web*", "-c", "true"], "--pattern picks hosts of --ansible"),
        (["local://", "-o", "mode", "-c", "true"], "option 'mode' is not KEY=VALUE"),
        (["local://", "-o", "cooldown=soon", "-c", "true"], "option 'cooldown' takes a number"),
        (["local://", "-o", "cooldown=-1", "-c", "true"], "cooldown is seconds from 0 (off)"),
    ],
)
def test_fleet_refuses_bad_usage_in_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    """The checks and words of %train fleet (trainlab.arguments), with argparse's status 2."""
    out = trainlab("fleet", *(a.format(tmp=tmp_path) for a in args))
    assert out.returncode == 2
    assert out.stderr.startswith(f"trainlab: {message.format(tmp=tmp_path)}"), out.stderr
    assert out.stderr.count("\n") == 1
    assert out.stdout == ""


def test_fleet_needs_a_command_as_argparse_says() -> None:
    out = trainlab("fleet", "local://")
    assert out.returncode == 2
    assert "the following arguments are required: -c/--command" in out.stderr
