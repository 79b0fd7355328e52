"""The official White-box weights converted from TFLite behave as the TFLite model itself."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from animescene.convert import whitebox_state_dict_from_tflite
from animescene.filters import guided_filter
from animescene.models import UNetGenerator, load_official_whitebox

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert (TFLite interpreter) not installed")


@pytest.fixture(scope="module")
def tflite_path(shared_data):
    path = shared_data / "weights" / "whitebox_cartoon_gan_fp16.tflite"
    if not path.is_file():
        pytest.skip(f"{path} is absent (official weights, CC BY-NC-SA: local copy only)")
    return path


@pytest.fixture(scope="module")
def photo_224(kodak_image):
    return F.interpolate(kodak_image, size=(224, 224), mode="area")


def _run_tflite(path, rgb: torch.Tensor) -> torch.Tensor:
    """The TFLite graph (generator + guided filter inside): BGR NHWC in [-1, 1] in and out."""
    interpreter = litert.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    bgr = rgb.flip(1).permute(0, 2, 3, 1).numpy().astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], bgr)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return torch.from_numpy(out).permute(0, 3, 1, 2).flip(1)


def _ours(model, x):
    with torch.no_grad():
        return guided_filter(x, model(x), 1, 5e-3)


def test_converted_weights_match_tflite_at_native_size(tflite_path, photo_224):
    reference = _run_tflite(tflite_path, photo_224)
    ours = _ours(load_official_whitebox(tflite_path), photo_224)
    assert (ours - reference).abs().max() <= 2e-2


def test_pytorch_conventions_would_change_most_pixels(tflite_path, photo_224):
    """Why tf_mode exists: symmetric padding + half-pixel resize move ~90% of pixels by > 2/255."""
    reference = _run_tflite(tflite_path, photo_224)
    pytorch_mode = UNetGenerator(tf_mode=False, bounded=False).eval()
    pytorch_mode.load_state_dict(whitebox_state_dict_from_tflite(tflite_path))
    changed = ((_ours(pytorch_mode, photo_224) - reference).abs().amax(1) > 2 / 255).float().mean()
    assert changed > 0.5


def test_loader_from_converted_file_equals_loader_from_tflite(tflite_path, tmp_path, photo_224):
    torch.save(whitebox_state_dict_from_tflite(tflite_path), tmp_path / "whitebox.pt")
    a = load_official_whitebox(tmp_path / "whitebox.pt")
    b = load_official_whitebox(tflite_path)
    assert a.tf_mode and not a.bounded and not a.training
    x = photo_224[:, :, :64, :64]
    torch.testing.assert_close(a(x), b(x))


def test_missing_official_weights_name_the_download_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_scripts.download whitebox-official"):
        load_official_whitebox(tmp_path / "absent.pt")


def test_int8_official_generator_keeps_40_db_against_float(tflite_path, tmp_path):
    """Issue 5's bar for a quantized backend: PSNR >= 40 dB against float32, on a photo outside the
    calibration set, with the guided filter in float32 on both sides."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from animescene.data import example_photos
    from animescene.export import export_int8_onnx
    from animescene.images import psnr

    model = load_official_whitebox(tflite_path).eval()
    photos, _ = example_photos(6, 256)
    path = export_int8_onnx(model, tmp_path / "whitebox_int8.onnx", photos[1:])
    x = F.interpolate(example_photos(1, 432)[0], size=(432, 768), mode="bilinear", align_corners=False).clamp(-1, 1)
    raw = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["output"], {"input": x.numpy()})[0]
    got = guided_filter(x, torch.from_numpy(raw), 1, 5e-3).clamp(-1, 1)
    expected = _ours(model, x).clamp(-1, 1)
    assert psnr(got, expected) >= 40, f"{psnr(got, expected):.1f} dB"
