"""``%train`` and ``%%train``: drive sessions from notebook cells.

    %load_ext trainlab
    %train connect ssh://deploy@web1 --as web      # an alias, and the current session
    %train connect web --as web                    # or alias a Session made in Python
    %train run -s web uname -a                     # a CommandResult (assign it: x = %train run ...)
    %train run --no-stream -s web dmesg            # output shown with the result, not live
    %%train web                                    # every line a command, one batch
    hostname
    uptime
    %train ec2 --region eu-west-1 --filter tag:role=web
    %train bench web "uname -a" --repeat 30
    fleet = %train fleet --ansible hosts.ini --pattern 'web:&prod'   # a Fleet (or URIs...)
    %train fleet --ssh-config --pattern 'web*' -c uptime            # run: a FleetResult
    %train sessions
    %train dashboard                               # live sessions, cache hit rates, operations
    %train close web

``%train run`` prints the command's output live as it arrives (stdout and stderr,
as ``!cmd`` does) and still returns the result; ``--no-stream`` or
``%config TrainMagics.stream = False`` turns that off.

Tab completes ``%train`` lines (subcommands, options, session aliases, regions, ssh_config
hosts: ``trainlab.completion``).

Settings through ``%config TrainMagics.ttl = 60`` (``timeout``, ``ttl``, ``stream``). Errors of
trainlab show as one line (a ``UsageError``), not a traceback; the Python API
still raises the real exceptions.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Float

import trainlab
from trainlab.arguments import FLEET_ARGUMENTS, fleet_from_arguments, key_values
from trainlab.errors import TrainlabError
from trainlab.session import Session

__all__ = ["TrainMagics", "load_ipython_extension"]

SUBCOMMANDS = (
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
)


def _arguments(
    declared: Iterable[tuple[tuple[str, ...], Mapping[str, Any]]],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``magic_arguments``' ``@argument`` for each of ``declared``, in their order."""

    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        for names, settings in reversed(tuple(declared)):
            method = argument(*names, **settings)(method)
        return method

    return decorate


