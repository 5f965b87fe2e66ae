"""Target URIs and declared options: parsing, validation and the messages users see."""

from __future__ import annotations

import pytest

import trainlab
from trainlab.options import Option, frozen_items, resolve_options
from trainlab.uri import parse_target


def test_full_uri_is_parsed_and_normalized() -> None:
    t = parse_target("SSH://Deploy@Web1.Example.COM:2222/srv?sudo=true&mode=shell")
    assert (t.scheme, t.user, t.host, t.port, t.path) == (
        "ssh",
        "Deploy",
        "web1.example.com",
        2222,
        "/srv",
    )
    assert t.query == {"sudo": "true", "mode": "shell"}
    assert str(t) == "ssh://Deploy@web1.example.com:2222/srv?mode=shell&sudo=true"


def test_bare_scheme_and_ipv6() -> None:
    assert parse_target("local://").address == "local://"
    t = parse_target("ssh://root@[::1]:22")
    assert t.host == "::1"
    assert t.address == "ssh://root@[::1]:22"


def test_password_in_uri_never_shows() -> None:
    t = parse_target("ssh://bob:hunter2@host")
    assert t.password == "hunter2"
    assert "hunter2" not in repr(t)
    assert "hunter2" not in str(t)


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("", "empty target"),
        ("web1", "has no scheme; write it as 'ssh://web1'"),
        ("local", "write it as 'local://'"),
        ("ssh://host:notaport", "malformed"),
        ("ssh://host:99999", "malformed"),
        ("ssh://host#frag", "fragment"),
        ("ssh://ho st", "spaces or control characters"),
        ("ssh://host?a=1&a=2", "given twice"),
        ("ssh://host?novalue", "malformed query"),
        ("1ssh://host", "invalid scheme"),
    ],
)
def test_malformed_uris_name_the_problem(uri: str, fragment: str) -> None:
    with pytest.raises(trainlab.TargetError) as info:
        parse_target(uri)
    assert fragment in str(info.value)


def test_malformed_uri_error_hides_password() -> None:
    with pytest.raises(trainlab.TargetError) as info:
        parse_target("ssh://bob:hunter2@host:bad")
    assert "hunter2" not in str(info.value)


def test_non_string_target() -> None:
    with pytest.raises(trainlab.TargetError, match="URI string"):
        parse_target(42)  # type: ignore[arg-type]


DECLARED = {
    "sudo": Option(bool, False, "run with sudo"),
    "port_count": Option(int, 1, "ports", minimum=1),
    "delay": Option(float, 0.5, "seconds"),
    "mode": Option(str, "exec", "how", choices=("exec", "shell")),
    "password": Option(str, None, "secret", secret=True),
    "env": Option(dict, None, "environment"),
}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"sudo": "yes"}, True),
        ({"sudo": "0"}, False),
        ({"sudo": True}, True),
        ({"sudo": "OFF"}, False),
    ],
)
def test_booleans_are_coerced(given: dict[str, object], expected: bool) -> None:
    assert resolve_options(DECLARED, given, where="x://")["sudo"] is expected


def test_numbers_are_coerced_and_defaults_filled() -> None:
    out = resolve_options(DECLARED, {"port_count": "3", "delay": "2"}, where="x://")
    assert out == {
        "sudo": False,
        "port_count": 3,
        "delay": 2.0,
        "mode": "exec",
        "password": None,
        "env": None,
    }


def test_unknown_option_suggests_the_close_one_and_lists_all() -> None:
    with pytest.raises(trainlab.TargetError) as info:
        resolve_options(DECLARED, {"sodo": "1"}, where="ssh://")
    message = str(info.value)
    assert "unknown option 'sodo' for ssh://" in message
    assert "did you mean 'sudo'" in message
    assert "delay, env, mode, password, port_count, sudo" in message


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ({"sudo": "maybe"}, "option 'sudo' takes true/false, got 'maybe'"),
        ({"port_count": "1.5"}, "takes an integer"),
        ({"port_count": 0}, "must be >= 1"),
        ({"port_count": True}, "takes an integer"),
        ({"delay": "fast"}, "takes a number"),
        ({"mode": "turbo"}, "must be one of exec, shell"),
        ({"env": "A=1"}, "pass it as a keyword"),
    ],
)
def test_bad_values_name_the_type(given: dict[str, object], fragment: str) -> None:
    with pytest.raises(trainlab.TargetError) as info:
        resolve_options(DECLARED, given, where="x://")
    assert fragment in str(info.value)


def test_bad_secret_value_is_not_echoed() -> None:
    declared = {"pin": Option(int, None, "a PIN", secret=True)}
    with pytest.raises(trainlab.TargetError) as info:
        resolve_options(declared, {"pin": "s3cr3t"}, where="x://")
    assert "s3cr3t" not in str(info.value)
    assert "<secret>" in str(info.value)


def test_frozen_items_hash_secrets() -> None:
    a = frozen_items(DECLARED, {"password": "one", "sudo": True})
    b = frozen_items(DECLARED, {"password": "two", "sudo": True})
    assert a != b
    assert "one" not in repr(a)
    assert hash(a) != hash(b)


def test_connect_rejects_unknown_scheme_listing_known_ones() -> None:
    with pytest.raises(trainlab.TargetError) as info:
        trainlab.connect("gopher://host")
    assert "unknown scheme 'gopher://'" in str(info.value)
    assert "local://" in str(info.value)
    assert "trainlab.transports" in str(info.value)


def test_connect_rejects_unknown_option_and_bad_value() -> None:
    with pytest.raises(trainlab.TargetError, match=r"unknown option 'mdoe'.*did you mean 'mode'"):
        trainlab.connect("local://?mdoe=shell")
    with pytest.raises(trainlab.TargetError, match="must be one of exec, shell"):
        trainlab.connect("local://", mode="fast")
    with pytest.raises(trainlab.TargetError, match="ttl"):
        trainlab.connect("local://", ttl=-1)


def test_keywords_win_over_query() -> None:
    s = trainlab.connect("local://?mode=exec", mode="shell")
    assert s.transport.mode == "shell"


def test_local_takes_no_host_and_no_password() -> None:
    with pytest.raises(trainlab.TargetError, match=r"use ssh://web1"):
        trainlab.connect("local://web1")
    with pytest.raises(trainlab.TargetError, match="takes no password"):
        trainlab.connect("local://u:pw@")


def test_describe_lists_options() -> None:
    text = trainlab.describe("local://")
    assert "mode" in text
    assert "command_timeout" in text
