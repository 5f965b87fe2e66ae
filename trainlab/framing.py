"""The persistent-shell protocol: commands in, framed stdout/stderr/exit status out.

One long-lived bash (locally, or on an SSH channel) runs ``HOST_SCRIPT``: it
defines two functions, then reads requests on stdin, each a length and that many
bytes of script that names the commands and calls a function (``Request.wire``).
The answer ends each command's output with a marker line that carries a random
nonce, so no command output can end a frame early::

    stdout: out0<N> E 0 <rc> <t0> <t1>\\n  out1<N> E 1 <rc> <t0> <t1> Z 2\\n
    stderr: err0<N> E 0\\n                 err1<N> E 1 Z 2\\n

``<N>`` is ``__tl_`` plus 24 random hex digits (96 bits), chosen per request; only a
command that deliberately reads the framing's own ``__tl_*`` variables could
see it. A marker is found wherever it starts, so output without a trailing
newline needs no separator, and each marker is one line, which bash writes with
one ``write()``: a background job writing at the same moment cannot split it.
The last marker of a request carries ``Z <ran>``. The client discards bytes
pending on the streams before it sends a request (late output of an earlier
background job), so an answer starts at the first byte read after.

Each command travels as ANSI-C quoted bytes (``$'\\x..'``): no byte of it can
break the frame, and no process is spawned to decode it. It runs with stdin from
``/dev/null``. A plain command (``uname -a``, ``df -h | grep sda``) runs in the
host shell itself, which saves a fork (about 0.25 ms); anything else runs in a
subshell, so no command can change the host's state. ``runs_in_host`` decides by
an allow-list: a command must prove it is plain.

Where bash is missing, ``POSIX`` (a ``Dialect``) is the same protocol for any
POSIX sh: the host reads stdin as its script, commands travel single-quoted, and
batch markers carry no times (the client times them from their arrival).
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from trainlab.errors import CommandTimeout, InvalidCommand, TransportError
from trainlab.host_check import needs_subshell, runs_in_host
from trainlab.result import BatchResult, CommandResult

__all__ = [
    "BASH",
    "HOST_SCRIPT",
    "POSIX",
    "POSIX_BOOTSTRAP",
    "Dialect",
    "FramedOutput",
    "Request",
    "build_request",
    "encode_command",
    "encode_posix",
    "host_script",
    "needs_subshell",
    "parse_duration",
    "parse_response",
    "runs_in_host",
]

PREFIX = b"__tl_"

# ANSI-C quoting table: printable ASCII stays, everything else becomes \xHH.
_QUOTE = [f"\\x{b:02x}" for b in range(256)]
for _b in range(0x20, 0x7F):
    _QUOTE[_b] = chr(_b)
_QUOTE[ord("'")] = "\\'"
_QUOTE[ord("\\")] = "\\\\"


def encode_command(command: str) -> str:
    """``command`` as a bash ANSI-C quoted word: ``$'...'`` (always ASCII).

    >>> encode_command("echo 'hi'\\n")
    "$'echo \\\\'hi\\\\'\\\\x0a'"
    """
    data = command.encode("utf-8", "surrogateescape")
    if b"\0" in data:
        raise InvalidCommand("a command cannot contain NUL bytes; remove them or pass data by file")
    return "$'" + "".join([_QUOTE[b] for b in data]) + "'"


# ------------------------------------------------------------------ requests


@dataclass(frozen=True)
class Request:
    """A framed request: the bytes to write and what the parser needs to read it back."""

    nonce: bytes
    script: bytes
    commands: tuple[str, ...]
    dialect: str = "bash"

    @property
    def wire(self) -> bytes:
        """What the host reads: for bash the script's length, a space, the script
        (ASCII); for the POSIX host, which reads its stdin as a script, the script."""
        if self.dialect == "posix":
            return self.script
        return b"%d %s" % (len(self.script), self.script)


def new_nonce() -> bytes:
    """A fresh marker: ``__tl_`` and 24 random hex digits."""
    return PREFIX + secrets.token_hex(12).encode()


#: Defined once in every host shell, so a request only sets a few variables and
#: calls ``__tl1`` (one command) or ``__tl`` (a batch). The functions take no
#: arguments, so a command sees no positional parameters. Stderr's marker goes
#: first: once stdout's last marker has been read, stderr's is already in its
#: pipe. Only batches time each command with $EPOCHREALTIME; the client times a
#: single command itself.
_BOOTSTRAP = rb"""set +h
__tl1() {
  if [[ $__tl_m = s ]]; then ( eval -- "$__tl_x" ) </dev/null
  else eval -- "$__tl_x" </dev/null; fi@OUT1@
  __tl_rc=$?
  printf '%s E 0 Z 1\n' "$__tl_n" >&2
  printf '%s E 0 %d Z 1\n' "$__tl_n" "$__tl_rc"
}
__tl() {
  local __tl_i=0 __tl_rc=0 __tl_t= __tl_k=${#__tl_c[@]} __tl_z=
@BATCH@  while :; do
    __tl_t=$EPOCHREALTIME
    if [[ ${__tl_m[__tl_i]} = s ]]; then ( eval -- "${__tl_c[__tl_i]}" ) </dev/null
    else eval -- "${__tl_c[__tl_i]}" </dev/null; fi@OUTN@
    __tl_rc=$?
    __tl_z=
    if (( ++__tl_i >= __tl_k )) || [[ $__tl_s = 1 && $__tl_rc != 0 ]]; then
      __tl_z=" Z $__tl_i"
    fi
    printf '%s E %d%s\n' "$__tl_n" $((__tl_i - 1)) "$__tl_z" >&2
    printf '%s E %d %d %s %s%s\n' "$__tl_n" $((__tl_i - 1)) "$__tl_rc" "$__tl_t" \
      "$EPOCHREALTIME" "$__tl_z"
    if [[ $__tl_z ]]; then return 0; fi
  done
}
"""

#: The host's main loop. Bash reads a script from a pipe one byte at a time (about
#: 0.15 us a byte here); ``read -N`` takes a counted request in one read instead.
#: Every command runs with stdin from /dev/null, so none can eat the next request.
_HOST_LOOP = b"""while IFS= read -r -d ' ' __tl_len && IFS= read -r -N "$__tl_len" __tl_req; do
  eval "$__tl_req"
done
"""


def host_script(
    first: Request | None = None,
    *,
    dialect: Dialect | None = None,
    shell: Sequence[str] = ("sh",),
) -> str:
    """The host's ``-c`` script; with ``first``, that request runs before stdin is read.

    A host started for a request can so answer it without a round trip to send
    it (the SSH shell's cold start does this). The POSIX host's script ends by
    re-executing ``shell`` as ``shell -s``, which reads ``POSIX.preamble`` and
    then the requests from stdin.
    """
    script = first.script if first is not None else b""
    split = dialect.split if dialect is not None else ""
    if dialect is not None and dialect.name == "posix":
        bootstrap = _bootstrap(_POSIX_BOOTSTRAP, split=split)
        script = bootstrap + script + b"exec " + shlex.join(shell).encode() + b" -s\n"
        return script.decode("utf-8", "surrogateescape")
    return (_bootstrap(_BOOTSTRAP, split=split) + script + _HOST_LOOP).decode()


#: The POSIX host's functions, for any POSIX sh (dash, BusyBox ash, mksh, bash as
#: sh). The host reads its stdin as a script (``sh -s``), so a request is a line
#: of shell that sets variables and calls ``__tl1`` or ``__tl`` with each command
#: as a single-quoted word. ``__tl_run`` takes no arguments, so a command sees no
#: positional parameters; ``command eval`` keeps a syntax error from ending the
#: host (in dash, ash and bash), and the leading space keeps ``eval`` from reading
#: a command as its options. ``hash -r`` forgets command lookups (bash's ``set
#: +h``; quiet where a shell lacks it). ``echo`` writes each marker line in one
#: write (``printf`` is not a builtin in mksh). POSIX sh has no sub-second clock:
#: batch markers carry no times.
_POSIX_BOOTSTRAP = b"""__tl_run() {
  case $__tl_k in
  s) ( eval " $__tl_x" ) </dev/null ;;
  *) command eval " $__tl_x" </dev/null ;;
  esac@OUTN@
}
__tl1() {
  __tl_k=$__tl_m __tl_i=0
  __tl_run
  __tl_rc=$?
  hash -r 2>/dev/null
  echo "$__tl_n E 0 Z 1" >&2
  echo "$__tl_n E 0 $__tl_rc Z 1"
}
__tl() {
  __tl_i=0
@BATCHP@  for __tl_x in "$@"; do
    case $__tl_m in s*) __tl_k=s ;; *) __tl_k=f ;; esac
    __tl_m=${__tl_m#?}
    __tl_run
    __tl_rc=$?
    hash -r 2>/dev/null
    __tl_i=$((__tl_i + 1))
    __tl_z=
    if [ "$__tl_i" -ge "$#" ]; then __tl_z=" Z $__tl_i"; fi
    case $__tl_s$__tl_rc in 1[1-9]*) __tl_z=" Z $__tl_i" ;; esac
    echo "$__tl_n E $((__tl_i - 1))$__tl_z" >&2
    echo "$__tl_n E $((__tl_i - 1)) $__tl_rc$__tl_z"
    case $__tl_z in ?*) return 0 ;; esac
  done
}
"""

#: Where a host with split outputs sends a command's stdout and stderr: two FIFOs per
#: command, ``<prefix><index>.o`` and ``<prefix><index>.e``, whose read ends the
#: client holds (``__tl_d`` is the prefix: set by each request, or in the host's
#: environment by the SSH output multiplexer).
_SPLIT_ONE = b' >"${__tl_d}0.o" 2>"${__tl_d}0.e"'
_SPLIT_MANY = b' >"$__tl_d$__tl_i.o" 2>"$__tl_d$__tl_i.e"'
#: Under the multiplexer (``trainlab.transports.ssh.mux``) the FIFOs of commands 0 to
#: ``MUX_READY - 1`` are always ready; a batch of more first says how many it has (an
#: ``N <count>`` line on the host's stdout) and waits until the last of its FIFOs exists
#: (the multiplexer makes them in order).
MUX_READY = 16
_BATCH = (
    b"  if (( __tl_k > %d )); then\n"
    b'    printf \'%%s N %%d\\n\' "$__tl_n" "$__tl_k"\n'
    b"    until [[ -p $__tl_d$((__tl_k - 1)).e ]]; do :; done\n  fi\n" % MUX_READY
)
_BATCH_POSIX = (
    b'  if [ "$#" -gt %d ]; then\n    echo "$__tl_n N $#"\n'
    b'    until [ -p "$__tl_d$(($# - 1)).e" ]; do :; done\n  fi\n' % MUX_READY
)

#: How a host's commands write their output: on the host's own streams; on FIFOs
#: the client made (``local://``); on FIFOs the SSH multiplexer makes when asked.
SPLITS = ("", "fifos", "mux")


def _bootstrap(template: bytes, *, split: str = "") -> bytes:
    one = many = batch = batch_posix = b""
    if split:
        one, many = _SPLIT_ONE, _SPLIT_MANY
    if split == "mux":
        batch, batch_posix = _BATCH, _BATCH_POSIX
    for name, value in (
        (b"@OUT1@", one),
        (b"@OUTN@", many),
        (b"@BATCH@", batch),
        (b"@BATCHP@", batch_posix),
    ):
        template = template.replace(name, value)
    return template


BOOTSTRAP = _bootstrap(_BOOTSTRAP)
POSIX_BOOTSTRAP = _bootstrap(_POSIX_BOOTSTRAP)
HOST_SCRIPT = host_script()


def encode_posix(command: str) -> bytes:
    r"""``command`` as a POSIX single-quoted word, ``'`` spelled ``'\''``.

    The bytes go as they are (UTF-8, or surrogate-escaped bytes): inside single
    quotes no byte but ``'`` means anything to sh, newlines included.

    >>> encode_posix("echo 'hi'")
    b"'echo '\\''hi'\\'''"
    """
    data = command.encode("utf-8", "surrogateescape")
    if b"\0" in data:
        raise InvalidCommand("a command cannot contain NUL bytes; remove them or pass data by file")
    return b"'" + data.replace(b"'", b"'\\''") + b"'"


@dataclass(frozen=True)
class Dialect:
    """One kind of kept host shell: how it starts and how its requests are framed.

    ``BASH`` is the fast path (``read -N``, ``$EPOCHREALTIME``); ``POSIX`` runs on
    any POSIX sh. A transport starts the host with ``start_argv`` (or, over SSH,
    ``start_command``), writes ``preamble`` on its stdin once before the first
    request it writes there, then each ``build_request(...).wire``.

    >>> POSIX.start_argv(["sh"])
    ['sh', '-s']
    >>> BASH.start_argv(["bash"])[:4]
    ['bash', '--noprofile', '--norc', '-c']
    """

    name: str
    #: Written on the host's stdin once, before the first request written there.
    preamble: bytes
    #: True when the host times each command of a batch itself.
    timed: bool
    #: Where each command's stdout and stderr go (``SPLITS``): ``""`` the host's own
    #: streams; ``"fifos"`` FIFOs the client made (``build_request(outputs=...)``);
    #: ``"mux"`` FIFOs the SSH multiplexer makes. Split, the host's streams carry only
    #: the markers, and a background job's late output stays on its command's FIFOs.
    split: str = ""

    def with_split_outputs(self, split: str = "fifos") -> Dialect:
        """This kind of host, with each command's output on its own pair of FIFOs."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}")
        preamble = _bootstrap(_POSIX_BOOTSTRAP, split=split) if self.preamble else b""
        return Dialect(self.name, preamble, self.timed, split=split)

    def start_argv(self, shell: Sequence[str], first: Request | None = None) -> list[str]:
        """The host's argv for ``shell`` (``["bash"]``, ``["/bin/sh"]``,
        ``["busybox", "sh"]``). With ``first`` the host answers that request
        before it reads stdin, so a cold start needs no round trip to send it.

        The POSIX host then re-executes the same shell as ``shell -s``, which
        reads the ``preamble`` and the following requests from stdin.
        """
        if self.name == "bash":
            return [*shell, "--noprofile", "--norc", "-c", host_script(first, dialect=self)]
        if first is None:
            return [*shell, "-s"]
        return [*shell, "-c", host_script(first, dialect=self, shell=shell)]

    def host_script(self, first: Request | None = None, shell: Sequence[str] = ("sh",)) -> str:
        """``host_script`` for this kind of host: the ``-c`` script ``start_argv``
        runs, for a transport that wraps it (ready lines, a stderr redirection)."""
        return host_script(first, dialect=self, shell=shell)

    def start_command(self, shell: Sequence[str], first: Request | None = None) -> str:
        """``start_argv`` as one POSIX shell command line, for an SSH exec request
        (encode it with ``surrogateescape``: a command may hold non-UTF-8 bytes)."""
        return shlex.join(self.start_argv(shell, first))

    def build_request(
        self,
        commands: Sequence[str],
        *,
        stop_on_error: bool = False,
        nonce: bytes | None = None,
        outputs: str | None = None,
    ) -> Request:
        """``build_request`` for this kind of host."""
        return build_request(
            commands, stop_on_error=stop_on_error, nonce=nonce, dialect=self, outputs=outputs
        )

    def runs_in_host(self, command: str) -> bool:
        return runs_in_host(command, posix=self.name == "posix")


