#!/usr/bin/env python3
"""Measures how the package is laid out: module sizes, imports that cross layers.

    python3 scripts/layout.py

prints each figure the project holds itself to (tests/unit/test_layout.py asserts them):
no module over MAX_LINES lines, no private name (or private module) imported across
packages, no import cycle at module level, and no transport importing a layer above it.
The sandbox (tooling, not the library) is measured but not held to the size limit.
Standard library only: it reads the source with ``ast`` and imports nothing.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trainlab"
MAX_LINES = 800

#: Modules above the transports (they use sessions or are what users call): a transport
#: importing any of them makes the layers point the wrong way.
ABOVE_TRANSPORTS = (
    "trainlab.session",
    "trainlab.rest",
    "trainlab.powershell",
    "trainlab.aws.account",
    "trainlab.fleet",
    "trainlab.bench",
    "trainlab.report",
    "trainlab.plots",
    "trainlab.arguments",
    "trainlab.magics",
    "trainlab.completion",
    "trainlab.widgets",
    "trainlab.cli",
    "trainlab.sandbox",
)


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    #: (imported module, imported name or None, at module level?)
    imports: list[tuple[str, str | None, bool]] = field(default_factory=list)

    @property
    def package(self) -> str:
        return self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]


def modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        text = path.read_text()
        found[name] = Module(name, path, len(text.splitlines()))
    for module in found.values():
        module.imports = read_imports(module, found)
    return found


def read_imports(module: Module, known: dict[str, Module]) -> list[tuple[str, str | None, bool]]:
    """What ``module`` imports: (module, name or None, at module level?); ``known`` tells
    ``from package import submodule`` from ``from module import name``."""
    return list(_imports(ast.parse(module.path.read_text()), module, known))


def _imports(
    tree: ast.Module, module: Module, known: dict[str, Module]
) -> Iterator[tuple[str, str | None, bool]]:
    top_level = {id(node) for node in tree.body}
    type_only = set()
    for node in tree.body:  # `if TYPE_CHECKING:` blocks do not run
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        at_top = id(node) in top_level
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, at_top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package
                anchor = module.package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:  # `from trainlab import framing`: the module itself
                    yield submodule, None, at_top
                else:
                    yield base, alias.name, at_top


def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def oversized(found: dict[str, Module]) -> list[str]:
    return [
        f"{m.name} ({m.lines} lines)"
        for m in found.values()
        if m.lines > MAX_LINES and not m.name.startswith("trainlab.sandbox")
    ]


def private_crossings(found: dict[str, Module]) -> list[str]:
    """Private names imported from another module, and private modules imported from
    outside their package."""
    out = []
    for module in found.values():
        for target, name, _ in module.imports:
            if not target.startswith("trainlab"):
                continue
            if name is not None and _is_private(name):
                out.append(f"{module.name} imports {target}.{name}")
            parts = target.split(".")
            for index, part in enumerate(parts):
                owner = ".".join(parts[:index])
                if _is_private(part) and not (
                    module.name == owner or module.name.startswith(owner + ".")
                ):
                    out.append(f"{module.name} imports the private module {target}")
                    break
    return sorted(set(out))


def cycles(found: dict[str, Module]) -> list[list[str]]:
    """Import cycles among the package's modules, at module level (Tarjan's SCCs)."""
    graph = {
        name: sorted({t for t, _, top in m.imports if top and t in found and t != name})
        for name, m in found.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return out


def upward_from_transports(found: dict[str, Module]) -> list[str]:
    """Imports, at any level, from a transport module into a layer above the transports."""
    out = []
    for module in found.values():
        if not module.name.startswith("trainlab.transports"):
            continue
        for target, _, _ in module.imports:
            if any(target == up or target.startswith(up + ".") for up in ABOVE_TRANSPORTS):
                out.append(f"{module.name} imports {target}")
    return sorted(set(out))


def main() -> int:
    found = modules()
    library = [m for m in found.values() if not m.name.startswith("trainlab.sandbox")]
    biggest = sorted(library, key=lambda m: -m.lines)[:5]
    figures = {
        "modules (outside the sandbox)": len(library),
        "largest": ", ".join(f"{m.name} {m.lines}" for m in biggest),
        f"modules over {MAX_LINES} lines": oversized(found),
        "private names imported across modules": private_crossings(found),
        "module-level import cycles": cycles(found),
        "transport imports of upper layers": upward_from_transports(found),
    }
    for label, value in figures.items():
        if isinstance(value, list):
            print(f"{label}: {len(value)}")
            for item in value:
                print(f"  {item}")
        else:
            print(f"{label}: {value}")
    broken = any(isinstance(v, list) and v for v in figures.values())
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
