"""Which commands may run in the kept host shell itself: an allow-list lexer.

``runs_in_host`` says a command is plain (it cannot change the shell that runs
it, so the host saves a fork); everything else runs in a subshell. ``posix=True``
adds what POSIX shells read differently from bash. ``trainlab.framing`` uses it.
"""

from __future__ import annotations

import re

__all__ = ["needs_subshell", "runs_in_host"]

# Every bash builtin and keyword (bash 5.2: compgen -b; compgen -k). A plain
# command may start with none of them except the few that cannot change the shell.
_BASH_WORDS = frozenset(
    """
    . : [ alias bg bind break builtin caller cd command compgen complete compopt continue
    declare dirs disown echo enable eval exec exit export false fc fg getopts hash help
    history jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly
    return set shift shopt source suspend test times trap true type typeset ulimit umask
    unalias unset wait if then else elif fi case esac for select while until do done in
    function time { } ! [[ ]] coproc
    """.split()
)
_HOST_BUILTINS = frozenset({"echo", "printf", "true", "false", ":", "test", "[", "pwd", "type"})
_WORD_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@%+,^~=*?#-[]"
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMMAND_NAME = re.compile(r"[A-Za-z0-9_./+:@%,^~-]+")


class _NotPlain(Exception):
    """Internal: the command uses something the allow-list does not cover."""


def runs_in_host(command: str, *, posix: bool = False) -> bool:
    """True only when ``command`` provably cannot change the shell that runs it.

    A plain command is a list of simple commands joined by ``|``, ``||``, ``&&``
    or ``;``, with redirections, quoted words and ``$NAME`` expansions, where no
    command starts with a builtin or keyword other than ``echo``, ``printf``
    (without ``-v``), ``true``, ``false``, ``:``, ``test``/``[`` (without ``-v`` or
    subscripts), ``pwd`` and ``type``, and no word assigns, substitutes, does
    arithmetic, or starts a background job.

    >>> runs_in_host("uname -a"), runs_in_host("df -h | grep /dev && echo ok")
    (True, True)
    >>> runs_in_host("cd /tmp"), runs_in_host("x=1"), runs_in_host("sleep 9 &")
    (False, False, False)

    With ``posix`` (the POSIX host), a command must also be plain to every POSIX
    sh: see ``_posix_plain``. That only ever moves a command into a subshell.

    >>> runs_in_host("ls &>/dev/null"), runs_in_host("ls &>/dev/null", posix=True)
    (True, False)
    """
    events: list[tuple[str, str]] | None = [] if posix else None
    try:
        segments = _lex(command, events)
    except _NotPlain:
        return False
    if events is not None and not _posix_plain(events):
        return False
    for words in segments:
        if not words:
            continue
        first, quoted = words[0]
        named = first == "[" or _COMMAND_NAME.fullmatch(first) is not None
        if quoted or not named or first.startswith("__tl"):
            return False
        if first in _BASH_WORDS and first not in _HOST_BUILTINS:
            return False
        values = [value for value, _ in words[1:]]
        if first == "printf" and any(v.startswith("-v") for v in values):
            return False
        if first in ("test", "[") and any(v == "-v" or "[" in v or "]" in v for v in values[:-1]):
            return False
        if first not in ("test", "[") and ("[" in first or "]" in first):
            return False
    return True


def needs_subshell(command: str, *, posix: bool = False) -> bool:
    """The opposite of ``runs_in_host``."""
    return not runs_in_host(command, posix=posix)


# Builtins and aliases of POSIX shells that bash lacks and that change the shell:
# chdir (dash, BusyBox ash, mksh), mksh's typeset aliases and ``login`` (exec),
# ``r`` (fc -e -), ksh's global/float/newgrp/stop.
_POSIX_WORDS = frozenset(
    "chdir global integer float nameref autoload functions login newgrp r stop".split()
)
_ARITHMETIC_TESTS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})


