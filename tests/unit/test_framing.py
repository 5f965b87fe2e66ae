"""The framing protocol's pure parts: encoding, the subshell decision, the parser."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest

import trainlab
from trainlab import framing


def bash_eval(word: str) -> bytes:
    """What bash makes of an encoded word (no kit code on this path)."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", f"printf %s {word}"],
        capture_output=True,
        check=True,
    ).stdout


@pytest.mark.parametrize(
    "command",
    [
        "echo 'single' \"double\" `tick` $dollar \\back",
        "line1\nline2\r\n\ttab",
        "caf\u00e9 \u2603 \U0001f600",
        "".join(chr(c) for c in range(1, 128)),
        "trailing backslash \\",
    ],
)
def test_encoding_round_trips_through_bash(command: str) -> None:
    assert bash_eval(framing.encode_command(command)) == command.encode()


def test_nul_is_refused() -> None:
    with pytest.raises(trainlab.InvalidCommand, match="NUL"):
        framing.encode_command("a\0b")


PLAIN = [
    "uname -a",
    "cat /etc/os-release",
    "df -h | grep /dev && echo ok || echo no",
    "ls -l 2>&1 >/dev/null",
    "ls>/tmp/out 2>>/tmp/err </dev/null",
    "grep -c root /etc/passwd; true",
    "printf '%s\\n' a b",
    "echo \"$HOME\" ${USER} $1 $? 'single $(quoted)'",
    "ps -o pid= -p 1",
    "grep 'a[0-9]' /etc/passwd",
    "[ -f /etc/passwd ] && echo yes",
    "test -d /tmp",
    "systemctl is-active nginx",
    "~/bin/tool --flag=1",
    "echo a # comment",
]


@pytest.mark.parametrize("command", PLAIN)
def test_plain_commands_run_in_the_host(command: str) -> None:
    assert framing.runs_in_host(command)


NOT_PLAIN = [
    # builtins and keywords that change the shell, however they are spelled
    "cd /tmp",
    "echo a && cd /tmp",
    "echo a;cd /tmp",
    "\\cd /tmp",
    "'cd' /tmp",
    "c''d /tmp",
    '"cd" /tmp',
    "2>/dev/null cd /tmp",
    "> /dev/null cd /tmp",
    "cd</dev/null /tmp",
    "time -p cd /tmp",
    "c\\\nd /tmp",
    "{ cd /tmp; }",
    "if true; then echo; fi",
    "! false",
    "exit 3",
    "exec ls",
    "set -e",
    "shopt -s nullglob",
    "export A",
    "unset PATH",
    "trap 'echo' EXIT",
    "umask 077",
    "ulimit -n 10",
    "source /etc/profile",
    ". /etc/profile",
    "eval echo",
    "builtin cd /",
    "command cd /",
    "read line",
    "mapfile lines",
    "declare -x A",
    "alias ll=ls",
    "hash -p /bin/echo ls",
    "enable -n echo",
    "wait",
    "return",
    "break",
    "let x++",
    "pushd /",
    "local x",
    "readonly y",
    "kill -0 1",
    "__tl1",
    # assignments, arithmetic, substitutions
    "x=1",
    "FOO=bar env",
    "echo ${x:=1}",
    "echo $((x++))",
    "echo $[X++]",
    "echo ${a[X++]}",
    "echo ${PWD:X++:0}",
    "test -v 'a[X++]'",
    "[ -v x ]",
    "printf -vX hello",
    "printf '-v' X hello",
    "echo $(hostname)",
    "echo `id -u`",
    'echo "$(hostname)"',
    "echo $'\\x41'",
    # structure: subshells, groups, functions, jobs, fds, globs as names
    "(cd /tmp)",
    "f() { :; }",
    "sleep 300 &",
    "true {FD}>&2",
    "diff <(ls /) <(ls /tmp)",
    "cat <<EOF",
    "$CMD arg",
    "{cd,/tmp}",
    "c? /tmp",
    "for i in 1; do echo; done",
    "while read x; do :; done",
    "echo 'unterminated",
    "line1\nline2",
]


@pytest.mark.parametrize("command", NOT_PLAIN)
def test_everything_else_gets_a_subshell(command: str) -> None:
    assert not framing.runs_in_host(command)
    assert framing.needs_subshell(command)


def test_single_request_shape() -> None:
    request = framing.build_request(["echo hi"], nonce=b"__tl_n0")
    assert request.script == b"__tl_n=__tl_n0 __tl_m=f __tl_x=$'echo hi'; __tl1\n"
    batch = framing.build_request(["cd /", "echo"], stop_on_error=True, nonce=b"__tl_n0")
    assert batch.script == (
        b"__tl_n=__tl_n0 __tl_s=1; __tl_m=(s f); __tl_c=($'cd /' $'echo'); __tl\n"
    )


