"""Box and guided filters against OpenCV and a float64 re-implementation.

The filters have two forms, and the reference tests run both: the fused CPU kernel
(``animescene.filters_cpu``), which runs when no input needs a gradient, and the differentiable
tensor ops, which run when one does.
"""

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from animescene import filters_cpu
from animescene.filters import GuidedFilter, box_filter, fast_guided_filter, guided_filter

FORMS = ["fused CPU kernel", "tensor ops"]


def _in_form(form, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` run in ``form``: the tensor ops are chosen by inputs that need a gradient."""
    if form == "tensor ops":
        args = [a.detach().clone().requires_grad_() if isinstance(a, torch.Tensor) else a for a in args]
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    assert filters_cpu.usable(*tensors) == (form == "fused CPU kernel")
    return fn(*args, **kwargs).detach()


def _box_reference(x: np.ndarray, r: int, border: str) -> np.ndarray:
    """float64 window mean by explicit loops over a (H, W) array: the definition itself."""
    h, w = x.shape
    out = np.empty((h, w), dtype=np.float64)
    if border == "reflect":
        padded = np.pad(x.astype(np.float64), r, mode="symmetric")
        for i in range(h):
            for j in range(w):
                out[i, j] = padded[i : i + 2 * r + 1, j : j + 2 * r + 1].mean()
        return out
    for i in range(h):
        for j in range(w):
            out[i, j] = x[max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1].astype(np.float64).mean()
    return out


def _guided_reference(guide: np.ndarray, src: np.ndarray, r: int, eps: float, border: str) -> np.ndarray:
    """He et al.'s algorithm 1 in float64, one (H, W) guide and one (H, W) source."""

    def box(a):
        return _box_reference(a, r, border)

    guide, src = guide.astype(np.float64), src.astype(np.float64)
    mean_i, mean_p = box(guide), box(src)
    var_i = box(guide * guide) - mean_i**2
    cov_ip = box(guide * src) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def _real_image(size=(96, 128)) -> np.ndarray:
    """A real photo from scikit-image, float32 RGB in [0, 1], resized to ``size`` (H, W)."""
    image = skimage.data.astronaut().astype(np.float32) / 255.0
    return cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("border", ["clip", "reflect"])
@pytest.mark.parametrize("r", [0, 1, 3, 8])
def test_box_filter_equals_float64_window_mean(form, border, r):
    """r=8 on 13 rows: windows wider than half the image, clipped or mirrored on both sides at once."""
    x = np.random.default_rng(1).random((13, 17))
    got = _in_form(form, box_filter, torch.from_numpy(x)[None, None], r, border)[0, 0].numpy()
    np.testing.assert_allclose(got, _box_reference(x, r, border), atol=1e-12)


@pytest.mark.parametrize("form", FORMS)
def test_box_filter_reflect_matches_opencv_box_filter(form):
    x = np.random.default_rng(2).random((2, 40, 50)).astype(np.float32)
    got = _in_form(form, box_filter, torch.from_numpy(x)[None], 5, "reflect")[0].numpy()
    for plane, out in zip(x, got):
        ref = cv2.boxFilter(plane, -1, (11, 11), normalize=True, borderType=cv2.BORDER_REFLECT)
        np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("source", ["random", "real"])
@pytest.mark.parametrize("r,eps", [(1, 5e-3), (5, 0.2), (8, 1e-2)])
def test_guided_filter_matches_opencv_everywhere(form, source, r, eps):
    """Gray guide, colour source, OpenCV's reflect border: interior and borders within 1e-4."""
    if source == "random":
        image = np.random.default_rng(3).random((64, 80, 3), dtype=np.float32)
    else:
        image = _real_image()
    guide = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    ref = cv2.ximgproc.guidedFilter(guide, image, r, eps)
    got = _in_form(form, guided_filter, _nchw(guide[:, :, None]), _nchw(image), r, eps, border="reflect")[0]
    diff = np.abs(got.permute(1, 2, 0).numpy() - ref)
    assert diff[r:-r, r:-r].max() < 1e-4, "interior"
    assert diff.max() < 1e-4, "borders"


@pytest.mark.parametrize("form", FORMS)
def test_channelwise_guide_equals_opencv_per_channel(form):
    """A (B, C, H, W) guide steers each channel with its own channel (White-box's form)."""
    image = _real_image((48, 64))
    src = np.random.default_rng(4).random(image.shape, dtype=np.float32)
    got = _in_form(form, guided_filter, _nchw(image), _nchw(src), 2, 1e-2, border="reflect")
    got = got[0].permute(1, 2, 0).numpy()
    for c in range(3):
        ref = cv2.ximgproc.guidedFilter(image[:, :, c], src[:, :, c], 2, 1e-2)
        np.testing.assert_allclose(got[:, :, c], ref, atol=1e-4)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("border", ["clip", "reflect"])
@pytest.mark.parametrize("r", [3, 10])
def test_guided_filter_equals_float64_reference(form, border, r):
    """r=10 on 21 rows: every window of the second box filter reaches past an edge."""
    rng = np.random.default_rng(5)
    guide, src = rng.random((21, 26)), rng.random((21, 26))
    t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    got = _in_form(form, guided_filter, t(guide), t(src), r, 0.05, border)
    np.testing.assert_allclose(got[0, 0].numpy(), _guided_reference(guide, src, r, 0.05, border), atol=1e-10)


@pytest.mark.parametrize("form", FORMS)
def test_guided_filter_is_batched_and_per_sample(form):
    x = torch.rand(3, 3, 32, 40)
    batched = _in_form(form, guided_filter, x, x, 2, 0.1)
    for i in range(3):
        one = _in_form(form, guided_filter, x[i : i + 1], x[i : i + 1], 2, 0.1)
        torch.testing.assert_close(batched[i : i + 1], one)


def test_fused_kernel_runs_without_gradients_and_tensor_ops_with(monkeypatch):
    calls = []
    fused = filters_cpu.guided_filter
    monkeypatch.setattr(filters_cpu, "guided_filter", lambda *args: calls.append(args) or fused(*args))
    x = torch.rand(1, 3, 24, 24)
    plain = guided_filter(x, x, 2, 0.1)
    assert len(calls) == 1
    y = x.clone().requires_grad_()
    differentiable = guided_filter(y, y, 2, 0.1)
    differentiable.sum().backward()
    assert len(calls) == 1 and y.grad is not None
    with torch.no_grad():
        guided_filter(y, y, 2, 0.1)
    assert len(calls) == 2
    torch.testing.assert_close(plain, differentiable.detach())


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_exported_and_traced_guided_filter_record_tensor_ops_not_a_constant():
    """torch.export (our ONNX export) and torch.jit.trace must see ops that follow new inputs."""
    first, second = torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        exported = torch.export.export(GuidedFilter(1, 1e-2), (first, first)).module()
        torch.testing.assert_close(exported(second, second), guided_filter(second, second, 1, 1e-2))
        # the clipped border's band sizes are Python ints, which jit.trace cannot follow; reflect traces
        traced = torch.jit.trace(GuidedFilter(1, 1e-2, "reflect"), (first, first), check_trace=False)
        torch.testing.assert_close(traced(second, second), guided_filter(second, second, 1, 1e-2, "reflect"))


def test_fused_kernel_does_not_depend_on_thread_count_or_strips():
    """150 rows at r=5 are 8 strips per sample; any thread count gives the same bits."""
    x = torch.rand(2, 3, 150, 70)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = guided_filter(x, x, 5, 0.2), box_filter(x, 5)
        torch.set_num_threads(3)
        three = guided_filter(x, x, 5, 0.2), box_filter(x, 5)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], three[0]) and torch.equal(one[1], three[1])
    torch.testing.assert_close(one[0], _in_form("tensor ops", guided_filter, x, x, 5, 0.2))


def test_fused_kernel_keeps_memory_format_and_source_dtype():
    guide = torch.rand(2, 1, 30, 40, dtype=torch.float64)
    src = torch.rand(2, 3, 30, 40)
    out = guided_filter(guide, src.contiguous(memory_format=torch.channels_last), 2, 0.05)
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, _in_form("tensor ops", guided_filter, guide, src, 2, 0.05))


def test_guided_filter_keeps_edges_and_flattens_noise():
    """A step edge plus weak noise: the step survives, the noise is smoothed (eps above its variance)."""
    generator = torch.Generator().manual_seed(0)
    step = torch.zeros(1, 1, 40, 40)
    step[..., 20:] = 1.0
    noisy = step + 0.02 * torch.randn(step.shape, generator=generator)
    out = guided_filter(noisy, noisy, 4, 0.01)
    assert (out[..., 24:] - out[..., :16].mean()).mean() > 0.95
    assert out[..., 2:16].std() < 0.5 * noisy[..., 2:16].std()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_agree_with_float32(dtype):
    x = torch.rand(2, 3, 48, 48) * 2 - 1
    ref = guided_filter(x, x, 5, 0.2)
    got = guided_filter(x.to(dtype), x.to(dtype), 5, 0.2)
    assert got.dtype == dtype
    tolerance = 1e-2 if dtype == torch.bfloat16 else 2e-3
    assert (got.float() - ref).abs().max() < tolerance


def test_box_filter_half_precision():
    x = torch.rand(1, 3, 20, 20)
    for dtype in (torch.float16, torch.bfloat16):
        got = box_filter(x.to(dtype), 2)
        assert got.dtype == dtype
        torch.testing.assert_close(got.float(), box_filter(x, 2), atol=1e-2, rtol=1e-2)


def test_gradcheck_guided_and_fast_guided_filter():
    generator = torch.Generator().manual_seed(0)
    guide = torch.rand(1, 2, 7, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    src = torch.rand(1, 2, 7, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    for border in ("clip", "reflect"):
        assert torch.autograd.gradcheck(lambda g, s: guided_filter(g, s, 2, 0.1, border), (guide, src))
    hr = torch.rand(1, 2, 14, 16, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g, s, h: fast_guided_filter(g, s, h, 1, 0.1), (guide, src, hr))


def test_fast_guided_filter_at_equal_resolution_is_the_guided_filter():
    x, y = torch.rand(2, 3, 30, 30), torch.rand(2, 3, 30, 30)
    torch.testing.assert_close(fast_guided_filter(x, y, x, 2, 0.05), guided_filter(x, y, 2, 0.05))


def test_fast_guided_filter_matches_float64_upsampled_coefficients():
    rng = np.random.default_rng(6)
    lr_guide, lr_src = rng.random((12, 16)), rng.random((12, 16))
    hr_guide = rng.random((24, 32))
    box = lambda a: _box_reference(a, 1, "clip")  # noqa: E731
    mean_i, mean_p = box(lr_guide), box(lr_src)
    a = (box(lr_guide * lr_src) - mean_i * mean_p) / (box(lr_guide**2) - mean_i**2 + 0.05)
    b = mean_p - a * mean_i
    upsample = lambda c: cv2.resize(c, (32, 24), interpolation=cv2.INTER_LINEAR)  # noqa: E731  (half-pixel)
    ref = upsample(box(a)) * hr_guide + upsample(box(b))
    t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    got = fast_guided_filter(t(lr_guide), t(lr_src), t(hr_guide), 1, 0.05)[0, 0].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)  # OpenCV keeps its interpolation weights in float32


def test_module_wraps_function():
    x = torch.rand(1, 3, 16, 16)
    module = GuidedFilter(r=1, eps=5e-3)
    torch.testing.assert_close(module(x, x), guided_filter(x, x, 1, 5e-3))
    assert "r=1" in repr(module)


@pytest.mark.gpu
def test_gpu_matches_cpu():
    x = torch.rand(2, 3, 64, 64)
    cpu = guided_filter(x, x, 5, 0.2)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        gpu = guided_filter(x.cuda().to(dtype), x.cuda().to(dtype), 5, 0.2)
        assert (gpu.float().cpu() - cpu).abs().max() < 2e-2


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: box_filter(torch.rand(3, 8, 8), 1), ValueError, "(B, C, H, W)"),
        (lambda: box_filter(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), 1), TypeError, "floating-point"),
        (lambda: box_filter(np.zeros((1, 1, 8, 8)), 1), TypeError, "torch.Tensor"),
        (lambda: box_filter(torch.rand(0, 3, 8, 8), 1), ValueError, "empty batch"),
        (lambda: box_filter(torch.rand(1, 3, 8, 8), 8), ValueError, "too large"),
        (lambda: box_filter(torch.rand(1, 3, 8, 8), -1), ValueError, ">= 0"),
        (lambda: box_filter(torch.rand(1, 3, 8, 8), 1.5), TypeError, "int"),
        (lambda: box_filter(torch.rand(1, 3, 8, 8), 1, "wrap"), ValueError, "border"),
        (lambda: guided_filter(torch.rand(1, 2, 8, 8), torch.rand(1, 3, 8, 8), 1, 0.1), ValueError, "channel"),
        (lambda: guided_filter(torch.rand(1, 3, 8, 9), torch.rand(1, 3, 8, 8), 1, 0.1), ValueError, "height"),
        (lambda: guided_filter(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), 1, 0.0), ValueError, "eps"),
        (lambda: guided_filter(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), 9, 0.1), ValueError, "too large"),
    ],
)
def test_bad_input_raises_clear_errors(call, error, words):
    with pytest.raises(error, match=None) as info:
        call()
    assert words in str(info.value)


def test_guided_filter_ignores_an_enclosing_autocast():
    """Mixed-precision training wraps the filter in autocast; it must still compute in float32."""
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    y = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = guided_filter(x, y, 1, 5e-3)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, guided_filter(x, y, 1, 5e-3))


def test_filters_benchmark_times_both_forms_against_opencv():
    from animescene.bench import guided_filter_vs_opencv

    rows = guided_filter_vs_opencv(repeats=1)
    assert [row["case"].split(" border=")[1] for row in rows] == ["reflect", "clip"] * 2
    assert {row["case"].split(" ")[0] for row in rows} == {"r=1", "r=5"}
    for row in rows:
        assert 0 < row["ours ms"] and 0 < row["differentiable ms"] and 0 < row["OpenCV ms"]
        assert row["ours/OpenCV"] == pytest.approx(row["ours ms"] / row["OpenCV ms"])
