"""Export the whole cartoonizer (generator + guided-filter post-process) to ONNX, with dynamic H and W.

The exported graph takes ``input``: ``(N, 3, H, W)`` RGB in [-1, 1] with ``H`` and ``W`` multiples of 8,
and returns ``output``: ``clamp(guided_filter(x, G(x), 1, 5e-3), -1, 1)`` of the same shape: exactly
what :class:`animescene.inference.Cartoonizer` computes for an image that needs no resizing or padding.
ONNX Runtime, OpenVINO, TensorRT and browsers (onnxruntime-web) can run it.

:func:`export_int8_onnx` writes the bare generator quantized to int8 for ONNX Runtime on CPUs; the
guided filter then runs in float32 beside it (the ``onnxruntime-int8`` backend of
:mod:`animescene.backends`).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from .backends import vnni
from .filters import post_process
from .models import UNetGenerator


class CartoonizeGraph(torch.nn.Module):
    """``x -> clamp(guided_filter(x, G(x), 1, 5e-3), -1, 1)`` as one module, for export and compile."""

    def __init__(self, generator: UNetGenerator):
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return post_process(x, self.generator(x))


def export_onnx(generator: UNetGenerator, path, *, example_size: tuple[int, int] = (256, 256), opset: int = 18,
                post_process: bool = True) -> Path:
    """Write ``generator`` + post-process to ``path`` (ONNX) with dynamic batch, height and width.

    ``post_process=False`` exports the bare generator (for runtimes that would run the guided filter in
    reduced precision: keep that part in float32). Uses PyTorch's ``torch.export``-based exporter
    (needs ``onnxscript``). Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = copy.deepcopy(generator).eval().cpu().float()  # the caller's module stays where it is
    graph = CartoonizeGraph(generator).eval() if post_process else generator
    example = torch.zeros(2, 3, *example_size)  # not 1: export specializes size-1 dimensions
    height, width = torch.export.Dim("height8", min=2, max=1024), torch.export.Dim("width8", min=2, max=1024)
    dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=64), 2: 8 * height, 3: 8 * width}}
    with torch.no_grad():
        torch.onnx.export(graph, (example,), path, input_names=["input"], output_names=["output"],
                          dynamic_shapes=dynamic, opset_version=opset, dynamo=True, external_data=False)
    return path


def export_int8_onnx(generator: UNetGenerator, path, calibration: torch.Tensor | None = None,
                     reduce_range: bool | None = None) -> Path:
    """Write the bare generator (no post-process) to ``path`` as a statically quantized int8 ONNX model.

    Args:
        generator: the float generator.
        path: the ``.onnx`` file to write.
        calibration: ``(N, 3, H, W)`` photos in [-1, 1], ``H`` and ``W`` multiples of 8, whose activation
            ranges fix the int8 scales (a handful of real photos is enough; not the images you measure on).
            Default: :func:`calibration_photos`.
        reduce_range: 7-bit weights. Default: on CPUs without VNNI (:func:`animescene.backends.vnni`),
            which multiply uint8 by int8 into 16-bit sums that saturate at full 8-bit range (that cost
            the official model 10 dB of PSNR on an AVX2 CPU); VNNI adds into 32 bits, so there the
            weights keep all 8 bits. The file is then best run on a CPU of the same kind.

    Weights are int8 per output channel, activations uint8 per tensor (QDQ format).
    The first convolution (the photo itself in) and the last (the picture out, before tanh) stay in
    float32: about 7 % of the work, and worth 2 dB on the official weights at 720p (40.0 -> 41.9 dB
    against float32). The guided filter stays out of the quantized graph, since int8 ruins its
    variance terms: apply it in float32 to the model's output.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static

    if calibration is None:
        calibration = calibration_photos()
    if calibration.ndim != 4 or calibration.shape[1] != 3 or calibration.shape[0] == 0:
        raise ValueError(f"calibration must be a non-empty (N, 3, H, W) batch, got {tuple(calibration.shape)}")

    class Photos(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration.detach().cpu().float().split(1))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"input": batch.numpy()}

    if reduce_range is None:
        reduce_range = not vnni()
    path = Path(path)
    float_path = export_onnx(generator, path.with_suffix(".float.onnx"), post_process=False)
    try:
        convs = [node.name for node in onnx.load(str(float_path)).graph.node if node.op_type == "Conv"]
        quantize_static(str(float_path), str(path), Photos(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=reduce_range, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=[convs[0], convs[-1]])
    finally:
        float_path.unlink(missing_ok=True)
    return path


def calibration_photos() -> torch.Tensor:
    """``(5, 3, 360, 360)``: the course's example photos 2 to 6, the default int8 calibration set.

    Photo 1 (``example_photos(1, size)``, the benchmark's frame) is left out, so that checking an
    int8 model on it does not flatter the result.
    """
    from .data import example_photos

    return example_photos(6, 360)[0][1:]


def verify_onnx(path, generator: UNetGenerator, sizes=((64, 96), (120, 200)), atol: float = 1e-4) -> float:
    """Run the ONNX file with ONNX Runtime at several sizes against PyTorch; return the largest difference.

    Raises ``AssertionError`` when a difference exceeds ``atol``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph = CartoonizeGraph(copy.deepcopy(generator).cpu().float()).eval()
    worst = 0.0
    generator_rng = torch.Generator().manual_seed(0)
    for height, width in sizes:
        x = torch.rand(1, 3, height, width, generator=generator_rng) * 2 - 1
        with torch.no_grad():
            expected = graph(x).numpy()
        got = session.run(["output"], {"input": x.numpy()})[0]
        difference = float(abs(got - expected).max())
        if difference > atol:
            raise AssertionError(f"ONNX output differs from PyTorch by {difference:.3g} at {height}x{width}")
        worst = max(worst, difference)
    return worst
