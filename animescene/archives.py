"""Archives that cannot write outside their folder: :func:`safe_extract` and its pooch processor.

A downloaded archive is untrusted input. Every member is checked against the whole archive and against
what the destination folder already holds *before* the first byte is written, so a refused archive
leaves the destination exactly as it was. Refused: absolute paths, ``..`` components, links (earlier
members or links already on disk included) that lead outside, zip symlinks, device files and FIFOs.

pooch's own ``Unzip``/``Untar`` are not used: on Python < 3.12 ``Untar`` writes a ``../x`` member and an
absolute symlink as the archive says, so downloads unpack through :class:`SafeExtract` instead.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20
_MAX_LINK_HOPS = 40  # the limit Linux puts on symlinks followed while resolving one path


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the destination folder, or is a device file."""


@dataclass(frozen=True)
class _Member:
    name: str  # normalised relative path
    kind: str  # "file", "dir", "symlink" or "hardlink"
    link: str | None = None  # link target for symlinks and hardlinks


def safe_extract(archive, dest, members=None) -> list[Path]:
    """Extract a zip (wheels included) or tar(.gz/.bz2/.xz) archive into ``dest``; return the extracted paths.

    Before anything is written (``dest`` is not even created), every member is checked: absolute
    paths, ``..`` components, symlinks and hardlinks whose targets leave ``dest`` (also through links
    extracted earlier or already in ``dest``), zip symlinks, device files and FIFOs make the whole
    archive refused with :class:`UnsafeArchiveError`.

    Args:
        archive: the archive file.
        dest: the folder to extract into (created).
        members: names of the members to extract (default: all); a missing name raises ``KeyError``.

    Returns:
        The paths (``dest / name``) of the extracted files and links (not directories), in archive order.
    """
    archive, dest = Path(archive), Path(dest)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = {_normalise(info.filename, archive): info for info in zf.infolist()}
            entries = [_zip_member(name, info, archive) for name, info in infos.items()]
            return _extract(entries, dest, members, archive, lambda name: zf.open(infos[name]))
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            infos = {_normalise(info.name, archive): info for info in tf.getmembers()}
            entries = [_tar_member(name, info, archive) for name, info in infos.items()]
            return _extract(entries, dest, members, archive, lambda name: tf.extractfile(infos[name]))
    raise UnsafeArchiveError(f"{archive}: neither a zip nor a tar archive")


class SafeExtract:
    """A pooch processor that unpacks the downloaded archive with :func:`safe_extract`.

    ``pooch.retrieve(url, known_hash, processor=SafeExtract(folder, members))`` verifies the archive's
    checksum, then returns the list of extracted paths.

    Args:
        extract_dir: the folder to extract into.
        members: names of the members to extract (default: all).
    """

    def __init__(self, extract_dir, members=None):
        self.extract_dir = Path(extract_dir)
        self.members = members

    def __call__(self, fname: str, action: str, pooch) -> list[Path]:
        """pooch's processor call: ``fname`` is the verified archive; ``action`` and ``pooch`` are unused."""
        return safe_extract(fname, self.extract_dir, self.members)


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
        return _Member(name, "dir")
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a symbolic link; zip links are refused")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a special file (mode {mode:o}); refusing")
    return _Member(name, "file")


def _tar_member(name: str, info: tarfile.TarInfo, archive: Path) -> _Member:
    if info.isdir():
        return _Member(name, "dir")
    if info.isfile():
        return _Member(name, "file")
    if info.issym() or info.islnk():
        target = info.linkname.replace("\\", "/")
        if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
            raise UnsafeArchiveError(f"{archive}: link {name!r} -> {info.linkname!r} points outside")
        return _Member(name, "symlink" if info.issym() else "hardlink", target)
    raise UnsafeArchiveError(f"{archive}: member {name!r} is a device file or FIFO; refusing the archive")