BASH = Dialect("bash", b"", timed=True)
POSIX = Dialect("posix", POSIX_BOOTSTRAP, timed=False)


@functools.lru_cache(maxsize=4096)
def _posix_word(command: str) -> tuple[bytes, bytes]:
    return (b"f" if runs_in_host(command, posix=True) else b"s", encode_posix(command))


def _posix_request(commands: Sequence[str], stop_on_error: bool, nonce: bytes) -> Request:
    """``__tl_n=N __tl_m=f __tl_x='cmd'; __tl1``, or ``__tl_m=fs; __tl 'a' 'b'``."""
    framed = [_posix_word(c) for c in commands]
    if len(framed) == 1:
        mode, word = framed[0]
        script = b"__tl_n=%s __tl_m=%s __tl_x=%s; __tl1\n" % (nonce, mode, word)
    else:
        modes = b"".join(mode for mode, _ in framed)
        words = b" ".join(word for _, word in framed)
        header = b"__tl_n=%s __tl_s=%d __tl_m=%s" % (nonce, int(stop_on_error), modes)
        script = header + b"; __tl " + words + b"\n"
    return Request(nonce=nonce, script=script, commands=tuple(commands), dialect="posix")


@functools.lru_cache(maxsize=4096)
def _framed_word(command: str) -> tuple[str, str]:
    """(``f`` or ``s``, the quoted command): notebooks repeat commands, so remember."""
    return ("f" if runs_in_host(command) else "s", encode_command(command))


