"""What the login shell is handed: one line that every login shell parses alike.

sshd runs each command as ``$SHELL -c LINE``, and the kit's wrappers are POSIX sh,
which fish and csh/tcsh reject. Unless the login shell is known to run them, LINE is
``exec /bin/sh -c '<W>'``: W holds no single quote, newline or ``!``, and no backslash
before a backslash or a quote, so bash, dash, zsh, ksh, fish, csh, tcsh and BusyBox ash
all take it as one literal word. The script travels inside W octal-escaped; sh's
``printf`` decodes it. W also reports ``$SHELL``, which the transport remembers, so
later commands go straight to a login shell that runs the kit's script as it is.
Imports the standard library only.
"""

from __future__ import annotations

import re

__all__ = [
    "LOGIN_LINE",
    "NO_BASH",
    "SHELLS",
    "direct",
    "encode",
    "login_shell_in",
    "portable",
    "sudo_runner",
]

#: The ``shell=`` choices: who runs a command string.
#: ``auto``: bash where it is the login shell, else /bin/sh (POSIX sh everywhere);
#: ``sh``: /bin/sh; ``bash``: bash, found on PATH; ``login``: the login shell, the
#: command handed to it untouched (no wrapper, for people who write fish or csh on purpose).
SHELLS = ("auto", "sh", "bash", "login")

#: The stderr line W writes first: the login shell's path, as sshd set ``$SHELL``.
LOGIN_LINE = re.compile(rb"__tl_login ([^\n]*)\n")
#: The stderr line when ``shell=bash`` finds no bash.
NO_BASH = b"__tl_nobash\n"

# Bytes that stand for themselves inside W; every other byte is written \ooo.
_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _-.,:/=+@")

# How W runs the decoded script ($__tl_s) for each shell= choice.
_RUN = {
    "sh": 'eval "$__tl_s"',
    "auto": 'case "${SHELL##*/}" in bash) exec "$SHELL" -c "$__tl_s";; esac; eval "$__tl_s"',
    "bash": (
        "command -v bash >/dev/null 2>&1 || { echo __tl_nobash >&2; exit 127; }; "
        'exec bash -c "$__tl_s"'
    ),
}


def encode(text: str) -> str:
    r"""``text`` as a printf format in the portable alphabet (other bytes as ``\ooo``).

    >>> encode("echo 'hi' $HOME!")
    'echo \\047hi\\047 \\044HOME\\041'
    """
    data = text.encode("utf-8", "surrogateescape")  # undecodable bytes go as they came
    return "".join(chr(b) if b in _PLAIN else f"\\{b:03o}" for b in data)


def portable(script: str, shell: str = "auto") -> str:
    """A line every login shell parses: it reaches /bin/sh, which runs ``script`` as
    ``shell`` says (``auto``, ``sh`` or ``bash``, see ``SHELLS``).

    >>> print(portable("echo hi", "sh"))
    exec /bin/sh -c 'echo "__tl_login $SHELL" >&2; __tl_s="$(printf "echo hi")"; eval "$__tl_s"'
    """
    line = f'echo "__tl_login $SHELL" >&2; __tl_s="$(printf "{encode(script)}")"; {_RUN[shell]}'
    return f"exec /bin/sh -c '{line}'"


def direct(login: str | None, shell: str) -> bool:
    """True when the login shell runs the kit's POSIX script itself as ``shell`` asks:
    bash (for ``auto`` and ``bash``), or /bin/sh (for ``auto`` and ``sh``)."""
    if login is None:
        return False
    if login.rsplit("/", 1)[-1] == "bash":
        return shell in ("auto", "bash")
    return login == "/bin/sh" and shell in ("auto", "sh")


def login_shell_in(stderr: bytes) -> tuple[str | None, bytes]:
    """The login shell W reported, and ``stderr`` without its line."""
    match = LOGIN_LINE.search(stderr)
    if match is None:
        return None, stderr
    login = match.group(1).decode(errors="replace").strip()
    return login or None, stderr[: match.start()] + stderr[match.end() :]


def sudo_runner(shell: str) -> str:
    """The shell sudo starts for a command, as ``shell=`` asks; ``auto`` keeps bash when
    the script already runs in bash (``$BASH`` is its path), else /bin/sh."""
    return {"sh": "/bin/sh", "bash": "bash"}.get(shell, '"${BASH:-/bin/sh}"')
