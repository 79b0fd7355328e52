"""Export the whole cartoonizer (generator + guided-filter post-process) to ONNX, with dynamic H and W.

The exported graph takes ``input``: ``(N, 3, H, W)`` RGB in [-1, 1] with ``H`` and ``W`` multiples of 8,
and returns ``output``: ``clamp(guided_filter(x, G(x), 1, 5e-3), -1, 1)`` of the same shape: exactly
what :class:`animescene.inference.Cartoonizer` computes for an image that needs no resizing or padding.
ONNX Runtime, OpenVINO, TensorRT and browsers (onnxruntime-web) can run it.

:func:`export_int8_onnx` writes the bare generator quantized to int8 for ONNX Runtime on CPUs; the
guided filter then runs in float32 beside it (the ``onnxruntime-int8`` backend of
:mod:`animescene.backends`).

The generator's TF1 upsampling (:func:`animescene.models.upsample2x_tf1`, written with slices and
``stack``) is exported as one ONNX ``Resize`` (linear, ``asymmetric`` coordinates), the same
function: runtimes have fast kernels for it, also in int8, where OpenVINO ran the ``stack`` with a
slow reference kernel that took a third of the int8 frame (docs/benchmarks.md, issue 20).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F

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


def upsample2x_pooled(x: torch.Tensor) -> torch.Tensor:
    """TF1 ``resize_bilinear`` to twice the size, as nearest x2, edge padding by one, then a 2 x 2 mean.

    Equal to :func:`animescene.models.upsample2x_tf1`: output pixel ``2i`` averages four copies of
    input pixel ``i``, pixel ``2i+1`` two copies of ``i`` and two of ``i+1`` (the edge repeats at the
    end). These three ops export to ONNX ``Resize``, ``Pad`` and ``AveragePool``, which
    :func:`fuse_linear_resize` turns into one linear ``Resize``.

    Shape: ``(B, C, H, W) -> (B, C, 2H, 2W)``.
    """
    nearest = F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.avg_pool2d(F.pad(nearest, (0, 1, 0, 1), mode="replicate"), 2, stride=1)


def fuse_linear_resize(path) -> int:
    """Rewrite the ONNX file at ``path``: each nearest ``Resize`` -> edge ``Pad`` -> 2 x 2 stride-1
    ``AveragePool`` chain (:func:`upsample2x_pooled`) becomes one ``Resize`` in linear mode with
    ``asymmetric`` coordinates, which is TF1's bilinear resize. Returns how many were fused."""
    import onnx

    model = onnx.load(str(path))
    producer = {name: node for node in model.graph.node for name in node.output}
    attributes = lambda node: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}  # noqa: E731
    fused = []
    for pool in [node for node in model.graph.node if node.op_type == "AveragePool"]:
        pad = producer.get(pool.input[0])
        resize = producer.get(pad.input[0]) if pad is not None and pad.op_type == "Pad" else None
        if (resize is None or resize.op_type != "Resize" or attributes(pad).get("mode") != b"edge"
                or attributes(resize).get("mode") != b"nearest"
                or attributes(resize).get("coordinate_transformation_mode") != b"asymmetric"
                or attributes(pool).get("kernel_shape") != [2, 2] or attributes(pool).get("strides") != [1, 1]):
            continue
        next(a for a in resize.attribute if a.name == "mode").s = b"linear"
        resize.output[0] = pool.output[0]
        fused += [pad, pool]
    for node in fused:
        model.graph.node.remove(node)
    used = {name for node in model.graph.node for name in node.input}
    for initializer in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(initializer)  # the Pad's amounts
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return len(fused) // 2


def export_onnx(generator: UNetGenerator, path, *, example_size: tuple[int, int] = (256, 256), opset: int = 18,
                post_process: bool = True) -> Path:
    """Write ``generator`` + post-process to ``path`` (ONNX) with dynamic batch, height and width.

    ``post_process=False`` exports the bare generator (for runtimes that would run the guided filter in
    reduced precision: keep that part in float32). Uses PyTorch's ``torch.export``-based exporter
    (needs ``onnxscript``). A ``tf_mode`` generator's upsampling goes out as one linear ``Resize``
    (:func:`upsample2x_pooled`, :func:`fuse_linear_resize`). Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = copy.deepcopy(generator).eval().cpu().float()  # the caller's module stays where it is
    if generator.tf_mode:
        generator._upsample = upsample2x_pooled  # the same function, in ops that export well
    graph = CartoonizeGraph(generator).eval() if post_process else generator
    example = torch.zeros(2, 3, *example_size)  # not 1: export specializes size-1 dimensions
    height, width = torch.export.Dim("height8", min=2, max=1024), torch.export.Dim("width8", min=2, max=1024)
    dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=64), 2: 8 * height, 3: 8 * width}}
    with torch.no_grad():
        torch.onnx.export(graph, (example,), path, input_names=["input"], output_names=["output"],
                          dynamic_shapes=dynamic, opset_version=opset, dynamo=True, external_data=False)
    if generator.tf_mode:
        fuse_linear_resize(path)
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
