"""The documentation site builds strictly, its notebooks executed against the sandbox.

``sphinx-build -W --keep-going -n``: a broken internal link or cross-reference, a missing
page, a docstring that does not render, a public name missing from the API reference
(docs/_ext/trainlab_docs.py) and a notebook cell that fails are all errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import _need_sshd
from trainlab.registry import BUILTIN, transport_class
from trainlab.session import SESSION_OPTIONS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.docs,
    pytest.mark.notebook,
    pytest.mark.ssh,
    pytest.mark.aws,
    pytest.mark.rest,
    pytest.mark.winrm,
    pytest.mark.slow,
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built from scratch, notebooks run (their cache lives beside the output)."""
    _need_sshd()
    out = tmp_path_factory.mktemp("docs") / "html"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRAINLAB_DOCS_EXECUTE": "cache"}
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-n",
            "-q",
            "-b",
            "html",
            "docs",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert build.returncode == 0, f"the docs build failed:\n{build.stderr[-20000:]}"
    return out


def test_every_page_and_tutorial_is_built(site: Path) -> None:
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    for page in (
        "index.html",
        "getting-started.html",
        "fleets.html",
        "security.html",
        "benchmarks.html",
        "transports/powershell.html",
        "api/index.html",
    ):
        assert page in pages
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"tutorials/{notebook.stem}.html" in pages, notebook.name


def test_tutorials_show_outputs_made_at_build_time(site: Path) -> None:
    quickstart = (site / "tutorials" / "01_quickstart.html").read_text()
    assert 'class="cell_output' in quickstart  # committed without outputs: these are new
    assert "Traceback" not in quickstart


def test_option_tables_list_every_declared_option(site: Path) -> None:
    text = "".join(p.read_text() for p in (site / "transports").glob("*.html"))
    for name in SESSION_OPTIONS:
        assert f'<code class="docutils literal notranslate"><span class="pre">{name}' in text
    for scheme in BUILTIN:
        for name in transport_class(scheme).options:
            assert f'<span class="pre">{name}</span>' in text, f"{scheme}://: option {name}"