@magics_class
class TrainMagics(Magics):
    """The ``%train`` magic; its traits are settable with ``%config TrainMagics.*``."""

    ttl = Float(0.0, help="Default cache lifetime, seconds, for %train run.").tag(config=True)
    timeout = Float(600.0, help="Default command deadline, seconds.").tag(config=True)
    stream = Bool(True, help="%train run prints output live as it arrives.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.aliases: dict[str, Session] = {}
        self.current: str | None = None
        # One cool-down for every %train fleet of the notebook: a target that failed to
        # connect is skipped by the next cell's fan-out too (-o cooldown=S sets a fleet's own).
        self.cooldown: Any = None  # a trainlab.fleet.Cooldown, made by the first %train fleet

    # ----------------------------------------------------------- dispatch
    @line_cell_magic
    def train(self, line: str, cell: str | None = None) -> Any:
        """``%train SUBCOMMAND ...`` or ``%%train [NAME]`` with one command per line."""
        try:
            if cell is not None:
                return self._cell(line, cell)
            words = line.strip().split(None, 1)
            if not words:
                raise UsageError(f"%train needs a subcommand: {', '.join(SUBCOMMANDS)}")
            name, rest = words[0], words[1] if len(words) > 1 else ""
            if name not in SUBCOMMANDS:
                raise UsageError(
                    f"unknown %train subcommand {name!r}; use one of {', '.join(SUBCOMMANDS)}"
                )
            return getattr(self, f"_{name}")(rest)
        except TrainlabError as exc:
            raise UsageError(f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        except SystemExit:  # argparse's --help or a usage error
            raise UsageError(f"%train: bad arguments: {line!r}") from None

    def subcommand_options(self) -> dict[str, list[tuple[str, bool]]]:
        """Each subcommand's options as ``(option, takes_value)``, from its parser."""
        options: dict[str, list[tuple[str, bool]]] = {}
        for name in SUBCOMMANDS:
            parser = getattr(getattr(self, f"_{name}"), "parser", None)
            actions = [] if parser is None else parser._actions
            options[name] = [
                (option, action.nargs != 0)
                for action in actions
                for option in action.option_strings
                if option not in ("-h", "--help")
            ]
        return options

    def _session(self, name: str | None) -> Session:
        key = name or self.current
        if key is None:
            raise UsageError("no session: %train connect URI --as NAME first, or pass -s NAME")
        found = self.aliases.get(key)
        if found is None:
            raise UsageError(
                f"no session named {key!r}; known: {', '.join(sorted(self.aliases)) or 'none'}"
            )
        return found

    # -------------------------------------------------------- subcommands
    @magic_arguments()
    @argument(
        "uri", help="target URI (ssh://deploy@web1, local://?mode=shell) or a Session variable"
    )
    @argument("--as", dest="name", help="alias for the session (default: the URI)")
    @argument("-o", "--option", action="append", default=[], help="KEY=VALUE, repeatable")
    def _connect(self, line: str) -> Session:
        args = parse_argstring(self._connect, line)
        options = key_values(args.option)
        known = self.shell.user_ns.get(args.uri) if self.shell is not None else None
        if isinstance(known, Session):  # a session made in Python: give it an alias
            if options:
                raise UsageError(f"{args.uri} is an open session already: drop the -o options")
            if known.closed:
                raise UsageError(
                    f"{args.uri} is a closed session; %train connect {known.uri} opens a new one"
                )
            session = known
        else:
            session = trainlab.connect(args.uri, **options)
        name = args.name or session.uri
        self.aliases[name] = session
        self.current = name
        return session

    @magic_arguments()
    @argument("-s", "--session", help="session alias (default: the current one)")
    @argument("--ttl", type=float, default=None, help="cache the answer this long")
    @argument("--timeout", type=float, default=None, help="deadline in seconds")
    @argument("--check", action="store_true", help="raise on a non-zero exit")
    @argument("--no-stream", action="store_true", help="do not print output live")
    @argument("command", nargs="*", help="the command line")
    def _run(self, line: str) -> Any:
        # The command is everything after the options, kept as typed.
        options, command = _split_options(
            line, {"-s", "--session", "--ttl", "--timeout"}, {"--check", "--no-stream"}
        )
        args = parse_argstring(self._run, options)
        if not command.strip():
            raise UsageError("%train run needs a command")
        session = self._session(args.session)
        return session.run(
            command,
            ttl=self.ttl if args.ttl is None else args.ttl,
            timeout=args.timeout or self.timeout,
            check=args.check,
            stream=self.stream and not args.no_stream,
        )

    def _cell(self, line: str, cell: str) -> Any:
        name = line.strip() or None
        session = self._session(name)
        text = self.shell.var_expand(cell) if self.shell is not None else cell
        commands = [
            c for c in (x.strip() for x in text.splitlines()) if c and not c.startswith("#")
        ]
        if not commands:
            raise UsageError("%%train: the cell has no commands")
        batch = session.run_many(commands, timeout=self.timeout, ttl=self.ttl)
        return batch.frame

    def _use(self, line: str) -> Session:
        name = line.strip()
        session = self._session(name)
        self.current = name
        return session

    def _sessions(self, line: str) -> Any:
        return trainlab.sessions()

    def _close(self, line: str) -> None:
        name = line.strip() or self.current
        session = self._session(name)
        session.close()
        for alias in [a for a, s in self.aliases.items() if s is session]:
            del self.aliases[alias]
        if self.current not in self.aliases:
            self.current = next(iter(self.aliases), None)

    def _dashboard(self, line: str) -> Any:
        from trainlab.widgets import Dashboard

        return Dashboard()

    def _metrics(self, line: str) -> Any:
        return self._session(line.strip() or None).metrics

    @magic_arguments()
    @argument(
        "-c",
        "--command",
        action="append",
        default=[],
        help="run it and return the FleetResult (repeatable: one batch per target)",
    )
    @_arguments(FLEET_ARGUMENTS)
    def _fleet(self, line: str) -> Any:
        try:  # as a shell reads it: quotes go (magic_arguments keeps them)
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%train fleet: {exc}") from None
        args = self._fleet.parser.parse_args(words)
        if self.cooldown is None:
            from trainlab.fleet import Cooldown

            self.cooldown = Cooldown()
        fleet = fleet_from_arguments(args, cooldown=self.cooldown)
        if not args.command:
            return fleet
        if len(args.command) == 1:
            return fleet.run(args.command[0])
        return fleet.run_many(args.command)

    @magic_arguments()
    @argument("--region", action="append", default=[], help="repeatable; 'all' for every region")
    @argument("--filter", action="append", default=[], help="NAME=VALUE, repeatable")
    @argument("--profile", default=None)
    @argument("--endpoint-url", default=None)
    def _ec2(self, line: str) -> Any:
        args = parse_argstring(self._ec2, line)
        from trainlab.aws.inventory import parse_query

        regions, filters = parse_query(args.region, args.filter)
        return trainlab.aws.ec2_inventory(
            regions=regions, filters=filters, profile=args.profile, endpoint_url=args.endpoint_url
        )

    @magic_arguments()
    @argument("target", help="a session alias or a URI")
    @argument("commands", nargs="+", help="commands to time (quote each)")
    @argument("--repeat", type=int, default=30)
    @argument("--warmup", type=int, default=3)
    def _bench(self, line: str) -> Any:
        args = parse_argstring(self._bench, line)
        target = args.target
        options: dict[str, Any] = {}
        if target in self.aliases:
            session = self.aliases[target]
            target = str(session.target)
            options = {
                k: v for k, v in session.transport.settings.items() if v is not None and k != "mode"
            }
        return trainlab.bench.compare(
            target, args.commands, repeat=args.repeat, warmup=args.warmup, **options
        )


def _split_options(line: str, valued: set[str], flags: set[str]) -> tuple[str, str]:
    """Leading options (as magic_arguments parses them) and the raw command after them."""
    rest = line.strip()
    taken: list[str] = []
    while rest.startswith("-"):
        word, _, after = rest.partition(" ")
        if word in flags:
            taken.append(word)
            rest = after.lstrip()
        elif word in valued:
            value, _, after = after.lstrip().partition(" ")
            taken += [word, shlex.quote(value)]
            rest = after.lstrip()
        elif word == "--":
            rest = after.lstrip()
            break
        else:
            break
    return " ".join(taken), rest


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext trainlab``: the magics, and Tab completion of ``%train`` lines."""
    from trainlab.completion import MATCHER_ID, train_matcher

    magics = TrainMagics(shell=ipython)
    ipython.register_magics(magics)
    completer = getattr(ipython, "Completer", None)
    if completer is not None:  # once per shell, the latest magics' aliases
        kept = [m for m in completer.custom_matchers if _matcher_id(m) != MATCHER_ID]
        completer.custom_matchers = [*kept, train_matcher(magics)]


def _matcher_id(matcher: Any) -> str:
    return str(getattr(matcher, "matcher_identifier", ""))
