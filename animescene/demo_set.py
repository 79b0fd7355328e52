"""A tiny offline photo/cartoon dataset for smoke runs and first experiments: :func:`make_demo_set`.

It writes ``OUT/photos`` and ``OUT/cartoons`` (PNG, a given short side) and ``OUT/SOURCES.txt`` naming
each file's origin and licence. It needs no network:

- photos: the colour photos that ship with scikit-image (astronaut, coffee, chelsea, rocket, Hubble deep
  field, immunohistochemistry; public domain or CC0), its ``camera`` (CC0, greyscale) and matplotlib's
  ``grace_hopper.jpg`` (public domain), plus up to ``shared_photos`` Kodak photos from the course's
  shared data folder when it is there;
- cartoons: frames of Big Buck Bunny (CC BY 3.0, a 3D cartoon; its ``ATTRIBUTION.txt`` is copied) from
  the shared data folder when it is there. Otherwise, or with ``use_shared=False``, STAND-IN cartoons
  made from the packaged photos (mirrored, then SLIC superpixels painted with their mean colour and dark
  Canny edges drawn over them). Those are flat-coloured like cartoons but are not cartoons: good for
  checking that training runs, useless for judging what it learns.

The shared folder's anime film frames are copyrighted and are never used here. From the command line:
``python -m data_scripts.make_demo_set --out demo/ --short-side 320``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import torch

from .data import resize_short_side
from .images import list_images, read_image, to_tensor, to_uint8, write_image
from .runtime import shared_data_dir

_SKIMAGE = (
    ("astronaut", "public domain (NASA), via scikit-image"),
    ("coffee", "CC0 (Rachel Michetti), via scikit-image"),
    ("chelsea", "CC0 (Stefan van der Walt), via scikit-image"),
    ("rocket", "public domain (SpaceX), via scikit-image"),
    ("hubble_deep_field", "public domain (NASA), via scikit-image"),
    ("immunohistochemistry", "no known copyright restrictions (CMMI), via scikit-image"),
    ("camera", "CC0 (Lav Varshney), via scikit-image"),
)
_BBB_CREDIT = "CC BY 3.0 - Big Buck Bunny (c) 2008 Blender Foundation, www.bigbuckbunny.org"


def packaged_photos() -> list[tuple[str, torch.Tensor, str, str]]:
    """``(name, (1, 3, H, W) image, origin, licence)`` of each photo that scikit-image and matplotlib ship."""
    import matplotlib.cbook
    import skimage.data

    photos = [
        (name, to_tensor(getattr(skimage.data, name)()), f"skimage.data.{name}()", licence)
        for name, licence in _SKIMAGE
    ]
    hopper = read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    origin = "matplotlib sample_data/grace_hopper.jpg"
    photos.append(("grace_hopper", hopper, origin, "public domain (US Navy)"))
    return photos


def stand_in_cartoon(image: np.ndarray, segments: int = 150) -> np.ndarray:
    """A cartoon-like ``(H, W, 3)`` uint8 image: superpixels in their mean colour, with dark edges."""
    from skimage.color import label2rgb
    from skimage.segmentation import slic

    labels = slic(image, n_segments=segments, compactness=10, start_label=0)
    flat = label2rgb(labels, image, kind="avg", bg_label=-1).astype(np.uint8)
    # blurred first, so that fine texture (wood grain, grass) does not become a scribble of lines
    edges = cv2.Canny(cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (5, 5), 0), 60, 150)
    edges = cv2.dilate(edges, np.ones((2, 2), np.uint8)) > 0
    flat[edges] = (flat[edges] * 0.2).astype(np.uint8)
    return flat


def _manifest_licences(shared: Path) -> dict[str, tuple[str, str]]:
    """``{path: (source, licence)}`` from the shared folder's MANIFEST.tsv (empty when it has none)."""
    manifest = shared / "MANIFEST.tsv"
    if not manifest.is_file():
        return {}
    rows = [line.split("\t") for line in manifest.read_text(encoding="utf-8").splitlines()[1:]]
    return {row[0]: (row[4], row[5]) for row in rows if len(row) >= 6}


def make_demo_set(out, *, short_side=320, use_shared=True, shared_photos=8, max_cartoons=12) -> list[str]:
    """Write the demo set into the folder ``out`` (see the module docstring); return the lines of SOURCES.txt.

    Args:
        out: the folder; its ``photos`` and ``cartoons`` subfolders are replaced.
        short_side: the short side of every image, in pixels.
        use_shared: take Kodak photos and Big Buck Bunny frames from the shared data folder when it is
            there (otherwise stand-in cartoons).
        shared_photos: Kodak photos to take at most.
        max_cartoons: cartoons to write at most.
    """
    out = Path(out)
    for sub in ("photos", "cartoons"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    sources = [
        "animescene demo set: tiny, for smoke runs. file<TAB>origin<TAB>licence",
        "Share it only under the licences below.",
    ]

    def save(sub, name, image, origin, licence):
        write_image(out / sub / f"{name}.png", resize_short_side(image, short_side).clamp(-1, 1))
        sources.append(f"{sub}/{name}.png\t{origin}\t{licence}")

    packaged = packaged_photos()
    for name, image, origin, licence in packaged:
        save("photos", name, image, origin, licence)

    shared = shared_data_dir() if use_shared else None
    licences = _manifest_licences(shared) if shared is not None else {}
    kodak = shared / "photos" / "kodak24" if shared is not None else None
    if kodak is not None and kodak.is_dir() and shared_photos > 0:
        files = list_images(kodak)
        for path in files[:: max(1, len(files) // shared_photos)][:shared_photos]:
            unknown = (str(path), "see the shared MANIFEST.tsv")
            origin, licence = licences.get(f"photos/kodak24/{path.name}", unknown)
            save("photos", f"kodak_{path.stem}", read_image(path), origin, licence)

    bunny = shared / "cartoon" / "bigbuckbunny" if shared is not None else None
    if bunny is not None and bunny.is_dir():
        files = list_images(bunny)
        for path in files[:: max(1, len(files) // max_cartoons)][:max_cartoons]:
            origin = licences.get(f"cartoon/bigbuckbunny/{path.name}", (path.name,))[0]
            save("cartoons", path.stem, read_image(path), origin, _BBB_CREDIT)
        if (bunny / "ATTRIBUTION.txt").is_file():
            shutil.copyfile(bunny / "ATTRIBUTION.txt", out / "cartoons" / "ATTRIBUTION.txt")
    else:
        for name, image, origin, licence in packaged[:max_cartoons]:
            # mirrored, so that no cartoon is a filtered copy of a photo pixel for pixel
            cartoon = stand_in_cartoon(to_uint8(resize_short_side(image.flip(-1), short_side).clamp(-1, 1)))
            save("cartoons", f"standin_{name}", to_tensor(cartoon), f"STAND-IN made from {origin}", licence)

    (out / "SOURCES.txt").write_text("\n".join(sources) + "\n", encoding="utf-8")
    return sources