def test_nonces_are_random_and_long() -> None:
    nonces = {framing.new_nonce() for _ in range(1000)}
    assert len(nonces) == 1000
    assert all(len(n) == len(b"__tl_") + 24 for n in nonces)


def test_empty_request_is_refused() -> None:
    with pytest.raises(trainlab.InvalidCommand):
        framing.build_request([])


def answer(
    nonce: bytes, parts: list[tuple[bytes, bytes, int]], ran: int | None = None
) -> tuple[bytes, bytes]:
    """Streams as the BOOTSTRAP functions write them."""
    ran = len(parts) if ran is None else ran
    out = err = b""
    for index, (o, e, rc) in enumerate(parts):
        z = f" Z {ran}" if index == ran - 1 else ""
        out += o + nonce + f" E {index} {rc} 1.000000 1.500000{z}\n".encode()
        err += e + nonce + f" E {index}{z}\n".encode()
    return out, err


def test_parser_keeps_each_commands_streams_exactly() -> None:
    nonce = b"__tl_abc"
    request = framing.build_request(["a", "b", "c"], nonce=nonce)
    parts = [(b"no newline", b"", 0), (b"two\n\n", b"err\n", 3), (b"", b"\xff\xfe", 0)]
    out, err = answer(nonce, parts)
    parsed = framing.parse_response(out, err, request)
    assert [(p.stdout, p.stderr, p.exit_status) for p in parsed] == parts
    assert all(p.duration == pytest.approx(0.5) for p in parsed)


def test_forged_markers_with_another_nonce_are_just_output() -> None:
    nonce = b"__tl_real"
    request = framing.build_request(["a", "b"], nonce=nonce)
    forged = b"\n__tl_fake E 0 0 1 2 Z 1\n__tl_rea E 0 0\n__tl_real E 9 Z\n"
    out, err = answer(nonce, [(forged, forged, 0), (b"ok", b"", 0)])
    parsed = framing.parse_response(out, err, request)
    assert parsed[0].stdout == forged
    assert parsed[0].stderr == forged
    assert parsed[1].stdout == b"ok"


def test_stop_on_error_answer_has_fewer_results() -> None:
    nonce = b"__tl_s"
    request = framing.build_request(["a", "b", "c"], stop_on_error=True, nonce=nonce)
    out, err = answer(nonce, [(b"", b"", 0), (b"", b"", 1)], ran=2)
    assert [p.exit_status for p in framing.parse_response(out, err, request)] == [0, 1]


def test_incomplete_answer_is_an_error_unless_partial_is_asked() -> None:
    nonce = b"__tl_i"
    request = framing.build_request(["a", "b"], nonce=nonce)
    out, err = answer(nonce, [(b"x", b"", 0), (b"y", b"", 0)])
    out = out[: out.index(b"y")]  # the answer stops after command 0
    with pytest.raises(trainlab.TransportError):
        framing.parse_response(out, err, request)
    assert len(framing.parse_response(out, err, request, complete=False)) == 1


def test_duration_tolerates_comma_radix_and_old_bash() -> None:
    assert framing.parse_duration([b"1,5", b"2,0"]) == pytest.approx(0.5)
    assert framing.parse_duration([b"", b""]) is None
    assert framing.parse_duration([]) is None


def test_single_command_answer_parses() -> None:
    request = framing.build_request(["x"], nonce=b"__tl_q")
    parsed = framing.parse_response(b"abc__tl_q E 0 3 Z 1\n", b"e\n__tl_q E 0 Z 1\n", request)
    assert [(p.stdout, p.stderr, p.exit_status, p.duration) for p in parsed] == [
        (b"abc", b"e\n", 3, None)
    ]


# ---------------------------------------------------------------- the POSIX host

# Each POSIX sh the POSIX host is held to, and the package that installs it.
POSIX_SHELLS = {
    "dash": (["dash"], "apt-get install dash"),
    "busybox-ash": (["busybox", "sh"], "apt-get install busybox-static"),
    "mksh": (["mksh"], "apt-get install mksh"),
    "bash-posix": (["bash", "--posix"], "apt-get install bash"),
}


def posix_shell(name: str) -> list[str]:
    argv, install = POSIX_SHELLS[name]
    if shutil.which(argv[0]) is None:
        pytest.fail(f"{argv[0]} is missing: {install}")
    return argv


HOSTILE = [
    "echo 'single' \"double\" `tick` $dollar \\back !bang",
    "line1\nline2\r\n\ttab'\n'",
    "caf\u00e9 \u2603 \U0001f600",
    "".join(chr(c) for c in range(1, 128)),
    "trailing backslash \\",
    "'''",
    "it's \\'' \"'\"",
    "caf\udce9 raw \udcff bytes",  # not UTF-8: surrogate-escaped bytes
]


