"""The examples in docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "trainlab",
    "trainlab.arguments",
    "trainlab.bench",
    "trainlab.cache",
    "trainlab.capture",
    "trainlab.fleet",
    "trainlab.fleet.cooldown",
    "trainlab.fleet.fleet",
    "trainlab.fleet.inventories",
    "trainlab.fleet.report",
    "trainlab.fleet.targets",
    "trainlab.framed_reader",
    "trainlab.framing",
    "trainlab.host_check",
    "trainlab.options",
    "trainlab.platform",
    "trainlab.result",
    "trainlab.session",
    "trainlab.tables",
    "trainlab.transports.local",
    "trainlab.transports.mock",
    "trainlab.transports.retry",
    "trainlab.transports.ssh.login",
    "trainlab.transports.ssh.jump",
    "trainlab.uri",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no examples"
