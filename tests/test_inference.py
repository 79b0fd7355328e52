"""Cartoonizer, the cartoonize command, ONNX export and the inference benchmark."""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from animescene.cli import main as cli
from animescene.filters import fast_guided_filter, guided_filter
from animescene.inference import Cartoonizer


@pytest.mark.parametrize("size", [(7, 5), (30, 50), (64, 64)])
def test_any_size_comes_back_whole(small_generator, size):
    x = torch.rand(1, 3, *size) * 2 - 1
    out = Cartoonizer(small_generator, device="cpu")(x)
    assert out.shape == x.shape and out.abs().max() <= 1


def test_padding_is_cropped_back_exactly(small_generator):
    """A 30x50 image equals the top-left of the same image padded by edge repetition to 32x56."""
    x = torch.rand(1, 3, 30, 50) * 2 - 1
    padded = torch.nn.functional.pad(x, (0, 6, 0, 2), mode="replicate")
    with torch.no_grad():
        expected = guided_filter(x, small_generator(padded)[..., :30, :50], 1, 5e-3).clamp(-1, 1)
    torch.testing.assert_close(Cartoonizer(small_generator, device="cpu")(x), expected)


def test_tiles_give_the_untiled_result(small_generator):
    x = torch.rand(1, 3, 300, 420) * 2 - 1
    whole = Cartoonizer(small_generator, device="cpu", tile=1024)(x)
    tiled = Cartoonizer(small_generator, device="cpu", tile=384)(x)  # 2 x 3 tiles
    torch.testing.assert_close(tiled, whole, atol=2e-5, rtol=0)


def test_large_images_are_shrunk_then_filtered_at_full_size(small_generator):
    x = torch.rand(1, 3, 96, 160) * 2 - 1
    out = Cartoonizer(small_generator, device="cpu", max_short_side=48)(x)
    small = torch.nn.functional.interpolate(x, size=(48, 80), mode="area")
    with torch.no_grad():
        expected = fast_guided_filter(small, small_generator(small), x, 1, 5e-3).clamp(-1, 1)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected)


def test_bad_tensors_are_refused(small_generator):
    cartoonizer = Cartoonizer(small_generator, device="cpu")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        cartoonizer(torch.full((1, 3, 16, 16), 255.0))
    with pytest.raises(ValueError, match="3 channels"):
        cartoonizer(torch.zeros(1, 4, 16, 16))


def test_missing_official_weights_explain_the_download(monkeypatch, tmp_path):
    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="animescene download whitebox-official"):
        Cartoonizer("official")


def _bad_and_good_folder(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (40, 60), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 256, (40, 60, 4), dtype=np.uint8), "RGBA").save(folder / "rgba.png")
    cv2.imwrite(str(folder / "deep.png"), rng.integers(0, 65536, (40, 60, 3), dtype=np.uint16))
    Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)).save(folder / "tiny.png")
    Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)).save(folder / "huge.jpg", quality=70)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    full = folder / "truncated.jpg"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
    full.write_bytes(full.read_bytes()[:300])


def test_cartoonize_command_writes_every_good_file_and_reports_each_bad_one(weights_file, tmp_path, capsys):
    _bad_and_good_folder(tmp_path / "in")
    code = cli(["cartoonize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", str(weights_file),
                "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["deep.png", "gray.png", "huge.jpg", "rgb.png", "rgba.png", "tiny.png"]
    assert "FAILED" in err and "corrupt.png" in err and "truncated.jpg" in err
    assert "6 written, 2 failed" in err
    assert Image.open(tmp_path / "out" / "huge.jpg").size == (4000, 3000)
    assert Image.open(tmp_path / "out" / "tiny.png").size == (7, 5)
    assert Image.open(tmp_path / "out" / "gray.png").mode == "RGB"


def test_cartoonize_command_succeeds_when_all_files_are_good(weights_file, tmp_path):
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / "in" / "black.png")
    assert cli(["cartoonize", str(tmp_path / "in" / "black.png"), "-o", str(tmp_path / "out"),
                "--weights", str(weights_file), "--device", "cpu"]) == 0


def test_video_keeps_frame_rate_size_and_count(small_generator, tmp_path):
    src = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (48, 32))
    for i in range(5):
        writer.write(np.full((32, 48, 3), 40 * i, dtype=np.uint8))
    writer.release()
    out = Cartoonizer(small_generator, device="cpu").cartoonize_video(src, tmp_path / "out.avi", progress=False)
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (48, 32)
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 5


