"""The words of SSH connect failures that loopback cannot produce (an unreachable network,
a reset, a resolver that fails for now): pure logic on the socket's own exceptions."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from trainlab.errors import ConnectError, ConnectTimeout
from trainlab.transports.retry import FAILURE_WORDS, attempts_made
from trainlab.transports.ssh.connection import LOGIN_OPTIONS, SSHLogin
from trainlab.uri import parse_target


def login(tmp_path: Path, **given: object) -> SSHLogin:
    settings = {name: option.default for name, option in LOGIN_OPTIONS.items()}
    settings.update(ssh_config="", known_hosts=str(tmp_path / "known_hosts"), **given)
    return SSHLogin("ssh", parse_target("ssh://u@db1.example:2222"), settings)


def test_an_unreachable_network_names_the_path_and_the_jump_host(tmp_path: Path) -> None:
    error = login(tmp_path)._unreachable(OSError(errno.ENETUNREACH, "Network is unreachable"), 1)
    assert type(error) is ConnectError
    assert str(error) == (
        "cannot connect to db1.example:2222: the host or its network is unreachable "
        "(1 attempt, not retried: the answer would be the same): check the network path "
        "to it (route, VPN, firewall), or reach it through a jump host (proxy_jump=)"
    )


def test_an_unreachable_network_retried_when_asked_says_how_often(tmp_path: Path) -> None:
    unreachable = OSError(errno.EHOSTUNREACH, "No route to host")
    error = login(tmp_path, retry_refused=True)._unreachable(unreachable, 3)
    assert "the host or its network is unreachable (3 attempts): " in str(error)


def test_a_reset_names_max_startups(tmp_path: Path) -> None:
    error = login(tmp_path)._unreachable(ConnectionResetError(errno.ECONNRESET, "reset"), 3)
    assert type(error) is ConnectError
    assert str(error) == (
        "cannot connect to db1.example:2222: the connection was reset (3 attempts): the "
        "server or something between dropped the connection (sshd's MaxStartups limit of "
        "unauthenticated connections, a firewall)"
    )


def test_a_resolver_that_fails_for_now_is_not_called_a_timeout(tmp_path: Path) -> None:
    again = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    error = login(tmp_path)._unreachable(again, 3)
    assert type(error) is ConnectError  # a name error, as before: not a ConnectTimeout
    assert str(error) == (
        "cannot connect to db1.example:2222: the host name did not resolve (Temporary "
        "failure in name resolution) (3 attempts): is a DNS server reachable? check the "
        "host name (or give it a HostName in ssh_config)"
    )


def test_an_unknown_failure_keeps_the_system_words(tmp_path: Path) -> None:
    error = login(tmp_path)._unreachable(OSError(errno.EACCES, "Permission denied"), 1)
    assert str(error) == (
        "cannot connect to db1.example:2222: Permission denied (1 attempt): check the host and port"
    )
    assert not isinstance(error, ConnectTimeout)


@pytest.mark.parametrize(
    ("attempts", "an_answer", "said"),
    [
        (1, True, "1 attempt, not retried: the answer would be the same"),
        (1, False, "1 attempt"),
        (2, True, "2 attempts"),
    ],
)
def test_attempts_made(attempts: int, an_answer: bool, said: str) -> None:
    assert attempts_made(attempts, an_answer=an_answer) == said


def test_every_failure_kind_has_words() -> None:
    assert set(FAILURE_WORDS) == {"refused", "unresolvable", "unreachable", "timeout", "reset"}
