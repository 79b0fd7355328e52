"""The runtimes a :class:`~animescene.inference.Cartoonizer` can run its generator on.

A backend turns ``(B, 3, H, W)`` float32 RGB in [-1, 1] (``H`` and ``W`` multiples of 8) into the
generator's ``(B, 3, H, W)`` output. The guided filter after it always runs in float32 in PyTorch: in
int8 (or bf16) its variance terms lose the picture.

- ``"torch"``: the generator itself (eager PyTorch, any device, any ``dtype``): the reference.
- ``"openvino-int8"``: OpenVINO with the generator quantized to int8 by NNCF (its post-training
  quantization, ``MIXED`` preset: asymmetric activations), calibrated on the course photos
  (:func:`animescene.export.calibration_photos`). Where the CPU has VNNI every convolution is int8;
  on AVX2 CPUs the first and last stay in float, as measured there. OpenVINO picks VNNI or AMX int8
  kernels where the CPU has them.
- ``"onnxruntime-int8"``: ONNX Runtime with :func:`animescene.export.export_int8_onnx` (QDQ, 7-bit
  weights on AVX2 CPUs, 8-bit where VNNI is present).

Both int8 backends need ``pip install 'animescene[fast]'`` (``make env`` installs it).

``"auto"`` is the rule :func:`auto_backend` documents. On a GPU it is ``torch``. On a CPU it is the
first int8 backend whose runtime is installed, in the order :func:`int8_order` gives for the CPU's
flags: ``openvino-int8`` first where the CPU has VNNI (``avx512_vnni``, ``avx_vnni``, ``amx_int8``),
``onnxruntime-int8`` first on the others; ``torch`` when neither is installed. The order is what
``animescene bench inference`` measured (docs/benchmarks.md, issue 20), PSNR >= 40 dB against
float32 for both. On an AVX2 Zen 3 CPU: ONNX Runtime int8 1.77 s per 720p frame, OpenVINO int8
2.00 s. On an AVX-512 VNNI/BF16 Zen 4 CPU, OpenVINO int8 (all convolutions in int8 VNNI kernels)
was the fastest backend, about half the time of OpenVINO bf16.

The quantized models are built once per generator (from a hash of its weights) and kept in
``cache_dir()/backends``; building one takes about half a minute on 2 cores.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from .errors import UsageError
from .models import UNetGenerator
from .runtime import cache_dir, cpu_flags

BACKENDS = ("torch", "openvino-int8", "onnxruntime-int8")
# the Python package each non-torch backend needs, and how to get it
REQUIREMENTS = {"openvino-int8": ("openvino", "nncf", "onnxscript"),
                "onnxruntime-int8": ("onnxruntime", "onnx", "onnxscript")}
# CPU flags with 8-bit dot products that add into 32 bits (no 16-bit saturation of u8 x s8 products)
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# part of the cached models' names: bumped when the export or the quantization changes
MODEL_VERSION = "v2"

Runner = Callable[[torch.Tensor], torch.Tensor]


def is_installed(backend: str) -> bool:
    """True when the Python packages ``backend`` needs are importable (always for ``"torch"``)."""
    packages = REQUIREMENTS.get(backend, ())
    return all(importlib.util.find_spec(package) is not None for package in packages)


def int8_order() -> tuple[str, str]:
    """The int8 backends, fastest first on this CPU: OpenVINO first where it has VNNI, else ONNX Runtime."""
    return ("openvino-int8", "onnxruntime-int8") if vnni() else ("onnxruntime-int8", "openvino-int8")


def auto_backend(device: torch.device) -> str:
    """The backend ``"auto"`` means on ``device``: see the module docstring for the rule."""
    if device.type != "cpu":
        return "torch"
    return next((name for name in int8_order() if is_installed(name)), "torch")


def make_runner(backend: str, generator: UNetGenerator, device: torch.device) -> tuple[str, Runner]:
    """``(name, run)``: the backend ``"auto"`` or a name of :data:`BACKENDS` resolves to, and its runner.

    ``run(x)`` maps ``(B, 3, H, W)`` float32 on ``device`` to the generator's output on ``device``.
    Raises :class:`~animescene.errors.UsageError` for an unknown name, a runtime that is not installed,
    or an int8 backend asked for on a GPU.
    """
    name = auto_backend(device) if backend == "auto" else backend
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; use 'auto' or one of {', '.join(BACKENDS)}")
    if name == "torch":
        return name, generator
    if device.type != "cpu":
        raise UsageError(f"backend {name!r} runs on the CPU, not on {device}; "
                         f"use backend 'torch' or device 'cpu'")
    if not is_installed(name):
        raise UsageError(f"backend {name!r} needs {', '.join(REQUIREMENTS[name])}: pip install "
                         f"'animescene[fast]', or use backend 'torch'")
    build = _openvino_int8 if name == "openvino-int8" else _onnxruntime_int8
    return name, build(generator)


def generator_key(generator: UNetGenerator) -> str:
    """A hash of the generator's architecture and weights: the name its quantized models are kept under."""
    digest = hashlib.sha256(repr(generator).encode())
    for name, tensor in generator.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def _cached(generator: UNetGenerator, backend: str, suffix: str) -> Path:
    folder = cache_dir() / "backends"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{generator_key(generator)}-{backend}{suffix}"


