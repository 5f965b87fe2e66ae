"""Declared options: every transport lists its keys with a type, a default and a doc.

Values arrive as URI query strings or as keyword arguments; both are validated and
coerced here, and an unknown key or a bad value raises ``TargetError`` naming the
valid choices.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainlab.errors import TargetError

__all__ = ["Option", "describe_options", "resolve_options"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """One option a transport (or the session) accepts.

    Parameters
    ----------
    type
        ``str``, ``int``, ``float``, ``bool`` or ``dict`` (``dict`` only as a keyword).
    default
        Used when the option is not given; ``None`` means "unset".
    doc
        One line shown in errors and in ``trainlab.describe(scheme)``.
    choices
        Allowed values for a ``str`` option.
    secret
        Never shown in reprs, logs, metrics, reports or errors.
    affects_result
        Part of the cache key: two sessions that differ here never share results.
    minimum
        Lower bound for numbers.
    maximum
        Upper bound for numbers: what the libraries behind the option take (a socket
        timeout, a timer, a sleep) and what is sensible. A ``float`` option is finite
        in any case: NaN and infinities are refused.
    """

    type: type
    default: Any
    doc: str
    choices: tuple[str, ...] | None = None
    secret: bool = False
    affects_result: bool = False
    minimum: float | None = None
    maximum: float | None = None

    def coerce(self, name: str, value: Any) -> Any:
        """Return ``value`` converted to this option's type, or raise ``TargetError``."""
        if value is None:
            return None
        kind = self.type
        try:
            if kind is bool:
                out: Any = to_bool(value)
            elif kind is int:
                if isinstance(value, bool):
                    raise ValueError(value)
                out = int(value) if not isinstance(value, float) or value.is_integer() else None
                if out is None:
                    raise ValueError(value)
            elif kind is float:
                if isinstance(value, bool):
                    raise ValueError(value)
                out = float(value)
            elif kind is dict:
                if not isinstance(value, Mapping):
                    raise TargetError(
                        f"option {name!r} takes a mapping; pass it as a keyword: {name}={{...}}"
                    )
                out = dict(value)
            else:
                if not isinstance(value, str):
                    value = str(value)
                out = value
        except (TypeError, ValueError) as exc:
            if isinstance(exc, TargetError):
                raise
            shown = "<secret>" if self.secret else repr(value)
            raise TargetError(
                f"option {name!r} takes {_type_name(kind)}, got {shown}: {self.doc}"
            ) from None
        if self.choices is not None and out not in self.choices:
            raise TargetError(
                f"option {name!r} must be one of {', '.join(self.choices)}; got {out!r}"
            )
        if kind in (int, float) and (
            not math.isfinite(out)
            or (self.minimum is not None and out < self.minimum)
            or (self.maximum is not None and out > self.maximum)
        ):
            raise TargetError(
                f"option {name!r} must be {self.valid_range()}; got {out!r}: {self.doc}"
            )
        return out

    def valid_range(self) -> str:
        """The bounds of a number option in words, for errors.

        >>> Option(float, 1.0, "seconds", minimum=0, maximum=60).valid_range()
        'from 0 to 60'
        """
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"from {low:g} to {high:g}"
        if low is not None:
            return f">= {low:g}"
        if high is not None:
            return f"<= {high:g}"
        return "a finite number"


def to_bool(value: Any) -> bool:
    """A boolean option's value from a bool, 0/1 or a word (true/false, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError(value)


def _type_name(kind: type) -> str:
    return {
        bool: "true/false",
        int: "an integer",
        float: "a number",
        str: "text",
        dict: "a mapping",
    }.get(kind, kind.__name__)


def resolve_options(
    declared: Mapping[str, Option],
    given: Mapping[str, Any],
    *,
    where: str,
) -> dict[str, Any]:
    """Validate ``given`` against ``declared``; return every declared key with a value.

    >>> from trainlab.options import Option, resolve_options
    >>> resolve_options({"sudo": Option(bool, False, "run with sudo")}, {"sudo": "yes"},
    ...                 where="ssh://")
    {'sudo': True}
    """
    unknown = [key for key in given if key not in declared]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(declared), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TargetError(
            f"unknown option {key!r} for {where}{hint}; valid options: "
            f"{', '.join(sorted(declared))}"
        )
    resolved: dict[str, Any] = {}
    for name, option in declared.items():
        if name in given:
            resolved[name] = option.coerce(name, given[name])
        else:
            resolved[name] = option.default
    return resolved


_SECRET_KEY = secrets.token_bytes(32)  # per process: keys are compared only within it


def frozen_items(declared: Mapping[str, Option], values: Mapping[str, Any]) -> tuple[Any, ...]:
    """A hashable, secret-free form of ``values`` for registry and cache keys.

    Secrets enter as an HMAC under a key made at random for this process: two
    sessions with different passwords differ, yet the key never holds the password,
    and a digest seen elsewhere cannot be tested against guessed passwords.
    """
    items: list[tuple[str, Any]] = []
    for name in sorted(values):
        value = values[name]
        option = declared.get(name)
        if option is not None and option.secret and value is not None:
            value = "hmac:" + hmac.new(_SECRET_KEY, str(value).encode(), hashlib.sha256).hexdigest()
        items.append((name, _freeze(value)))
    return tuple(items)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def describe_options(declared: Mapping[str, Option]) -> str:
    """A plain-text table of the options, for errors and help."""
    width = max((len(name) for name in declared), default=0)
    lines = []
    for name in sorted(declared):
        option = declared[name]
        default = "<secret>" if option.secret else repr(option.default)
        lines.append(f"{name:<{width}}  {_type_name(option.type):<10}  {default:<10}  {option.doc}")
    return "\n".join(lines)
