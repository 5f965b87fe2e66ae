"""Round trips of a cold SSH session, counted by a relay (no clocks), and what the
fast start must keep: a login shell's chatter stays out of the first answer, a
first command too long for the exec line still runs, a rejected key still falls
through to the next one, a refused channel is an error at once."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

import trainlab
from tests.integration.test_ssh import new_key
from tests.servers import _need_sshd
from trainlab.sandbox.proxy import RoundTripCounter
from trainlab.sandbox.sshd import SSHServer

pytestmark = pytest.mark.ssh


@pytest.fixture
def counter(sshd: SSHServer) -> Iterator[RoundTripCounter]:
    with RoundTripCounter("127.0.0.1", sshd.port) as relay:
        known = Path(sshd.known_hosts)
        text = known.read_text()
        sshd.trust(("127.0.0.1", relay.port))
        try:
            yield relay
        finally:
            known.write_text(text)


def kit_round_trips(
    sshd: SSHServer, counter: RoundTripCounter, ssh_options: dict[str, Any], mode: str
) -> tuple[int, int]:
    """(cold, warm) round trips of `echo hi` in the kit."""
    uri = f"ssh://{sshd.user}@127.0.0.1:{counter.port}"
    session = trainlab.connect(uri, mode=mode, reuse=False, **ssh_options)
    try:
        assert session.run("echo hi").stdout == "hi\n"
        cold = counter.flights[-1]
        assert session.run("echo again").stdout == "again\n"
        return cold, counter.flights[-1] - cold
    finally:
        session.close()


def paramiko_round_trips(sshd: SSHServer, counter: RoundTripCounter) -> tuple[int, int]:
    """(cold, warm) round trips of `echo hi` with paramiko's SSHClient and its defaults."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.connect(
            "127.0.0.1",
            port=counter.port,
            username=sshd.user,
            key_filename=sshd.key_file,
            look_for_keys=False,
            allow_agent=False,
        )
    try:
        counts = []
        for command in ("echo hi", "echo again"):
            _, stdout, _ = client.exec_command(command)
            assert stdout.read().strip() in (b"hi", b"again")
            stdout.channel.recv_exit_status()
            counts.append(counter.flights[-1])
        return counts[0], counts[1] - counts[0]
    finally:
        client.close()


def test_a_cold_command_waits_two_round_trips_less_than_paramiko(
    sshd: SSHServer, counter: RoundTripCounter, ssh_options: dict[str, Any]
) -> None:
    raw_cold, raw_warm = paramiko_round_trips(sshd, counter)
    exec_cold, exec_warm = kit_round_trips(sshd, counter, ssh_options, "exec")
    shell_cold, shell_warm = kit_round_trips(sshd, counter, ssh_options, "shell")
    # kex (2); the login sent behind the service request, and the first channel
    # behind the login (1); the command (1). paramiko waits for the service
    # accept, the login and the channel each.
    assert (exec_cold, shell_cold) == (4, 4)
    assert raw_cold == 6
    # a channel per command costs its opening; the kept shell only the request
    assert (raw_warm, exec_warm, shell_warm) == (2, 2, 1)


def test_an_rsa_key_waits_for_the_service_accept_and_the_login(
    sshd: SSHServer, counter: RoundTripCounter, ssh_options: dict[str, Any]
) -> None:
    # The RSA signature's algorithm depends on the server's server-sig-algs,
    # which may arrive after an early login would have been signed.
    options = {**ssh_options, "key_file": str(sshd.dir / "client_rsa")}
    assert kit_round_trips(sshd, counter, options, "shell")[0] == 6


