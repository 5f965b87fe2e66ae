"""The whole sandbox in one context manager: SSH, AWS, a REST API, and a slow link.

>>> with Sandbox() as lab:                                   # doctest: +SKIP
...     web = lab.connect("ssh")                             # the private sshd
...     web.run("uname -a")
...     far = lab.connect("ssh", rtt=0.020)                  # the same, 20 ms away
...     lab.connect("rest").get("/devices").frame()
...     trainlab.aws.ec2_inventory(regions="all", endpoint_url=lab.endpoint_url)

Every part listens on 127.0.0.1 with keys, credentials and certificates made for
this run. The SSH server is OpenSSH's sshd when installed, else one built on
asyncssh. A part whose software is missing is left out with the reason in
``lab.missing``; asking for it raises a ``TrainlabError`` that names the fix.
``stop()`` (or leaving the ``with``) stops every server and proxy it started and
closes the sessions it opened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from trainlab.errors import TargetError, TrainlabError
from trainlab.sandbox._base import Background
from trainlab.sandbox.proxy import LatencyProxy

if TYPE_CHECKING:
    from trainlab.session import Session

__all__ = ["PARTS", "Sandbox"]

PARTS = ("ssh", "aws", "rest", "winrm", "pwsh")


class Sandbox(Background):
    """Start the sandbox servers (``parts``) and hand out targets, near or far.

    Parameters
    ----------
    parts
        Which servers to start: ``ssh`` (OpenSSH's sshd), ``aws`` (moto's server
        with a seeded EC2 fleet and commands run through SSM), ``rest`` (an HTTPS
        API with a throwaway CA), ``winrm`` (a WSMan endpoint serving PowerShell
        remoting, NTLM with message encryption) and ``pwsh`` (an out-of-process
        PowerShell host). The last two run scripts with /bin/sh: they prove the
        protocol and the session lifecycle, not PowerShell itself. OpenSSH's
        sshd also serves that host as its ``powershell`` subsystem, the
        ``pwsh+ssh`` target (PowerShell remoting over SSH), when psrpcore is
        installed.
    instances
        EC2 instances seeded per region (three regions).
    strict
        Raise when a part cannot start instead of listing it in ``missing``.
    ssh_server
        ``auto`` (OpenSSH's sshd when installed, else the asyncssh server),
        ``openssh`` or ``asyncssh``.
    ssh_ports
        Loopback ports the OpenSSH server listens on (1 to 16): ``fleet_uris``
        hands out four distinct targets per port.
    """

    def __init__(
        self,
        parts: Sequence[str] = PARTS,
        *,
        instances: int = 40,
        strict: bool = False,
        ssh_server: str = "auto",
        ssh_ports: int = 1,
    ) -> None:
        unknown = [p for p in parts if p not in PARTS]
        if unknown:
            raise TargetError(f"unknown sandbox parts {unknown}; choose from {', '.join(PARTS)}")
        if ssh_server not in ("auto", "openssh", "asyncssh"):
            raise TargetError(f"ssh_server is auto, openssh or asyncssh, not {ssh_server!r}")
        self.ssh_server = ssh_server
        if not 1 <= ssh_ports <= 16:
            raise TargetError(f"ssh_ports is 1 to 16 (sshd's own limit), not {ssh_ports}")
        self.ssh_ports = ssh_ports
        self.parts = tuple(parts)
        self.instances = instances
        self.strict = strict
        self.missing: dict[str, str] = {}
        self.ssh: Any = None
        self.aws: Any = None
        self.api: Any = None
        self.winrm: Any = None
        self.pwsh: Any = None
        self.fleet: dict[str, list[str]] = {}
        self.instance: str | None = None
        self._proxies: dict[tuple[str, float], LatencyProxy] = {}
        self._pwsh_over_ssh = False
        self._sessions: list[Session] = []
        self._stack = contextlib.ExitStack()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Sandbox:
        """Start the parts asked for; one that cannot start is named in ``missing``.

        With ``strict``, it raises instead (after stopping what had started).
        """
        try:
            for part in self.parts:
                try:
                    getattr(self, f"_start_{part}")()
                except TrainlabError as exc:
                    if self.strict:
                        raise
                    self.missing[part] = str(exc)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_ssh(self) -> None:
        from trainlab.sandbox.asshd import AsyncSSHServer, asyncssh_available
        from trainlab.sandbox.sshd import SSHServer, sshd_path

        use_openssh = self.ssh_server == "openssh" or (
            self.ssh_server == "auto" and (sshd_path() is not None or not asyncssh_available())
        )
        config = ""
        if use_openssh:
            with contextlib.suppress(ImportError):  # no psrpcore: no pwsh+ssh target
                from trainlab.sandbox.psrp_stdio import sshd_subsystem

                config = sshd_subsystem()
        server = (
            SSHServer(extra_ports=self.ssh_ports - 1, config=config)
            if use_openssh
            else AsyncSSHServer()
        )
        self.ssh = self._stack.enter_context(server)
        self._pwsh_over_ssh = bool(config)

    def _start_aws(self) -> None:
        try:
            import boto3  # noqa: F401
        except ImportError as exc:
            raise TrainlabError(
                "the AWS sandbox needs boto3: pip install 'trainlab[sandbox]'"
            ) from exc
        from trainlab.sandbox import ssm_agent
        from trainlab.sandbox.aws import MotoServer, fake_credentials, seed_fleet

        server = MotoServer()  # raises with the install command when moto is missing
        ssm_agent.install()
        self._stack.enter_context(fake_credentials())
        self.aws = self._stack.enter_context(server)
        self.fleet = seed_fleet(self.aws.endpoint_url, per_region=self.instances)
        self.instance = self._running_instance()

    def _running_instance(self) -> str:
        import boto3

        region = next(iter(self.fleet))
        ec2 = boto3.client("ec2", region_name=region, endpoint_url=self.aws.endpoint_url)
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["running"]}]
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    return str(instance["InstanceId"])
        raise TrainlabError("the sandbox fleet has no running instance")  # pragma: no cover

    def _start_winrm(self) -> None:
        server = _winrm_module("trainlab.sandbox.winrm_server", "WinRM test endpoint")
        self.winrm = self._stack.enter_context(server.WinRMServer(auth="ntlm"))

    def _start_pwsh(self) -> None:
        host = _winrm_module("trainlab.sandbox.psrp_stdio", "PowerShell test host")
        self.pwsh = self._stack.enter_context(host.PSRPStdioHost())

    def _start_rest(self) -> None:
        from trainlab.sandbox.api import APIServer

        self.api = self._stack.enter_context(APIServer())

    def stop(self) -> None:
        """Close the sessions made through the sandbox and stop every server it started."""
        from trainlab.session import close_quietly

        for session in self._sessions:
            close_quietly(session)
        self._sessions.clear()
        for proxy in self._proxies.values():  # one proxy must not keep the rest running
            with contextlib.suppress(Exception):
                proxy.stop()
        self._proxies.clear()
        self._stack.close()

    # --------------------------------------------------------------- targets
    @property
    def endpoint_url(self) -> str:
        """moto's endpoint, for ``trainlab.aws`` calls (``endpoint_url=``)."""
        return str(self._part("aws").endpoint_url)

    @property
    def region(self) -> str:
        """The region of ``instance`` (the first of the seeded regions)."""
        self._part("aws")
        return next(iter(self.fleet))

    def target(self, part: str, *, rtt: float = 0.0) -> tuple[str, dict[str, Any]]:
        """``(uri, options)`` for ``trainlab.connect``; ``rtt`` seconds of added round trip.

        ``part`` is one of ``PARTS``, or ``pwsh+ssh``: the ssh part's sshd serving
        the PowerShell test host as its ``powershell`` subsystem.
        """
        if part == "pwsh+ssh":
            server = self._part("ssh")
            if not self._pwsh_over_ssh:
                raise TrainlabError(
                    "the sandbox's SSH server has no powershell subsystem: pwsh+ssh needs "
                    "OpenSSH's sshd (ssh_server='openssh') and psrpcore "
                    "(pip install 'trainlab[winrm]')"
                )
            uri = self._near(f"pwsh+ssh://{server.user}@127.0.0.1:{server.port}", rtt)
            return uri, dict(server.client_options)
        server = self._part(part)
        if part == "ssh":
            uri = self._near(f"ssh://{server.user}@127.0.0.1:{server.port}", rtt)
            return uri, dict(server.client_options)
        if part == "aws":
            options = {
                "region": self.region,
                "endpoint_url": self._near(server.endpoint_url, rtt),
                "poll_interval": 0.05,
            }
            return f"ssm://{self.instance}", options
        if part == "winrm":
            return self._near(server.uri, rtt), dict(server.client_options)
        if part == "pwsh":
            if rtt > 0:
                raise TargetError("pwsh:// is a local process: there is no round trip to slow")
            return "pwsh://", dict(server.client_options)
        options = dict(server.client_options)
        options["token_url"] = self._near(server.token_url, rtt)
        return self._near(server.url, rtt), options

    def fleet_uris(self, count: int) -> list[str]:
        """``count`` distinct SSH targets on the sandbox server (options: ``target("ssh")``)."""
        return list(self._part("ssh").fleet_uris(count))

    def connect(self, part: str, *, rtt: float = 0.0, **options: Any) -> Session:
        """A session on a sandbox target, closed when the sandbox stops."""
        from trainlab.session import connect

        uri, defaults = self.target(part, rtt=rtt)
        session = connect(uri, **{**defaults, **options})
        self._sessions.append(session)
        return session

    def targets(self, *, rtt: float = 0.0) -> dict[str, tuple[str, dict[str, Any]]]:
        """Every running part's ``(uri, options)``."""
        return {p: self.target(p, rtt=rtt) for p in self.parts if p not in self.missing}

    def _part(self, part: str) -> Any:
        if part not in PARTS:
            raise TargetError(f"unknown sandbox part {part!r}; choose from {', '.join(PARTS)}")
        if part in self.missing:
            raise TrainlabError(f"the sandbox has no {part} server: {self.missing[part]}")
        server = {
            "ssh": self.ssh,
            "aws": self.aws,
            "rest": self.api,
            "winrm": self.winrm,
            "pwsh": self.pwsh,
        }[part]
        if server is None:
            raise TrainlabError(
                f"the sandbox was not started with {part!r}: Sandbox(parts=[..., {part!r}])"
            )
        return server

    def _near(self, url: str, rtt: float) -> str:
        """``url`` itself, or through a latency proxy that adds ``rtt`` (one per port)."""
        if rtt <= 0:
            return url
        parts = urlsplit(url)
        port = parts.port
        if port is None:  # pragma: no cover - every sandbox URL names its port
            raise TargetError(f"{url} has no port to proxy")
        proxy = self._proxies.get((str(port), rtt))
        if proxy is None:
            proxy = LatencyProxy("127.0.0.1", port, rtt=rtt).start()
            self._proxies[(str(port), rtt)] = proxy
        netloc = parts.netloc.rsplit(":", 1)[0] + f":{proxy.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def ssh_kind(self) -> str | None:
        """``OpenSSH`` or ``asyncssh``: which SSH server runs (``None``: none)."""
        if self.ssh is None:
            return None
        from trainlab.sandbox.asshd import AsyncSSHServer

        return "asyncssh" if isinstance(self.ssh, AsyncSSHServer) else "OpenSSH"

    def __repr__(self) -> str:
        running = [p for p in self.parts if p not in self.missing]
        return f"<Sandbox running={running} missing={list(self.missing)}>"


def _winrm_module(name: str, what: str) -> Any:
    """A PowerShell test server's module; ``TrainlabError`` names the extra it needs."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise TrainlabError(f"the {what} needs {exc.name}: pip install 'trainlab[winrm]'") from exc