def test_onnx_export_with_dynamic_size_matches_pytorch(small_generator, weights_file, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    assert cli(["export", str(tmp_path / "g.onnx"), "--weights", str(weights_file)]) == 0
    assert "ONNX Runtime vs PyTorch" in capsys.readouterr().out
    from animescene.export import verify_onnx

    assert verify_onnx(tmp_path / "g.onnx", small_generator, sizes=((16, 24), (40, 72), (8, 8))) < 1e-4


def test_inference_benchmark_reports_every_backend_against_eager(capsys):
    from animescene.bench import inference_backends

    rows = inference_backends((32, 48), repeats=1, weights="random", device="cpu", skip=("compile", "onnx", "openvino"))
    assert rows[0]["backend"] == "eager fp32" and rows[0]["max |diff|"] == 0
    for row in rows:
        assert row["ms/frame"] > 0 and row["frames/s"] == pytest.approx(1000 / row["ms/frame"])
        assert row["PSNR dB"] > 40, row


def test_int8_export_quantizes_the_inner_convs_and_stays_close_to_float(small_generator, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from animescene.data import example_photos
    from animescene.export import export_int8_onnx
    from animescene.images import psnr

    photos, _ = example_photos(4, 64)
    path = export_int8_onnx(small_generator, tmp_path / "g8.onnx", photos[1:])
    assert not (tmp_path / "g8.float.onnx").exists()
    model = onnx.load(str(path))
    int8 = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8}
    producers = {out: node for node in model.graph.node for out in node.output}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    assert len(convs) == sum(isinstance(m, torch.nn.Conv2d) for m in small_generator.modules())
    for conv in convs[1:-1]:  # weight and input both come through DequantizeLinear, the weight from int8
        weight, data = producers[conv.input[1]], producers[conv.input[0]]
        assert weight.op_type == "DequantizeLinear" and weight.input[0] in int8, conv.name
        assert data.op_type == "DequantizeLinear", conv.name
    for conv in (convs[0], convs[-1]):  # photo in, picture out: float weights
        assert conv.input[1] not in producers or producers[conv.input[1]].op_type != "DequantizeLinear", conv.name
    # a photo the calibration did not see, at another size (H and W stay dynamic)
    x = torch.nn.functional.interpolate(photos[:1], size=(48, 80), mode="area")
    got = torch.from_numpy(ort.InferenceSession(str(path)).run(["output"], {"input": x.numpy()})[0])
    with torch.no_grad():
        expected = small_generator(x)
    assert got.shape == expected.shape
    assert psnr(got, expected) > 40


def test_export_command_writes_int8_and_reports_its_psnr(weights_file, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    assert cli(["export", str(tmp_path / "g8.onnx"), "--weights", str(weights_file), "--int8"]) == 0
    psnr = float(capsys.readouterr().out.split("PSNR ")[1].split(" dB")[0])
    assert psnr > 40
    session = ort.InferenceSession(str(tmp_path / "g8.onnx"))
    assert session.run(["output"], {"input": np.zeros((1, 3, 16, 24), np.float32)})[0].shape == (1, 3, 16, 24)


def test_int8_export_rejects_a_calibration_batch_of_the_wrong_shape(small_generator, tmp_path):
    pytest.importorskip("onnxruntime")
    from animescene.export import export_int8_onnx

    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        export_int8_onnx(small_generator, tmp_path / "g8.onnx", torch.zeros(3, 64, 64))