class _Layout:
    """``dest`` as it will be once the members planned so far are written: those first, then the disk."""

    def __init__(self, root: Path):
        self.root = root
        self.planned: dict[str, _Member] = {}  # resolved path relative to root -> the member written there

    def kind(self, path: str) -> str | None:
        """"file", "dir", "symlink" or None (nothing) at ``path``, a resolved path relative to the root."""
        if path in self.planned:
            kind = self.planned[path].kind
            return "file" if kind == "hardlink" else kind
        real = self.root / path
        if real.is_symlink():
            return "symlink"
        return "dir" if real.is_dir() else "file" if real.exists() else None

    def resolve(self, path: str) -> str | None:
        """``path`` with every symlink on the way followed, relative to the root; None when it leaves it."""
        done, todo, hops = [], path.split("/"), 0
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not done:
                    return None
                done.pop()
                continue
            here = "/".join([*done, part])
            if self.kind(here) != "symlink":
                done.append(part)
                continue
            planned = self.planned.get(here)
            link = planned.link if planned is not None else os.readlink(self.root / here)
            hops += 1
            if hops > _MAX_LINK_HOPS or os.path.isabs(link):  # a loop, or a link that may lead anywhere
                return None
            todo = link.split("/") + todo
        return "/".join(done)


def _plan(entries: list[_Member], dest: Path, archive: Path) -> list[tuple[_Member, str, str | None]]:
    """``(member, where, source)`` for each member, in order, with every write checked on paper.

    ``where`` is the member's resolved path relative to ``dest`` (the links in its folder followed, so
    writing there follows none); ``source`` is the resolved file a hardlink copies.
    """
    layout, plan = _Layout(dest), []
    for entry in entries:
        if entry.kind == "dir":
            where = layout.resolve(entry.name)
        else:
            parent = layout.resolve(posixpath.dirname(entry.name))
            where = None if parent is None else posixpath.join(parent, posixpath.basename(entry.name))
        if where is None:
            raise UnsafeArchiveError(f"{archive}: member {entry.name!r} would be written outside {dest}")
        if entry.kind != "dir" and layout.kind(where) == "dir":
            raise UnsafeArchiveError(f"{archive}: member {entry.name!r} would replace the folder {where!r}")
        source = None
        if entry.kind == "symlink":
            # resolved from where the link really lies: "d" -> "." makes "d/x" -> ".." escape
            pointed = layout.resolve(posixpath.join(posixpath.dirname(where), entry.link))
            if pointed is None:
                raise UnsafeArchiveError(f"{archive}: link {entry.name!r} -> {entry.link!r} points outside")
        elif entry.kind == "hardlink":
            source = layout.resolve(posixpath.normpath(entry.link))  # tar hardlinks name archive paths
            if source is None:
                raise UnsafeArchiveError(f"{archive}: link {entry.name!r} -> {entry.link!r} points outside")
            if layout.kind(source) != "file":
                raise UnsafeArchiveError(f"{archive}: hardlink {entry.name!r} -> {entry.link!r}: not a file")
        if where:  # "" is dest itself (a "./" member)
            layout.planned[where] = entry
            plan.append((entry, where, source))
    return plan


def _extract(entries: list[_Member], dest: Path, members, archive: Path, open_member) -> list[Path]:
    if members is not None:
        wanted = {posixpath.normpath(m) for m in members}
        missing = wanted - {e.name for e in entries}
        if missing:
            raise KeyError(f"{archive} has no member(s) {sorted(missing)}")
        entries = [e for e in entries if e.name in wanted]
    plan = _plan(entries, dest, archive)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for entry, where, source in plan:
        target = dest / where
        if entry.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        if entry.kind == "symlink":
            os.symlink(entry.link, target)
        elif entry.kind == "hardlink":
            shutil.copyfile(dest / source, target)  # a copy: hardlinks buy nothing here
        else:
            with open_member(entry.name) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        written.append(dest / entry.name)
    return written