def build_request(
    commands: Sequence[str],
    *,
    stop_on_error: bool = False,
    nonce: bytes | None = None,
    dialect: Dialect = BASH,
    outputs: str | None = None,
) -> Request:
    """Frame ``commands`` for one round trip to a host running ``HOST_SCRIPT``
    (with ``dialect=POSIX``, to the POSIX host).

    With ``stop_on_error`` the batch stops after the first non-zero exit; the
    ``Z`` marker says how many ran. A host with split outputs
    (``Dialect.with_split_outputs``) needs ``outputs``: the path prefix of the
    FIFOs the client made, ``<outputs><index>.o`` and ``<outputs><index>.e``.

    >>> build_request(["uname -a"], nonce=b"__tl_0").script
    b"__tl_n=__tl_0 __tl_m=f __tl_x=$'uname -a'; __tl1\\n"
    """
    if not commands:
        raise InvalidCommand("no commands to run")
    if (dialect.split == "fifos") != (outputs is not None):
        raise ValueError("outputs= goes with a host that writes to the client's FIFOs, only")
    if outputs is not None:
        request = build_request(
            commands,
            stop_on_error=stop_on_error,
            nonce=nonce,
            dialect=Dialect(dialect.name, b"", dialect.timed),  # the same script
        )
        if dialect.name == "posix":
            where = b"__tl_d=" + encode_posix(outputs) + b"; "
        else:
            where = b"__tl_d=" + encode_command(outputs).encode() + b"; "
        return dataclasses.replace(request, script=where + request.script)
    if dialect.name == "posix":
        return _posix_request(commands, stop_on_error, nonce or new_nonce())
    marker = (nonce or new_nonce()).decode()
    framed = [_framed_word(c) for c in commands]
    if len(framed) == 1:
        mode, word = framed[0]
        script = f"__tl_n={marker} __tl_m={mode} __tl_x={word}; __tl1\n".encode()
    else:
        modes = " ".join(mode for mode, _ in framed)
        words = " ".join(word for _, word in framed)
        script = (
            f"__tl_n={marker} __tl_s={int(stop_on_error)}; __tl_m=({modes}); "
            f"__tl_c=({words}); __tl\n"
        ).encode()
    return Request(nonce=marker.encode(), script=script, commands=tuple(commands))


