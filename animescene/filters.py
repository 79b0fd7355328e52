r"""Box and guided filters on ``(B, C, H, W)`` tensors (lesson 01).

The guided filter (He, Sun & Tang, TPAMI 2013) explains the output ``q`` as a local linear function of
a guide ``I`` inside every ``(2r+1) x (2r+1)`` window :math:`\omega_k`:

.. math::
    q_i = a_k I_i + b_k, \quad
    a_k = \frac{\mathrm{cov}_k(I, p)}{\mathrm{var}_k(I) + \epsilon}, \quad
    b_k = \bar p_k - a_k \bar I_k,

and averages ``a`` and ``b`` over the windows that cover each pixel: ``q = mean(a) * I + mean(b)``.
Every mean is a box filter, so the whole filter is a handful of box filters and element-wise maths:
differentiable, batched, and the same code on CPU and GPU. That tensor-op form runs whenever an input
needs a gradient, off the CPU, and under ``torch.export``/``torch.compile``. For CPU inference,
:mod:`animescene.filters_cpu` computes the same filters in one fused, cache-resident pass.

White-box Cartoonization uses it twice: ``guided_filter(x, x, r=5, eps=0.2)`` is the surface
representation, and ``guided_filter(x, G(x), r=1, eps=5e-3)`` cleans the generator's output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import filters_cpu
from .images import check_batch

BORDERS = ("clip", "reflect")


def box_filter(x: torch.Tensor, r: int, border: str = "clip") -> torch.Tensor:
    r"""Mean of each pixel's ``(2r+1) x (2r+1)`` window.

    Args:
        x: ``(B, C, H, W)`` float tensor.
        r: window radius, ``0 <= r < min(H, W)``.
        border: ``"clip"`` averages only the pixels inside the image (He et al.'s reference code and
            White-box's TensorFlow code: zero padding divided by the pixel count); ``"reflect"`` mirrors
            the image with the edge pixel repeated (``fedcba|abcdef``, OpenCV's ``BORDER_REFLECT``, which
            ``cv2.ximgproc.guidedFilter`` uses).

    Returns:
        ``(B, C, H, W)`` tensor of window means, same dtype as ``x``.

    Lesson 01 builds this with cumulative sums, which cost O(1) per pixel whatever ``r`` is. Here it is
    two 1-D depthwise convolutions with a ones kernel instead: for the small radii of this course
    (1 and 5) that is several times faster on CPU (oneDNN, channels-last) and GPU, and exact to float32
    rounding. On the CPU, when ``x`` needs no gradient, :func:`animescene.filters_cpu.box_filter`
    computes the same means in one pass instead.

    Example:
        >>> box_filter(torch.ones(1, 1, 4, 4), 1)[0, 0, 0, 0]
        tensor(1.)
    """
    _check_radius(x, r, "x")
    _check_border(border)
    if filters_cpu.usable(x):
        return filters_cpu.box_filter(x, r, border == "reflect").contiguous(memory_format=_memory_format(x))
    with _no_autocast(x):
        return _box_mean(x, r, border).contiguous(memory_format=_memory_format(x))


def guided_filter(
    guide: torch.Tensor, src: torch.Tensor, r: int, eps: float, border: str = "clip"
) -> torch.Tensor:
    r"""Edge-preserving smoothing of ``src`` steered by ``guide`` (He et al., 2013).

    Args:
        guide: ``(B, 1, H, W)`` (one guide for every channel) or ``(B, C, H, W)`` (channel ``c`` of the
            guide steers channel ``c`` of ``src``: White-box's form).
        src: ``(B, C, H, W)`` image to filter.
        r: window radius, ``0 <= r < min(H, W)``.
        eps: regularizer ``> 0``; edges whose local variance is well below ``eps`` are smoothed away.
        border: ``"clip"`` (default, White-box and He et al.) or ``"reflect"`` (OpenCV); see
            :func:`box_filter`.

    Returns:
        ``(B, C, H, W)`` filtered image in ``src``'s dtype.

    float16 and bfloat16 inputs are computed in float32 and returned in their own dtype, and an
    enclosing ``torch.autocast`` region is suspended: the variance ``mean(I*I) - mean(I)^2`` cancels
    catastrophically with an 8- or 11-bit mantissa. On the CPU, when neither input needs a gradient,
    the fused kernel :func:`animescene.filters_cpu.guided_filter` computes the result.

    Example:
        >>> x = torch.rand(2, 3, 64, 64) * 2 - 1
        >>> surface = guided_filter(x, x, r=5, eps=0.2)
    """
    check_batch(guide, "guide")
    check_batch(src, "src")
    _check_pair(guide, src, "guide", "src")
    _check_radius(src, r, "src")
    _check_border(border)
    _check_eps(eps)
    out_dtype = src.dtype
    with _no_autocast(src):
        guide, src = _compute_dtype(guide), _compute_dtype(src)
        if filters_cpu.usable(guide, src):
            out = filters_cpu.guided_filter(guide, src, r, eps, border == "reflect")
            return out.to(out_dtype).contiguous(memory_format=_memory_format(src))
        a, b = _linear_coefficients(guide, src, r, eps, border)
        mean_a, mean_b = _box_mean(_cat_channels_last([a, b]), r, border).chunk(2, dim=1)
        out = torch.addcmul(mean_b, mean_a, guide)
    return out.to(out_dtype).contiguous(memory_format=_memory_format(src))


def fast_guided_filter(
    lr_guide: torch.Tensor,
    lr_src: torch.Tensor,
    hr_guide: torch.Tensor,
    r: int,
    eps: float,
    border: str = "clip",
) -> torch.Tensor:
    r"""Guided filter solved at low resolution and applied at high resolution (He & Sun, 2015).

    The coefficients ``mean(a)`` and ``mean(b)`` are computed on the low-resolution pair, upsampled
    bilinearly to the high-resolution guide's size, and applied there: ``q = A * I_hr + B``. This is
    how Deep Guided Filter (Wu et al., CVPR 2018) makes a network's low-resolution output sharp.

    Args:
        lr_guide: ``(B, 1 | C, h, w)`` low-resolution guide.
        lr_src: ``(B, C, h, w)`` low-resolution image to filter.
        hr_guide: ``(B, 1 | C, H, W)`` high-resolution guide, same channel count as ``lr_guide``.
        r: window radius at low resolution.
        eps: regularizer ``> 0``.
        border: see :func:`box_filter`.

    Returns:
        ``(B, C, H, W)`` tensor in ``lr_src``'s dtype. With ``H, W == h, w`` it equals
        :func:`guided_filter`.
    """
    check_batch(lr_guide, "lr_guide")
    check_batch(lr_src, "lr_src")
    check_batch(hr_guide, "hr_guide")
    _check_pair(lr_guide, lr_src, "lr_guide", "lr_src")
    if hr_guide.shape[:2] != lr_guide.shape[:2]:
        raise ValueError(
            f"hr_guide must have lr_guide's batch and channels {tuple(lr_guide.shape[:2])}, "
            f"got {tuple(hr_guide.shape[:2])}"
        )
    _check_radius(lr_src, r, "lr_src")
    _check_border(border)
    _check_eps(eps)
    out_dtype = lr_src.dtype
    with _no_autocast(lr_src):
        lr_guide, lr_src, hr_guide = (_compute_dtype(t) for t in (lr_guide, lr_src, hr_guide))
        a, b = _linear_coefficients(lr_guide, lr_src, r, eps, border)
        mean_ab = _box_mean(_cat_channels_last([a, b]), r, border)
        if mean_ab.shape[-2:] != hr_guide.shape[-2:]:
            mean_ab = F.interpolate(mean_ab, size=hr_guide.shape[-2:], mode="bilinear", align_corners=False)
        mean_a, mean_b = mean_ab.chunk(2, dim=1)
        out = torch.addcmul(mean_b, mean_a, hr_guide)
    return out.to(out_dtype).contiguous(memory_format=_memory_format(lr_src))


POST_PROCESS_R, POST_PROCESS_EPS = 1, 5e-3


def post_process(photo: torch.Tensor, generated: torch.Tensor, small_photo: torch.Tensor | None = None) -> torch.Tensor:
    r"""White-box's post-process of a generator output: ``clamp(guided_filter(x, G(x), 1, 5e-3), -1, 1)``.

    The guided filter puts the photo's edges back into the generator's flat colours; the clamp bounds
    the unbounded official generator. It always runs in float32 (``generated`` may come from a bf16 or
    int8 generator). Inference, export, the widget and the trainer's sample grids all call this one
    function.

    Args:
        photo: ``(B, 3, H, W)`` the photo in [-1, 1], the guide.
        generated: ``(B, 3, h, w)`` the generator's output for ``small_photo`` (or for ``photo`` when
            ``small_photo`` is None, then ``h, w == H, W``).
        small_photo: ``(B, 3, h, w)`` the shrunk photo the generator saw, when it saw one: the
            coefficients are then solved at ``h x w`` and applied to ``photo`` (:func:`fast_guided_filter`).

    Returns:
        ``(B, 3, H, W)`` float32 cartoon in [-1, 1].
    """
    generated = generated.float()
    if small_photo is None:
        out = guided_filter(photo.float(), generated, POST_PROCESS_R, POST_PROCESS_EPS)
    else:
        out = fast_guided_filter(small_photo.float(), generated, photo.float(), POST_PROCESS_R, POST_PROCESS_EPS)
    return out.clamp(-1.0, 1.0)


class GuidedFilter(torch.nn.Module):
    """Module form of :func:`guided_filter` with fixed ``r``, ``eps`` and ``border``."""

    def __init__(self, r: int, eps: float, border: str = "clip"):
        super().__init__()
        self.r, self.eps, self.border = r, eps, border

    def forward(self, guide: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        return guided_filter(guide, src, self.r, self.eps, self.border)

    def extra_repr(self) -> str:
        return f"r={self.r}, eps={self.eps}, border={self.border!r}"


def _box_mean(x: torch.Tensor, r: int, border: str) -> torch.Tensor:
    """:func:`box_filter` without the checks; returns a channels-last tensor."""
    channels = x.shape[1]
    size = 2 * r + 1
    # oneDNN's depthwise convolution is about 30x faster channels-last than NCHW on the CPU
    x = x.contiguous(memory_format=torch.channels_last)
    ones_row = x.new_ones(channels, 1, 1, size)
    ones_col = x.new_ones(channels, 1, size, 1)
    if border == "reflect":
        sums = F.conv2d(F.conv2d(_pad_symmetric(x, r), ones_row, groups=channels), ones_col, groups=channels)
        return sums.div_(size * size)
    sums = F.conv2d(x, ones_row, padding=(0, r), groups=channels)
    means = F.conv2d(sums, ones_col, padding=(r, 0), groups=channels).div_(size * size)
    return _rescale_clipped_edges(means, r)


def _rescale_clipped_edges(means: torch.Tensor, r: int) -> torch.Tensor:
    """Turn zero-padded means ``sum / (2r+1)^2`` into clipped ones ``sum / N``, in place.

    Only the ``r`` rows and columns along each edge have windows that stick out of the image, and the
    pixel count factorizes, ``N = n_rows * n_cols``, so two narrow band rescales per axis replace a
    division by a full count tensor: that tensor was as large as the input and cost a third of the
    box filter on the CPU. Built from the sizes with tensor ops, so it follows symbolic sizes in ONNX.
    """
    for dim in (2, 3):
        n = means.shape[dim]
        i = torch.arange(n, device=means.device)
        counts = torch.clamp(i + r, max=n - 1) - torch.clamp(i - r, min=0) + 1
        scale = ((2 * r + 1) / counts.to(means.dtype)).view((-1, 1) if dim == 2 else (-1,))
        # bands [0, r) and [max(r, n - r), n): disjoint, and together every row when n <= 2r
        low = torch.sym_max(r, n - r)
        means.narrow(dim, 0, r).mul_(scale[:r])
        means.narrow(dim, low, n - low).mul_(scale[low:])
    return means


def _linear_coefficients(guide, src, r, eps, border):
    """The per-window ``a`` and ``b`` of the linear model ``q = a * I + b``, each ``(B, C, H, W)``."""
    c_guide, c_src = guide.shape[1], src.shape[1]
    # The four statistics are stacked along the channels so that their means are few convolutions;
    # oneDNN's depthwise kernel is fastest on at most 8 channels, hence two stacks for a colour guide.
    stats = [guide, src, guide * src, guide * guide]
    sizes = [c_guide, c_src, c_src, c_guide]
    if sum(sizes) <= 8:
        means = _box_mean(_cat_channels_last(stats), r, border).split(sizes, dim=1)
    else:
        means = _box_mean(_cat_channels_last(stats[:2]), r, border).split(sizes[:2], dim=1)
        means += _box_mean(_cat_channels_last(stats[2:]), r, border).split(sizes[2:], dim=1)
    mean_i, mean_p, corr_ip, corr_ii = means
    var_i = torch.addcmul(corr_ii, mean_i, mean_i, value=-1).add_(eps)
    a = torch.addcmul(corr_ip, mean_i, mean_p, value=-1).div_(var_i)
    b = torch.addcmul(mean_p, a, mean_i, value=-1)
    return a, b


def _cat_channels_last(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(tensors, dim=1)`` written straight into a channels-last buffer (saves a copy)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return torch.cat(tensors, dim=1)  # out= does not support autograd
    first = tensors[0]
    shape = (first.shape[0], sum(t.shape[1] for t in tensors), *first.shape[2:])
    out = torch.empty(shape, dtype=first.dtype, device=first.device, memory_format=torch.channels_last)
    return torch.cat(tensors, dim=1, out=out)


def _pad_symmetric(x: torch.Tensor, r: int) -> torch.Tensor:
    """Pad H and W by ``r`` mirroring with the edge repeated (``fedcba|abcdef``)."""
    if r == 0:
        return x
    x = torch.cat([x[:, :, :r].flip(2), x, x[:, :, -r:].flip(2)], dim=2)
    return torch.cat([x[:, :, :, :r].flip(3), x, x[:, :, :, -r:].flip(3)], dim=3)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


def _no_autocast(x: torch.Tensor):
    """Mixed-precision regions (``torch.autocast``) stop here: the filters compute in their inputs' dtype."""
    return torch.autocast(x.device.type, enabled=False)


def _compute_dtype(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_radius(x, r, name):
    check_batch(x, name)
    if isinstance(r, bool) or not isinstance(r, int):
        raise TypeError(f"r must be an int, got {type(r).__name__} {r!r}")
    if r < 0:
        raise ValueError(f"r must be >= 0, got {r}")
    if r >= min(x.shape[-2:]):
        raise ValueError(
            f"r={r} is too large for a {x.shape[-2]}x{x.shape[-1]} image: the window (2r+1) must fit, "
            f"so r must be < {min(x.shape[-2:])}; use a smaller radius or a larger image"
        )


def _check_border(border):
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")


def _check_pair(guide, src, guide_name, src_name):
    if guide.shape[0] != src.shape[0] or guide.shape[-2:] != src.shape[-2:]:
        raise ValueError(
            f"{guide_name} {tuple(guide.shape)} and {src_name} {tuple(src.shape)} must share batch size "
            "and height x width"
        )
    if guide.shape[1] not in (1, src.shape[1]):
        raise ValueError(
            f"{guide_name} must have 1 channel or as many as {src_name} ({src.shape[1]}), got {guide.shape[1]}"
        )
    if guide.device != src.device:
        raise ValueError(f"{guide_name} is on {guide.device} but {src_name} is on {src.device}")


def _check_eps(eps):
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
