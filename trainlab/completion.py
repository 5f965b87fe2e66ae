"""Tab completion for ``%train``: subcommands, their options, session aliases, regions, hosts.

``train_matcher(magics)`` is an IPython completion matcher (the Matcher API v2 of
IPython 8.6 and later); ``%load_ext trainlab`` adds it to the shell's completer.
``complete(line, ...)`` is the pure part: the text before the cursor in, the
candidates for its last word out.

    %train c<Tab>                 connect, close
    %train run -<Tab>             -s, --session, --ttl, --timeout, --check, --no-stream
    %train run -s <Tab>           the session aliases
    %train ec2 --region eu-<Tab>  the AWS regions botocore knows (offline)
    %train connect ssh://<Tab>    the Host entries of ~/.ssh/config
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MATCHER_ID",
    "SCHEMES",
    "Candidates",
    "aws_regions",
    "complete",
    "ssh_hosts",
    "train_matcher",
]

#: What ``%train connect`` offers before anything is typed.
SCHEMES = (
    "ssh://",
    "local://",
    "winrm://",
    "winrms://",
    "pwsh://",
    "pwsh+ssh://",
    "ssm://",
    "aws://",
    "https://",
    "http://",
)
# %train and %%train anywhere a line magic may start: the line's start, or after `x =`.
_MAGIC = re.compile(r"(?:^|[\s=])(?P<cell>%?)%train(?P<rest>\s.*)?$")
# Where each subcommand's first positional argument is a session alias.
_ALIAS_FIRST = {"use", "close", "metrics", "bench"}
_ALIAS_OPTIONS = {"-s", "--session"}
#: The matcher's identifier in IPython's completer (one per shell).
MATCHER_ID = "trainlab.completion.train_matcher"


@dataclass(frozen=True)
class Candidates:
    """Completions for ``fragment``, the end of the line that each of them replaces."""

    fragment: str
    texts: list[str]
    kind: str = "param"


def complete(
    before: str,
    *,
    subcommands: Mapping[str, Sequence[tuple[str, bool]]],
    aliases: Iterable[str] = (),
    names: Iterable[str] = (),
    regions: Callable[[], list[str]] = list,
    hosts: Callable[[], list[str]] = list,
) -> Candidates | None:
    """The candidates for the last word of ``before`` (a line up to the cursor), or ``None``.

    ``subcommands`` maps each subcommand to its options as ``(option, takes_value)``;
    ``aliases`` are the session aliases, ``names`` the notebook's ``Session``
    variables; ``regions`` and ``hosts`` are called only when needed. ``None``
    means the line is not a ``%train`` line (or is the command of ``%train run``),
    so IPython's other completers answer.

    >>> subs = {"connect": [("--as", True)], "close": [], "run": [("-s", True)]}
    >>> complete("%train c", subcommands=subs).texts
    ['close', 'connect']
    >>> complete("x = %train run -s w", subcommands=subs, aliases=["web", "db"]).texts
    ['web']
    """
    found = _MAGIC.search(before)
    if found is None or found["rest"] is None:
        return None
    rest = found["rest"][1:]
    words = rest.split()
    if rest and not rest[-1].isspace() and words:
        current, done = words[-1], words[:-1]
    else:
        current, done = "", words
    aliases = sorted(aliases)
    if found["cell"]:  # %%train NAME: one alias, then the cell
        return Candidates(current, _starting(aliases, current)) if not done else None
    if not done:
        return Candidates(current, _starting(sorted(subcommands), current), "magic")
    sub, after = done[0], done[1:]
    options = subcommands.get(sub)
    if options is None:
        return Candidates(current, [])
    valued = {name for name, takes_value in options if takes_value}
    if sub == "run" and _command_started(after, valued):
        return None  # the command line itself
    previous = after[-1] if after else ""
    if previous in valued:
        if previous in _ALIAS_OPTIONS:
            return Candidates(current, _starting(aliases, current))
        if previous == "--region":
            return Candidates(current, _starting(["all", *regions()], current))
        return None  # a value of its own kind (a number, a path): other completers may help
    if current.startswith("-"):
        return Candidates(current, _starting([name for name, _ in options], current))
    if _positionals(after, valued) == 0:
        if sub in _ALIAS_FIRST:
            return Candidates(current, _starting(aliases, current))
        if sub == "connect":
            if current.startswith("ssh://"):
                user, at, host = current[len("ssh://") :].rpartition("@")
                prefix = f"ssh://{user}{at}"
                return Candidates(current, [prefix + h for h in _starting(hosts(), host)])
            return Candidates(current, _starting([*SCHEMES, *sorted(names)], current))
    return Candidates(current, [])


def _starting(options: Iterable[str], prefix: str) -> list[str]:
    return [o for o in options if o.startswith(prefix)]


def _positionals(words: Sequence[str], valued: set[str]) -> int:
    """How many of ``words`` are positional arguments (not options, not options' values)."""
    count, index = 0, 0
    while index < len(words):
        word = words[index]
        if word.startswith("-"):
            index += 2 if word in valued else 1
        else:
            count += 1
            index += 1
    return count


def _command_started(words: Sequence[str], valued: set[str]) -> bool:
    """Whether ``%train run``'s command has begun among ``words`` (all typed to the end)."""
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--" or not word.startswith("-"):
            return True
        index += 2 if word in valued else 1
    return False


@functools.cache
def aws_regions() -> list[str]:
    """The EC2 regions botocore knows, read from its bundled endpoint data (no network)."""
    try:
        import boto3
    except ImportError:
        return []
    return sorted(boto3.session.Session().get_available_regions("ec2"))


def ssh_hosts(path: str = "~/.ssh/config") -> list[str]:
    """The concrete ``Host`` names of an OpenSSH client config; none when it cannot be read."""
    from trainlab.errors import TrainlabError
    from trainlab.fleet.inventories import ssh_config_targets

    try:
        with warnings.catch_warnings():  # an Include line's warning is for fleets, not Tab
            warnings.simplefilter("ignore")
            return [target.label for target in ssh_config_targets("*", path)]
    except TrainlabError:
        return []


def train_matcher(magics: Any) -> Callable[[Any], dict[str, Any]]:
    """An IPython matcher (API v2) completing ``%train`` lines from ``magics``' state."""
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher(identifier=MATCHER_ID)  # type: ignore[untyped-decorator]
    def train_completions(context: Any) -> dict[str, Any]:
        from trainlab.session import Session

        user = getattr(magics.shell, "user_ns", {}) or {}
        found = complete(
            context.text_until_cursor,
            subcommands=magics.subcommand_options(),
            aliases=magics.aliases,
            names=[k for k, v in user.items() if isinstance(v, Session) and k.isidentifier()],
            regions=aws_regions,
            hosts=ssh_hosts,
        )
        if found is None:
            return {"completions": [], "suppress": False}
        return {
            "completions": [SimpleCompletion(t, type=found.kind) for t in found.texts],
            "matched_fragment": found.fragment,
            "suppress": True,  # a %train word: IPython's magics and Python names do not fit
            "ordered": True,
        }

    return train_completions  # type: ignore[no-any-return]
