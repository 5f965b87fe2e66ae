"""The SSH kept shell's output multiplexer: each command's output on FIFOs of its own.

A kept shell runs every command on one channel, so the channel's bytes carry no
sender: a background job that outlives its command (``(sleep 1; echo LATE) &``)
would write into whatever command runs next. Where the host has perl (perl-base
is part of every Debian and Ubuntu system, and of most others), the shell starts
as ``perl -e MUX TOKEN -- HOST...``: the multiplexer (``MUX``) forks the host
shell with its stdout and stderr on pipes, and the host (``framing``'s ``mux``
split) runs each command with its stdout and stderr on a pair of FIFOs that the
multiplexer keeps ready in its private directory (``framing.MUX_READY`` pairs; a
batch of more says so first, with an ``N <count>`` line, and waits until the last of
its FIFOs exists).
It copies a command's bytes
to the channel as they come, and its marker once its FIFOs are drained; whoever
still holds a finished command's FIFOs is a job it left behind, and what that job
writes goes to the channel's stderr as *stray records*,
``TOKEN <o|e> <hex>\\n``, which ``StrayRecords`` takes out of the stream before
the framing protocol reads it. No process is started per command.

Without perl (BusyBox, minimal images), under sudo, or where the multiplexer
cannot start (no writable temporary directory: it exits with 125 and says why on
stderr) the shell runs as before, and a job's output written while a later command
runs lands in that command's result (see the output guide).
"""

from __future__ import annotations

from collections.abc import Callable

from trainlab import framing
from trainlab.framed_reader import held_back

__all__ = ["MUX", "StrayRecords"]

