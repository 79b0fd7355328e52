r"""The box and guided filters as fused CPU kernels (numba), for inference.

:mod:`animescene.filters` writes the guided filter as box filters and element-wise tensor ops:
differentiable, batched, the same code on every device, and what lesson 01 teaches. On a CPU that form
is bound by memory, not arithmetic. Each of its intermediates is as large as the image (up to 30 MB at
720p), and each is written to fresh pages, read back and freed. OpenCV's ``guidedFilter`` is faster
because its box filter streams rows through a small buffer. This module goes one step further and runs
the *whole* guided filter on strips of rows small enough to stay in cache. For each strip it computes:

1. the statistics ``I``, ``I*I``, ``p`` and ``I*p`` of the strip and ``2r`` rows either side;
2. their window means: a vertical running sum in float64 (no drift over a tall image), then a
   ``2r+1``-tap horizontal sum;
3. ``a`` and ``b`` of the local linear model on the strip and ``r`` rows either side;
4. the window means of ``a`` and ``b``, and ``q = mean(a) * I + mean(b)`` written into the output.

Neighbouring strips recompute the ``2r`` rows they share; that costs less than a trip to memory.
The work is split into strips over the batch and the rows, and one thread per torch intra-op thread
takes every n-th strip. The kernels release the GIL, and no thread outlives a call, so the kernels are
safe to use in forked data-loader workers.

:func:`animescene.filters.guided_filter` and :func:`~animescene.filters.box_filter` call this module
whenever :func:`usable` says so: nothing needs a gradient, the tensors are on the CPU in float32 or
float64, and no tracer or compiler is recording. Everywhere else the tensor-op form runs. The tests
hold both forms to the same OpenCV and float64 references.

One difference is by design: a NaN or infinity in the input spreads down its column to the end of
its strip, because a running sum cannot subtract it back out. The tensor ops confine it to the
windows that hold it. Neither result means anything, so the kernel spends no pass checking for it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch

# Rows per strip: taller strips waste less on the rows they share with their neighbours (2r each
# side), shorter ones stay in L2. Sixteen output rows was fastest at 720p on a 2-core Zen 3.
_STRIP_ROWS = 16


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the fused kernels can stand in for the tensor ops on these tensors."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    # exact type: FakeTensor and other subclasses (export, tracing) hold no data to hand to numba
    return all(
        type(t) is torch.Tensor and t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)
        for t in tensors
    )


def box_filter(x: torch.Tensor, r: int, reflect: bool) -> torch.Tensor:
    """Window means of a ``(B, C, H, W)`` tensor; the arguments are checked by the caller."""
    x = x.contiguous()
    batch, channels, height, width = x.shape
    planes = x.view(batch * channels, height, width)
    out = torch.empty_like(planes)
    # whole-height strips when there are planes enough for every thread
    rows = max(_STRIP_ROWS, 4 * r, -(-height * batch * channels // (4 * torch.get_num_threads())))
    tasks = _strips(batch * channels, height, rows)
    _run(_box_planes, (planes.numpy(), out.numpy(), r, reflect), tasks)
    return out.view(batch, channels, height, width)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float, reflect: bool) -> torch.Tensor:
    """The guided filter of ``src`` ``(B, C, H, W)`` by ``guide`` ``(B, 1 | C, H, W)``; checked by the caller.

    Both are computed in their common dtype and the result is returned in it.
    """
    dtype = torch.promote_types(guide.dtype, src.dtype)
    guide, src = guide.to(dtype).contiguous(), src.to(dtype).contiguous()
    out = torch.empty_like(src)
    # strips at least 4r tall, so that the 4r shared rows never cost more than the strip itself
    tasks = _strips(src.shape[0], src.shape[2], max(_STRIP_ROWS, 4 * r))
    arrays = guide.numpy(), src.numpy(), out.numpy()
    # eps as a scalar of the arrays' dtype keeps the kernel's arithmetic in that dtype
    _run(_guided_strips, (*arrays, r, arrays[1].dtype.type(eps), reflect), tasks)
    return out


def _strips(count: int, height: int, rows: int) -> np.ndarray:
    """``(plane or sample, first row, end row)`` for every strip of ``rows`` rows, as an int64 array."""
    starts = np.arange(0, height, rows)
    ends = np.minimum(starts + rows, height)
    index = np.repeat(np.arange(count), len(starts))
    return np.stack([index, np.tile(starts, count), np.tile(ends, count)], axis=1).astype(np.int64)


def _run(kernel, args: tuple, tasks: np.ndarray) -> None:
    """``kernel(*args, tasks)`` with the tasks dealt out over torch's intra-op thread count."""
    threads = min(torch.get_num_threads(), len(tasks))
    if threads <= 1:
        kernel(*args, tasks)
        return
    # a pool per call: nothing outlives it (fork-safe), and .result() re-raises a thread's error
    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(kernel, *args, tasks[i::threads]) for i in range(threads)]:
            done.result()


_jit = numba.njit(nogil=True, cache=True, error_model="numpy")


@_jit
def _source_row(k, n, reflect):
    """The row that stands in for row ``k`` of an ``n``-row plane: itself, its mirror, or -1 (clipped)."""
    if 0 <= k < n:
        return k
    if not reflect:
        return -1
    return -k - 1 if k < 0 else 2 * n - 1 - k


@_jit
def _inverse_counts(n, r, reflect, dtype):
    """``1 / pixels`` in each of the ``n`` windows along one axis."""
    inverse = np.empty(n, dtype)
    for i in range(n):
        inverse[i] = 1.0 / (2 * r + 1 if reflect else min(i + r, n - 1) - max(i - r, 0) + 1)
    return inverse


