"""The course as a student meets it: JupyterLab in a real (headless) Chromium.

Starts JupyterLab on a free loopback port with a token, in smoke mode; opens solved lessons 01 and 07,
runs every cell, and fails on an error output, on a widget that shows "Error displaying widget" or
"Loading widget..." once the kernel is idle, or on a figure cell without an image. In lesson 07 it
changes a β in the widget and checks that the "after" view changes. Screenshots go to the test's
temporary folder.

``ANIMESCENE_E2E_FULL=1`` (what ``make screenshots`` sets for the README's picture of the widget) runs
the lessons in full mode instead, with whatever weights are downloaded, and lesson 07 only up to the
widget's first fine-tuning run (the benchmark and the ONNX export after it take many minutes on a CPU).

Needs Chromium (``apt-get install chromium``; ``make e2e`` installs it when run as root) and the
``playwright`` package; skips with the reason otherwise. Run alone with ``make e2e``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from chromium import CHROMIUM, NO_CHROMIUM, free_port, save_picture, stop

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 600
# full mode for a screenshot of real pictures: lesson 07 runs only up to the widget
FULL = os.environ.get("ANIMESCENE_E2E_FULL", "") not in ("", "0")

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if CHROMIUM is None:
    pytest.skip(NO_CHROMIUM, allow_module_level=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 in smoke mode (full mode with ``FULL``), isolated from the user's
    Jupyter settings."""
    home = tmp_path_factory.mktemp("jupyter")
    # the server works on copies: a run (or an autosave) never writes outputs into the repository
    notebooks = home / "notebooks"
    shutil.copytree(ROOT / "solutions", notebooks / "solutions")
    user_settings = {
        # render every cell (no virtual scrolling), so each output is in the page to be checked
        "notebook-extension/tracker": {"windowingMode": "none"},
        "docmanager-extension/plugin": {"autosave": False},
        "apputils-extension/notification": {"fetchNews": "false"},
    }
    for name, values in user_settings.items():
        path = home / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **{name: value for name, value in os.environ.items() if name != "ANIMESCENE_SMOKE"},
        **({} if FULL else {"ANIMESCENE_SMOKE": "1"}),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }
    log = (home / "lab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}", "--LabApp.expose_app_in_browser=True",
         "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start; its log:\n{(home / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, token
    finally:
        stop(server)
        log.close()


def _open_and_run(browser, lab, notebook: str, until: str | None = None):
    """Open ``notebook`` in JupyterLab, run all cells, wait until the kernel is idle; return the page.

    With ``until``, run only the cells up to and including the first code cell whose source contains it.
    """
    url, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # ?reset: a fresh workspace, so the notebooks of an earlier page are not restored beside this one
    page.goto(f"{url}/lab/tree/{notebook}?reset&token={token}")
    # wait for *this* notebook's kernel: while the page loads, another widget can be the current one
    page.wait_for_function(
        "path => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return w && w.context && w.context.path === path && w.sessionContext"
        " && w.sessionContext.session && w.sessionContext.session.kernel; }",
        arg=notebook,
        timeout=120_000,
    )
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.ready")
    if until is None:
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    else:  # make the cell after it the active one, and run every cell above that
        page.evaluate(
            """until => { const notebook = window.jupyterapp.shell.currentWidget.content;
                const cells = notebook.model.cells;
                for (let i = 0; i < cells.length; i++) {
                    const cell = cells.get(i);
                    if (cell.type === 'code' && cell.sharedModel.getSource().includes(until)) {
                        notebook.activeCellIndex = i + 1;
                        return window.jupyterapp.commands.execute('notebook:run-all-above');
                    }
                }
                throw new Error('no code cell contains ' + until); }""",
            until,
        )
    _wait_idle(page, RUN_TIMEOUT_S)
    return page


def _wait_idle(page, timeout_s: float) -> None:
    """Until the kernel is idle and no cell is queued or running ("[*]"), twice in a row."""
    deadline, quiet = time.monotonic() + timeout_s, 0
    while quiet < 2:
        if time.monotonic() > deadline:
            raise AssertionError(f"the notebook did not finish within {timeout_s} s")
        busy = page.evaluate(
            "() => { const w = window.jupyterapp.shell.currentWidget;"
            " const running = [...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'));"
            " return running || w.sessionContext.session.kernel.status !== 'idle'; }"
        )
        quiet = 0 if busy else quiet + 1
        time.sleep(1.0)


def _cells(page) -> list[dict]:
    """Each code cell: its source, execution count, output types, whether it has image data."""
    return page.evaluate(
        """() => {
            const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
            const out = [];
            for (let i = 0; i < cells.length; i++) {
                const cell = cells.get(i);
                if (cell.type !== 'code') continue;
                const outputs = [];
                for (let j = 0; j < cell.outputs.length; j++) {
                    const o = cell.outputs.get(j);
                    outputs.push({type: o.type, image: 'image/png' in o.data,
                                  widget: 'application/vnd.jupyter.widget-view+json' in o.data,
                                  text: o.type === 'error' ? JSON.stringify(o.toJSON()).slice(0, 2000) : ''});
                }
                out.push({index: i, source: cell.sharedModel.getSource(), count: cell.executionCount, outputs});
            }
            return out;
        }"""
    )


def _image_bytes(page, locator) -> bytes:
    """The bytes an ``<img>`` shows (ipywidgets serves them as a blob: URL), read back in the page."""
    data = page.evaluate(
        "async el => { if (!el.src) return []; const r = await fetch(el.src);"
        " return Array.from(new Uint8Array(await r.arrayBuffer())); }",
        locator.element_handle(),
    )
    return bytes(data)


def _check_notebook(page, until: str | None = None) -> list[dict]:
    """No error output, every cell run, an image per figure cell, every widget rendered.

    With ``until``, only the cells up to the first code cell whose source contains it count.
    """
    cells = _cells(page)
    if until is not None:
        last = next(index for index, cell in enumerate(cells) if until in cell["source"])
        cells = cells[: last + 1]
    errors = [o["text"] for c in cells for o in c["outputs"] if o["type"] == "error"]
    assert not errors, f"error output in the notebook: {errors[0]}"
    unrun = [c["index"] for c in cells if c["count"] is None and c["source"].strip()]
    assert not unrun, f"cells {unrun} did not run"
    figures = [c for c in cells if "plt.show()" in c["source"]]
    blank = [c["index"] for c in figures if not any(o["image"] for o in c["outputs"])]
    assert figures and not blank, f"figure cells without an image: {blank}"
    rendered = page.locator(".jp-OutputArea-output img").count()
    assert rendered >= len(figures), f"{rendered} images on the page for {len(figures)} figure cells"
    page.wait_for_timeout(2000)  # let widget views finish rendering
    # without the widget manager (jupyterlab_widgets) a widget output falls back to its text/plain repr,
    # which shows neither error text below: count the rendered views instead
    widget_outputs = sum(o["widget"] for c in cells for o in c["outputs"])
    views = page.locator(".jp-OutputArea-output .jupyter-widgets").count()
    assert views >= widget_outputs, (
        f"{widget_outputs} widget outputs but {views} rendered widget views (is jupyterlab_widgets installed?)")
    text = page.locator(".jp-Notebook").inner_text()
    for broken in ("Error displaying widget", "Loading widget..."):
        assert broken not in text, f'"{broken}" is shown on the page'
    return cells


def test_lesson_01_runs_in_jupyterlab(browser, lab, tmp_path):
    page = _open_and_run(browser, lab, "solutions/01_guided_filtering.ipynb")
    _check_notebook(page)
    figure = page.locator(".jp-OutputArea-output img").first
    figure.scroll_into_view_if_needed()
    figure.screenshot(path=str(tmp_path / "lesson01_figure.png"))
    page.screenshot(path=str(tmp_path / "lesson01_page.png"))
    assert (tmp_path / "lesson01_figure.png").stat().st_size > 1000


def test_lesson_07_widget_renders_and_reacts_to_a_beta(browser, lab, tmp_path):
    until = "app.run()" if FULL else None  # full mode: up to the widget's first run
    page = _open_and_run(browser, lab, "solutions/07_beta_widget_benchmark.ipynb", until)
    _check_notebook(page, until)
    app = page.locator(".animescene-beta-app").first
    app.scroll_into_view_if_needed()
    after = page.locator(".animescene-after").first
    before_image = _image_bytes(page, after)
    assert len(before_image) > 1000, "the after view shows no image"
    # full mode stopped after one run with White-box's betas: the widget as a student first sees it
    app.screenshot(path=str(tmp_path / "lesson07_widget_first_run.png"))
    # move the tv slider: type a new value into its readout, as a student would
    readout = page.locator(".animescene-beta-tv .widget-readout").first
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("1e6")
    page.keyboard.press("Enter")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while _image_bytes(page, after) == before_image:
        assert time.monotonic() < deadline, "the after view did not change when a beta moved"
        time.sleep(1.0)
    _wait_idle(page, RUN_TIMEOUT_S)
    assert _image_bytes(page, after) != before_image
    app.screenshot(path=str(tmp_path / "lesson07_widget.png"))
    assert (tmp_path / "lesson07_widget.png").stat().st_size > 1000
    if os.environ.get("ANIMESCENE_E2E_SCREENSHOTS"):  # `make screenshots` refreshes the README's picture
        shown = "lesson07_widget_first_run.png" if FULL else "lesson07_widget.png"
        save_picture(tmp_path / shown, Path(os.environ["ANIMESCENE_E2E_SCREENSHOTS"]))
