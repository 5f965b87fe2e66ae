"""The notebooks in JupyterLab, in a real browser: Debian's chromium driven by Playwright.

A JupyterLab server is started on 127.0.0.1 with a token, over a copy of notebooks/;
each notebook is opened, run top to bottom (Run > Run All Cells) and checked as a user
sees it: no error output, every widget rendered (not "Loading widget", not "Error
displaying widget"), the inventory explorer's search changes its table, and once the
notebook is saved, its kernel ended and the page reloaded (the saved file opened again,
as another day would) no cell shows a widget error. Screenshots of
the key views go to the test's temporary directory, and to ``$TRAINLAB_SCREENSHOTS``
when it is set (docs/images/ holds the ones the README shows).

Needs chromium (``apt-get install -y chromium``) and the dev extra (JupyterLab,
Playwright: ``pip install -e '.[dev]'``); Playwright drives the installed chromium
through ``executable_path`` and downloads no browser.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import _need_sshd

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_HINT = "apt-get install -y chromium"
# Settings a fresh JupyterLab would ask or defer: render every cell (no windowing, so the
# whole notebook is in the page), and no news prompt over the screenshots.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
RUN_LIMIT = 240.0  # seconds a notebook may take to run in the page
# Cells whose output is meant to stay a live widget: without their kernel (the saved file
# opened another day) JupyterLab shows "model not found" for them unless its setting
# "Save Widget State Automatically" kept their state in the file.
LIVE_WIDGETS = {"01_quickstart.ipynb": 1, "02_ec2_inventory.ipynb": 1}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.notebook,
    pytest.mark.ssh,
    pytest.mark.aws,
    pytest.mark.rest,
    pytest.mark.slow,
    pytest.mark.timeout(420),
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(f"these tests need a chromium browser, which is not installed: {CHROMIUM_HINT}")
    return found


@dataclass
class Lab:
    url: str
    token: str
    root: Path

    def page_url(self, notebook: str) -> str:
        # reset: a fresh workspace, so the notebook of an earlier test is not opened beside it
        return f"{self.url}/lab/tree/{notebook}?reset&token={self.token}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 over a copy of notebooks/, stopped by its pid."""
    _need_sshd()
    try:
        import jupyterlab  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"these tests need JupyterLab and Playwright: pip install -e '.[dev]' ({exc})")
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    shutil.copytree(ROOT / "notebooks", root)
    settings = base / "settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
    }
    log = open(base / "lab.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--allow-root",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"JupyterLab did not start: {(base / 'lab.log').read_text()[-2000:]}"
                    )
                time.sleep(0.2)
        yield Lab(url, token, root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def shoot(page: Any, name: str, tmp_path: Path, *, locator: Any = None) -> None:
    """A screenshot into the test's directory, and into $TRAINLAB_SCREENSHOTS if set."""
    for folder in filter(None, [str(tmp_path), os.environ.get("TRAINLAB_SCREENSHOTS")]):
        path = Path(folder) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        (locator or page).screenshot(path=str(path))


def open_notebook(page: Any, lab: Lab, name: str) -> None:
    page.goto(lab.page_url(name))
    page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached", timeout=60_000)
    wait_idle(page, 60)


def wait_idle(page: Any, limit: float) -> None:
    """Until the kernel says Idle in the status bar."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
        ".some(e => /\\| Idle$/.test(e.textContent.trim()))",
        timeout=limit * 1000,
    )


def run_all(page: Any) -> None:
    """Run > Run All Cells, then wait until every code cell has an execution count."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    # Done when every code cell has run, or when one failed (Run All stops there).
    page.wait_for_function(
        "() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
        ".map(e => e.textContent.trim());"
        " const failed = document.querySelector("
        "'.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.error\"]');"
        " return failed || (p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t))); }",
        timeout=RUN_LIMIT * 1000,
    )
    wait_idle(page, 60)


def errors_shown(page: Any) -> list[str]:
    return page.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
    ).all_inner_texts()


