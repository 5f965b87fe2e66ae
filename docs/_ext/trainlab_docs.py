"""Sphinx glue for the trainlab site: option tables from the code, the notebooks, API coverage.

- ``{trainlab-options} SCHEME`` renders the options a transport declares (its class's
  ``options``), or the session's (``session``: ``trainlab.session.SESSION_OPTIONS``), as a
  table, so the documented options are the code's.
- The notebooks in ``notebooks/`` are copied into ``tutorials/`` when the build starts
  (only those that changed), where myst-nb executes and renders them.
- napoleon is kept away from attribute and property docstrings (see
  ``skip_napoleon_for_attributes``).
- A constant a package re-exports gets its ``#:`` comment from the module defining it.
- Once every page is read, each name in the ``__all__`` of the modules in
  ``trainlab_api_modules`` must be documented somewhere in the reference; one that is
  not is a warning, and so an error under ``sphinx-build -W``.
"""

from __future__ import annotations

import importlib
import inspect
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.environment import BuildEnvironment
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from trainlab.options import Option

logger = logging.getLogger(__name__)

TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", dict: "mapping"}


def option_rows(declared: Mapping[str, Option]) -> list[tuple[str, str, str, str]]:
    """One (name, type, default, description) row per option, in declaration order."""
    rows = []
    for name, option in declared.items():
        kind = TYPE_NAMES.get(option.type, option.type.__name__)
        if option.secret:
            default = "(secret)" if option.default is None else "(secret, set)"
        elif option.default is None:
            default = "unset"
        else:
            default = repr(option.default)
        notes = [option.doc if option.doc.endswith(".") else option.doc + "."]
        if option.choices:
            notes.append("One of: " + ", ".join(option.choices) + ".")
        if option.minimum is not None or option.maximum is not None:
            notes.append(f"Range: {option.valid_range()}.")
        if option.secret:
            notes.append("A secret: never shown in reprs, metrics, reports or errors.")
        if option.affects_result:
            notes.append("Part of the cache key.")
        if option.type is dict:
            notes.append("Keyword argument only.")
        rows.append((name, kind, default, " ".join(notes)))
    return rows


def declared_options(scheme: str) -> tuple[Mapping[str, Option], str]:
    """The options of ``scheme`` (or of every session) and where they are declared."""
    if scheme == "session":
        from trainlab.session import SESSION_OPTIONS

        return SESSION_OPTIONS, "trainlab.session.SESSION_OPTIONS"
    from trainlab.registry import transport_class

    cls = transport_class(scheme)
    return cls.options, f"{cls.__module__}.{cls.__qualname__}.options"


class OptionsTable(SphinxDirective):
    """``{trainlab-options} ssh``: the table of the options ``ssh://`` declares."""

    required_arguments = 1
    option_spec = {"caption": directives.unchanged}  # noqa: RUF012 - docutils' own protocol

    def run(self) -> list[nodes.Node]:
        scheme = self.arguments[0].removesuffix("://")
        try:
            declared, where = declared_options(scheme)
        except Exception as exc:  # any failure is the page's error
            raise self.error(f"trainlab-options: no options for {scheme!r}: {exc}") from exc
        caption = self.options.get("caption") or f"Options of {scheme}:// ({where})"
        table = nodes.table(classes=["trainlab-options"])
        table += nodes.title(text=caption)
        group = nodes.tgroup(cols=4)
        table += group
        for width in (18, 8, 14, 60):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        head += _row(["option", "type", "default", "what it does"], literal_first=False)
        body = nodes.tbody()
        group += body
        for row in option_rows(declared):
            body += _row(list(row), literal_first=True)
        return [table]


def _row(cells: list[str], *, literal_first: bool) -> nodes.row:
    row = nodes.row()
    for index, text in enumerate(cells):
        entry = nodes.entry()
        paragraph = nodes.paragraph()
        if literal_first and index in (0, 2):
            paragraph += nodes.literal(text=text)
        else:
            paragraph += nodes.Text(text)
        entry += paragraph
        row += entry
    return row


def copy_notebooks(app: Sphinx, config: Config) -> None:
    """notebooks/*.ipynb into tutorials/, rewriting only the files that changed."""
    source = Path(app.srcdir).parent / "notebooks"
    target = Path(app.srcdir) / "tutorials"
    target.mkdir(exist_ok=True)
    wanted = {path.name for path in source.glob("*.ipynb")}
    for stale in target.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    for name in sorted(wanted):
        new, old = source / name, target / name
        if not old.exists() or old.read_bytes() != new.read_bytes():
            shutil.copyfile(new, old)


def check_api_coverage(app: Sphinx, env: BuildEnvironment) -> None:
    """Warn about every public name the reference does not document."""
    documented = set(env.domains["py"].objects)  # type: ignore[attr-defined]
    documented_ids = {id(obj) for obj in map(_resolve, documented) if obj is not None}
    for module_name in app.config.trainlab_api_modules:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if f"{module_name}.{name}" in documented:
                continue
            if _has_identity(value) and id(value) in documented_ids:
                continue  # documented under another public path (trainlab.X for trainlab.mod.X)
            logger.warning(
                "%s.%s is public (in __all__) but not in the API reference (docs/api/)",
                module_name,
                name,
                type="trainlab",
                subtype="api",
            )


def _has_identity(value: Any) -> bool:
    return inspect.isclass(value) or inspect.isroutine(value) or inspect.ismodule(value)


def _resolve(dotted: str) -> Any:
    """The object a documented name stands for, or None (a method, or not importable)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute, None)
        return obj if _has_identity(obj) else None
    return None


def document_reexported_data(  # noqa: PLR0917 - the signature of Sphinx's event
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """A constant re-exported by a package gets the ``#:`` comment of the module defining it."""
    if what != "data":
        return
    shown = " ".join(" ".join(lines).split())
    if shown and shown != " ".join((inspect.getdoc(type(obj)) or "").split()):
        return  # its own comment (a bare dict or tuple shows its type's docstring otherwise)
    attribute = name.rsplit(".", 1)[-1]
    for module_name, module in sorted(sys.modules.items()):
        if not module_name.startswith("trainlab") or getattr(module, attribute, None) is not obj:
            continue
        try:
            found = ModuleAnalyzer.for_module(module_name).find_attr_docs().get(("", attribute))
        except PycodeError:
            continue
        if found:
            lines[:] = list(found)
            return


def skip_napoleon_for_attributes(app: Sphinx) -> None:
    """Let napoleon read every docstring but those of attributes and properties.

    napoleon takes an attribute docstring's first ``words: more words`` as a type and a
    description; these docstrings are prose (``Per strategy: n, median_ms, ...``), and the
    type comes from the annotation. So its listener is wrapped to pass them over.
    """
    from sphinx.ext import napoleon

    listeners = app.events.listeners["autodoc-process-docstring"]
    for listener in list(listeners):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)

            def process(app: Sphinx, what: str, *args: Any, _inner: Any = listener.handler) -> None:
                if what not in {"attribute", "data", "property"}:
                    _inner(app, what, *args)

            app.connect("autodoc-process-docstring", process, priority=listener.priority)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("trainlab_api_modules", [], "env", [list])
    app.add_directive("trainlab-options", OptionsTable)
    app.connect("config-inited", copy_notebooks)
    app.connect("env-check-consistency", check_api_coverage)
    app.connect("builder-inited", skip_napoleon_for_attributes)
    app.connect("autodoc-process-docstring", document_reexported_data)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