#: The multiplexer: ``perl -e MUX TOKEN HOST-ARGV...``. It removes the directories of
#: multiplexers that no longer run (a killed shell cannot clean up), makes its own,
#: exports it as ``__tl_d``, makes the ready FIFO pairs (one ``mkfifo`` for all: perl's
#: POSIX module would cost 9 ms a start) and runs the host; when any of that fails it
#: exits with 125 before the host runs. It
#: reads only the running command's FIFOs and passes the host's markers on in order,
#: each once its command's FIFO is drained, so a command's bytes never pass another's.
_MUX = r"""
use strict; use Fcntl;
$SIG{CHLD} = "DEFAULT";  # an ignored SIGCHLD (inherited) would make system() fail
my ($tok, @host) = @ARGV;
my $tmp = $ENV{TMPDIR} || "/tmp";
my $dir = "$tmp/trainlab-mux-$$-" . int(rand(1e9));
my ($K, $W) = (@READY@, 8);  # FIFO pairs kept ready; read ends open ahead of the command
my (%act, @ling, %dirty, $hor, $her, %q, $z, $last);
my ($made, $cur) = (0, 0);
my %buf = (o => "", e => ""); my %seen = (o => 0, e => 0); $q{o} = []; $q{e} = [];
sub fail {  # before the host runs: the shell starts without the multiplexer
  print STDERR "trainlab: no output multiplexer ($_[0]); the shell runs without it\n";
  unlink glob "$dir/*"; rmdir $dir; exit 125 }
sub put { my ($fh, $b) = @_;
  while (length $b) { my $n = syswrite($fh, $b); if (!defined $n) { next if $!{EINTR}; exit 1 }
    substr($b, 0, $n) = "" } }
sub chan { $_[0] eq "o" ? \*STDOUT : \*STDERR }
sub stray { my ($s, $b) = @_;
  for (my $at = 0; $at < length $b; $at += 16384) {
    put(\*STDERR, "$tok $s " . unpack("H*", substr($b, $at, 16384)) . "\n") } }
sub make {  # fresh FIFO pairs for these command slots, in order (one mkfifo for all)
  return if !@_;
  my @p = map { ("$dir/$_.o", "$dir/$_.e") } @_;
  unlink @p;
  system({ "mkfifo" } "mkfifo", "-m", "600", @p) == 0 or die "trainlab: mkfifo failed ($?)\n" }
sub openup { my $to = shift;  # read ends of slots $cur .. $to - 1 (those that exist)
  for my $i ($cur .. ($to < $made ? $to : $made) - 1) { for my $s ("o", "e") {
    next if $act{$i}{$s};
    sysopen(my $fh, "$dir/$i.$s", O_RDONLY | O_NONBLOCK) or die "trainlab: open $dir/$i.$s: $!\n";
    $act{$i}{$s} = $fh } } }
sub drain { my ($i, $s) = @_;  # what slot $i's FIFO holds now, to the channel
  my $fh = $act{$i}{$s} or return;
  for (1 .. 8) {
    my $n = sysread($fh, my $b, 262144);
    last if !defined $n;
    if (!$n) { close $fh; delete $act{$i}{$s}; last }
    put(chan($s), $b) } }
sub settle {  # both markers of $cur are out: a FIFO still open is held by a job it left
  for my $s ("o", "e") {
    my $fh = delete $act{$cur}{$s} or next;
    my $n = sysread($fh, my $b, 262144);
    if (defined $n && !$n) { close $fh; next }
    stray($s, $b) if $n;
    push @ling, [$fh, $s]; $dirty{$cur} = 1 }
  delete $act{$cur};
  while (@ling > 128) { close((shift @ling)->[0]) }
  %seen = (o => 0, e => 0);
  if ($z) {  # the request's last: make held slots anew before its last marker goes
    make(sort { $a <=> $b } grep { $_ < $made } keys %dirty); %dirty = ();  # (the client
    put(\*STDOUT, $last); $cur = 0; $z = 0 }  # sends the next request once it has it)
  else { $cur++ }
  openup($cur + $W) }
sub step {  # pass on the host's lines in order; markers wait for their command's turn
  my $moved = 1;
  while ($moved) {
    $moved = 0;
    for my $s ("e", "o") {
      while (@{$q{$s}} && !$seen{$s}) {
        my $l = $q{$s}[0];
        if ($l =~ /\A__tl_[0-9a-f]{24} E (\d+)/) {
          last if $1 != $cur;
          drain($cur, $s); $seen{$s} = 1;
          $z = $l =~ / Z \d+\s*\z/ ? 1 : 0 if $s eq "o";
          if ($s eq "o" && $z) { $last = $l } else { put(chan($s), $l) }
        } elsif ($s eq "o" && $l =~ /\A__tl_[0-9a-f]{24} N (\d+)/) {  # a request of $1 commands
          if ($made < $1) { make($made .. $1 - 1); $made = $1 }  # the host waits for the last
          openup($cur + $W);
        } else { put(chan($s), $l) }
        shift @{$q{$s}}; $moved = 1 }
    }
    if ($seen{o} && $seen{e}) { settle(); $moved = 1 }
  } }
sub lines { my ($s, $fh) = @_;
  my $n = sysread($fh, my $b, 65536);
  return 1 if !defined $n;
  return 0 if !$n;
  $buf{$s} .= $b;
  while ($buf{$s} =~ s/\A([^\n]*\n)//) { push @{$q{$s}}, $1 }
  if (length $buf{$s} > 4096) { push @{$q{$s}}, $buf{$s}; $buf{$s} = "" }
  return 1 }
for my $old (glob "$tmp/trainlab-mux-*") {  # what killed multiplexers left
  my ($p) = $old =~ m{trainlab-mux-(\d+)-\d+$} or next;
  my $live = kill(0, $p) || $!{EPERM};
  if ($live && open(my $st, "<", "/proc/$p/stat")) { $live = <$st> !~ /\)\s+Z/ }  # a zombie
  next if $live || -l $old || !-O $old;
  unlink glob "$old/*"; rmdir $old;
}
mkdir($dir, 0700) or fail("cannot make $dir: $!");
$ENV{__tl_d} = "$dir/";
my ($how, $hew);
pipe($hor, $how) && pipe($her, $hew) or fail("pipe: $!");
eval { make(0 .. $K - 1); $made = $K; openup($W); 1 } or fail($@ =~ s/\s+\z//r);
my $pid = fork; defined $pid or fail("fork: $!");
if (!$pid) {
  open(STDOUT, ">&", $how) or die; open(STDERR, ">&", $hew) or die;
  exec { $host[0] } @host; die "trainlab: cannot run $host[0]: $!\n";
}
close $how; close $hew;
my $open = 2;
while ($open) {
  my $rin = "";
  vec($rin, fileno($hor), 1) = 1 if $hor; vec($rin, fileno($her), 1) = 1 if $her;
  my @mine = map { [$_, $act{$cur}{$_}] } grep { $act{$cur}{$_} } "o", "e";
  vec($rin, fileno($_->[1]), 1) = 1 for @mine;
  vec($rin, fileno($_->[0]), 1) = 1 for @ling;
  my $n = select(my $rout = $rin, undef, undef, undef);
  next if $n < 0;
  # The host's lines first: what it printed before the command ran (its ready line)
  # goes out before the command's bytes; a marker drains its command's FIFO itself.
  if ($her && vec($rout, fileno($her), 1) && !lines("e", $her)) {
    close $her; $her = undef; $open-- }
  if ($hor && vec($rout, fileno($hor), 1) && !lines("o", $hor)) {
    close $hor; $hor = undef; $open-- }
  my $was = $cur;
  step();
  for my $m (@mine) {  # the running command's bytes, as they come (unless it ended)
    next if $cur != $was || ($act{$cur}{$m->[0]} || 0) != $m->[1];
    drain($cur, $m->[0]) if vec($rout, fileno($m->[1]), 1) }
  for my $l (@ling) {  # a job left behind: its bytes are stray
    next if !$l->[0] || !vec($rout, fileno($l->[0]), 1);
    my $r = sysread($l->[0], my $b, 262144);
    next if !defined $r;
    if ($r) { stray($l->[1], $b) } else { close $l->[0]; $l->[0] = undef } }
  @ling = grep { $_->[0] } @ling;
}
put(chan($_), join("", @{$q{$_}}) . $buf{$_}) for "o", "e";
waitpid($pid, 0);
unlink glob "$dir/*"; rmdir $dir;
exit($? & 127 ? 128 + ($? & 127) : $? >> 8);
"""
MUX = _MUX.replace("@READY@", str(framing.MUX_READY))