def widget_problems(page: Any, settle: float = 20.0) -> list[str]:
    """Widget outputs that are not rendered: loading ones are given ``settle`` seconds."""
    deadline = time.monotonic() + settle
    while True:
        body = page.locator("#main").inner_text()
        problems = [line for line in body.splitlines() if "Error displaying widget" in line]
        loading = [line for line in body.splitlines() if "Loading widget" in line]
        if problems or not loading or time.monotonic() > deadline:
            return problems + loading
        time.sleep(0.5)


def shut_down_kernels(lab: Lab) -> None:
    """End every kernel session, as closing JupyterLab and coming back another day does."""
    with urllib.request.urlopen(f"{lab.url}/api/sessions?token={lab.token}", timeout=10) as answer:
        sessions = json.load(answer)
    for session in sessions:
        request = urllib.request.Request(
            f"{lab.url}/api/sessions/{session['id']}?token={lab.token}", method="DELETE"
        )
        with urllib.request.urlopen(request, timeout=30):
            pass


def save_and_reopen(page: Any, lab: Lab) -> None:
    """Save the notebook, end its kernel and open it again: what the saved file shows."""
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => !document.querySelector('.jp-mod-current .jp-mod-dirty')", timeout=30_000
    )
    shut_down_kernels(lab)
    page.reload()
    page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached", timeout=60_000)
    with contextlib.suppress(Exception):  # the kernel may be gone (the notebook's cleanup)
        wait_idle(page, 30)


NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
# The section each notebook's screenshot starts at (its heading, scrolled to the top).
KEY_VIEWS = {
    "01_quickstart.ipynb": "What did the kept connection save?",
    "02_ec2_inventory.ipynb": "Questions are one line of pandas",
    "03_benchmark_report.ipynb": "One table, one page to share",
    "04_fleet.ipynb": "The report",
    "05_powershell.ipynb": "Remoting over SSH",
}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab_and_reopens_clean(
    page: Any, lab: Lab, name: str, tmp_path: Path
) -> None:
    open_notebook(page, lab, name)
    try:
        run_all(page)
    except Exception:
        shoot(page, name.removesuffix(".ipynb") + "-stuck", tmp_path)
        raise
    assert errors_shown(page) == [], f"{name} shows an error"
    assert widget_problems(page) == [], f"{name} has widgets that did not render"
    heading = page.locator(".jp-MarkdownOutput h2", has_text=KEY_VIEWS[name]).first
    heading.evaluate("e => e.scrollIntoView({block: 'start'})")
    shoot(page, name.removesuffix(".ipynb"), tmp_path)
    if name.startswith("02"):
        check_explorer(page, tmp_path)
    page.reload()  # the same kernel: every widget comes back, live
    page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached", timeout=60_000)
    assert widget_problems(page) == [], f"{name}, reloaded, has widgets that did not render"
    save_and_reopen(page, lab)
    problems = widget_problems(page, settle=10.0)
    errors = [p for p in problems if "Error displaying widget" in p]
    # Only the widgets meant to stay live (the dashboard, the explorer) need their kernel;
    # every progress bar left a line of text behind.
    assert len(errors) <= LIVE_WIDGETS.get(name, 0), (
        f"{name}, saved and opened with a new kernel, shows widget errors: {problems}"
    )


def check_explorer(page: Any, tmp_path: Path) -> None:
    """The explorer's search box filters the table it shows."""
    search = page.get_by_placeholder("any cell contains...")
    assert search.count() == 1
    explorer = page.locator(".jp-OutputArea-output").filter(has=search)
    before = explorer.locator("table tbody tr").count()
    assert before > 0
    search.fill("eu-west-1")
    search.press("Enter")
    page.wait_for_function(
        "([n]) => { const i = document.querySelector("
        "'input[placeholder=\"any cell contains...\"]');"
        " const o = i.closest('.jp-OutputArea-output');"
        " const rows = o.querySelectorAll('table tbody tr').length; return rows !== n; }",
        arg=[before],
        timeout=20_000,
    )
    after = explorer.locator("table tbody tr").count()
    assert 0 < after < before, (before, after)
    explorer.scroll_into_view_if_needed()
    shoot(page, "explorer", tmp_path, locator=explorer)
