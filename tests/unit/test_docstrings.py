"""Every public name has a docstring fit for the reference, and its sections hold what they say.

The public API is ``__all__`` of each module the reference documents (``trainlab_api_modules``
in docs/conf.py, the list the docs build also checks coverage against). Classes and functions
need a docstring (a method may inherit its base's), constants a ``#:`` comment where they are
defined. A numpydoc section that runs on into prose or an example (a line at the section's
indent that is not a field) renders as a bogus parameter, so it fails here too.
"""

from __future__ import annotations

import importlib
import inspect
import re
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The docs extra (in dev): #: comments are read as Sphinx reads them.
from sphinx import pycode as sphinx_pycode

ROOT = Path(__file__).resolve().parents[2]
MODULES: list[str] = runpy.run_path(str(ROOT / "docs" / "conf.py"))["trainlab_api_modules"]
FIELD_SECTIONS = {"Parameters", "Attributes", "Other Parameters", "Keyword Arguments"}
TYPE_SECTIONS = {"Returns", "Yields", "Raises", "Warns"}
FIELD = re.compile(r"^\*{0,2}[A-Za-z_][\w.]*(, \*{0,2}[A-Za-z_][\w.]*)*( : .+)?$")


def public_objects() -> Iterator[tuple[str, Any]]:
    """(dotted name, object) for every name in the documented modules' ``__all__``."""
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        yield module_name, module
        for name in module.__all__:
            yield f"{module_name}.{name}", getattr(module, name)


def members(cls: type) -> Iterator[tuple[str, Any]]:
    """The public methods and properties a class defines itself."""
    for name, value in vars(cls).items():
        if name.startswith(("_", "test_")):
            continue  # test_* of the contract suite: pytest's names are their documentation
        function = value.__func__ if isinstance(value, staticmethod | classmethod) else value
        if inspect.isfunction(function) or isinstance(function, property):
            yield name, getattr(cls, name)


def constant_documented(name: str, value: Any) -> bool:
    """A ``#:`` comment on the assignment, in whichever trainlab module defines it."""
    attribute = name.rsplit(".", 1)[1]
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("trainlab") and getattr(module, attribute, None) is value:
            docs = sphinx_pycode.ModuleAnalyzer.for_module(module_name).find_attr_docs()
            if docs.get(("", attribute)):
                return True
    return False


def missing_docstrings() -> list[str]:
    missing = []
    for name, value in public_objects():
        if inspect.ismodule(value):
            if not value.__doc__:
                missing.append(name)
        elif inspect.isclass(value) or inspect.isroutine(value):
            if not value.__doc__:
                missing.append(name)
            if inspect.isclass(value):
                missing += [f"{name}.{m}" for m, v in members(value) if not inspect.getdoc(v)]
        elif not constant_documented(name, value):
            missing.append(f"{name} (a #: comment)")
    return sorted(set(missing))


def is_stray(section: str | None, line: str) -> bool:
    """A line at a section's indent: a field (``name`` or ``name : type``) or a return type."""
    if section in FIELD_SECTIONS:
        return re.fullmatch(r"-{3,}", line) is None and not FIELD.match(line)
    return section in TYPE_SECTIONS and line.startswith(">>>")


def stray_lines(doc: str) -> list[str]:
    """Lines at a numpydoc section's indent that are neither a field nor its type."""
    lines = inspect.cleandoc(doc).splitlines()
    section, stray = None, []
    for index, line in enumerate(lines):
        underline = index + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[index + 1].strip())
        if underline and line.strip():
            section = line.strip()
        elif line and not line.startswith(" ") and is_stray(section, line):
            stray.append(f"{section}: {line}")
    return stray


def test_every_public_name_has_a_docstring() -> None:
    assert missing_docstrings() == []


def test_numpydoc_sections_hold_only_their_fields() -> None:
    found = {}
    for name, value in public_objects():
        docs = [(name, getattr(value, "__doc__", None))]
        if inspect.isclass(value):
            docs += [(f"{name}.{m}", inspect.getdoc(v)) for m, v in members(value)]
        for where, doc in docs:
            if isinstance(doc, str) and stray_lines(doc):
                found[where] = stray_lines(doc)
    assert found == {}, "put examples under Examples and prose under Notes, or above Parameters"


def test_the_checks_see_what_they_look_for() -> None:
    doc = """Summary.

    Parameters
    ----------
    uri
        Where.

    >>> connect("x")
    """
    assert stray_lines(doc) == ['Parameters: >>> connect("x")']
    fixed = doc.replace("    >>> connect", "    Examples\n    --------\n    >>> connect")
    assert stray_lines(fixed) == []
