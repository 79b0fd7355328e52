"""The official White-box weights converted from TFLite behave as the TFLite model itself."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from animescene.convert import whitebox_state_dict_from_tflite
from animescene.errors import UsageError
from animescene.filters import guided_filter
from animescene.models import GeneratorWeights, UNetGenerator, load_official_whitebox

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


def test_missing_official_weights_name_the_download_command(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="animescene download whitebox-official"):
        load_official_whitebox(tmp_path / "absent.pt")
    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path))
    with pytest.raises(UsageError, match="not here; get them with `animescene download whitebox-official`"):
        UNetGenerator.from_weights("official")


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



# ------------------------------------------------------- every way of naming the official weights: one model
@pytest.fixture(scope="module")
def cached_official():
    """The converted file in the user's cache (``animescene download whitebox-official`` makes it)."""
    from animescene.downloads import weights_dir

    path = weights_dir() / GeneratorWeights.WHITEBOX_OFFICIAL.filename
    if not path.is_file():
        pytest.skip(f"{path} is absent (animescene download whitebox-official)")
    return path


def test_name_cached_file_copy_and_tflite_load_the_same_model_with_tf_conventions(
        tflite_path, cached_official, tmp_path, photo_224):
    copy = tmp_path / "elsewhere" / "my_weights.pt"
    copy.parent.mkdir()
    shutil.copyfile(cached_official, copy)
    specs = {"name": "official", "member": GeneratorWeights.WHITEBOX_OFFICIAL, "cached file": cached_official,
             "copy": str(copy), "tflite": tflite_path}
    outputs = {}
    for label, spec in specs.items():
        model = UNetGenerator.from_weights(spec)
        assert (model.tf_mode, model.bounded, model.training) == (True, False, False), label
        outputs[label] = _ours(model, photo_224)
    for label, out in outputs.items():
        assert torch.equal(out, outputs["name"]), label
    # and that one model is the TFLite graph's, run by TFLite itself
    assert (outputs["copy"] - _run_tflite(tflite_path, photo_224)).abs().max() <= 2e-2


def _cartoonize_png(spec, photo, out_dir) -> np.ndarray:
    from animescene.cli import main as cli

    assert cli(["cartoonize", str(photo), "-o", str(out_dir), "--weights", str(spec), "--device", "cpu"]) == 0
    (written,) = [p for p in out_dir.rglob("*") if p.is_file()]
    return np.asarray(Image.open(written))


def test_cartoonize_command_gives_one_picture_for_the_name_a_copy_and_the_tflite(
        tflite_path, cached_official, tmp_path, photo_224):
    """Issue 16: ``--weights`` with the cached file once loaded with PyTorch conventions (~19 dB off)."""
    from animescene.images import write_image

    photo = tmp_path / "photo.png"
    write_image(photo, photo_224[:, :, :120, :96])
    copy = tmp_path / "copy.pt"
    shutil.copyfile(cached_official, copy)
    by_name = _cartoonize_png("official", photo, tmp_path / "name")
    for label, spec in (("cached", cached_official), ("copy", copy), ("tflite", tflite_path)):
        np.testing.assert_array_equal(_cartoonize_png(spec, photo, tmp_path / label), by_name, err_msg=label)


def test_official_weights_with_one_value_changed_are_not_recognised(cached_official, tmp_path):
    state = torch.load(cached_official, weights_only=True)
    state["tail.bias"][0] += 1e-3
    torch.save(state, tmp_path / "tweaked.pt")
    with pytest.raises(UsageError, match="conventions of these weights are unknown"):
        UNetGenerator.from_weights(tmp_path / "tweaked.pt")


def _stamped_home(tmp_path, cached_official):
    """A temporary ANIMESCENE_HOME holding a copy of the official file and the stamp a fetch writes."""
    weights = tmp_path / "home" / "weights"
    weights.mkdir(parents=True)
    shutil.copyfile(cached_official, weights / cached_official.name)
    sha = hashlib.sha256((weights / cached_official.name).read_bytes()).hexdigest()
    (tmp_path / "home" / "fetched").mkdir()
    (tmp_path / "home" / "fetched" / "whitebox-official.json").write_text(json.dumps(
        {"sources": {}, "outputs": {f"weights/{cached_official.name}": sha}}))
    return weights / cached_official.name


def test_a_cached_official_file_with_altered_bytes_is_refused_by_the_command(
        cached_official, tmp_path, monkeypatch, capsys, photo_224):
    from animescene.cli import main as cli
    from animescene.images import write_image

    cached = _stamped_home(tmp_path, cached_official)
    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path / "home"))
    assert UNetGenerator.from_weights("official").tf_mode  # intact: loads
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    photo = tmp_path / "photo.png"
    write_image(photo, photo_224[:, :, :32, :32])
    status = cli(["cartoonize", str(photo), "-o", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert str(cached) in err and "`animescene download whitebox-official --force`" in err
    assert not any((tmp_path / "out").rglob("*.png"))
