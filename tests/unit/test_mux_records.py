"""The SSH multiplexer's stray records, taken out of a stderr stream however it is cut."""

from __future__ import annotations

import pytest

from trainlab import framing
from trainlab.transports.ssh.mux import MUX, StrayRecords

TOKEN = b"__tl_00112233445566778899aabb"


def _split_everywhere(stream: bytes) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    outcomes = []
    for cut in range(len(stream) + 1):
        kept: list[tuple[str, bytes]] = []
        records = StrayRecords(TOKEN, lambda name, data, kept=kept: kept.append((name, data)))
        out = records.filter(stream[:cut]) + records.filter(stream[cut:])
        outcomes.append((out, kept))
    return outcomes


def test_records_come_out_whole_wherever_the_stream_is_cut() -> None:
    late = b"LATE\n".hex().encode()
    stream = b"err-a " + TOKEN + b" o " + late + b"\nerr-b\n" + TOKEN + b" e 6f6b\n"
    for out, kept in _split_everywhere(stream):
        assert out == b"err-a err-b\n"
        assert kept == [("stdout", b"LATE\n"), ("stderr", b"ok")]


def test_text_like_a_token_but_not_it_passes_on() -> None:
    other = b"__tl_ffffffffffffffffffffffff o 4c415445\n"
    for out, kept in _split_everywhere(b"x" + other + TOKEN[:-1] + b"\n"):
        assert out == b"x" + other + TOKEN[:-1] + b"\n"
        assert kept == []


def test_a_token_without_a_line_end_past_the_longest_record_is_output() -> None:
    records = StrayRecords(TOKEN, None)
    blob = TOKEN + b" o " + b"ab" * StrayRecords.LONGEST
    assert records.filter(blob) == blob


def test_a_broken_record_is_dropped_not_shown() -> None:
    kept: list[tuple[str, bytes]] = []
    records = StrayRecords(TOKEN, lambda name, data: kept.append((name, data)))
    assert records.filter(TOKEN + b" o zz\nafter") == b"after"
    assert kept == []


def test_the_multiplexed_hosts_say_how_many_commands_a_big_batch_has() -> None:
    bash = framing.host_script(dialect=framing.BASH.with_split_outputs("mux"))
    posix = framing.POSIX.with_split_outputs("mux").preamble.decode()
    ready = framing.MUX_READY
    assert f"if (( __tl_k > {ready} )); then" in bash
    assert f'if [ "$#" -gt {ready} ]; then' in posix
    for script in (bash, posix):
        assert " N " in script
        assert '2>"$__tl_d$__tl_i.e"' in script
    assert f"my ($K, $W) = ({ready}, " in MUX  # the multiplexer keeps as many ready
    assert "$__tl_d" not in framing.HOST_SCRIPT  # the plain host writes to its own streams
    assert " N " not in framing.POSIX.preamble.decode()


def test_only_the_local_split_takes_outputs() -> None:
    with pytest.raises(ValueError, match="outputs="):
        framing.BASH.with_split_outputs("mux").build_request(["true"], outputs="/tmp/x/")
    with pytest.raises(ValueError, match="outputs="):
        framing.BASH.with_split_outputs().build_request(["true"])
    with pytest.raises(ValueError, match="split must be"):
        framing.BASH.with_split_outputs("pipes")
    local = framing.POSIX.with_split_outputs().build_request(["true"], outputs="/tmp/x/")
    assert local.script.startswith(b"__tl_d='/tmp/x/'; ")


def test_the_multiplexer_is_small_enough_to_travel_in_the_exec_line() -> None:
    assert len(MUX) < 8000  # it travels in every kept shell's exec line
