"""The web demo as a person meets it: ``animescene serve`` in a subprocess, driven in headless Chromium.

Starts the server on a free loopback port with a small random generator in a ``--models`` folder and
an empty weights cache (no official weights: the page must say how to get them); uploads a photo,
waits for the before/after slider, checks that the cartoon has the photo's size and differs from it,
downloads it and compares its pixels with what the library computes; uploads a file that is not an
image and one over ``--max-file-size`` and reads the messages; closes the tab and checks that the
session's files are gone, then stops the server and checks that it left nothing in its ``TMPDIR``.
The page's screenshot goes to the test's temporary folder (and to docs/serve.png when
``ANIMESCENE_E2E_SCREENSHOTS`` is set, as ``make screenshots`` does).

``ANIMESCENE_E2E_FULL=1`` (``make screenshots`` sets it for the README's picture) keeps the user's weights
cache, so the page offers the official weights first when they are downloaded, and uploads a Kodak
photo from the course's data folder instead of the synthetic picture (it skips without that folder).

Same needs and skips as tests/e2e/test_jupyterlab.py: Chromium and the ``playwright`` package.
"""

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from chromium import CHROMIUM, NO_CHROMIUM, free_port, save_picture, stop
import torch
from PIL import Image

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 180_000
# full mode, for a screenshot of real pictures: the downloaded weights and a real photo
FULL = os.environ.get("ANIMESCENE_E2E_FULL", "") not in ("", "0")
FULL_PHOTO = "kodim21.png"  # a lighthouse: large flat regions and clear outlines

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytest.importorskip("gradio", reason="gradio is not installed (pip install 'animescene[serve]')")
if CHROMIUM is None:
    pytest.skip(NO_CHROMIUM, allow_module_level=True)