@dataclass(frozen=True)
class FramedOutput:
    """One command's output as parsed from the streams."""

    stdout: bytes
    stderr: bytes
    exit_status: int
    duration: float | None  # measured by the host shell; None when it cannot say
    stdout_dropped: int = 0  # bytes a bounded capture left out
    stderr_dropped: int = 0


def parse_response(
    stdout: bytes,
    stderr: bytes,
    request: Request,
    *,
    complete: bool = True,
) -> list[FramedOutput]:
    """Split both streams into per-command outputs.

    With ``complete=False`` (a timeout or a dead host) the commands whose markers
    arrived are returned and the rest ignored; otherwise a missing marker is a
    ``TransportError`` (the protocol broke). A host without a clock (the POSIX host)
    leaves ``duration`` None: ``FrameReader(clock=True)`` times commands as they arrive.
    """
    nonce = request.nonce
    out_pos = err_pos = 0
    results: list[FramedOutput] = []
    for index in range(len(request.commands)):
        mark = nonce + b" E %d" % index
        out_at = stdout.find(mark + b" ", out_pos)
        err_at = _find_marker(stderr, mark, err_pos)
        if out_at < 0 or err_at < 0:
            if complete:
                raise TransportError(f"the shell's answer lacks the marker of command {index}")
            break
        out_end = stdout.find(b"\n", out_at)
        err_end = stderr.find(b"\n", err_at)
        if out_end < 0 or err_end < 0:
            if complete:
                raise TransportError("the shell's answer ends inside a marker line")
            break
        fields = stdout[out_at + len(mark) + 1 : out_end].split(b" ")
        last = b"Z" in fields
        if last:
            fields = fields[: fields.index(b"Z")]
        duration = parse_duration(fields[1:])
        results.append(
            FramedOutput(
                stdout=stdout[out_pos:out_at],
                stderr=stderr[err_pos:err_at],
                exit_status=int(fields[0]),
                duration=duration,
            )
        )
        out_pos, err_pos = out_end + 1, err_end + 1
        if last:
            break
    return results


