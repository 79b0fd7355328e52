"""Unpaired photo and cartoon images for training (lesson 06), and plain image folders for evaluation.

White-box Cartoonization learns from two piles of images that show different things: photos and
cartoon frames. :class:`UnpairedImages` serves one random ``size x size`` crop of each per item. Its
randomness is a pure function of ``(seed, index)``, never of hidden state, so a trainer that resumes
at item ``k`` gets exactly the crops it would have had, in any process and with any number of
``DataLoader`` workers.

How an item is chosen (``n`` = the size of the pool it is drawn from):

- item ``index`` is a face item with probability ``face_ratio`` (both its photo and its cartoon then
  come from the face folders, as in the reference code, which alternates scenery and face batches);
- within a pool the item takes position ``index % n`` of that pool's permutation for epoch
  ``index // n``; each pool (photos, cartoons, face photos, face cartoons) has its own permutations, so
  the two domains are paired at random and differently in each epoch;
- the crop position and the horizontal flip come from a generator seeded with ``(seed, index)``.

Indices past ``len(dataset)`` are valid and simply continue into later epochs: feed a trainer's global
item counter to it, e.g. ``DataLoader(ds, batch_size=16, sampler=range(16 * step, 16 * steps))``.

:class:`StepSampler` and :class:`StepBatches` are how the trainer feeds it: the batch of step ``k`` of
process ``r`` is a function of ``(seed, k, r)``, so a resumed run draws what it would have drawn.

Unreadable files never stop a run: they are dropped with a warning when the dataset is built, or
when they fail to decode later, and listed in ``dataset.skipped``.
"""

from __future__ import annotations

import operator
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .errors import UsageError
from .images import IMAGE_SUFFIXES, ImageReadError, list_images, read_image

# streams of the seeded generators: one per pool's permutations, one for the per-item draws
_PHOTO, _CARTOON, _FACE_PHOTO, _FACE_CARTOON, _ITEM = range(5)
_POOL_NAMES = ("photo", "cartoon", "face photo", "face cartoon")


class SkippedImageWarning(UserWarning):
    """An unreadable image was left out of a dataset."""


