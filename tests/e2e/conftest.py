"""The ``browser`` fixture: headless Chromium through playwright, once per test module."""

from __future__ import annotations

import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS, NO_CHROMIUM


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
