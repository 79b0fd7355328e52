"""Turn videos into a folder of distinct scene frames for the cartoon domain.

Example:
    python -m data_scripts.extract_frames film1.mp4 film2.mkv --out frames/ --short-side 360

For each video (read with OpenCV) a frame is sampled every ``--every`` seconds and then:

1. scene cuts: a new scene starts where the HSV colour histograms of two consecutive samples differ by
   more than ``--cut-threshold`` (Bhattacharyya distance, 0 = same colours, 1 = disjoint);
2. per scene, ``--per-scene`` samples spread evenly over it are kept (the middle one by default,
   away from fades and transitions at its ends);
3. letterbox bars, rows and columns at the borders that are near-black across the whole frame, are
   cropped; frames that are near-black all over (fades) are dropped;
4. near-duplicates of any frame already kept in this run are dropped: a 64-bit difference hash
   (dHash) within ``--dup-bits`` bits *and* a colour thumbnail within ``--dup-colour`` grey levels
   (dHash sees only brightness gradients, so two flat frames of different colours would otherwise be
   "duplicates");
5. the short side is resized to ``--short-side`` (area averaging when shrinking).

Frames are written as ``<video>_f<frame>.<ext>`` with ``frames.csv`` listing file, video, frame
index, time in seconds, width and height. Mind the rights of the videos you extract from.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass
class Sample:
    """One sampled frame: where it comes from, and its BGR pixels."""

    frame: int
    time: float
    image: np.ndarray


def sample_frames(path, every: float):
    """Yield a :class:`Sample` every ``every`` seconds of the video at ``path``."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise OSError(f"{path}: OpenCV cannot open this video (unknown container or codec?)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0  # some containers report 0
    step = max(1, round(every * fps))
    index = 0
    try:
        while capture.grab():  # grab() skips decoding of the frames we do not sample
            if index % step == 0:
                ok, image = capture.retrieve()
                if ok:
                    yield Sample(index, index / fps, image)
            index += 1
    finally:
        capture.release()


def colour_histogram(image: np.ndarray) -> np.ndarray:
    """A normalised 16x4x4-bin HSV histogram of a BGR image (hue matters most for a scene's look)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [16, 4, 4], [0, 180, 0, 256, 0, 256])
    return cv2.normalize(hist, hist).flatten()


def split_scenes(samples, cut_threshold: float):
    """Group consecutive samples into scenes (lists), cutting where the histogram distance jumps."""
    scene, previous = [], None
    for sample in samples:
        hist = colour_histogram(sample.image)
        cut = previous is not None and cv2.compareHist(previous, hist, cv2.HISTCMP_BHATTACHARYYA) > cut_threshold
        if cut:
            yield scene
            scene = []
        scene.append(sample)
        previous = hist
    if scene:
        yield scene


def spread(items: list, count: int) -> list:
    """``count`` items spread evenly over ``items``, each at the centre of its share (the middle for 1)."""
    count = min(count, len(items))
    return [items[int((i + 0.5) * len(items) / count)] for i in range(count)]


def crop_bars(image: np.ndarray, black_level: int = 24) -> np.ndarray | None:
    """Crop near-black rows/columns at the borders; None when the whole frame is near-black.

    A row (column) is a bar when fewer than 2% of its pixels are brighter than ``black_level``, which
    tolerates compression noise and a stray logo pixel.
    """
    bright = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) > black_level
    rows = np.flatnonzero(bright.mean(axis=1) >= 0.02)
    cols = np.flatnonzero(bright.mean(axis=0) >= 0.02)
    if rows.size == 0 or cols.size == 0:
        return None
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def dhash(image: np.ndarray) -> int:
    """64-bit difference hash: is each pixel of a 9x8 grey thumbnail brighter than its right neighbour."""
    grey = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (9, 8), interpolation=cv2.INTER_AREA)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def thumbnail(image: np.ndarray) -> np.ndarray:
    """An 8x8 colour thumbnail as float32, for the colour half of the duplicate test."""
    return cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32)


class DuplicateFilter:
    """Remembers kept frames; :meth:`is_new` is False for a near-duplicate of one of them."""

    def __init__(self, max_bits: int, max_colour: float):
        self.max_bits, self.max_colour = max_bits, max_colour
        self.kept: list[tuple[int, np.ndarray]] = []

    def is_new(self, image: np.ndarray) -> bool:
        code, thumb = dhash(image), thumbnail(image)
        for other_code, other_thumb in self.kept:
            same_shape = bin(code ^ other_code).count("1") <= self.max_bits
            if same_shape and np.abs(thumb - other_thumb).mean() <= self.max_colour:
                return False
        self.kept.append((code, thumb))
        return True


def resize_short(image: np.ndarray, short_side: int) -> np.ndarray:
    """Resize so the short side is ``short_side``: area averaging to shrink, bicubic to enlarge."""
    height, width = image.shape[:2]
    scale = short_side / min(height, width)
    size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def extract(
    videos,
    out,
    *,
    every: float = 0.5,
    cut_threshold: float = 0.35,
    per_scene: int = 1,
    short_side: int = 360,
    dup_bits: int = 6,
    dup_colour: float = 12.0,
    black_level: int = 24,
    ext: str = "jpg",
) -> list[dict]:
    """Run the whole pipeline (see the module docstring); return the rows written to ``frames.csv``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    duplicates = DuplicateFilter(dup_bits, dup_colour)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == "jpg" else []
    rows = []
    for video in map(Path, videos):
        for scene in split_scenes(sample_frames(video, every), cut_threshold):
            for sample in spread(scene, per_scene):
                image = crop_bars(sample.image, black_level)
                if image is None or not duplicates.is_new(image):
                    continue
                image = resize_short(image, short_side)
                name = f"{video.stem}_f{sample.frame:06d}.{ext}"
                if not cv2.imwrite(str(out / name), image, params):
                    raise OSError(f"{out / name}: OpenCV could not write the frame")
                height, width = image.shape[:2]
                time_s = round(sample.time, 3)
                rows.append(dict(file=name, video=str(video), frame=sample.frame, time_s=time_s, width=width,
                                 height=height))
    with open(out / "frames.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "video", "frame", "time_s", "width", "height"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_scripts.extract_frames",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (frames and frames.csv)")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples (default 0.5)")
    parser.add_argument("--cut-threshold", type=float, default=0.35, help="histogram distance of a cut")
    parser.add_argument("--per-scene", type=int, default=1, help="frames kept per scene (default 1)")
    parser.add_argument("--short-side", type=int, default=360, help="short side of the output frames")
    parser.add_argument("--dup-bits", type=int, default=6, help="dHash bits of a near-duplicate")
    parser.add_argument("--dup-colour", type=float, default=12.0, help="mean colour difference of duplicates")
    parser.add_argument("--black-level", type=int, default=24, help="grey level below which a bar is black")
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg", help="output format (default jpg)")
    args = parser.parse_args(argv)
    if args.every <= 0 or args.per_scene < 1 or args.short_side < 1:
        parser.error("--every, --per-scene and --short-side must be positive")
    missing = [v for v in args.videos if not Path(v).is_file()]
    if missing:
        parser.error(f"no such video file: {', '.join(missing)}")
    try:
        rows = extract(
            args.videos,
            args.out,
            every=args.every,
            cut_threshold=args.cut_threshold,
            per_scene=args.per_scene,
            short_side=args.short_side,
            dup_bits=args.dup_bits,
            dup_colour=args.dup_colour,
            black_level=args.black_level,
            ext=args.format,
        )
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{len(rows)} frames from {len(args.videos)} video(s) -> {args.out} (listed in frames.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