def resize_short_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a ``(B, C, H, W)`` tensor so that its short side is ``size``, keeping the aspect ratio.

    Shrinking uses area averaging (no aliasing); enlarging uses bilinear interpolation.
    """
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    new_size = (max(size, round(height * scale)), max(size, round(width * scale)))
    if new_size == (height, width):
        return image
    if scale < 1:
        return F.interpolate(image, size=new_size, mode="area")
    return F.interpolate(image, size=new_size, mode="bilinear", align_corners=False)


def centre_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """The centred ``size x size`` square of ``(B, C, H, W)`` images resized to short side ``size``.

    Returns ``(B, C, size, size)``, clamped to ``[-1, 1]`` (the interpolation's rounding can step a hair
    outside). This is how inference batches and evaluation bring images of any size to one scale.
    """
    image = resize_short_side(image, size).clamp(-1, 1)
    top, left = (image.shape[-2] - size) // 2, (image.shape[-1] - size) // 2
    return image[..., top : top + size, left : left + size]


def split_by_film_and_time(paths, held_out: float = 0.2, gap: int = 60) -> tuple[list[Path], list[Path]]:
    """Split film frames into ``(train, held_out)`` by film and time, never by random frame.

    Frames of one film look alike for seconds at a time, so a random split puts near-copies of the test
    frames in the training set and measures memory, not style. Here a frame named ``FILM_NNNNN.ext``
    belongs to film ``FILM`` at frame number ``NNNNN``; within each film the last ``held_out`` share of
    its frames (in time, at least one when the film has two or more) are held out, and training frames
    closer than ``gap`` frame numbers to the first held-out one are dropped, so that no shot is on both
    sides. A file without a trailing number is its own film (always trained on).

    Args:
        paths: image files.
        held_out: share of each film's frames to hold out, in ``[0, 1)``.
        gap: frame numbers left out between the two parts of a film.

    Example:
        >>> names = [Path(f"totoro_{n:05d}.jpg") for n in (10, 200, 400, 600, 800)]
        >>> train, test = split_by_film_and_time(names, held_out=0.2, gap=100)
        >>> [p.stem for p in train], [p.stem for p in test]
        (['totoro_00010', 'totoro_00200', 'totoro_00400'], ['totoro_00800'])
    """
    if not 0.0 <= float(held_out) < 1.0:
        raise UsageError(f"held_out must lie in [0, 1) (a share of each film's frames), got {held_out}")
    films: dict[str, list[tuple[int, Path]]] = {}
    for path in map(Path, paths):
        film, _, number = path.stem.rpartition("_")
        key, frame = (film, int(number)) if film and number.isdigit() else (path.stem, 0)
        films.setdefault(key, []).append((frame, path))
    train, test = [], []
    for frames in films.values():
        frames.sort()
        count = max(1, round(len(frames) * held_out)) if held_out and len(frames) > 1 else 0
        if not count:
            train += [p for _, p in frames]
            continue
        first = frames[-count][0]
        test += [p for _, p in frames[-count:]]
        train += [p for n, p in frames[:-count] if n < first - gap]
    return sorted(train), sorted(test)


class UnpairedImages(Dataset):
    """Random crops of unpaired photos and cartoons, reproducible from ``(seed, index)``.

    Args:
        photo_dirs: folder(s) of (scenery) photos.
        cartoon_dirs: folder(s) of (scenery) cartoon frames.
        size: side of the square crops; images with a shorter side are first enlarged to it.
        face_photo_dirs, face_cartoon_dirs: folders of faces, needed when ``face_ratio > 0``.
        face_ratio: share of items drawn from the face folders (the thesis mixes 10k scenery and 5k
            face images per domain, about 1/3).
        seed: a non-negative integer; with ``index`` it fixes every random choice.
        flip: flip each crop horizontally with probability 1/2.
        hold_out: share of each film's last frames kept out of the cartoons
            (:func:`split_by_film_and_time`), to measure the style on frames the model never saw.

    ``dataset[index]`` is ``(photo, cartoon)``, each a ``(3, size, size)`` float32 RGB tensor in
    ``[-1, 1]``. ``len(dataset)`` is one epoch: the larger of the photo and cartoon pools.

    Attributes:
        skipped: the unreadable files left out so far. A ``DataLoader`` worker keeps its own copy, so
            files found broken inside workers are reported by their warnings only.

    Example:
        >>> ds = UnpairedImages("photos", "cartoons", size=256, seed=0)  # doctest: +SKIP
        >>> photo, cartoon = ds[123]                                     # same tensors every time
    """

    def __init__(
        self,
        photo_dirs,
        cartoon_dirs,
        size: int = 256,
        *,
        face_photo_dirs=(),
        face_cartoon_dirs=(),
        face_ratio: float = 0.0,
        seed: int = 0,
        flip: bool = True,
        hold_out: float = 0.0,
    ):
        if int(size) < 1:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        if not 0.0 <= face_ratio <= 1.0:
            raise ValueError(f"face_ratio must lie in [0, 1], got {face_ratio}")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        self.size, self.face_ratio, self.seed, self.flip = int(size), float(face_ratio), int(seed), flip
        self.skipped: list[Path] = []
        pools = [(photo_dirs, "photo"), (cartoon_dirs, "cartoon")]
        if face_ratio > 0:
            pools += [(face_photo_dirs, "face photo"), (face_cartoon_dirs, "face cartoon")]
        self._pools = [_scan(dirs, what, self.skipped) for dirs, what in pools]
        if hold_out:
            self._pools[_CARTOON] = split_by_film_and_time(self.cartoons, hold_out)[0]
            if not self.cartoons:
                raise UsageError(f"hold_out={hold_out} leaves no cartoon to train on; lower it or add frames")
        self._broken: set[Path] = set()
        self._permutations: dict[tuple[int, int], np.ndarray] = {}

    @property
    def photos(self) -> list[Path]:
        """The readable scenery photos (face photos excluded)."""
        return self._pools[_PHOTO]

    @property
    def cartoons(self) -> list[Path]:
        """The readable scenery cartoons (face cartoons excluded)."""
        return self._pools[_CARTOON]

    def __len__(self) -> int:
        return max(len(self.photos), len(self.cartoons))

    def __getitem__(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        index = operator.index(index)
        if index < 0:
            raise IndexError(f"index must be >= 0 (indices past len() go on into later epochs), got {index}")
        draws = _generator(self.seed, _ITEM, index).random(7)
        face = draws[0] < self.face_ratio
        photo = self._crop(_FACE_PHOTO if face else _PHOTO, index, draws[1:4])
        cartoon = self._crop(_FACE_CARTOON if face else _CARTOON, index, draws[4:7])
        return photo, cartoon

    def _crop(self, pool: int, index: int, draws: np.ndarray) -> torch.Tensor:
        image = self._load(pool, index)
        if min(image.shape[-2:]) < self.size:
            image = resize_short_side(image[None], self.size)[0].clamp_(-1, 1)
        height, width = image.shape[-2:]
        top = int(draws[0] * (height - self.size + 1))
        left = int(draws[1] * (width - self.size + 1))
        crop = image[:, top : top + self.size, left : left + self.size]
        if self.flip and draws[2] < 0.5:
            crop = crop.flip(-1)
        return crop.contiguous()

    def _load(self, pool: int, index: int) -> torch.Tensor:
        """``(3, H, W)`` image for ``index`` from ``pool``; a file that fails gives way to the next one."""
        files = self._pools[pool]
        epoch, position = divmod(index, len(files))
        order = self._permutation(pool, epoch, len(files))
        for step in range(len(files)):
            path = files[order[(position + step) % len(files)]]
            if path in self._broken:
                continue
            try:
                return read_image(path)[0]
            except ImageReadError as err:
                warnings.warn(f"skipped from now on: {err}", SkippedImageWarning, 3)  # err names the file
                self._broken.add(path)
                self.skipped.append(path)
        what = _POOL_NAMES[pool]
        raise RuntimeError(f"none of the {len(files)} {what} images decodes any more; check the folders")

    def _permutation(self, pool: int, epoch: int, n: int) -> np.ndarray:
        key = (pool, epoch)
        if key not in self._permutations:
            if len(self._permutations) >= 8:  # a cache for the current epochs, not a history
                self._permutations.clear()
            self._permutations[key] = _generator(self.seed, pool, epoch).permutation(n)
        return self._permutations[key]


class ImageFolderDataset(Dataset):
    """The images of one or more folders, in name order, for inference and evaluation.

    Args:
        dirs: folder(s) of images (unreadable files are left out with a warning, see ``skipped``).
        size: None serves each image whole (batch size 1 then, as sizes differ); an int resizes the
            short side to ``size`` and takes the centred ``size x size`` square.

    ``dataset[i]`` is ``(image, path)``: a ``(3, H, W)`` float32 RGB tensor in ``[-1, 1]`` and the
    file's path as a string (strings batch into lists in a ``DataLoader``).
    """

    def __init__(self, dirs, size: int | None = None):
        if size is not None and int(size) < 1:
            raise ValueError(f"size must be None or a positive number of pixels, got {size}")
        self.size = size
        self.skipped: list[Path] = []
        self.files = _scan(dirs, "image", self.skipped)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        path = self.files[index]
        image = read_image(path)
        if self.size is not None:
            image = centre_square(image, self.size)
        return image[0].contiguous(), str(path)


class StepSampler(Sampler):
    """An endless index stream for one process that starts at any step: the data order is a function of
    ``(seed, step, rank)`` only, which is what makes a resumed run draw the batches it would have drawn.

    Each epoch is a ``DistributedSampler`` permutation (disjoint shards per rank, reshuffled by
    ``set_epoch``); indices are offset by ``epoch * length`` so that :class:`UnpairedImages` draws fresh
    crops every epoch.

    Args:
        length: ``len(dataset)``.
        batch_size: items per step and process.
        start_step: the step whose batch comes first.
        rank, world_size: this process and the number of processes.
        seed: the shuffling seed.
    """

    def __init__(self, length: int, batch_size: int, start_step: int, rank: int, world_size: int, seed: int):
        self.length, self.batch_size, self.start_step = length, batch_size, start_step
        self.rank, self.world_size, self.seed = rank, world_size, seed

    def __iter__(self):
        epoch_sampler = DistributedSampler(range(self.length), num_replicas=self.world_size, rank=self.rank,
                                           shuffle=True, seed=self.seed, drop_last=True)
        per_epoch = len(epoch_sampler)
        epoch, offset = divmod(self.start_step * self.batch_size, per_epoch)
        while True:
            epoch_sampler.set_epoch(epoch)
            for index in list(epoch_sampler)[offset:]:
                yield epoch * self.length + index
            epoch, offset = epoch + 1, 0


class StepBatches:
    """The batches of steps ``start_step, start_step + 1, ...`` for one process, one step ahead.

    ``next(batches)`` is this step's batch; :attr:`upcoming` is already the next step's, so a trainer can
    start work on it (the structure look-ahead) before the step ends. Each batch is a tuple of
    ``(B, ...)`` tensors as the dataset's items stack, e.g. ``(photo, cartoon)``, each ``(B, 3, S, S)``.

    Args:
        dataset: items that are a function of their index (indices past ``len`` go on into later epochs).
        batch_size, start_step, rank, world_size, seed: as for :class:`StepSampler`.
        num_workers: ``DataLoader`` processes (0 loads in this one).
        pin_memory: page-locked host memory, for fast copies to a GPU.
    """

    def __init__(self, dataset, batch_size: int, start_step: int = 0, *, rank: int = 0, world_size: int = 1,
                 seed: int = 0, num_workers: int = 0, pin_memory: bool = False):
        sampler = StepSampler(len(dataset), batch_size, start_step, rank, world_size, seed)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                            pin_memory=pin_memory, persistent_workers=num_workers > 0)
        self._batches = iter(loader)
        self.upcoming = next(self._batches)

    def __iter__(self):
        return self

    def __next__(self):
        batch, self.upcoming = self.upcoming, next(self._batches)
        return batch


def _as_dirs(dirs) -> list[Path]:
    if isinstance(dirs, (str, Path)):
        return [Path(dirs)]
    return [Path(d) for d in dirs]


def _scan(dirs, what: str, skipped: list[Path]) -> list[Path]:
    """The readable images of ``dirs``; unreadable ones are warned about and appended to ``skipped``."""
    from PIL import Image

    folders = _as_dirs(dirs)
    if not folders:
        raise UsageError(f"no {what} folder given; pass at least one folder of images")
    readable = []
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"the {what} folder {folder} does not exist; check the path")
        files = list_images(folder)
        if not files:
            raise UsageError(
                f"the {what} folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                "put images there or leave the folder out"
            )
        for path in files:
            try:
                # verify() parses the file without decoding the pixels: cheap enough for thousands
                with Image.open(path) as img:
                    img.verify()
            except Exception as err:  # PIL raises many types for broken files; any of them means skip
                warnings.warn(f"{path}: skipped, not a readable image ({err})", SkippedImageWarning, 3)
                skipped.append(path)
                continue
            readable.append(path)
    if not readable:
        raise UsageError(f"none of the {what} images in {', '.join(map(str, folders))} is readable")
    return readable


def _generator(seed: int, stream: int, counter: int) -> np.random.Generator:
    """An independent generator for each ``(seed, stream, counter)``, the same in every process."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream, counter]))


