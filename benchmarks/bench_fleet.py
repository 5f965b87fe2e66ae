"""Fleets: the kit's fan-out against asyncssh, paramiko threads, fabric and parallel-ssh.

Every pattern runs `hostname` on N SSH connections to private sshd servers on
loopback (trainlab.sandbox.SSHServer, 16 ports each; the kit's targets are
distinct URIs for its session registry, the peers connect to the same host and
port pairs). Two columns:

  cold  connect, authenticate, run, collect: nothing open before
  warm  run and collect on the connections the cold round left open

Patterns
  asyncssh gather      asyncssh.connect + conn.run for every host under asyncio.gather
  paramiko threads     paramiko.SSHClient per host in N threads (its defaults)
  fabric               fabric.ThreadingGroup(...).run(hide=True)
  parallel-ssh         pssh ParallelSSHClient.run_command + join (libssh2, gevent)
  kit exec             trainlab.Fleet(uris).run(...): a channel per command
  kit shell (default)  trainlab.Fleet(uris).run(...): one kept bash per target
  ..., nistp256        the same two with ecdh-sha2-nistp256 as key exchange, which
                       costs sshd less CPU than curve25519 (any client can choose it)

Rounds alternate the patterns so drift hits each alike; each cell is the median
of --rounds rounds, with the range. "client CPU" is the benchmark process's CPU
time in the cold column (every pattern's client runs in it; sshd's does not).

On one machine sshd's logins share the cores with the client, so on loopback the
cold column mostly measures sshd. On a real network each target's sshd has its
own CPU and the cold column is round trips times the RTT, plus client CPU:
--round-trips counts, with a relay and no clock, the round trips each pattern
waits for on one cold target and one warm command (deterministic), --rtt S
puts a latency proxy (in its own process) before every port, and --far S moves
sshd into a network namespace behind a delay line that holds every packet, ACKs
included (trainlab.sandbox.netns; root): only there do Nagle's algorithm in sshd
and delayed ACKs in the clients cost what they cost on a real link.

A second table times every pattern again with dead targets added (--dead, 5% of
the fan-out by default; 0 skips it): loopback ports that refuse connections, as a
host that is down answers. Each pattern keeps its live connections and, on the
warm call, runs the same fan-out again: the peers try the dead hosts again (fabric
and parallel-ssh on their own, the hand-written ones as their loop would); the kit
skips them within its cool-down (``cooldown``, 30 s) and reports them as rows.
"kit shell (cooldown=0)" is the kit trying them every time.

--growth also times the kit at 10, 50, 100 and 200 targets; --dask also times
the kit's fleet on a LocalCluster of two worker processes (executor=Client),
which keep their sessions between calls.

Run: python benchmarks/bench_fleet.py [--targets 50] [--rounds 5] [--round-trips]
     [--rtt 0.02 | --far 0.02] [--dead 0.05] [--growth] [--dask] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import socket
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import paramiko

import trainlab
from trainlab.sandbox.asshd import import_asyncssh
from trainlab.sandbox.proxy import LatencyProxy, RoundTripCounter
from trainlab.sandbox.sshd import SSHServer

warnings.simplefilter("ignore")  # paramiko and fabric deprecation chatter

PER_SERVER = 64  # 16 ports x 2 names x with/without user
CURVE25519 = ("curve25519-sha256", "curve25519-sha256@libssh.org")
NISTP256 = "ecdh-sha2-nistp256"
COMMAND = "hostname"
#: Ports of the dead targets of a run: they refuse connections.
DEAD_PORTS: set[int] = set()


def live(hosts: list[tuple[str, str, int]]) -> int:
    """How many of ``hosts`` should answer (the dead ones refuse)."""
    return sum(1 for _, _, port in hosts if port not in DEAD_PORTS)


def dead_targets(server: SSHServer, count: int) -> list[tuple[str, str, int]]:
    """``count`` targets on loopback ports that nothing listens on: connections are refused."""
    found = []
    for _ in range(count):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        DEAD_PORTS.add(port)
        found.append((f"ssh://{server.user}@127.0.0.1:{port}", "127.0.0.1", port))
    return found


def targets(servers: list[SSHServer], count: int) -> list[tuple[str, str, int]]:
    """(uri, host, port) triples: distinct URIs, spread over the servers."""
    found: list[tuple[str, str, int]] = []
    for server in servers:
        for user in (f"{server.user}@", ""):
            for name in ("127.0.0.1", "localhost"):
                for port in server.ports:
                    found.append((f"ssh://{user}{name}:{port}", name, port))
    if count > len(found):
        raise SystemExit(f"at most {len(found)} targets with {len(servers)} servers")
    # Interleave servers so any prefix spreads over all of them.
    ordered = [found[i + j * PER_SERVER] for i in range(PER_SERVER) for j in range(len(servers))]
    return ordered[:count]


# -------------------------------------------------------------------- patterns
# Each pattern is a context manager yielding (cold, warm): cold opens and runs,
# warm runs again on what cold opened; leaving the context closes everything.


@contextlib.contextmanager
def kit(
    hosts: list[tuple[str, str, int]], server: SSHServer, mode: str, **options: Any
) -> Iterator[Any]:
    fleets: list[trainlab.Fleet] = []

    def run() -> None:
        result = fleets[0].run(COMMAND)
        if len(result.ok) != live(hosts):
            raise SystemExit(f"kit {mode}: {result.failed[0]!r}")

    def cold() -> None:  # the fleet is made in the timed part, as the peers' clients are
        fleets[:] = [
            trainlab.Fleet(
                [uri for uri, _, _ in hosts],
                mode=mode,
                progress=False,
                max_workers=64,
                **server.client_options,
                **options,
            )
        ]
        run()

    try:
        yield cold, run
    finally:
        if fleets:
            fleets[0].close()


@contextlib.contextmanager
def asyncssh_gather(hosts: list[tuple[str, str, int]], server: SSHServer) -> Iterator[Any]:
    asyncssh = import_asyncssh()

    loop = asyncio.new_event_loop()
    conns: list[Any] = []

    async def one(host: str, port: int) -> Any:
        conn = await asyncssh.connect(
            host,
            port=port,
            username=server.user,
            client_keys=[server.key_file],
            known_hosts=None,
            agent_path=None,
        )
        await conn.run(COMMAND, check=True)
        return conn

    down: list[tuple[str, str, int]] = []

    async def connect_all(targets: list[tuple[str, str, int]]) -> None:
        answers = await asyncio.gather(
            *(one(host, port) for _, host, port in targets), return_exceptions=True
        )
        conns.extend(a for a in answers if not isinstance(a, BaseException))
        down[:] = [t for t, a in zip(targets, answers, strict=True) if isinstance(a, BaseException)]
        if len(down) != len(targets) - live(targets):
            raise SystemExit(f"asyncssh: {next(a for a in answers if isinstance(a, Exception))!r}")

    def cold() -> None:
        conns.clear()
        loop.run_until_complete(connect_all(hosts))

    def warm() -> None:
        async def all_of() -> None:  # the open connections, and the dead hosts again
            await asyncio.gather(
                *(c.run(COMMAND, check=True) for c in conns), connect_all(list(down))
            )

        loop.run_until_complete(all_of())

    try:
        yield cold, warm
    finally:

        async def close() -> None:
            for conn in conns:
                conn.close()
            await asyncio.gather(*(c.wait_closed() for c in conns))

        loop.run_until_complete(close())
        loop.close()


@contextlib.contextmanager
def paramiko_threads(
    hosts: list[tuple[str, str, int]], server: SSHServer, nistp256: bool = False
) -> Iterator[Any]:
    clients: list[paramiko.SSHClient] = []
    pool = ThreadPoolExecutor(len(hosts))

    def exec_one(client: paramiko.SSHClient) -> bytes:
        _, stdout, _ = client.exec_command(COMMAND)
        out = stdout.read()
        stdout.channel.recv_exit_status()
        return out

    def one(host: str, port: int) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # a loopback sandbox
        client.connect(
            host,
            port=port,
            username=server.user,
            key_filename=server.key_file,
            look_for_keys=False,
            allow_agent=False,
            # Without curve25519, ecdh-sha2-nistp256 is paramiko's first choice.
            disabled_algorithms={"kex": list(CURVE25519)} if nistp256 else None,
        )
        exec_one(client)
        return client

    down: list[tuple[str, str, int]] = []

    def try_one(host: tuple[str, str, int]) -> paramiko.SSHClient | None:
        try:
            return one(host[1], host[2])
        except OSError:  # refused (paramiko raises NoValidConnectionsError, an OSError)
            if host[2] not in DEAD_PORTS:
                raise
            return None

    def connect_all(targets: list[tuple[str, str, int]]) -> list[paramiko.SSHClient]:
        answers = list(pool.map(try_one, targets))
        down[:] = [t for t, a in zip(targets, answers, strict=True) if a is None]
        return [a for a in answers if a is not None]

    def cold() -> None:
        clients[:] = connect_all(hosts)

    def warm() -> None:  # the open clients, and the dead hosts again
        retried = pool.submit(connect_all, list(down)) if down else None
        list(pool.map(exec_one, clients))
        if retried is not None:
            clients.extend(retried.result())

    try:
        yield cold, warm
    finally:
        for client in clients:
            client.close()
        pool.shutdown()


@contextlib.contextmanager
def fabric_group(hosts: list[tuple[str, str, int]], server: SSHServer) -> Iterator[Any]:
    from fabric import ThreadingGroup

    groups: list[Any] = []

    def run(group: Any) -> None:
        from fabric.exceptions import GroupException

        try:
            group.run(COMMAND, hide=True)
        except GroupException as exc:  # the dead hosts; fabric tries them again next run
            failed = [c for c, r in exc.result.items() if isinstance(r, BaseException)]
            if len(failed) != len(hosts) - live(hosts):
                raise

    def cold() -> None:
        group = ThreadingGroup(
            *(f"{host}:{port}" for _, host, port in hosts),
            user=server.user,
            connect_kwargs={
                "key_filename": server.key_file,
                "look_for_keys": False,
                "allow_agent": False,
            },
        )
        groups[:] = [group]
        run(group)

    def warm() -> None:
        run(groups[0])

    try:
        yield cold, warm
    finally:
        if groups:
            groups[0].close()


@contextlib.contextmanager
def parallel_ssh(hosts: list[tuple[str, str, int]], server: SSHServer) -> Iterator[Any]:
    from pssh.clients import ParallelSSHClient
    from pssh.config import HostConfig

    clients: list[Any] = []

    def run(client: Any) -> None:
        output = client.run_command(COMMAND, stop_on_errors=False)
        client.join(output)
        failed = 0
        for host_output in output:
            if host_output.exception is not None:  # the dead hosts, tried again next run
                failed += 1
                continue
            list(host_output.stdout)
            # exit_code can still be None here under load (libssh2 has not read
            # the exit-status message yet); only an exception is a failure.
            if host_output.exit_code not in (0, None):
                raise SystemExit(f"parallel-ssh: exit {host_output.exit_code}")
        if failed != len(hosts) - live(hosts):
            raise SystemExit(f"parallel-ssh: {failed} hosts failed")

    def cold() -> None:
        client = ParallelSSHClient(
            [host for _, host, _ in hosts],
            user=server.user,
            pkey=server.key_file,
            allow_agent=False,
            num_retries=0,
            pool_size=len(hosts),
            host_config=[HostConfig(port=port) for _, _, port in hosts],
        )
        clients[:] = [client]
        run(client)

    def warm() -> None:
        run(clients[0])

    try:
        yield cold, warm
    finally:
        if clients:
            with contextlib.suppress(Exception):
                clients[0].disconnect()


@contextlib.contextmanager
def kit_dask(hosts: list[tuple[str, str, int]], server: SSHServer, client: Any) -> Iterator[Any]:
    fleets: list[trainlab.Fleet] = []

    def run() -> None:
        result = fleets[0].run(COMMAND, executor=client)
        if len(result.ok) != len(hosts):
            raise SystemExit(f"kit on dask: {result.failed[0]!r}")

    def cold() -> None:
        fleets[:] = [
            trainlab.Fleet([uri for uri, _, _ in hosts], progress=False, **server.client_options)
        ]
        run()

    def close_sessions(dask_worker: Any) -> None:
        trainlab.close_all()

    try:
        yield cold, run
    finally:
        client.run(close_sessions)


PATTERNS: dict[str, Callable[..., Any]] = {
    "asyncssh gather": asyncssh_gather,
    "paramiko threads": paramiko_threads,
    "fabric ThreadingGroup": fabric_group,
    "parallel-ssh": parallel_ssh,
    "kit exec": lambda hosts, server: kit(hosts, server, "exec"),
    "kit shell (default)": lambda hosts, server: kit(hosts, server, "shell"),
    "paramiko threads (nistp256)": partial(paramiko_threads, nistp256=True),
    "kit shell (kex=nistp256)": lambda hosts, server: kit(hosts, server, "shell", kex=NISTP256),
}
#: Patterns timed only with dead targets.
DEAD_ONLY: dict[str, Callable[..., Any]] = {
    "kit shell (cooldown=0)": lambda hosts, server: kit(hosts, server, "shell", cooldown=0),
}


def measure(
    factory: Callable[..., Any], hosts: list[tuple[str, str, int]], server: SSHServer, warm: int
) -> tuple[float, float, float]:
    """(cold ms, median warm ms, client CPU ms of the cold call) for one round."""
    with factory(hosts, server) as (cold_call, warm_call):
        c0 = time.process_time()
        t0 = time.perf_counter()
        cold_call()
        cold_ms = (time.perf_counter() - t0) * 1e3
        cpu_ms = (time.process_time() - c0) * 1e3
        warm_call()  # the first warm call may still settle channels
        samples = []
        for _ in range(warm):
            t0 = time.perf_counter()
            warm_call()
            samples.append((time.perf_counter() - t0) * 1e3)
    time.sleep(0.3)  # let sshd reap the closed connections before the next pattern
    return cold_ms, statistics.median(samples), cpu_ms


def round_trips(server: SSHServer, names: list[str]) -> dict[str, tuple[int, int]]:
    """(cold, warm) round trips each pattern waits for, on one target through a relay."""
    counts: dict[str, tuple[int, int]] = {}
    with RoundTripCounter("127.0.0.1", server.port) as relay:
        server.trust(("127.0.0.1", relay.port))
        host = [(f"ssh://{server.user}@127.0.0.1:{relay.port}", "127.0.0.1", relay.port)]
        for name in names:
            with PATTERNS[name](host, server) as (cold_call, warm_call):
                cold_call()
                cold = relay.flights[-1]
                warm_call()  # settles channels, as in measure()
                before = relay.flights[-1]
                warm_call()
                counts[name] = (cold, relay.flights[-1] - before)
            trainlab.close_all()
    return counts


def _proxies(ports: list[int], rtt: float, pipe: Any) -> None:
    """In a child process: a latency proxy per port; sends {port: proxy port}, then waits."""
    proxies = [LatencyProxy("127.0.0.1", port, rtt=rtt).start() for port in ports]
    pipe.send({port: proxy.port for port, proxy in zip(ports, proxies, strict=True)})
    pipe.recv()  # until the parent is done (or gone)


@contextlib.contextmanager
def behind_proxies(servers: list[SSHServer], rtt: float) -> Iterator[dict[int, int]]:
    """Every server port behind a latency proxy in its own process (not in the
    client's: the proxies' threads would take the clients' GIL)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    ports = [port for server in servers for port in server.ports]
    process = context.Process(target=_proxies, args=(ports, rtt, child), daemon=True)
    process.start()
    try:
        if not parent.poll(60):
            raise SystemExit("the latency proxies did not start")
        mapping: dict[int, int] = parent.recv()
        for other in servers:  # into the first server's file, which the clients read
            other.trust(
                *(
                    (name, mapping[port])
                    for port in other.ports
                    for name in ("127.0.0.1", "localhost")
                ),
                into=servers[0].known_hosts,
            )
        yield mapping
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warm", type=int, default=5, help="warm repetitions per round")
    parser.add_argument("--only", default="", help="comma-separated pattern names")
    parser.add_argument("--round-trips", action="store_true", help="count them (one target)")
    parser.add_argument("--rtt", type=float, default=0.0, help="seconds added per round trip")
    parser.add_argument(
        "--far", type=float, default=0.0, help="sshd in a namespace behind a delay line: its RTT"
    )
    parser.add_argument(
        "--dead", type=float, default=0.05, help="dead targets added, a fraction (0: none)"
    )
    parser.add_argument("--growth", action="store_true", help="the kit at 10 to 200 targets")
    parser.add_argument("--dask", action="store_true", help="the kit on a 2-worker LocalCluster")
    parser.add_argument("--json", default="", help="write the numbers here")
    args = parser.parse_args()
    chosen = [p.strip() for p in args.only.split(",") if p.strip()] or list(PATTERNS)
    biggest = max(args.targets, 200 if args.growth else 0)
    count = -(-biggest // PER_SERVER)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(SSHServer(extra_ports=15)) for _ in range(count)]
        server = servers[0]  # the client key and known_hosts are per server: share them
        for other in servers[1:]:
            (other.dir / "authorized_keys").write_text((server.dir / "authorized_keys").read_text())
        with open(server.known_hosts, "a") as known:
            for other in servers[1:]:
                known.write(Path(other.known_hosts).read_text())
        trips: dict[str, tuple[int, int]] = {}
        if args.round_trips:
            trips = round_trips(server, chosen)
            print("round trips waited for: one cold target (connect + run), one warm run\n")
            print("| pattern | cold | warm |\n|---|---:|---:|")
            for name, (cold_trips, warm_trips) in trips.items():
                print(f"| {name} | {cold_trips} | {warm_trips} |")
            print()
        mapping: dict[int, int] = {}
        where = "on loopback"
        far: Any = None
        if args.far:
            from trainlab.sandbox.netns import DelayLine, FarSSH

            line = stack.enter_context(DelayLine(rtt=args.far))
            far = stack.enter_context(FarSSH(server, line))
            where = f"in a namespace behind a {args.far * 1e3:g} ms RTT delay line"
        elif args.rtt:
            mapping = stack.enter_context(behind_proxies(servers, args.rtt))
            where = f"behind {args.rtt * 1e3:g} ms RTT proxies"

        def routed(count: int) -> list[tuple[str, str, int]]:
            if far is not None:
                return far.targets(count)  # type: ignore[no-any-return]
            if not mapping:
                return targets(servers, count)
            return [
                (uri.replace(f":{port}", f":{mapping[port]}"), host, mapping[port])
                for uri, host, port in targets(servers, count)
            ]

        hosts = routed(args.targets)
        print(
            f"{len(hosts)} connections to {len(servers)} sshd {where}, `{COMMAND}`; "
            f"{os.cpu_count()} cores; cold: connect + run; warm: run on open connections; "
            f"median of {args.rounds} rounds (range), ms\n"
        )
        results: dict[str, dict[str, list[float]]] = {
            name: {"cold": [], "warm": [], "cpu": []} for name in chosen
        }
        for _ in range(args.rounds):
            # parallel-ssh brings gevent: it goes last in every round.
            for name in sorted(chosen, key=lambda n: n == "parallel-ssh"):
                cold, warm, cpu = measure(PATTERNS[name], hosts, server, args.warm)
                results[name]["cold"].append(cold)
                results[name]["warm"].append(warm)
                results[name]["cpu"].append(cpu)
                trainlab.close_all()
        width = max(len(n) for n in chosen)
        print(f"| {'pattern':<{width}} | cold ms | warm ms | client CPU ms (cold) |")
        print(f"|{'-' * (width + 2)}|---:|---:|---:|")
        for name in chosen:
            print(
                f"| {name:<{width}} | {cell(results[name]['cold'])} "
                f"| {cell(results[name]['warm'])} | {cell(results[name]['cpu'])} |"
            )
        dead_results: dict[str, dict[str, list[float]]] = {}
        if args.dead > 0:
            dead = dead_targets(server, math.ceil(len(hosts) * args.dead))
            mixed = hosts + dead
            names = [*chosen, *DEAD_ONLY]
            print(
                f"\nwith {args.dead:.0%} dead targets: the same {len(hosts)} and {len(dead)} "
                f"ports that refuse connections ({len(mixed)} targets), ms\n"
            )
            dead_results = {name: {"cold": [], "warm": []} for name in names}
            for _ in range(args.rounds):
                for name in sorted(names, key=lambda n: n == "parallel-ssh"):
                    factory = PATTERNS.get(name) or DEAD_ONLY[name]
                    cold, warm, _ = measure(factory, mixed, server, args.warm)
                    dead_results[name]["cold"].append(cold)
                    dead_results[name]["warm"].append(warm)
                    trainlab.close_all()
            wide = max(len(n) for n in names)
            print(f"| {'pattern':<{wide}} | cold ms | warm ms | warm ms, no dead targets |")
            print(f"|{'-' * (wide + 2)}|---:|---:|---:|")
            for name in names:
                healthy = results.get(name) or results.get("kit shell (default)")
                print(
                    f"| {name:<{wide}} | {cell(dead_results[name]['cold'])} "
                    f"| {cell(dead_results[name]['warm'])} "
                    f"| {cell(healthy['warm']) if healthy and healthy['warm'] else '-'} |"
                )
        growth: dict[str, dict[str, list[float]]] = {}
        if args.growth:
            print("\nkit, growth with the number of targets (median of rounds, ms)\n")
            print("| targets | exec cold | exec warm | shell cold | shell warm |")
            print("|---:|---:|---:|---:|---:|")
            for size in (10, 50, 100, 200):
                row: dict[str, list[float]] = {}
                for mode in ("exec", "shell"):
                    pattern = PATTERNS["kit exec" if mode == "exec" else "kit shell (default)"]
                    for _ in range(max(1, args.rounds // 2 + 1)):
                        cold, warm, _ = measure(pattern, routed(size), server, args.warm)
                        row.setdefault(f"{mode} cold", []).append(cold)
                        row.setdefault(f"{mode} warm", []).append(warm)
                        trainlab.close_all()
                growth[str(size)] = row
                print(
                    f"| {size} | "
                    + " | ".join(f"{statistics.median(row[k]):.0f}" for k in row)
                    + " |"
                )
        dask_cells: dict[str, list[float]] = {}
        if args.dask:
            from distributed import Client, LocalCluster

            with (
                LocalCluster(
                    n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=40
                ) as cluster,
                Client(cluster) as client,
            ):
                for _ in range(args.rounds):
                    cold, warm, _ = measure(
                        partial(kit_dask, client=client), hosts, server, args.warm
                    )
                    dask_cells.setdefault("cold", []).append(cold)
                    dask_cells.setdefault("warm", []).append(warm)
            print(
                f"\nkit on a LocalCluster (2 worker processes): cold {cell(dask_cells['cold'])}, "
                f"warm {cell(dask_cells['warm'])} ms"
            )
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(
                    {
                        "targets": len(hosts),
                        "rtt": args.rtt,
                        "far": args.far,
                        "round_trips": trips,
                        "patterns": results,
                        "dead": {"fraction": args.dead, "patterns": dead_results},
                        "growth": growth,
                        "dask": dask_cells,
                    },
                    handle,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
