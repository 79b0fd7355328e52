"""Method evaluation: synthetic folders (fast, offline), then the official weights on the course's data."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from animescene.evaluate import COLUMNS, evaluate, main
from animescene.features import FeatureExtractor, HEDVGGFeatures
from animescene.models import UNetGenerator

SIZE = 32


class ColourAndTexture(FeatureExtractor):
    """A tiny stand-in extractor: per-channel mean, std and mean absolute gradients (12 numbers)."""

    name, dim = "colour-texture", 12

    def embed(self, x):
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean((2, 3))
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((2, 3))
        return torch.cat([x.mean((2, 3)), x.std((2, 3)), dx, dy], dim=1)


def _write(folder, images):
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:02d}.png")
    return folder


def _flat(rng, count):
    """Images of a few flat-coloured rectangles: stand-ins for cartoon frames."""
    images = []
    for _ in range(count):
        image = np.empty((SIZE, SIZE, 3), np.uint8)
        image[:] = rng.integers(0, 256, 3)
        for _ in range(3):
            top, left = rng.integers(0, SIZE // 2, 2)
            height, width = rng.integers(4, SIZE // 2, 2)
            image[top : top + height, left : left + width] = rng.integers(0, 256, 3)
        images.append(image)
    return images


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``photos``: noisy textures; ``cartoons``: flat colours; ``flat``: each photo's mean colour."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("evaluate")
    photos = [np.clip(rng.integers(40, 216, 3) + rng.normal(0, 50, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
              for _ in range(10)]
    flat = [np.broadcast_to(photo.mean(axis=(0, 1)).astype(np.uint8), photo.shape).copy() for photo in photos]
    torch.save(UNetGenerator(channels=8, num_blocks=1).state_dict(), root / "bare.pt")  # conventions unknown
    return {
        "photos": _write(root / "photos", photos),
        "cartoons": _write(root / "cartoons", _flat(rng, 12)),
        "flat": _write(root / "flat", flat),
        "empty": _write(root / "empty", []),
        "root": root,
    }


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(0)
    generator = UNetGenerator(channels=8, num_blocks=1)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    torch.save({"generator": generator.state_dict(), "generator_config": generator.config()}, path)
    return path


def test_flat_outputs_are_closer_to_cartoons_than_raw_photos(folders, tmp_path):
    rows = evaluate(folders["photos"], folders["cartoons"], {"flat": folders["flat"]},
                    extractor=ColourAndTexture(), subsets=10, subset_size=8, size=SIZE, out_dir=tmp_path,
                    device="cpu")
    photos, flat = rows
    assert photos["method"] == "photos" and photos["images"] == 10 and flat["method"] == "flat"
    assert (photos["fd_to_photos"], photos["kid_to_photos"], photos["kid_to_photos_std"]) == (0.0, 0.0, 0.0)
    assert flat["fd_to_cartoons"] < photos["fd_to_cartoons"]
    margin = flat["kid_to_cartoons_std"] + photos["kid_to_cartoons_std"]
    assert flat["kid_to_cartoons"] + margin < photos["kid_to_cartoons"]
    assert flat["fd_to_photos"] > 0 and flat["kid_to_photos"] > 0
    with (tmp_path / "results.csv").open() as file:
        table = list(csv.DictReader(file))
    assert tuple(table[0]) == COLUMNS and [r["method"] for r in table] == ["photos", "flat"]
    assert table[0]["fd_metric"] == "FD-colour-texture"
    assert float(table[1]["fd_to_cartoons"]) == pytest.approx(flat["fd_to_cartoons"])
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_limits_and_seed_make_runs_repeatable(folders):
    def run(seed):
        return evaluate(folders["photos"], folders["cartoons"], extractor=ColourAndTexture(), subsets=4,
                        subset_size=4, seed=seed, size=SIZE, max_photos=5, max_cartoons=6, device="cpu")

    first = run(0)
    assert first == run(0) and first != run(1) and first[0]["images"] == 5


def test_command_line_prints_the_table_and_writes_csv_and_png(folders, weights_file, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["--photos", str(folders["photos"]), "--cartoons", str(folders["cartoons"]),
                   "--method", f"flat={folders['flat']}", "--method", f"tiny={weights_file}",
                   "--size", str(SIZE), "--subsets", "4", "--subset-size", "8", "--out", str(out),
                   "--device", "cpu"])
    printed = capsys.readouterr().out
    assert status == 0
    lines = printed.splitlines()
    assert "FD-random-VGG16 to cartoons" in lines[0]
    assert [line.split()[0] for line in lines[2:5]] == ["photos", "flat", "tiny"]
    assert (out / "results.csv").is_file() and (out / "results.png").is_file()


@pytest.mark.parametrize("method,message", [
    ("whitebox", "NAME=SPEC"),
    ("x=/no/such/weights.pt", "method 'x': weights '/no/such/weights.pt' are neither a known name ('official'"),
    ("photos=official", "raw-photos baseline"),
    ("bad={root}/photos/00.png", "not a generator file that torch can load safely"),
    ("bare={root}/bare.pt", "conventions of these weights are unknown"),
])
def test_bad_method_specs_are_usage_errors(folders, capsys, method, message):
    status = main(["--photos", str(folders["photos"]), "--cartoons", str(folders["cartoons"]),
                   "--method", method.format(root=folders["root"]), "--out", str(folders["root"] / "unused")])
    assert status == 2 and message in capsys.readouterr().err


def test_repeated_method_names_are_refused(folders):
    with pytest.raises(ValueError, match="unique"):
        evaluate(folders["photos"], folders["cartoons"], [("a", folders["flat"]), ("a", folders["flat"])],
                 extractor=ColourAndTexture())


def test_empty_and_missing_folders_are_usage_errors(folders, capsys):
    for photos, message in ((folders["empty"], "holds no images"),
                            (folders["root"] / "nowhere", "does not exist")):
        status = main(["--photos", str(photos), "--cartoons", str(folders["cartoons"]), "--size", "32"])
        assert status == 2 and message in capsys.readouterr().err


def test_missing_official_weights_say_how_to_get_them(folders, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path))
    status = main(["--photos", str(folders["photos"]), "--cartoons", str(folders["cartoons"]),
                   "--method", "whitebox=official"])
    assert status == 2 and "animescene download whitebox-official" in capsys.readouterr().err


def test_inception_features_without_cached_weights_are_a_usage_error(folders, monkeypatch, tmp_path, capsys):
    def offline(url, dst, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    status = main(["--photos", str(folders["photos"]), "--cartoons", str(folders["cartoons"]),
                   "--features", "inception"])
    assert status == 2 and "--features hed" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ real data
@pytest.mark.slow
def test_official_whitebox_moves_photos_towards_ghibli_frames_by_more_than_the_std(shared_data):
    """64 of the course's photos vs 192 Ghibli frames (read in place, never copied), HED VGG16.

    Measured with this setup (2026-12-01): FD-HED-VGG16 51.9 (photos) vs 40.7 (White-box), paired FD
    gain 11.2 ± 7.2; KID 0.175 ± 0.075 vs 0.111 ± 0.079, paired KID gain 0.063 ± 0.099. With 64
    photos the paired FD gain clears its std and the KID gain does not: KID's subsets of at most half
    the set are noisy, so KID is checked for direction. On all 255 photos against all 688 frames
    (lesson 08 in full mode) both clear it: KID 0.200 ± 0.024 vs 0.142 ± 0.031, FD gain 9.2 ± 3.1.
    Cartoonizing the photos on two CPU cores takes about four minutes.
    """
    from animescene.downloads import WHITEBOX_WEIGHTS, weights_dir
    from animescene.vgg import hed_weights_path

    photos, frames = shared_data / "photos" / "train", shared_data / "anime" / "train"
    needed = ((photos, "the course's data folder lacks it"), (frames, "the course's data folder lacks it"),
              (hed_weights_path(), "animescene download vgg16-hed"),
              (weights_dir() / WHITEBOX_WEIGHTS, "animescene download whitebox-official"))
    for path, fix in needed:
        if not path.exists():
            pytest.skip(f"{path} is absent ({fix})")
    photos_row, whitebox = evaluate(photos, frames, {"whitebox": "official"}, extractor=HEDVGGFeatures("hed"),
                                    subsets=50, max_photos=64, max_cartoons=192, device="cpu")
    assert photos_row["fd_metric"] == "FD-HED-VGG16" and whitebox["images"] == 64
    assert whitebox["fd_to_cartoons"] < photos_row["fd_to_cartoons"]
    assert whitebox["fd_gain"] > whitebox["fd_gain_std"] > 0  # closer by more than the paired std
    assert whitebox["kid_to_cartoons"] < photos_row["kid_to_cartoons"]
    assert whitebox["fd_to_photos"] > 0  # it changed the photos