# Real photos the lessons show: the Kodak set from the course's data folder, else scikit-image's.
_KODAK_EXAMPLES = ("kodim23.png", "kodim03.png", "kodim05.png", "kodim15.png", "kodim21.png", "kodim08.png")
_SKIMAGE_EXAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def example_photos(count: int = 4, size: int = 256) -> tuple[torch.Tensor, list[str]]:
    """``count`` real photos as a ``(count, 3, size, size)`` batch in [-1, 1], and their names.

    Kodak PhotoCD images from ``shared_data_dir()/photos/kodak24`` when the course's data folder is
    there, scikit-image's sample photos otherwise (both ship with permissive terms).
    """
    from .runtime import shared_data_dir

    if not 1 <= count <= len(_KODAK_EXAMPLES):
        raise ValueError(f"count must be between 1 and {len(_KODAK_EXAMPLES)}, got {count}")
    shared = shared_data_dir()
    kodak = shared / "photos" / "kodak24" if shared is not None else None
    if kodak is not None and all((kodak / name).is_file() for name in _KODAK_EXAMPLES[:count]):
        names = list(_KODAK_EXAMPLES[:count])
        images = [read_image(kodak / name) for name in names]
    else:
        import skimage.data

        from .images import to_tensor

        names = list(_SKIMAGE_EXAMPLES[:count])
        images = [to_tensor(getattr(skimage.data, name)()) for name in names]
    squares = [centre_square(image, size) for image in images]
    return torch.cat(squares), names