def test_password_logins_are_not_sent_early(
    users_sshd: SSHServer, test_users: dict[str, tuple[str, str]]
) -> None:
    # Passwords go the classic way: service accept, login, then the channel.
    user, password = next(iter(test_users.values()))
    with RoundTripCounter("127.0.0.1", users_sshd.port) as relay:
        options = {
            **users_sshd.client_options,
            "key_file": None,
            "password": password,
            "host_key_policy": "off",
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = trainlab.connect(f"ssh://{user}@127.0.0.1:{relay.port}", reuse=False, **options)
            assert s.run("echo pw").stdout == "pw\n"
        assert relay.flights[-1] == 6
        s.close()


def test_a_rejected_key_falls_through_to_the_next(
    sshd: SSHServer,
    ssh_options: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Both logins go out early on one connection, each with a channel behind
    # it: the first login is refused (and its channel answered UNIMPLEMENTED,
    # quietly), the second (an ssh_config IdentityFile) accepted.
    caplog.set_level(logging.WARNING)
    stranger = new_key(tmp_path, "ed25519")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host 127.0.0.1\n  IdentityFile {sshd.key_file}\n")
    options = {**ssh_options, "key_file": stranger, "ssh_config": str(config)}
    for mode in ("exec", "shell"):
        s = trainlab.connect(sshd.uri, mode=mode, reuse=False, **options)
        assert s.run("echo in").stdout == "in\n"
        s.close()
    assert not [r for r in caplog.records if r.name.startswith("paramiko")]


def test_a_refused_channel_fails_the_command_at_once(tmp_path: Path) -> None:
    # MaxSessions 0: OpenSSH logs in, then refuses every session channel,
    # the early one included; the command fails with the reason, well
    # before the timeout.
    _need_sshd()
    with SSHServer(tmp_path / "no-sessions", config="Match all\n  MaxSessions 0") as server:
        for mode in ("exec", "shell"):
            s = trainlab.connect(
                server.uri, mode=mode, reuse=False, timeout=60, **server.client_options
            )
            with pytest.raises(
                trainlab.TrainlabError, match=r"cannot (open a channel|start a shell)"
            ) as info:
                s.run("echo never")
            assert "Timeout" not in str(info.value)
            assert "refused the channel" in str(info.value)
            assert "MaxSessions" in str(info.value)
            s.close()


def test_login_chatter_stays_out_of_the_first_answer(tmp_path: Path) -> None:
    # The first command travels in the shell's exec line, before bash has read
    # ~/.bashrc's output; that output must not become the command's.
    _need_sshd()
    with SSHServer(tmp_path / "chatty-sshd") as server:
        (server.dir / "home" / ".bashrc").write_text(
            "echo 'welcome from rc'\necho 'stty: standard input: not a tty' >&2\n"
        )
        s = trainlab.connect(server.uri, mode="shell", reuse=False, **server.client_options)
        first = s.run("echo one; echo err-one >&2")
        assert (first.stdout, first.stderr, first.exit_status) == ("one\n", "err-one\n", 0)
        second = s.run("printf 'two\\r\\n'")
        assert (second.stdout, second.stderr) == ("two\r\n", "")
        s.close()


def test_a_first_command_too_long_for_the_exec_line_runs_behind_it(
    sshd: SSHServer, ssh_options: dict[str, Any]
) -> None:
    filler = "x" * 150_000  # past the exec line's limit, so it goes on stdin after the start
    s = trainlab.connect(sshd.uri, mode="shell", reuse=False, **ssh_options)
    result = s.run(f": '{filler}'; echo long")
    assert (result.stdout, result.exit_status) == ("long\n", 0)
    assert s.run("echo short").stdout == "short\n"
    s.close()


def test_a_fan_out_of_cold_shells_answers_every_target(
    sshd: SSHServer, ssh_options: dict[str, Any]
) -> None:
    # Many fresh shells start at once, each with its first command in its exec line.
    results: dict[int, str] = {}

    def one(index: int) -> None:
        s = trainlab.connect(sshd.uri, mode="shell", reuse=False, **ssh_options)
        results[index] = s.run(f"echo target-{index}").stdout
        s.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {i: f"target-{i}\n" for i in range(12)}