def framed_results(
    commands: Sequence[str],
    outputs: Sequence[FramedOutput],
    target: str,
    started: datetime | None,
    wall: float,
) -> list[CommandResult]:
    """CommandResults of a batch; a command the host did not time gets an even share."""
    fallback = wall / max(1, len(outputs))
    return [
        CommandResult(
            command,
            out.stdout,
            out.stderr,
            out.exit_status,
            duration=out.duration if out.duration is not None else fallback,
            target=target,
            started=started,
            truncated=bool(out.stdout_dropped or out.stderr_dropped),
            stdout_dropped=out.stdout_dropped,
            stderr_dropped=out.stderr_dropped,
        )
        for command, out in zip(commands, outputs, strict=False)
    ]


# The most of an interrupted command's output a CommandTimeout keeps, per stream.
PARTIAL_LIMIT = 1024 * 1024


def cut_off(
    commands: Sequence[str],
    outputs: list[FramedOutput],
    target: str,
    timeout: float | None,
    aftermath: str,
    *,
    stdout: bytes = b"",
    stderr: bytes = b"",
) -> CommandTimeout:
    """The CommandTimeout of a request whose first ``len(outputs)`` commands finished:
    it names the one that was running, and for a batch keeps the finished results as
    ``partial``; ``stdout`` and ``stderr`` are what the running one wrote."""
    current = min(len(outputs), len(commands) - 1)
    partial = None
    if len(commands) > 1:
        partial = BatchResult(framed_results(commands, outputs, target, None, 0.0))
    return CommandTimeout(
        f"command {commands[current][:80]!r} ran past the {timeout:g} s "
        f"deadline on {target}; {aftermath}",
        command=commands[current],
        timeout=timeout,
        stdout=stdout,
        stderr=stderr,
        partial=partial,
    )


def _find_marker(stream: bytes, mark: bytes, start: int) -> int:
    """Where ``mark`` begins a marker (followed by a newline or `` Z``)."""
    while True:
        at = stream.find(mark, start)
        if at < 0:
            return -1
        follow = stream[at + len(mark) : at + len(mark) + 2]
        if follow[:1] == b"\n" or follow == b" Z":
            return at
        start = at + 1


def parse_duration(fields: list[bytes]) -> float | None:
    """A marker's start and end times as seconds, or None when the host gave none."""
    # EPOCHREALTIME uses the locale's radix character; bash < 5 leaves it empty.
    if len(fields) < 2 or not fields[0] or not fields[1]:
        return None
    try:
        start = float(fields[0].replace(b",", b"."))
        end = float(fields[1].replace(b",", b"."))
    except ValueError:
        return None
    return max(0.0, end - start)
