"""Servers the integration tests start themselves, on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trainlab.sandbox.sshd import INSTALL_HINT, SSHServer, sshd_path


def _need_sshd() -> None:
    if sshd_path() is None:
        pytest.fail(f"these tests need OpenSSH's sshd, which is not installed: {INSTALL_HINT}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """One OpenSSH server for the whole run, with ed25519, ecdsa and rsa client keys."""
    _need_sshd()
    server = SSHServer(tmp_path_factory.mktemp("sshd"), key_types=("ed25519", "ecdsa", "rsa"))
    with server:
        yield server


def trusting(server: SSHServer, folder: Path) -> dict[str, Any]:
    """Options that reach ``server`` and trust it, with a private known_hosts in ``folder``
    (so a test that learns or changes a key touches no other test's file)."""
    known = folder / "known_hosts"
    known.write_text(Path(server.known_hosts).read_text())
    return {**server.client_options, "known_hosts": str(known)}


@pytest.fixture
def ssh_options(sshd: SSHServer, tmp_path: Path) -> dict[str, object]:
    """Options that reach the test server and trust it, with a private known_hosts."""
    return trusting(sshd, tmp_path)


@pytest.fixture(scope="session")
def jump_sshd(sshd: SSHServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """A second OpenSSH server, used as a jump host; it trusts the first one's client keys."""
    server = SSHServer(tmp_path_factory.mktemp("jump"))
    with server:
        with open(server.dir / "authorized_keys", "a") as handle:
            handle.write((sshd.dir / "authorized_keys").read_text())
        yield server


@pytest.fixture
def jump_options(ssh_options: dict[str, object], jump_sshd: SSHServer) -> dict[str, object]:
    """ssh_options whose known_hosts also trusts the jump host."""
    known = Path(str(ssh_options["known_hosts"]))
    known.write_text(known.read_text() + Path(jump_sshd.known_hosts).read_text())
    return ssh_options


# Per-run names, so two test runs on one machine never share (or delete) users.
_RUN = secrets.token_hex(3)
SUDOERS = Path(f"/etc/sudoers.d/trainlab-tests-{_RUN}")
TEST_USERS = {role: f"tl-{role}-{_RUN}" for role in ("pass", "nopass", "tty")}


@pytest.fixture(scope="session")
def test_users() -> Iterator[dict[str, tuple[str, str]]]:
    """System users for the password and sudo tests, created for the run and removed after.

    Keyed by role: "pass" needs its password for sudo, "nopass" does not, "tty"'s
    sudo requires a tty. Names and passwords are random per run; each value is
    (user name, password).
    """
    if os.geteuid() != 0:
        pytest.fail(
            "the password and sudo tests create system users and need root: "
            "run the suite as root, as `bash .ci/run` does in CI"
        )
    if shutil.which("sudo") is None:
        pytest.fail("the sudo tests need sudo, which is not installed: apt-get install -y sudo")
    accounts = {role: (name, secrets.token_urlsafe(16)) for role, name in TEST_USERS.items()}
    for name, password in accounts.values():
        if subprocess.run(["id", name], capture_output=True, check=False).returncode != 0:
            subprocess.run(
                ["useradd", "--create-home", "--shell", "/bin/bash", name],
                check=True,
                capture_output=True,
            )
        subprocess.run(
            ["chpasswd"], input=f"{name}:{password}\n", text=True, check=True, capture_output=True
        )
    SUDOERS.write_text(
        f"{TEST_USERS['pass']} ALL=(ALL) ALL\n"
        f"{TEST_USERS['nopass']} ALL=(ALL) NOPASSWD: ALL\n"
        f"Defaults:{TEST_USERS['tty']} requiretty\n"
        f"{TEST_USERS['tty']} ALL=(ALL) NOPASSWD: ALL\n"
    )
    SUDOERS.chmod(0o440)
    try:
        yield accounts
    finally:
        SUDOERS.unlink(missing_ok=True)
        for name in TEST_USERS.values():
            subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)


@pytest.fixture(scope="session")
def users_sshd(
    test_users: dict[str, tuple[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SSHServer]:
    """An OpenSSH server that also takes passwords, for the test users."""
    _need_sshd()
    # Their own homes: the sandbox's private HOME is not readable by other users.
    server = SSHServer(tmp_path_factory.mktemp("users-sshd"), passwords=True, private_home=False)
    with server:
        yield server


@pytest.fixture(scope="session")
def cli_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """An OpenSSH server whose every session is the scripted device CLI."""
    _need_sshd()
    script = Path(__file__).parent / "fixtures" / "fake_junos.sh"
    server = SSHServer(
        tmp_path_factory.mktemp("cli-sshd"), config=f"ForceCommand /bin/bash {script}"
    )
    with server:
        yield server


@pytest.fixture
def ssh_agent(sshd: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private ssh-agent holding the server's rsa client key; SSH_AUTH_SOCK points at it."""
    if shutil.which("ssh-agent") is None:
        pytest.fail("the agent test needs ssh-agent: apt-get install -y openssh-client")
    sock = str(tmp_path / "agent.sock")
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(250):  # up to 5 s for the socket to appear
            if Path(sock).exists():
                break
            time.sleep(0.02)
        env = {**os.environ, "SSH_AUTH_SOCK": sock}
        subprocess.run(
            ["ssh-add", str(sshd.dir / "client_rsa")], env=env, check=True, capture_output=True
        )
        monkeypatch.setenv("SSH_AUTH_SOCK", sock)
        yield sock
    finally:
        agent.terminate()
        agent.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Any]:
    """moto's AWS server on 127.0.0.1, throwaway credentials, and a seeded fleet."""
    from trainlab.sandbox import ssm_agent
    from trainlab.sandbox.aws import FLEET_REGIONS, MotoServer, fake_credentials, seed_fleet

    ssm_agent.install()
    with fake_credentials(), MotoServer() as server:
        server.fleet = seed_fleet(server.endpoint_url, regions=FLEET_REGIONS, per_region=40)
        yield server


@pytest.fixture(scope="session")
def ssm_target(moto_server: Any) -> dict[str, Any]:
    """A running, SSM-managed instance in moto, an unmanaged one, one whose agent is gone
    (registered with SSM, ``ConnectionLost``, its commands ``Undeliverable``), and an
    output bucket."""
    import boto3

    region = "eu-west-1"
    ec2 = boto3.client("ec2", region_name=region, endpoint_url=moto_server.endpoint_url)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    managed, unmanaged, offline = (
        i["InstanceId"]
        for i in ec2.run_instances(ImageId=image, MinCount=3, MaxCount=3)["Instances"]
    )
    ec2.create_tags(Resources=[unmanaged], Tags=[{"Key": "ssm", "Value": "unmanaged"}])
    ec2.create_tags(Resources=[offline], Tags=[{"Key": "ssm", "Value": "offline"}])
    s3 = boto3.client("s3", region_name=region, endpoint_url=moto_server.endpoint_url)
    bucket = "trainlab-ssm-output"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    return {
        "instance": managed,
        "unmanaged": unmanaged,
        "offline": offline,
        "bucket": bucket,
        "options": {
            "region": region,
            "endpoint_url": moto_server.endpoint_url,
            "poll_interval": 0.05,
        },
    }


@pytest.fixture(scope="session")
def api_server() -> Iterator[Any]:
    """The HTTPS test API with a certificate from a throwaway CA."""
    from trainlab.sandbox.api import APIServer

    with APIServer() as server:
        yield server


@pytest.fixture
def api_options(api_server: Any) -> dict[str, Any]:
    return {**api_server.client_options, "backoff": 0.01}


# -- PowerShell: a WSMan endpoint and an out-of-process host, both on psrpcore ----------


@pytest.fixture(scope="session")
def winrm_server() -> Iterator[Any]:
    """The WSMan test endpoint: HTTP, Basic auth (so encryption=never), fresh password."""
    from trainlab.sandbox.winrm_server import WinRMServer

    with WinRMServer() as server:
        yield server


@pytest.fixture(scope="session")
def winrm_ntlm_server() -> Iterator[Any]:
    """The WSMan test endpoint with NTLM only, refusing requests without message encryption."""
    from trainlab.sandbox.winrm_server import WinRMServer

    with WinRMServer(auth="ntlm", allow_unencrypted=False) as server:
        yield server


@pytest.fixture(scope="session")
def winrms_server() -> Iterator[Any]:
    """The WSMan test endpoint on HTTPS, with a certificate from a throwaway CA."""
    from trainlab.sandbox.winrm_server import WinRMServer

    with WinRMServer(https=True) as server:
        yield server


@pytest.fixture
def pwsh_options() -> dict[str, Any]:
    """Options that make pwsh:// start the out-of-process test server instead of PowerShell."""
    from trainlab.sandbox.psrp_stdio import PSRPStdioHost

    return dict(PSRPStdioHost().start().client_options)


WINDOWS_ENV = ("TRAINLAB_WINRM_HOST", "TRAINLAB_WINRM_USER", "TRAINLAB_WINRM_PASSWORD")


@pytest.fixture
def windows_host() -> dict[str, str]:
    """A real Windows host named by TRAINLAB_WINRM_HOST, _USER and _PASSWORD."""
    return {name: os.environ[name] for name in WINDOWS_ENV}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``windows`` run only when the environment names a Windows host."""
    if all(os.environ.get(name) for name in WINDOWS_ENV):
        return
    kept = [item for item in items if item.get_closest_marker("windows") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def fleet_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """An OpenSSH server on 16 loopback ports, for fan-outs over many distinct targets."""
    _need_sshd()
    server = SSHServer(tmp_path_factory.mktemp("fleet-sshd"), extra_ports=15)
    with server:
        yield server


@pytest.fixture
def fleet_options(fleet_sshd: SSHServer, tmp_path: Path) -> dict[str, object]:
    """Options that reach ``fleet_sshd`` and trust it, with a private known_hosts."""
    return trusting(fleet_sshd, tmp_path)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def full_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: Linux drops further SYNs unanswered,
    so a TCP connect to it never completes and times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@contextlib.contextmanager
def listening(on_accept: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback port whose every accepted connection goes to ``on_accept`` (which
    closes or keeps it), in a thread that stops with the block."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():  # bounded: the block's end sets it
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            on_accept(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


@pytest.fixture(scope="session")
def pwsh_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """An OpenSSH server whose ``powershell`` subsystem is the PSRP test host (what
    ``pwsh -sshs`` is on a real host), ``powershell-lines`` the same in line mode, and
    two that are no PowerShell: ``silent`` never answers, ``chatty`` prints a line."""
    _need_sshd()
    from trainlab.sandbox.psrp_stdio import sshd_subsystem

    config = "\n".join(
        [
            sshd_subsystem("powershell"),
            sshd_subsystem("powershell-lines", lines=True),
            "Subsystem silent /bin/sleep 30",
            "Subsystem chatty /bin/echo Welcome to the bastion",
        ]
    )
    server = SSHServer(tmp_path_factory.mktemp("pwsh-sshd"), config=config)
    with server:
        yield server


@pytest.fixture
def pwsh_ssh_options(pwsh_sshd: SSHServer, tmp_path: Path) -> dict[str, Any]:
    """Options that reach ``pwsh_sshd`` and trust it, with a private known_hosts."""
    return trusting(pwsh_sshd, tmp_path)
