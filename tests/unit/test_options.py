"""Number options: finite, within their declared bounds, refused with the option's name."""

from __future__ import annotations

import math

import pytest

import trainlab
from trainlab.options import Option, resolve_options
from trainlab.registry import transport_class


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "inf", "-inf"])
def test_a_float_option_refuses_nan_and_infinities(value: object) -> None:
    declared = {"pause": Option(float, 1.0, "seconds to pause")}
    with pytest.raises(trainlab.TargetError, match="'pause' must be a finite number"):
        resolve_options(declared, {"pause": value}, where="test://")


def test_bounds_are_named_in_the_error() -> None:
    declared = {"wait": Option(float, 1.0, "seconds to wait", minimum=0, maximum=60)}
    assert resolve_options(declared, {"wait": "60"}, where="test://") == {"wait": 60.0}
    for bad in (61, -1, math.nan, "inf"):
        with pytest.raises(trainlab.TargetError, match="'wait' must be from 0 to 60") as info:
            resolve_options(declared, {"wait": bad}, where="test://")
        assert "seconds to wait" in str(info.value)


def test_an_int_option_keeps_its_maximum() -> None:
    declared = {"tries": Option(int, 1, "attempts", minimum=0, maximum=20)}
    assert resolve_options(declared, {"tries": "20"}, where="test://") == {"tries": 20}
    with pytest.raises(trainlab.TargetError, match="'tries' must be from 0 to 20; got 21"):
        resolve_options(declared, {"tries": 21}, where="test://")
    with pytest.raises(trainlab.TargetError, match="'tries' takes an integer"):
        resolve_options(declared, {"tries": math.inf}, where="test://")


# Values that used to overflow a socket, a timer or a sleep, or were taken as they came.
@pytest.mark.parametrize(
    ("scheme", "name", "value"),
    [
        ("ssh", "keepalive", math.inf),
        ("ssh", "keepalive", math.nan),
        ("ssh", "keepalive", 1e300),
        ("ssh", "timeout", math.inf),
        ("ssh", "timeout", 1e300),
        ("ssh", "retry_backoff", 1e300),
        ("ssh", "connect_retries", 10**9),
        ("ssh", "rekey_bytes", 2**70),
        ("https", "timeout", math.inf),
        ("https", "read_timeout", 1e300),
        ("https", "backoff", math.nan),
        ("https", "retries", 10**9),
        ("winrm", "read_timeout", math.inf),
        ("winrm", "connection_timeout", -1),
        ("winrm", "operation_timeout", 10**12),
        ("ssm", "poll_interval", math.inf),
        ("mock", "latency", math.inf),
        ("pwsh", "open_timeout", math.nan),
    ],
)
def test_transport_number_options_are_bounded(scheme: str, name: str, value: object) -> None:
    declared = transport_class(scheme).options
    with pytest.raises(trainlab.TargetError, match=f"option '{name}' (must be|takes)"):
        resolve_options(declared, {name: value}, where=f"{scheme}://")


def test_every_number_option_has_finite_bounds_it_takes() -> None:
    for scheme in ("ssh", "https", "winrm", "ssm", "mock", "pwsh", "local"):
        for name, option in transport_class(scheme).options.items():
            if option.type not in (int, float) or option.default is None:
                continue
            # The default is valid, and so is the maximum where one is declared.
            resolve_options({name: option}, {name: option.default}, where=scheme)
            if option.maximum is not None:
                resolve_options({name: option}, {name: option.maximum}, where=scheme)


def test_connect_refuses_an_infinite_keepalive_before_connecting() -> None:
    with pytest.raises(trainlab.TargetError, match="'keepalive' must be from 0 to 86400"):
        trainlab.connect("ssh://nobody@127.0.0.1:9", keepalive=math.inf)
