"""Generator backends (animescene/backends.py): each keeps the picture, "auto" follows its rule, models are
cached."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from animescene import backends
from animescene.backends import auto_backend, generator_key, make_runner
from animescene.errors import UsageError
from animescene.inference import Cartoonizer

CPU = torch.device("cpu")
INT8 = [name for name in backends.BACKENDS if name != "torch"]


def _psnr64(x: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2), in float64 numpy: the reference formula."""
    mse = np.mean((x.numpy().astype(np.float64) - reference.numpy().astype(np.float64)) ** 2)
    return 10 * np.log10(4.0 / mse)


@pytest.fixture(scope="module")
def official():
    from animescene.models import load_official_whitebox

    try:
        return load_official_whitebox()
    except FileNotFoundError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def cache(official, tmp_path_factory):
    """A fresh ``ANIMESCENE_HOME`` for the module (set after the official weights are loaded from the
    real one): quantized models are built here, once."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("home")
        patch.setenv("ANIMESCENE_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def photo():
    """Photo 1 of the course (outside the calibration set), 236 x 324: not a multiple of 8 (padding runs)."""
    from animescene.data import example_photos

    return F.interpolate(example_photos(1, 256)[0], size=(236, 324), mode="area").clamp(-1, 1)


@pytest.mark.slow
@pytest.mark.parametrize("backend", INT8)
def test_int8_backend_keeps_40_db_against_eager_float32(backend, official, cache, photo):
    if not backends.is_installed(backend):
        pytest.skip(f"{backend}'s runtime is not installed")
    expected = Cartoonizer(official, device="cpu")(photo)
    cartoonizer = Cartoonizer(official, device="cpu", backend=backend)
    got = cartoonizer(photo)
    assert cartoonizer.backend == backend
    assert got.shape == photo.shape and float(got.abs().max()) <= 1
    assert 40 <= _psnr64(got, expected) < 80, "int8 should be close to float32, but not equal to it"
    # built once, then read back from the cache: the same model, no second quantization
    assert len(list((cache / "backends").glob(f"{generator_key(official)}-{backend}*"))) in (1, 2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backends, "quantize_openvino", _fail)
        patch.setattr("animescene.export.export_int8_onnx", _fail)
        again = Cartoonizer(official, device="cpu", backend=backend)(photo)
    torch.testing.assert_close(again, got, rtol=0, atol=1e-6)


def _fail(*args, **kwargs):
    raise AssertionError("the cached quantized model should have been used")


def test_generator_key_follows_the_weights_not_the_object(small_generator):
    import copy

    twin = copy.deepcopy(small_generator)
    assert generator_key(twin) == generator_key(small_generator)
    with torch.no_grad():
        next(twin.parameters()).view(-1)[0] += 1e-3
    assert generator_key(twin) != generator_key(small_generator)


@pytest.mark.parametrize(("has_vnni", "order"), [(True, ("openvino-int8", "onnxruntime-int8")),
                                                  (False, ("onnxruntime-int8", "openvino-int8"))])
def test_auto_takes_the_first_installed_int8_runtime_for_the_cpu_and_torch_on_a_gpu(monkeypatch, has_vnni, order):
    """OpenVINO int8 first on VNNI CPUs, ONNX Runtime int8 first on AVX2 ones (the measured order)."""
    installed = {"torch"}
    monkeypatch.setattr(backends, "is_installed", lambda name: name in installed)
    monkeypatch.setattr(backends, "vnni", lambda: has_vnni)
    assert auto_backend(CPU) == "torch"
    installed.add(order[1])
    assert auto_backend(CPU) == order[1]
    installed.add(order[0])
    assert auto_backend(CPU) == order[0]
    assert auto_backend(torch.device("cuda")) == "torch"


def test_torch_backend_is_the_generator_itself(small_generator):
    name, run = make_runner("torch", small_generator, CPU)
    assert name == "torch" and run is small_generator


@pytest.mark.parametrize(
    ("backend", "device", "message"),
    [("tensorrt", CPU, "unknown backend 'tensorrt'; use 'auto' or one of torch, openvino-int8"),
     ("openvino-int8", torch.device("cuda"), "runs on the CPU, not on cuda; use backend 'torch' or device")],
)
def test_bad_backend_requests_are_usage_errors(small_generator, backend, device, message):
    with pytest.raises(UsageError, match=message):
        make_runner(backend, small_generator, device)


def test_a_missing_runtime_names_the_install_command(small_generator, monkeypatch):
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    message = r"needs openvino, nncf, onnxscript: pip install 'animescene\[fast\]', or use backend 'torch'"
    with pytest.raises(UsageError, match=message):
        make_runner("openvino-int8", small_generator, CPU)


def test_int8_backend_with_a_reduced_dtype_is_refused(small_generator):
    with pytest.raises(UsageError, match="applies to backend 'torch' only"):
        Cartoonizer(small_generator, device="cpu", dtype=torch.bfloat16, backend="onnxruntime-int8")
    assert Cartoonizer(small_generator, device="cpu", dtype=torch.bfloat16, backend="auto").backend == "torch"


@pytest.mark.parametrize(("flags", "expected"), [("fpu avx2 fma", False), ("avx2 avx512f avx512_vnni", True),
                                                  ("avx2 avx_vnni", True), ("avx2 amx_tile amx_int8", True)])
def test_vnni_is_read_from_the_cpu_flags(monkeypatch, tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\nbugs\t\t: spectre_v1\n")
    assert backends.cpu_flags(cpuinfo) == frozenset(flags.split())
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset(flags.split()))
    assert backends.vnni() is expected


@pytest.mark.parametrize(("flags", "expected"), [("fpu avx2 fma", False), ("avx2 avx512f avx512_bf16", True),
                                                  ("avx2 amx_tile amx_bf16", True)])
def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch, flags, expected):
    from animescene import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(flags.split()))
    assert runtime.native_bf16(torch.device("cpu")) is expected


@pytest.mark.slow
@pytest.mark.parametrize("reduce_range", [True, False])
def test_int8_onnx_weights_use_7_bits_only_when_asked(small_generator, tmp_path, reduce_range):
    """7-bit weights (AVX2) lie in [-64, 63]; full-range ones (VNNI) reach +-127 in every layer."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import numpy_helper

    from animescene.export import export_int8_onnx

    photos = torch.rand(2, 3, 32, 40) * 2 - 1
    path = export_int8_onnx(small_generator, tmp_path / "g.onnx", photos, reduce_range=reduce_range)
    weights = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer
               if t.data_type == onnx.TensorProto.INT8 and t.dims and len(t.dims) == 4]
    assert weights, "no int8 convolution weights in the file"
    largest = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    assert largest <= 64 if reduce_range else largest == 127


@pytest.mark.parametrize("command", ["cartoonize", "serve"])
def test_the_commands_hand_their_backend_to_the_cartoonizer(command, weights_file, tmp_path, monkeypatch):
    """`cartoonize --backend` and the web demo reach Cartoonizer's backend; the run itself is the torch one."""
    import animescene.inference as inference
    from animescene.cli import main
    from animescene.images import write_image

    asked = []

    def recording(backend, generator, device):
        asked.append(backend)
        return make_runner("torch", generator, device)

    monkeypatch.setattr(inference, "make_runner", recording)
    write_image(tmp_path / "in" / "photo.png", torch.rand(1, 3, 32, 40) * 2 - 1)
    if command == "cartoonize":
        code = main(["cartoonize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", str(weights_file),
                     "--backend", "onnxruntime-int8"])
        assert code == 0 and (tmp_path / "out" / "photo.png").is_file()
    else:
        from animescene.serve import WebDemo

        demo = WebDemo({"small": weights_file}, tmp_path / "work", device="cpu", backend="openvino-int8")
        assert demo.cartoonize([tmp_path / "in" / "photo.png"], "small", session="s", progress=False).written
    assert asked == ["onnxruntime-int8" if command == "cartoonize" else "openvino-int8"]
