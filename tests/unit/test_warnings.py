"""Every warning trainlab defines or emits is a ``TrainlabWarning``: one filter covers them all."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

import trainlab
from trainlab.errors import TrainlabWarning

PACKAGE = Path(trainlab.__file__).parent
# Categories from the standard library that keep their meaning: a deprecation is shown,
# by Python's default filters, only to the code that imports the deprecated name.
STANDARD = {"DeprecationWarning"}


def _module_names() -> list[str]:
    found = pkgutil.walk_packages(trainlab.__path__, prefix="trainlab.")
    return sorted(info.name for info in found)


def _load(name: str) -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # trainlab._dask says it is one
        return importlib.import_module(name)


def _source(module: ModuleType) -> ast.Module:
    return ast.parse(Path(inspect.getfile(module)).read_text(encoding="utf-8"))


def test_the_walk_sees_the_whole_package() -> None:
    names = _module_names()
    assert len(names) == len(set(names)) > 50
    assert {"trainlab.errors", "trainlab.fleet.targets", "trainlab.transports.rest"} <= set(names)
    assert "trainlab.transports.ssh.hostkeys" in names  # subpackages too


def _defined_warnings() -> dict[str, type[Warning]]:
    """Every warning class a trainlab module defines, by its dotted name."""
    defined: dict[str, type[Warning]] = {}
    for name in _module_names():
        for value in vars(_load(name)).values():
            if (
                inspect.isclass(value)
                and issubclass(value, Warning)
                and value.__module__.startswith("trainlab")
            ):
                defined[f"{value.__module__}.{value.__qualname__}"] = value
    return defined


def test_every_warning_class_trainlab_defines_is_a_trainlab_warning() -> None:
    defined = _defined_warnings()
    outside = sorted(n for n, cls in defined.items() if not issubclass(cls, TrainlabWarning))
    assert outside == []
    assert all(issubclass(cls, UserWarning) for cls in defined.values())  # filters by that hold
    assert {
        "trainlab.errors.StrayOutputWarning",
        "trainlab.transports.ssh.hostkeys.InsecureHostKeyWarning",
        "trainlab.transports.rest.InsecureTLSWarning",
        "trainlab.fleet.targets.FleetWarning",
        "trainlab.aws.inventory.PartialInventoryWarning",
    } <= set(defined)


def test_every_warning_class_is_reachable_from_the_top_level() -> None:
    """As the errors are: ``except trainlab.X`` and ``warnings.simplefilter(..., trainlab.X)``
    need no module path."""
    defined = _defined_warnings()
    assert len(defined) >= 6
    unreachable = sorted(
        dotted
        for dotted, cls in defined.items()
        if cls.__name__ not in trainlab.__all__ or getattr(trainlab, cls.__name__, None) is not cls
    )
    assert unreachable == []


def test_a_warning_at_the_top_level_leaves_import_trainlab_light() -> None:
    """The warnings beside paramiko, requests and boto3 load with them, on first use."""
    code = (
        "import sys, trainlab\n"
        "light = not {'paramiko', 'requests', 'boto3'} & {m.split('.')[0] for m in sys.modules}\n"
        "print(light, trainlab.InsecureHostKeyWarning.__module__, 'paramiko' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "trainlab.transports.ssh.hostkeys", "True"]


def test_no_warning_class_hides_inside_a_function() -> None:
    """The walk above sees module-level classes only: one defined in a body would escape it."""
    hidden = []
    for name in _module_names():
        tree = _source(_load(name))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and id(node) not in top:
                bases = [ast.unparse(base) for base in node.bases]
                if node.name.endswith("Warning") or any(b.endswith("Warning") for b in bases):
                    hidden.append(f"{name}.{node.name}")
    assert hidden == []


def _warn_categories(tree: ast.Module) -> list[tuple[int, str | None]]:
    """Each ``warnings.warn`` call's category name (None: the default, ``UserWarning``)."""
    found: list[tuple[int, str | None]] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "warn"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "warnings"
        ):
            continue
        given = [k.value for k in node.keywords if k.arg == "category"] + node.args[1:2]
        if not given and node.args and isinstance(node.args[0], ast.Call):
            given = [node.args[0].func]  # warnings.warn(SomeWarning("..."))
        found.append((node.lineno, ast.unparse(given[0]) if given else None))
    return found


def _resolve(module: ModuleType, tree: ast.Module, name: str) -> object:
    """``name`` as the module sees it: a global, or imported inside a function."""
    if hasattr(module, name):
        return getattr(module, name)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return getattr(importlib.import_module(node.module), alias.name, None)
    return None


def test_every_warning_trainlab_emits_is_a_trainlab_warning() -> None:
    stray: list[str] = []
    calls = 0
    for name in _module_names():
        module = _load(name)
        tree = _source(module)
        for line, category in _warn_categories(tree):
            calls += 1
            if category in STANDARD:
                continue
            resolved = None if category is None else _resolve(module, tree, category)
            if not (inspect.isclass(resolved) and issubclass(resolved, TrainlabWarning)):
                stray.append(f"{name}:{line} warns with {category or 'UserWarning (default)'}")
    assert stray == []
    assert calls >= 8  # the scan found the package's warnings.warn calls


@pytest.mark.parametrize(
    "source",
    [
        "import warnings\nwarnings.warn('x')\n",
        "import warnings\nwarnings.warn('x', UserWarning)\n",
        "import warnings\nwarnings.warn('x', category=RuntimeWarning)\n",
    ],
)
def test_the_scan_catches_a_plain_warning(source: str) -> None:
    [(_, category)] = _warn_categories(ast.parse(source))
    assert category not in STANDARD
    assert not (
        category is not None
        and inspect.isclass(getattr(trainlab.errors, category, None))
        and issubclass(getattr(trainlab.errors, category), TrainlabWarning)
    )