class StrayRecords:
    """Takes the multiplexer's stray records out of a shell's stderr stream.

    >>> kept = []
    >>> records = StrayRecords(b"__tl_s", lambda stream, data: kept.append((stream, data)))
    >>> records.filter(b"err1 __tl_s o 4c41")
    b'err1 '
    >>> records.filter(b"5445\\nerr2\\n"), kept
    (b'err2\\n', [('stdout', b'LATE')])
    """

    #: The longest record the multiplexer writes (16 KiB of data, hex): more pending
    #: bytes after a token mean it is no record, and they pass on as they are.
    LONGEST = 2 * 16384 + 64

    def __init__(self, token: bytes, stray: Callable[[str, bytes], None] | None) -> None:
        self.token = token + b" "
        self.stray = stray
        self._pending = b""

    def filter(self, data: bytes) -> bytes:
        """``data`` without the records in it (a record cut at the end is held back)."""
        buf = self._pending + data if self._pending else data
        self._pending = b""
        token = self.token
        if token[:1] not in buf:  # no record, nor the start of one
            return buf
        kept: list[bytes] = []
        pos = 0
        while True:
            at = buf.find(token, pos)
            if at < 0:
                held = held_back(buf, pos, token)
                kept.append(buf[pos : len(buf) - held])
                self._pending = buf[len(buf) - held :]
                break
            kept.append(buf[pos:at])
            end = buf.find(b"\n", at)
            if end < 0:
                if len(buf) - at > self.LONGEST:  # no record: pass it on
                    kept.append(buf[at:])
                else:
                    self._pending = buf[at:]
                break
            self._record(buf[at + len(token) : end])
            pos = end + 1
        return b"".join(kept)

    def _record(self, body: bytes) -> None:
        stream, _, payload = body.partition(b" ")
        try:
            data = bytes.fromhex(payload.decode("ascii"))
        except ValueError:
            return  # a broken record: nothing to keep
        if self.stray is not None:
            self.stray("stdout" if stream == b"o" else "stderr", data)