@pytest.mark.parametrize("shell", POSIX_SHELLS)
def test_posix_encoding_round_trips_through_each_shell(shell: str) -> None:
    argv = posix_shell(shell)
    every_byte = bytes(range(1, 256)).decode("utf-8", "surrogateescape")
    for command in [*HOSTILE, every_byte]:
        word = framing.encode_posix(command).decode("utf-8", "surrogateescape")
        out = subprocess.run(
            [*argv, "-c", f"printf %s {word}"], capture_output=True, check=True
        ).stdout
        assert out == command.encode("utf-8", "surrogateescape"), (shell, command)


def test_posix_encoding_refuses_nul() -> None:
    with pytest.raises(trainlab.InvalidCommand, match="NUL"):
        framing.encode_posix("a\0b")


def test_posix_request_shape() -> None:
    request = framing.POSIX.build_request(["echo 'hi'"], nonce=b"__tl_n0")
    assert request.script == b"__tl_n=__tl_n0 __tl_m=f __tl_x='echo '\\''hi'\\'''; __tl1\n"
    assert request.wire == request.script  # sh reads it as script: no length
    batch = framing.POSIX.build_request(["cd /", "echo"], stop_on_error=True, nonce=b"__tl_n0")
    assert batch.script == b"__tl_n=__tl_n0 __tl_s=1 __tl_m=sf; __tl 'cd /' 'echo'\n"
    assert batch.dialect == "posix"


def test_bash_requests_are_unchanged_by_the_dialect_api() -> None:
    for commands in (["uname -a"], ["cd /", "echo"]):
        plain = framing.build_request(commands, nonce=b"__tl_n0")
        assert framing.BASH.build_request(commands, nonce=b"__tl_n0") == plain
        assert plain.wire == b"%d %s" % (len(plain.script), plain.script)
    assert framing.BASH.start_argv(["bash"]) == [
        "bash",
        "--noprofile",
        "--norc",
        "-c",
        framing.HOST_SCRIPT,
    ]


def test_posix_start_argv() -> None:
    assert framing.POSIX.start_argv(["busybox", "sh"]) == ["busybox", "sh", "-s"]
    first = framing.POSIX.build_request(["echo hi"], nonce=b"__tl_f")
    argv = framing.POSIX.start_argv(["/opt/my sh"], first)
    assert argv[:2] == ["/opt/my sh", "-c"]
    assert argv[2] == (framing.POSIX_BOOTSTRAP + first.script + b"exec '/opt/my sh' -s\n").decode()
    assert argv[2] == framing.POSIX.host_script(first, ["/opt/my sh"])
    assert argv[2] == framing.host_script(first, dialect=framing.POSIX, shell=["/opt/my sh"])
    command = framing.POSIX.start_command(["/opt/my sh"], first)
    assert shlex.split(command) == argv
    bare = framing.POSIX.host_script()
    assert bare == (framing.POSIX_BOOTSTRAP + b"exec sh -s\n").decode()
    assert framing.BASH.host_script() == framing.HOST_SCRIPT == framing.host_script()


@pytest.mark.parametrize(
    "command",
    [
        "ls &>/dev/null",  # sh: a background job, then an empty redirection
        "ls &>>/tmp/log",
        "| ls",  # syntax errors end a POSIX sh, even in `command eval` (mksh)
        "ls |",
        "ls && ",
        "ls ||",
        "a ;; b",
        "ls; ; ls",
        "; ls",
        "echo >&foo",  # dash: a syntax error
        "ls 10>&12",
        ": >/nonexistent/x",  # a redirection error of a special builtin ends the shell
        "true; : 2>/x",
        "[ x=1 -eq 1 ]",  # mksh's test evaluates -eq's operands as arithmetic
        "test $n -gt 3",
        "chdir /tmp",  # other shells' builtins that change the shell
        "integer TL_N=5",
        "nameref ref",
        "login",
        "newgrp users",
        "r",
        "echo a | chdir /",
    ],
)
def test_posix_host_isolates_what_sh_reads_differently(command: str) -> None:
    assert framing.runs_in_host(command)  # bash keeps these in the host...
    assert not framing.runs_in_host(command, posix=True)  # ...the POSIX host does not
    assert not framing.POSIX.runs_in_host(command)
    assert framing.needs_subshell(command, posix=True)


def test_posix_decision_is_never_laxer_than_bashs() -> None:
    for command in NOT_PLAIN:
        assert not framing.runs_in_host(command, posix=True), command
    # What both shells read alike stays in the host: the fork is saved there too.
    for command in PLAIN:
        assert framing.runs_in_host(command, posix=True), command
    for command in ["ls;", "> f", "echo a; > f", "echo 2>&1 >&-", "[ -f x ] && : ok", ""]:
        assert framing.runs_in_host(command, posix=True), command