def _posix_plain(events: list[tuple[str, str]]) -> bool:
    """What a POSIX host adds to the bash check, from ``_lex``'s events.

    A non-interactive POSIX shell exits on a syntax error even inside
    ``command eval`` (mksh) and on a redirection error of the special builtin
    ``:`` (bash --posix, mksh); mksh's ``test`` evaluates ``-eq``'s operands as
    arithmetic (``[ x=1 -eq 1 ]`` assigns); ``&>`` is a background job in sh;
    ``>&word`` is a syntax error in dash. Such commands run in a subshell.
    """
    content = False  # the current simple command has a word or a redirection
    first = ""
    redirected = False
    last_separator = ""
    for kind, value in events:
        if kind == "sep":
            if not content or value == ";;":
                return False  # an empty pipeline element: a syntax error
            if first == ":" and redirected:
                return False
            content, first, redirected, last_separator = False, "", False, value
        elif kind == "redir":
            op = next(o for o in _REDIRECT_OPS if value.startswith(o))
            target = value[len(op) :].strip()
            if op.startswith("&") or (
                op in (">&", "<&")
                and not (target == "-" or (len(target) == 1 and target.isdigit()))
            ):
                return False
            content = redirected = True
        else:
            if not first:
                if value in _POSIX_WORDS:
                    return False
                first = value
            elif first in ("test", "[") and value in _ARITHMETIC_TESTS:
                return False
            content = True
    if first == ":" and redirected:
        return False
    return content or last_separator in ("", ";")


def _lex(command: str, events: list[tuple[str, str]] | None = None) -> list[list[tuple[str, bool]]]:
    """Split into segments of (word value, was quoted); raise ``_NotPlain``.

    With ``events``, also list in order each word (``"word"``), separator
    (``"sep"``) and redirection (``"redir"``, operator and target) it read.
    """
    segments: list[list[tuple[str, bool]]] = [[]]
    word: list[str] = []
    quoted = False
    in_word = False
    i, n = 0, len(command)

    def end_word() -> None:
        nonlocal word, quoted, in_word
        if in_word:
            segments[-1].append(("".join(word), quoted))
            if events is not None:
                events.append(("word", segments[-1][-1][0]))
        word, quoted, in_word = [], False, False

    while i < n:
        ch = command[i]
        if ch in " \t":
            end_word()
            i += 1
        elif ch in _WORD_CHARS:
            word.append(ch)
            in_word = True
            i += 1
        elif ch == "'":
            close = command.find("'", i + 1)
            if close < 0:
                raise _NotPlain
            word.append(command[i + 1 : close])
            quoted = in_word = True
            i = close + 1
        elif ch == '"':
            i = _double_quoted(command, i + 1, word)
            quoted = in_word = True
        elif ch == "$":
            i = _expansion(command, i)
            word.append("$")
            quoted = in_word = True  # its value is unknown: never a command name
        elif ch in "|;" or command.startswith("&&", i):
            end_word()
            segments.append([])
            size = 2 if command.startswith(("||", "&&", ";;"), i) else 1
            if events is not None:
                events.append(("sep", command[i : i + size]))
            i += size
        elif ch in "<>" or command.startswith("&>", i):
            digits = "".join(word)
            if in_word and not digits.isdigit():
                end_word()
            word, quoted, in_word = [], False, False
            start = i
            i = _redirection(command, i)
            if events is not None:
                events.append(("redir", command[start:i]))
        else:
            raise _NotPlain  # \ ( ) { } ` ! & newline and everything unexpected
    end_word()
    return segments


def _double_quoted(command: str, i: int, word: list[str]) -> int:
    while i < len(command):
        ch = command[i]
        if ch == '"':
            return i + 1
        if ch in "`\\":
            raise _NotPlain
        if ch == "$":
            i = _expansion(command, i)
            word.append("$")
            continue
        word.append(ch)
        i += 1
    raise _NotPlain  # unterminated


def _expansion(command: str, i: int) -> int:
    """Accept ``$NAME``, ``${NAME}`` and ``$0``-style specials; return the next index."""
    rest = command[i + 1 :]
    if rest[:1] and rest[0] in "0123456789@*#?$!-":
        return i + 2
    match = _NAME.match(rest)
    if match:
        return i + 1 + match.end()
    if rest.startswith("{"):
        match = _NAME.match(rest, 1)
        if match and rest[match.end() : match.end() + 1] == "}":
            return i + 1 + match.end() + 1
    raise _NotPlain


_REDIRECT_OPS = ("&>>", "&>", ">>", ">|", ">&", "<&", "<>", ">", "<")


def _redirection(command: str, i: int) -> int:
    op = next((o for o in _REDIRECT_OPS if command.startswith(o, i)), None)
    if op is None:
        raise _NotPlain
    i += len(op)
    while i < len(command) and command[i] in " \t":
        i += 1
    start = i
    while i < len(command) and command[i] in _WORD_CHARS:
        i += 1
    if i == start:
        raise _NotPlain  # here-documents, quoted or expanded targets: not plain
    return i