@_jit
def _box_scratch(height, width, r, reflect, dtype):
    """What :func:`_box_strip` works in: a float64 column-sum row, a padded row, inverse window counts."""
    column = np.empty(width, np.float64)
    row = np.empty(width + 2 * r, dtype)
    return column, row, _inverse_counts(height, r, reflect, dtype), _inverse_counts(width, r, reflect, dtype)


@_jit
def _box_strip(src, first, y0, y1, r, reflect, out, scratch):
    """Window means of rows ``[y0, y1)`` of a plane into ``out`` (``y1 - y0`` rows).

    ``src`` holds the plane's rows ``[first, first + len(src))``, which must cover the windows;
    ``scratch`` is :func:`_box_scratch` of the plane's size.
    """
    column, row, inverse_y, inverse_x = scratch
    height, width = len(inverse_y), src.shape[1]
    size = 2 * r + 1
    column[:] = 0.0
    for k in range(y0 - r, y0 + r + 1):
        source = _source_row(k, height, reflect)
        if source >= 0:
            for j in range(width):
                column[j] += src[source - first, j]
    for y in range(y0, y1):
        if y > y0:
            enter = _source_row(y + r, height, reflect)
            leave = _source_row(y - r - 1, height, reflect)
            if enter >= 0:
                for j in range(width):
                    column[j] += src[enter - first, j]
            if leave >= 0:
                for j in range(width):
                    column[j] -= src[leave - first, j]
        # the column sums with r cells of border either side, in the plane's dtype
        for j in range(width):
            row[r + j] = column[j]
        for j in range(r):
            row[r - 1 - j] = column[j] if reflect else 0.0
            row[r + width + j] = column[width - 1 - j] if reflect else 0.0
        means = out[y - y0]
        means[:] = row[:width]
        for k in range(1, size):
            for j in range(width):
                means[j] += row[j + k]
        for j in range(width):
            means[j] *= inverse_x[j] * inverse_y[y]


@_jit
def _box_planes(planes, out, r, reflect, tasks):
    """:func:`box_filter` of ``(P, H, W)`` planes over ``(plane, y0, y1)`` tasks."""
    scratch = _box_scratch(planes.shape[1], planes.shape[2], r, reflect, planes.dtype)
    for t in range(tasks.shape[0]):
        p, y0, y1 = tasks[t, 0], tasks[t, 1], tasks[t, 2]
        _box_strip(planes[p], 0, y0, y1, r, reflect, out[p, y0:y1], scratch)


@_jit
def _guided_strips(guide, src, out, r, eps, reflect, tasks):
    """:func:`guided_filter` over ``(sample, y0, y1)`` tasks; the steps of the module docstring."""
    guides, channels, height, width = guide.shape[1], src.shape[1], src.shape[2], src.shape[3]
    rows = 0
    for t in range(tasks.shape[0]):
        rows = max(rows, tasks[t, 2] - tasks[t, 1])
    # statistics: I and I*I per guide channel, then p and I*p per source channel
    count = 2 * guides + 2 * channels
    stats = np.empty((count, rows + 4 * r, width), src.dtype)
    stat_means = np.empty((count, rows + 2 * r, width), src.dtype)
    coefficients = np.empty((2 * channels, rows + 2 * r, width), src.dtype)  # a then b
    coefficient_means = np.empty((2 * channels, rows, width), src.dtype)
    scratch = _box_scratch(height, width, r, reflect, src.dtype)
    for t in range(tasks.shape[0]):
        n, y0, y1 = tasks[t, 0], tasks[t, 1], tasks[t, 2]
        lo, hi = max(0, y0 - r), min(height, y1 + r)  # rows of a and b that the last means need
        stats_lo, stats_hi = max(0, lo - r), min(height, hi + r)  # rows of statistics their means need
        for i in range(stats_hi - stats_lo):
            y = stats_lo + i
            for g in range(guides):
                for j in range(width):
                    value = guide[n, g, y, j]
                    stats[g, i, j] = value
                    stats[guides + g, i, j] = value * value
            for c in range(channels):
                g = c if guides > 1 else 0
                for j in range(width):
                    stats[2 * guides + c, i, j] = src[n, c, y, j]
                    stats[2 * guides + channels + c, i, j] = src[n, c, y, j] * guide[n, g, y, j]
        for s in range(count):
            _box_strip(stats[s], stats_lo, lo, hi, r, reflect, stat_means[s], scratch)
        for c in range(channels):
            g = c if guides > 1 else 0
            mean_i, corr_ii = stat_means[g], stat_means[guides + g]
            mean_p, corr_ip = stat_means[2 * guides + c], stat_means[2 * guides + channels + c]
            a, b = coefficients[c], coefficients[channels + c]
            for i in range(hi - lo):
                for j in range(width):
                    m = mean_i[i, j]
                    a[i, j] = (corr_ip[i, j] - m * mean_p[i, j]) / (corr_ii[i, j] - m * m + eps)
                    b[i, j] = mean_p[i, j] - a[i, j] * m
        for s in range(2 * channels):
            _box_strip(coefficients[s], lo, y0, y1, r, reflect, coefficient_means[s], scratch)
        for c in range(channels):
            g = c if guides > 1 else 0
            for i in range(y1 - y0):
                for j in range(width):
                    out[n, c, y0 + i, j] = (
                        coefficient_means[c, i, j] * guide[n, g, y0 + i, j] + coefficient_means[channels + c, i, j]
                    )
