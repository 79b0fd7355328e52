r"""Superpixels, hierarchical grouping and region colouring of NumPy images (lesson 02).

The structure representation of White-box Cartoonization flattens an image into a few hundred regions of
one colour each, the way a cel animator paints:

1. :func:`felzenszwalb` over-segments the image into superpixels (Felzenszwalb & Huttenlocher, 2004);
2. :func:`selective_search_grouping` merges the most similar pair of adjacent regions, again and again,
   until at most ``segments`` regions are left (the hierarchical grouping of selective search,
   Uijlings et al., IJCV 2013);
3. :func:`adaptive_coloring` paints each region with its mean colour where the region is smooth, its
   median where it is busy, and an even mix in between.

:func:`structure_image` chains the three (and the reference's contrast step);
:func:`animescene.representations.structure` is its batched tensor form.

Conventions: an ``image`` is an ``(H, W, 3)`` RGB array, uint8 or float with values in ``[0, 255]`` (the
colouring thresholds are in these units). A label map is an ``(H, W)`` integer array whose regions are
numbered ``0 .. n-1`` without gaps; region ``i``'s statistics are row ``i`` of the arrays returned here.

Faults of the reference code (``train_code/selective_search`` and ``utils.py`` of White-box Cartoonization)
that this module fixes:

- its grouping loop stops on the number of adjacent *pairs* (``len(S.s)``), which reaches ``seg_num`` long
  before the number of regions does; ours stops on the number of regions;
- it gives every region the size of region 1 (``(img_seg == 1).sum()``), which skews the size-weighted
  histogram merges; ours counts each region's pixels;
- its colour thresholds (20, 40) are on the 0-255 scale but it colours ``[-1, 1]`` data, so every region
  gets its mean; ours works on 0-255 values;
- a region whose std is exactly 20 or 40 falls through its ``if``/``elif`` chain and is painted with the
  previous region's colour, and the median branch of ``utils.label2rgb`` calls ``ndarray.median``, which
  does not exist; ours uses half-open intervals ``[0, gamma1)``, ``[gamma1, gamma2)``, ``[gamma2, inf)``;
- ``np.histogram(layer, BINS)`` bins each region between its own min and max, so two regions' histograms
  are not comparable; ours use fixed bin edges (the sRGB gamut's extent in Lab; one bin per LBP class);
- it computes the similarity features of a ``[-1, 1]`` BGR image coloured with superpixel means, so its Lab
  is wrong and the texture of a flat-coloured region says nothing; ours come from the RGB image itself;
- its contrast step divides by the image maximum, which is 0 for a black image; ours leaves black alone.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.ndimage as ndi
import skimage.segmentation

from .images import check_image_array, check_label_map

METHODS = ("selective", "slic")


@dataclass(frozen=True)
class StructureDefaults:
    """White-box's settings of the structure representation: the one place the defaults are written.

    Every function here and in :mod:`animescene.representations` that takes one of these, and
    ``TrainConfig``, defaults to :data:`STRUCTURE_DEFAULTS`.

    Attributes:
        segments: regions to keep (selective search) or to aim for (SLIC).
        method: one of :data:`METHODS`; ``"selective"`` is the paper's.
        gamma1, gamma2: std thresholds of the adaptive colouring, in 0-255 units.
        mu: exponent of the contrast step.
    """

    segments: int = 200
    method: str = "selective"
    gamma1: float = 20.0
    gamma2: float = 40.0
    mu: float = 1.2


STRUCTURE_DEFAULTS = StructureDefaults()

# Fixed histogram edges (what makes the histograms of two regions comparable). Colour: 25 bins per Lab
# channel over the extent of the sRGB gamut in OpenCV's float Lab (L in [0, 100]).
COLOR_BINS = 25
_LAB_LOW = np.array([0.0, -86.2, -107.9], dtype=np.float32)
_LAB_HIGH = np.array([100.0, 98.3, 94.5], dtype=np.float32)
# Texture: rotation-invariant uniform LBP with 8 neighbours has exactly 10 classes (0-8 set bits of a
# pattern with at most two 0/1 transitions, and 9 for all the rest), one bin each. The reference bins
# the 256 raw LBP codes into 10 ranges, which mixes unrelated patterns.
TEXTURE_BINS = 10
_HIST_SIZE = 3 * (COLOR_BINS + TEXTURE_BINS)


def _uniform_lbp_table() -> np.ndarray:
    codes = np.arange(256)
    bits = (codes[:, None] >> np.arange(8)) & 1
    transitions = (bits != np.roll(bits, 1, axis=1)).sum(axis=1)
    return np.where(transitions <= 2, bits.sum(axis=1), 9).astype(np.uint8)


_UNIFORM_LBP = _uniform_lbp_table()
# The 8 neighbours (dy, dx) in circular order, so that bit k and bit k+1 are adjacent on the circle.
_NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def felzenszwalb(image: np.ndarray, scale: float = 10, sigma: float = 0.8, min_size: int = 100) -> np.ndarray:
    """Felzenszwalb-Huttenlocher graph-based superpixels (OpenCV's ``ximgproc`` implementation).

    Args:
        image: ``(H, W, 3)`` uint8 or float image with values in [0, 255].
        scale: higher means fewer, larger regions; in 0-255 colour units as in the original paper's ``k``.
        sigma: std of the Gaussian that smooths the image first.
        min_size: smaller regions are merged into a neighbour afterwards.

    Returns:
        ``(H, W)`` label map, regions ``0 .. n-1``.

    The defaults are White-box's. Its code passes ``[-1, 1]`` data, which doubles every colour
    difference; here colours are in 0-255 units, as the paper intends. At 256 x 256 ``min_size``
    dominates either way (about 150 regions). White-box calls ``skimage.segmentation.felzenszwalb``;
    OpenCV's C++ version of the same algorithm is about 3x faster, which is most of the structure
    representation's cost, and gives regions of the same kind (tests compare the two).
    """
    image = check_image_array(image)
    segmenter = cv2.ximgproc.segmentation.createGraphSegmentation(sigma=sigma, k=scale, min_size=min_size)
    return _consecutive(segmenter.processImage(np.ascontiguousarray(image, dtype=np.float32)))


def slic(
    image: np.ndarray,
    segments: int = STRUCTURE_DEFAULTS.segments,
    sigma: float = 1.0,
    compactness: float = 10.0,
) -> np.ndarray:
    """SLIC superpixels in Lab (``skimage.segmentation.slic``): about ``segments`` compact regions.

    Args:
        image: ``(H, W, 3)`` uint8 or float image with values in [0, 255].
        segments: the number of regions to aim for (SLIC's grid; the result is near it, not at most it).
        sigma: std of the Gaussian that smooths the image first.
        compactness: higher makes squarer regions, lower makes them follow colour more.

    Returns:
        ``(H, W)`` label map, regions ``0 .. n-1``.
    """
    image = check_image_array(image)
    _check_segments(segments)
    labels = skimage.segmentation.slic(
        image / 255.0,
        n_segments=segments,
        sigma=sigma,
        compactness=compactness,
        convert2lab=True,
        start_label=0,
    )
    return _consecutive(labels)


def region_adjacency(labels: np.ndarray) -> np.ndarray:
    """The pairs of regions that touch (4-connectivity): an ``(E, 2)`` array of ``(i, j)``, ``i < j``, sorted.

    One pass over the horizontal and vertical pixel pairs of the label map, instead of one boundary
    scan per region.
    """
    n = check_label_map(labels)
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    differ = a != b
    a, b = a[differ], b[differ]
    keys = np.unique(np.minimum(a, b) * n + np.maximum(a, b))
    return np.stack([keys // n, keys % n], axis=1)


def selective_search_grouping(
    image: np.ndarray, labels: np.ndarray, segments: int = STRUCTURE_DEFAULTS.segments
) -> np.ndarray:
    r"""Merge the most similar adjacent regions until at most ``segments`` are left (Uijlings et al.).

    The similarity of two regions is the sum of four terms, each in [0, 1]:

    .. math::
        s(r_i, r_j) = \sum_k \min(c_i^k, c_j^k) + \sum_k \min(t_i^k, t_j^k)
            + \Big(1 - \frac{|r_i| + |r_j|}{|I|}\Big) + \Big(1 - \frac{|B_{ij}| - |r_i| - |r_j|}{|I|}\Big)

    colour (intersection of L1-normalised Lab histograms, 25 bins per channel), texture (the same for
    uniform-LBP histograms, 10 classes per Lab channel), size (small regions merge first) and fill
    (regions that fill their joint bounding box :math:`B_{ij}` merge first). Size and fill together are
    :math:`2 - |B_{ij}| / |I|`: pairs with a small joint box go first. A merged region's histograms are
    the size-weighted mean of its parts, so the image is read only once.

    Args:
        image: ``(H, W, 3)`` uint8 or float image with values in [0, 255].
        labels: ``(H, W)`` label map of the starting regions, e.g. from :func:`felzenszwalb`.
        segments: the most regions to keep, ``>= 1``.

    Returns:
        ``(H, W)`` label map with ``min(n, segments)`` regions ``0 .. m-1``, each a union of starting regions.
    """
    image = check_image_array(image)
    n = check_label_map(labels, image.shape[:2])
    _check_segments(segments)
    if n <= segments:
        return labels.copy()
    regions = _RegionTable(*region_features(image, labels, n), area=labels.size)
    pairs = region_adjacency(labels)
    neighbours = [set() for _ in range(regions.capacity)]
    for i, j in pairs.tolist():
        neighbours[i].add(j)
        neighbours[j].add(i)
    # A max-heap of (-similarity, i, j); pairs with a merged-away member are skipped when popped.
    heap = list(zip((-regions.similarity(pairs[:, 0], pairs[:, 1])).tolist(), *pairs.T.tolist()))
    heapq.heapify(heap)
    while regions.count > segments and heap:
        _, i, j = heapq.heappop(heap)
        if regions.alive[i] and regions.alive[j]:
            new = regions.merge(i, j)
            around = _rewire(neighbours, i, j, new)
            for score, k in zip(regions.similarity(new, around).tolist(), around.tolist()):
                heapq.heappush(heap, (-score, k, new))
    return regions.final_labels(labels)


class _RegionTable:
    """The regions of a grouping: sizes, boxes and histograms of the starting regions and of every merge.

    Merged regions get new ids ``n, n + 1, ...`` (at most ``n - 1`` merges), so no row is ever rewritten.
    """

    def __init__(self, sizes: np.ndarray, boxes: np.ndarray, hists: np.ndarray, area: int):
        n = len(sizes)
        self.capacity, self.count, self.next, self.area = 2 * n - 1, n, n, float(area)
        self.sizes = np.zeros(self.capacity)
        self.boxes = np.zeros((self.capacity, 4))  # row0, col0, row1, col1 (stop is exclusive)
        self.hists = np.zeros((self.capacity, hists.shape[1]))
        self.sizes[:n], self.boxes[:n], self.hists[:n] = sizes, boxes, hists
        self.alive = np.zeros(self.capacity, dtype=bool)
        self.alive[:n] = True
        self.parent = np.arange(self.capacity)

    def similarity(self, i, j) -> np.ndarray:
        """Colour + texture intersection + size + fill of regions ``i`` and ``j`` (ints or index arrays)."""
        corner0 = np.minimum(self.boxes[i, :2], self.boxes[j, :2])
        corner1 = np.maximum(self.boxes[i, 2:], self.boxes[j, 2:])
        box_area = np.prod(corner1 - corner0, axis=-1)
        both = self.sizes[i] + self.sizes[j]
        histogram = np.minimum(self.hists[i], self.hists[j]).sum(axis=-1)
        return histogram + (1.0 - both / self.area) + (1.0 - (box_area - both) / self.area)

    def merge(self, i: int, j: int) -> int:
        """Make the union of regions ``i`` and ``j`` (size-weighted histograms); return its id."""
        new = self.next
        self.sizes[new] = self.sizes[i] + self.sizes[j]
        self.boxes[new, :2] = np.minimum(self.boxes[i, :2], self.boxes[j, :2])
        self.boxes[new, 2:] = np.maximum(self.boxes[i, 2:], self.boxes[j, 2:])
        self.hists[new] = (self.hists[i] * self.sizes[i] + self.hists[j] * self.sizes[j]) / self.sizes[new]
        self.alive[[i, j]], self.alive[new] = False, True
        self.parent[[i, j]] = new
        self.count, self.next = self.count - 1, new + 1
        return new

    def final_labels(self, labels: np.ndarray) -> np.ndarray:
        """The starting label map relabelled by the surviving regions, numbered ``0 .. count-1``."""
        root = self.parent[: self.next]
        while not np.array_equal(root[root], root):  # follow each region up (merged ids only grow)
            root = root[root]
        number = np.cumsum(self.alive[: self.next]) - 1
        return number[root][labels]


def _rewire(neighbours: list[set], i: int, j: int, new: int) -> np.ndarray:
    """Point the neighbours of ``i`` and ``j`` at their union ``new``; return them as an index array."""
    around = (neighbours[i] | neighbours[j]) - {i, j}
    for k in around:
        neighbours[k] -= {i, j}
        neighbours[k].add(new)
    neighbours[new] = around
    return np.fromiter(around, dtype=np.intp, count=len(around))


def region_means(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(n, 3)`` float64 mean colour of each region."""
    image = check_image_array(image)
    n = check_label_map(labels, image.shape[:2])
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n)
    sums = [np.bincount(flat, weights=image[:, :, c].ravel(), minlength=n) for c in range(3)]
    return np.stack(sums, axis=1) / counts[:, None]


def region_medians(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(n, 3)`` float64 median colour of each region, channel by channel (``np.median`` per region).

    Each channel is sorted once by (label, value): a value sort, then a stable sort by label. Every
    region's values are then a sorted run, and its median is read at the middle of its run.
    """
    image = check_image_array(image)
    n = check_label_map(labels, image.shape[:2])
    # NumPy's stable sort of 8- and 16-bit integers is a radix sort, several times faster than a
    # quicksort: labels are sorted as uint16, and uint8 values stably too
    flat = labels.ravel().astype(np.uint16) if n <= 1 << 16 else labels.ravel()
    counts = np.bincount(flat, minlength=n)
    starts = np.cumsum(counts) - counts
    lower, upper = starts + (counts - 1) // 2, starts + counts // 2
    medians = np.empty((n, 3))
    for c in range(3):
        values = image[:, :, c].ravel()
        by_value = np.argsort(values, kind="stable" if image.dtype == np.uint8 else None)
        by_label = by_value[np.argsort(flat[by_value], kind="stable")]
        ordered = values[by_label].astype(np.float64)
        medians[:, c] = (ordered[lower] + ordered[upper]) / 2
    return medians


def region_stds(image: np.ndarray, labels: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
    """``(n,)`` float64 standard deviation of all the values of each region, the three channels together.

    That is ``np.std(image[labels == i])``, the statistic White-box thresholds. Computed in two passes
    (deviations from the mean), so a region whose std is exactly 20 comes out as 20, not 19.999999.

    Args:
        means: the ``(n, 3)`` :func:`region_means`, when the caller already has them.
    """
    image = check_image_array(image)
    n = check_label_map(labels, image.shape[:2])
    if means is None:
        means = region_means(image, labels)
    flat = labels.ravel()
    channel_means = means.mean(axis=1)
    deviation = image.reshape(-1, 3) - channel_means[flat][:, None]
    squares = np.bincount(flat, weights=np.einsum("ij,ij->i", deviation, deviation), minlength=n)
    return np.sqrt(squares / (3 * np.bincount(flat, minlength=n)))


def mean_coloring(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Paint every region with its mean colour: an ``(H, W, 3)`` float64 image."""
    return region_means(image, labels)[labels]


def adaptive_region_colors(
    image: np.ndarray,
    labels: np.ndarray,
    gamma1: float = STRUCTURE_DEFAULTS.gamma1,
    gamma2: float = STRUCTURE_DEFAULTS.gamma2,
) -> np.ndarray:
    r"""The colour White-box's adaptive colouring gives each region: an ``(n, 3)`` float64 array.

    With :math:`\sigma` the std of all the region's values (:func:`region_stds`), the region's colour is

    .. math::
        \begin{cases}
            \mathrm{mean} & \sigma < \gamma_1 \\
            \tfrac12\,\mathrm{mean} + \tfrac12\,\mathrm{median} & \gamma_1 \le \sigma < \gamma_2 \\
            \mathrm{median} & \sigma \ge \gamma_2
        \end{cases}

    The median of a busy region is a colour the region really has, where its mean would be a muddy
    average of its parts (and it keeps contrast, which a mean washes out).

    Args:
        image: ``(H, W, 3)`` uint8 or float image with values in [0, 255].
        labels: ``(H, W)`` label map.
        gamma1, gamma2: std thresholds in 0-255 units, ``0 <= gamma1 <= gamma2``.
    """
    _check_gammas(gamma1, gamma2)
    means = region_means(image, labels)
    stds = region_stds(image, labels, means)[:, None]
    if not (stds >= gamma1).any():  # the medians are the costly part; smooth images need none
        return means
    medians = region_medians(image, labels)
    return np.where(stds < gamma1, means, np.where(stds < gamma2, 0.5 * means + 0.5 * medians, medians))


def adaptive_coloring(image: np.ndarray, labels: np.ndarray, gamma1: float = STRUCTURE_DEFAULTS.gamma1,
                      gamma2: float = STRUCTURE_DEFAULTS.gamma2) -> np.ndarray:
    """Paint every region with its :func:`adaptive_region_colors` colour: an ``(H, W, 3)`` float64 image."""
    return adaptive_region_colors(image, labels, gamma1, gamma2)[labels]


def contrast(values: np.ndarray, mu: float = STRUCTURE_DEFAULTS.mu) -> np.ndarray:
    """White-box's contrast step on [0, 255] values: ``255 * (v / 255) ** mu``, rescaled to a maximum of 255.

    The reference writes it on ``[-1, 1]`` data as ``x = ((x + 1) / 2) ** mu; x /= x.max(); x = 2x - 1``.
    ``mu > 1`` darkens the mid-tones. All-black values are returned as they are.

    Args:
        values: an image, or any array of values in [0, 255] (such as the ``(n, 3)`` region colours,
            which is cheaper than the painted image and gives the same result).
        mu: exponent, ``> 0``.
    """
    _check_mu(mu)
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or not (values.min() >= 0 and values.max() <= 255):
        raise ValueError("contrast needs a non-empty array of values in [0, 255]")
    powered = (values / 255.0) ** mu
    peak = powered.max()
    return powered * (255.0 / peak) if peak > 0 else powered


def structure_image(
    image: np.ndarray,
    segments: int = STRUCTURE_DEFAULTS.segments,
    method: str = STRUCTURE_DEFAULTS.method,
    gamma1: float = STRUCTURE_DEFAULTS.gamma1,
    gamma2: float = STRUCTURE_DEFAULTS.gamma2,
    mu: float = STRUCTURE_DEFAULTS.mu,
) -> np.ndarray:
    """White-box's structure representation of one image: an ``(H, W, 3)`` float32 image in [0, 255].

    Args:
        image: ``(H, W, 3)`` uint8 or float image with values in [0, 255].
        segments: ``"selective"``: the most regions to keep; ``"slic"``: about how many to make.
        method: ``"selective"`` (:func:`felzenszwalb`, :func:`selective_search_grouping`,
            :func:`adaptive_region_colors` with :func:`contrast`: the paper's) or ``"slic"`` (:func:`slic` and
            :func:`mean_coloring`: the reference's cheaper option).
        gamma1, gamma2, mu: the selective method's colouring thresholds and contrast exponent.
    """
    check_structure_args(segments, method, gamma1, gamma2, mu)
    if method == "slic":
        return mean_coloring(image, slic(image, segments)).astype(np.float32)
    labels = selective_search_grouping(image, felzenszwalb(image), segments)
    return contrast(adaptive_region_colors(image, labels, gamma1, gamma2), mu)[labels].astype(np.float32)


def check_structure_args(segments, method, gamma1, gamma2, mu) -> None:
    """Raise ``ValueError`` naming the first bad argument of :func:`structure_image`.

    Callers that hand the work to other processes check here first, so that a mistake fails in the
    caller and not in a worker.
    """
    _check_segments(segments)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_gammas(gamma1, gamma2)
    _check_mu(mu)


def region_features(image: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What selective search knows of each of the ``n`` regions of ``labels``, read from the image once.

    Returns:
        sizes ``(n,)`` in pixels; bounding boxes ``(n, 4)`` as row0, col0, row1, col1 (stops exclusive);
        histograms ``(n, 105)``: Lab colour (3 x 25 bins) then uniform-LBP texture (3 x 10 classes), each
        part L1-normalised to sum to 1.
    """
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=n).astype(np.float64)
    slices = ndi.find_objects(labels + 1)  # find_objects skips label 0
    boxes = np.array([(rows.start, cols.start, rows.stop, cols.stop) for rows, cols in slices], dtype=float)
    lab = cv2.cvtColor(np.asarray(image, dtype=np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    color = ((lab - _LAB_LOW) * (COLOR_BINS / (_LAB_HIGH - _LAB_LOW))).astype(np.intp)
    np.clip(color, 0, COLOR_BINS - 1, out=color)
    # one histogram row per region: [L, a, b colour bins | L, a, b texture classes]
    color += np.arange(3) * COLOR_BINS
    texture = _uniform_lbp(lab).astype(np.intp) + (3 * COLOR_BINS + np.arange(3) * TEXTURE_BINS)
    bins = np.concatenate([color.reshape(-1, 3), texture.reshape(-1, 3)], axis=1) + flat[:, None] * _HIST_SIZE
    hists = np.bincount(bins.ravel(), minlength=n * _HIST_SIZE).reshape(n, _HIST_SIZE).astype(np.float64)
    hists /= 3 * sizes[:, None]  # L1-normalised: the colour part sums to 1, and so does the texture part
    return sizes, boxes, hists


def _uniform_lbp(image: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` image -> ``(H, W, C)`` uint8 uniform-LBP class (0-9) of each pixel, channel by channel.

    Bit k is set where the k-th of the 8 neighbours is ``>=`` the pixel (edges replicated), as in
    ``skimage.feature.local_binary_pattern(channel, 8, 1, "uniform")`` but on the square neighbourhood.
    """
    height, width = image.shape[:2]
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
    code = np.zeros(image.shape, dtype=np.uint8)
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        neighbour = padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
        code |= (neighbour >= image).view(np.uint8) << np.uint8(bit)
    return _UNIFORM_LBP[code]


def _consecutive(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


def _check_segments(segments) -> None:
    if isinstance(segments, bool) or not isinstance(segments, (int, np.integer)) or segments < 1:
        raise ValueError(f"segments must be an int >= 1, got {segments!r}")


def _check_gammas(gamma1, gamma2) -> None:
    if not 0 <= gamma1 <= gamma2:
        raise ValueError(f"need 0 <= gamma1 <= gamma2 (in 0-255 units), got {gamma1=!r}, {gamma2=!r}")


def _check_mu(mu) -> None:
    if not mu > 0:
        raise ValueError(f"mu must be > 0 (1 leaves the colours alone), got {mu!r}")
