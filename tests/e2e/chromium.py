"""What the browser tests share: where Chromium is and how it starts, a free port, stopping a server.

Each test module skips itself at import when playwright or Chromium is missing, so that its servers
are never started for nothing; ``conftest.py`` launches Chromium once per module (``browser``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# no sandbox (root in CI), and nothing that reaches for the network: this machine has none
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
NO_CHROMIUM = "Chromium is not installed (apt-get install chromium, or run `make e2e` as root)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Terminate a server, and kill it if it has not exited 30 s later."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def save_picture(screenshot: Path, destination: Path, max_bytes: int = 400_000) -> Path:
    """Copy a screenshot to a picture of the docs (``make screenshots``): an optimised PNG, stored with a
    dithered 256-colour palette when it would be larger than ``max_bytes`` (photos do not compress)."""
    from PIL import Image

    with Image.open(screenshot) as image:
        image = image.convert("RGB")
    image.save(destination, optimize=True)
    if destination.stat().st_size > max_bytes:
        palette = image.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(destination, optimize=True)
    return destination
