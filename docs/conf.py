"""Sphinx configuration of the trainlab documentation site.

Pages are MyST Markdown, the notebooks in ``notebooks/`` are the tutorials (executed at
build time by myst-nb), and the API reference comes from the docstrings (autodoc with
napoleon, which reads their numpydoc sections). ``_ext/trainlab_docs.py`` renders the
transports' declared options and checks that the reference covers the public API.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent), str(DOCS / "_ext")]

import trainlab  # noqa: E402 - after the path is set, so the checkout's trainlab is documented

project = "trainlab"
author = "the trainlab authors"
copyright = "the trainlab authors"
release = version = trainlab.__version__

extensions = [
    "myst_nb",  # MyST Markdown pages and the notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "trainlab_docs",
]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path: list[str] = []

# -- MyST and the notebooks -------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links resolve, and are checked
# TRAINLAB_DOCS_EXECUTE=off renders the notebooks without running them (to edit prose fast);
# the default runs them once and keeps their outputs in the build's cache until they change.
nb_execution_mode = os.environ.get("TRAINLAB_DOCS_EXECUTE", "cache")
nb_execution_timeout = 300
nb_execution_raise_on_error = True  # a failing cell fails the build, with its traceback
nb_execution_show_tb = True
nb_execution_in_temp = True  # 03_benchmark_report writes its report into the working directory
nb_merge_streams = True

# -- The API reference ------------------------------------------------------------------------
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"  # types beside each parameter; signatures stay short
autodoc_typehints_description_target = "documented"
autodoc_preserve_defaults = True
autosummary_generate = False  # the reference pages are written out; tables only link
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False

# Strict cross-references (sphinx-build -n), except to libraries whose inventories a build
# without network cannot fetch, and typing names that are not documented objects.
nitpicky = True
nitpick_ignore_regex = [
    ("py:.*", r"(pandas|pd|np|numpy|matplotlib|paramiko|botocore|boto3|requests|urllib3)\..*"),
    ("py:.*", r"(pypsrp|psrpcore|dask|distributed|IPython|ipywidgets|traitlets|pytest)\..*"),
    ("py:.*", r"(collections\.abc|typing|types|pathlib|os|io|subprocess|socket|threading)\..*"),
    ("py:.*", r"(concurrent\.futures|datetime|enum|re|logging|ssl|http|_io)\..*"),
    ("py:.*", r"(Any|Callable|Iterable|Iterator|Mapping|Sequence|ClassVar|Literal|Self|T)"),
    ("py:.*", r"(Path|DataFrame|Series|Figure|Timestamp|PathLike|TextIO|BinaryIO)"),
    ("py:.*", r"(int|float|str|bytes|bool|dict|list|tuple|set|frozenset|object|type|None)"),
    ("py:.*", r"(Exception|BaseException|ValueError|TimeoutError|OSError|UserWarning)"),
    ("py:.*", r"(FileNotFoundError|KeyboardInterrupt|RuntimeError|Warning)"),
    ("py:.*", r"optional|default.*|callable|iterable|mapping|sequence|array-like"),
    ("py:class", r"abc\.ABC"),
    # Bases and helper types that are internal (not in any __all__), shown in signatures.
    ("py:class", r"trainlab\.result\.Items"),
    ("py:class", r"trainlab\.sandbox\.(_base\.Background|proxy\._Relay|sshd\.LoopbackSSH)"),
]

# -- HTML ------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "trainlab"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 7,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"index": [], "getting-started": []}
html_static_path: list[str] = []
html_show_sourcelink = False

# -- What the reference must cover (docs/_ext/trainlab_docs.py checks it) ---------------------
trainlab_api_modules = [
    "trainlab",
    "trainlab.session",
    "trainlab.errors",
    "trainlab.options",
    "trainlab.platform",
    "trainlab.fleet",
    "trainlab.fleet.cooldown",
    "trainlab.fleet.report",
    "trainlab.aws",
    "trainlab.aws.account",
    "trainlab.rest",
    "trainlab.powershell",
    "trainlab.bench",
    "trainlab.report",
    "trainlab.capture",
    "trainlab.tables",
    "trainlab.transports.base",
    "trainlab.transports.local",
    "trainlab.transports.ssh",
    "trainlab.transports.ssm",
    "trainlab.transports.aws",
    "trainlab.transports.rest",
    "trainlab.transports.winrm",
    "trainlab.transports.pwsh",
    "trainlab.transports.pwsh_ssh",
    "trainlab.transports.out_of_process",
    "trainlab.transports.mock",
    "trainlab.transports.retry",
    "trainlab.testing",
    "trainlab.sandbox",
    "trainlab.magics",
    "trainlab.completion",
    "trainlab.widgets",
]
