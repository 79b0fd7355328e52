"""Export the whole cartoonizer (generator + guided-filter post-process) to ONNX, with dynamic H and W.

The exported graph takes ``input``: ``(N, 3, H, W)`` RGB in [-1, 1] with ``H`` and ``W`` multiples of 8,
and returns ``output``: ``clamp(guided_filter(x, G(x), 1, 5e-3), -1, 1)`` of the same shape: exactly
what :class:`animescene.inference.Cartoonizer` computes for an image that needs no resizing or padding.
ONNX Runtime, OpenVINO, TensorRT and browsers (onnxruntime-web) can run it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from .filters import guided_filter
from .inference import GUIDED_EPS, GUIDED_R
from .models import UNetGenerator


class CartoonizeGraph(torch.nn.Module):
    """``x -> clamp(guided_filter(x, G(x), 1, 5e-3), -1, 1)`` as one module, for export and compile."""

    def __init__(self, generator: UNetGenerator):
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return guided_filter(x, self.generator(x), GUIDED_R, GUIDED_EPS).clamp(-1.0, 1.0)


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
