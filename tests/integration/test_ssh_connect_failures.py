"""SSH connect failures against real sockets on 127.0.0.1: each names the address, what
happened, the attempts made and whether they were retried, and the usual fix."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import trainlab
from tests.servers import listening

pytestmark = pytest.mark.ssh

NOT_RETRIED = "(1 attempt, not retried: the answer would be the same)"


@pytest.fixture
def options(tmp_path: Path) -> dict[str, object]:
    """No ssh_config, a private known_hosts and no keys: nothing here gets as far as a login."""
    return {
        "ssh_config": "",
        "known_hosts": str(tmp_path / "known_hosts"),
        "agent": False,
        "look_for_keys": False,
        "retry_backoff": 0.01,
    }


@pytest.fixture
def hang_up_port() -> Iterator[int]:
    """A loopback port that accepts each connection and closes it before a byte is sent,
    as sshd does past its MaxStartups."""
    with listening(lambda conn: conn.close()) as port:
        yield port


def test_a_refused_connect_names_the_fix_and_is_not_retried(
    options: dict[str, object], closed_port: int
) -> None:
    s = trainlab.connect(
        f"ssh://nobody@127.0.0.1:{closed_port}", reuse=False, connect_retries=3, **options
    )
    with pytest.raises(trainlab.ConnectError) as info:
        s.open()
    assert type(info.value) is trainlab.ConnectError
    assert str(info.value) == (
        f"cannot connect to 127.0.0.1:{closed_port}: connection refused {NOT_RETRIED}: "
        "is sshd running there, and on that port? "
        "(retry_refused=true waits for a host still booting)"
    )
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_a_refused_connect_retried_when_asked_counts_its_attempts(
    options: dict[str, object], closed_port: int
) -> None:
    s = trainlab.connect(
        f"ssh://nobody@127.0.0.1:{closed_port}",
        reuse=False,
        connect_retries=2,
        retry_refused=True,
        **options,
    )
    with pytest.raises(trainlab.ConnectError) as info:
        s.open()
    assert str(info.value) == (
        f"cannot connect to 127.0.0.1:{closed_port}: connection refused (3 attempts): "
        "is sshd running there, and on that port?"
    )


def test_an_unresolvable_name_says_check_the_name(options: dict[str, object]) -> None:
    s = trainlab.connect("ssh://nobody@no-such-host.invalid", reuse=False, **options)
    with pytest.raises(trainlab.ConnectError) as info:
        s.open()
    assert str(info.value) == (
        f"cannot connect to no-such-host.invalid:22: the host name does not resolve "
        f"{NOT_RETRIED}: check the host name (or give it a HostName in ssh_config)"
    )
    assert isinstance(info.value.__cause__, socket.gaierror)


def test_an_unresolvable_hostname_from_ssh_config_names_the_alias(
    options: dict[str, object], tmp_path: Path
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host web1\n    HostName web1.example.invalid\n")
    s = trainlab.connect("ssh://nobody@web1", reuse=False, **{**options, "ssh_config": str(config)})
    with pytest.raises(trainlab.ConnectError) as info:
        s.open()
    message = str(info.value)
    assert message.startswith("cannot connect to web1.example.invalid:22: the host name ")
    assert message.endswith("check the host name, and the HostName ssh_config gives 'web1'")


def test_a_connect_that_never_completes_times_out_after_its_retries(
    options: dict[str, object], full_port: int
) -> None:
    s = trainlab.connect(
        f"ssh://nobody@127.0.0.1:{full_port}",
        reuse=False,
        **{**options, "timeout": 0.2, "connect_retries": 1},
    )
    with pytest.raises(trainlab.ConnectTimeout) as info:
        s.open()
    assert str(info.value) == (
        f"cannot connect to 127.0.0.1:{full_port}: timed out within 0.2 s (2 attempts): "
        "is the host up? a firewall may be dropping the packets; raise timeout= for a "
        "slow network"
    )
    assert isinstance(info.value.__cause__, TimeoutError)


def test_a_server_that_hangs_up_before_its_banner_names_max_startups(
    options: dict[str, object], hang_up_port: int
) -> None:
    s = trainlab.connect(f"ssh://nobody@127.0.0.1:{hang_up_port}", reuse=False, **options)
    with pytest.raises(trainlab.ConnectError) as info:
        s.open()
    assert type(info.value) is trainlab.ConnectError
    assert str(info.value) == (
        f"SSH handshake with nobody@127.0.0.1:{hang_up_port} failed: the connection was "
        "closed before the server's banner: the server or something between dropped the "
        "connection (sshd's MaxStartups limit of unauthenticated connections, a firewall), "
        "or it is not an SSH server"
    )
    assert info.value.__cause__ is not None


def test_a_port_that_accepts_and_never_speaks_is_a_handshake_timeout(
    options: dict[str, object],
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        s = trainlab.connect(
            f"ssh://nobody@127.0.0.1:{port}", reuse=False, **{**options, "timeout": 0.5}
        )
        with pytest.raises(trainlab.ConnectTimeout) as info:
            s.open()
    assert str(info.value) == (
        f"SSH handshake with nobody@127.0.0.1:{port} failed: no banner within 0.5 s: "
        "is it an SSH server on that port? raise timeout= for a slow or busy one"
    )
