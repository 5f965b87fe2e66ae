"""The package keeps its layout: small modules, layers that point down, no private reach.

The figures come from scripts/layout.py, which prints them (``python3 scripts/layout.py``).
"""

from __future__ import annotations

from pathlib import Path

from tests.scripts import load

layout = load("layout")
MODULES = layout.modules()


def test_no_module_is_over_the_size_limit() -> None:
    assert layout.oversized(MODULES) == [], f"split it (the limit is {layout.MAX_LINES} lines)"


def test_no_private_name_is_imported_across_modules() -> None:
    # Two modules that need one helper: it is not private; give it a public home.
    assert layout.private_crossings(MODULES) == []


def test_no_import_cycle_at_module_level() -> None:
    assert layout.cycles(MODULES) == []


def test_transports_never_import_the_layers_above_them() -> None:
    # A transport does I/O; a session class it needs is named in its session_class.
    assert layout.upward_from_transports(MODULES) == []


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    # Each check finds a planted case, so an empty answer above means something.
    def module(name: str, source: str) -> layout.Module:
        path = tmp_path / (name.replace(".", "_") + ".py")
        path.write_text(source)
        return layout.Module(name, path, len(source.splitlines()))

    a = module("trainlab.transports.x", "from trainlab.session import connect\n")
    b = module("trainlab.fleet", "from trainlab.transports.y import _helper\n")
    c = module("trainlab.transports.y", "import trainlab.transports.x\n" + "pass\n" * 900)
    d = module("trainlab.cli", "from trainlab.transports._private import thing\n")
    found = {m.name: m for m in (a, b, c, d)}
    for m in found.values():
        m.imports = layout.read_imports(m, found)
    # x -> session is upward; fleet reaches a private name and cli a private module.
    assert layout.upward_from_transports(found) == [
        "trainlab.transports.x imports trainlab.session"
    ]
    assert layout.private_crossings(found) == [
        "trainlab.cli imports the private module trainlab.transports._private",
        "trainlab.fleet imports trainlab.transports.y._helper",
    ]
    assert layout.oversized(found) == ["trainlab.transports.y (901 lines)"]
    found["trainlab.transports.x"].imports.append(("trainlab.transports.y", None, True))
    assert layout.cycles(found) == [["trainlab.transports.x", "trainlab.transports.y"]]