from animescene.images import read_image, to_uint8  # noqa: E402
from animescene.inference import Cartoonizer  # noqa: E402
from animescene.models import UNetGenerator, save_generator  # noqa: E402
from animescene.runtime import shared_data_dir  # noqa: E402
from animescene.weights import MissingWeightsError  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``animescene serve`` on 127.0.0.1: its URL, its models folder and the TMPDIR it writes into."""
    home = tmp_path_factory.mktemp("serve")
    torch.manual_seed(0)
    save_generator(UNetGenerator(channels=8, num_blocks=1), home / "models" / "tiny.pt", licence="MIT", source="e2e")
    scratch = home / "tmp"
    scratch.mkdir()
    # an empty weights cache (the page must say how to get the official weights), except in full mode
    env = {**os.environ, "TMPDIR": str(scratch), **({} if FULL else {"ANIMESCENE_HOME": str(home / "cache")})}
    log_path = home / "serve.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "animescene", "serve", "--models", str(home / "models"), "--device", "cpu",
         "--port", str(free_port()), "--max-file-size", "1", "--backend", "torch"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 180
        while not (found := re.search(r"open (http://127\.0\.0\.1:\d+/?)", log_path.read_text())):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"animescene serve did not start; its log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": found.group(1), "models": home / "models", "tmp": scratch, "process": process}
    finally:
        stop(process)
        log.close()


def _photo(path: Path) -> Path:
    """A 96x64 picture with flat regions and edges, as a photo has; in full mode a real photo, 576x384."""
    if FULL:
        shared = shared_data_dir()
        if shared is None or not (shared / "photos" / "kodak24" / FULL_PHOTO).is_file():
            pytest.skip(f"full mode needs photos/kodak24/{FULL_PHOTO} in the course's data folder")
        try:
            UNetGenerator.from_weights("official")
        except MissingWeightsError as err:
            pytest.skip(f"full mode needs the official weights: {err}")
        Image.open(shared / "photos" / "kodak24" / FULL_PHOTO).convert("RGB").resize((576, 384), Image.LANCZOS).save(path)
        return path
    rng = np.random.default_rng(0)
    image = np.zeros((64, 96, 3), np.uint8)
    image[:, :48] = (200, 120, 40)
    image[20:50, 30:80] = (30, 90, 210)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(path)
    return path


def _upload(page, *paths: Path) -> None:
    """Put ``paths`` in the upload box (replacing what was there) and wait until they are listed."""
    clear = page.locator("#uploads button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.locator("#uploads input[type=file]").set_input_files([str(p) for p in paths])


def _shown_image(page, img) -> np.ndarray:
    """The pixels an ``<img>`` of the page shows, fetched from its URL in the page."""
    data = page.evaluate(
        "async el => { const r = await fetch(el.src); return Array.from(new Uint8Array(await r.arrayBuffer())); }",
        img.element_handle(),
    )
    return np.asarray(Image.open(io.BytesIO(bytes(data))).convert("RGB"))


def test_the_demo_cartoonizes_an_upload_and_refuses_bad_files(browser, server, tmp_path):
    photo = _photo(tmp_path / (FULL_PHOTO if FULL else "street.png"))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server["url"])
    if not FULL:
        page.get_by_text("animescene download whitebox-official").wait_for()  # no official weights here

    _upload(page, photo)
    page.locator("#uploads").get_by_text(photo.name).wait_for()
    page.locator("#cartoonize").click()
    download_link = page.locator(f"#downloads a[download='{photo.name}']")
    download_link.wait_for()

    before, after = (_shown_image(page, img) for img in page.locator("#compare img").all()[:2])
    # the first model of the list: the official weights in full mode, else the tiny random generator
    weights = "official" if FULL else server["models"] / "tiny.pt"
    expected = to_uint8(Cartoonizer(weights, device="cpu")(read_image(photo)))
    np.testing.assert_array_equal(before, np.asarray(Image.open(photo).convert("RGB")))
    assert after.shape == before.shape == expected.shape
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 5, "the cartoon looks like the photo"
    page.locator("#compare").screenshot(path=str(tmp_path / "compare.png"))
    bottom = page.locator("#downloads").bounding_box()  # the page down to the download box
    page.screenshot(path=str(tmp_path / "serve.png"), clip={"x": 0, "y": 0, "width": 1400,
                                                          "height": bottom["y"] + bottom["height"] + 24})

    with page.expect_download() as download:
        download_link.click()
    saved = tmp_path / "downloaded.png"
    download.value.save_as(saved)
    got = np.asarray(Image.open(saved).convert("RGB"))
    # the server and this process run the same library on the same CPU; allow one grey level of rounding
    assert got.shape == expected.shape and np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert (np.abs(after.astype(int) - expected.astype(int)) <= 1).all(), "the slider does not show the download"

    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    _upload(page, notes)
    page.locator("#uploads").get_by_text("notes.txt").wait_for()
    page.locator("#cartoonize").click()
    page.locator("#message").get_by_text("unsupported file type .txt").wait_for()
    assert "notes.txt" in page.locator("#message").inner_text()

    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (800, 800, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > 1024 ** 2
    _upload(page, big)
    page.get_by_text(re.compile("exceed the maximum allowed size")).first.wait_for()

    sessions = list(server["tmp"].glob("animescene-serve-*/gradio/sessions/*"))
    uploads = list(server["tmp"].glob(f"animescene-serve-*/gradio/*/{photo.name}"))
    assert sessions and uploads, "the session's cartoons and uploads are not in the server's temporary folder"
    page.close()  # the session ends: its uploads and cartoons go
    deadline = time.monotonic() + 60
    while any(path.exists() for path in sessions + uploads):
        assert time.monotonic() < deadline, "closing the tab left the session's files behind"
        time.sleep(0.5)

    if os.environ.get("ANIMESCENE_E2E_SCREENSHOTS"):  # `make screenshots` refreshes the README's picture
        save_picture(tmp_path / "serve.png", ROOT / "docs" / "serve.png")


def test_stopping_the_server_leaves_nothing_behind(server):
    server["process"].terminate()
    assert server["process"].wait(timeout=60) == 0
    assert list(server["tmp"].iterdir()) == [], "animescene serve left files in its TMPDIR"