def quantize_openvino(generator: UNetGenerator, calibration: torch.Tensor | None = None,
                      float_ends: bool | None = None):
    """The generator as an OpenVINO model quantized to int8 by NNCF (an ``openvino.Model``).

    Args:
        generator: the float generator.
        calibration: ``(N, 3, H, W)`` photos in [-1, 1] whose activation ranges fix the int8 scales.
            Default: :func:`animescene.export.calibration_photos`.
        float_ends: the recipe measured on an AVX2 CPU (43.5 dB at 720p against float32): the first
            and last convolutions (the photo in, the picture out) in float, symmetric activations
            (NNCF's ``PERFORMANCE`` preset). Otherwise every convolution is int8 with asymmetric
            activations (``MIXED``: the zero point follows LeakyReLU's lopsided range), the recipe
            measured on an AVX-512 VNNI CPU: 43.9 dB, where symmetric activations gave 41.6; there the
            last convolution in float, with its 3 output channels, had taken a quarter of the frame
            (docs/benchmarks.md, issue 20). Default: the AVX2 recipe on CPUs without VNNI (:func:`vnni`).
    """
    import nncf
    import openvino as ov

    from .export import calibration_photos, export_onnx

    if calibration is None:
        calibration = calibration_photos()
    with tempfile.TemporaryDirectory(prefix="animescene_quantize_") as tmp:
        onnx_file = export_onnx(generator, Path(tmp) / "generator.onnx", post_process=False)
        model = ov.Core().read_model(str(onnx_file))
    if float_ends is None:
        float_ends = not vnni()
    convs = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    ignored = {"ignored_scope": nncf.IgnoredScope(names=[convs[0], convs[-1]])} if float_ends else {}
    dataset = nncf.Dataset([photo[None].cpu().float().numpy() for photo in calibration])
    preset = nncf.QuantizationPreset.PERFORMANCE if float_ends else nncf.QuantizationPreset.MIXED
    return nncf.quantize(model, dataset, subset_size=len(calibration), preset=preset,
                         fast_bias_correction=True, **ignored)


def _openvino_int8(generator: UNetGenerator) -> Runner:
    import openvino as ov

    xml = _cached(generator, f"openvino-int8-{MODEL_VERSION}-{'vnni' if vnni() else 'avx2'}", ".xml")
    weights = xml.with_suffix(".bin")
    if not (xml.is_file() and weights.is_file()):
        # write under temporary names in the cache folder, then rename: the .bin first, so that an
        # .xml on disk always has its weights complete beside it
        with tempfile.TemporaryDirectory(dir=xml.parent, prefix=".tmp-") as tmp:
            ov.save_model(quantize_openvino(generator), Path(tmp) / "model.xml")
            os.replace(Path(tmp) / "model.bin", weights)
            os.replace(Path(tmp) / "model.xml", xml)
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(xml), str(weights)), "CPU")
    request = compiled.create_infer_request()

    def run(x: torch.Tensor) -> torch.Tensor:
        result = request.infer({0: x.detach().float().numpy()})[compiled.output(0)]
        return torch.from_numpy(result.copy())  # the request reuses its output buffer

    return run


def _onnxruntime_int8(generator: UNetGenerator) -> Runner:
    import onnxruntime as ort

    from .export import export_int8_onnx

    path = _cached(generator, f"onnxruntime-int8-{MODEL_VERSION}-{'vnni' if vnni() else 'avx2'}", ".onnx")
    if not path.is_file():
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tmp-") as tmp:
            os.replace(export_int8_onnx(generator, Path(tmp) / "model.onnx"), path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(["output"], {"input": x.detach().float().numpy()})[0])

    return run


def vnni() -> bool:
    """True on CPUs whose 8-bit dot products add into 32 bits (AVX-512 VNNI, AVX-VNNI, AMX)."""
    return bool(cpu_flags() & set(VNNI_FLAGS))
