"""`animescene cartoonize` never loses, overwrites or silently corrupts anything (issue 16).

Every test checks the message a user sees AND that nothing good was lost: the sha256 of every input
before and after, the good outputs still written, and no temporary file left behind.
"""

import hashlib
import os
import resource
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from animescene.cli import main as cli
from animescene.images import ImageReadError, atomic_output, read_image, to_tensor, to_uint8, write_image
from animescene.inference import Cartoonizer, plan_outputs


@pytest.fixture()
def cartoonize(weights_file, capsys):
    """Run ``animescene cartoonize ARGS --weights small.pt --device cpu``: (exit status, stdout, stderr)."""

    def run(*args):
        code = cli(["cartoonize", *map(str, args), "--weights", str(weights_file), "--device", "cpu"])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _tree(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: sha256 of files, the target of symlinks (not followed)."""
    tree = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            key = str(path.relative_to(folder))
            if path.is_symlink():
                tree[key] = "-> " + os.readlink(path)
            elif path.is_file():
                tree[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


def _no_partial_files(folder: Path) -> bool:
    return not any(".partial-" in name for _, _, files in os.walk(folder) for name in files)


def _photo(path: Path, seed: int, size=(24, 32)) -> Path:
    """A smooth random picture (a noise image upscaled) saved to ``path``."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small).resize(size[::-1], Image.BILINEAR).save(path)
    return path


def _expected(small_generator, src) -> np.ndarray:
    return to_uint8(Cartoonizer(small_generator, device="cpu")(read_image(src)))


def _video(path: Path, frames: int, size=(48, 32), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, size)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


# ------------------------------------------------------------------------------------ data loss
def test_output_folder_equal_to_the_input_folder_is_refused_before_any_work(cartoonize, tmp_path):
    _photo(tmp_path / "in" / "a.png", 0)
    _video(tmp_path / "in" / "clip.avi", 3)
    before = _tree(tmp_path)
    code, out, err = cartoonize(tmp_path / "in", "-o", tmp_path / "in")
    assert code == 2
    assert "is the input folder" in err and "choose another -o" in err and len(err.strip().splitlines()) == 1
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("how", ["file into its own folder", "-o a symlink to the input folder",
                                 "output is a hard link to the input", "output is a symlink to the input"])
def test_an_output_that_would_replace_an_input_is_refused(cartoonize, tmp_path, how):
    src = _photo(tmp_path / "in" / "a.png", 0)
    _photo(tmp_path / "in" / "b.png", 1)
    out = tmp_path / "out"
    args = [tmp_path / "in", "-o", out]
    if how == "file into its own folder":
        args = [src, "-o", tmp_path / "in"]
    elif how == "-o a symlink to the input folder":
        out.symlink_to(tmp_path / "in")
    else:
        out.mkdir()
        (os.link if how.startswith("output is a hard") else os.symlink)(src, out / "a.png")
    before = _tree(tmp_path)
    code, _, err = cartoonize(*args)
    assert code == 2
    if how == "-o a symlink to the input folder":
        assert f"the output folder {out} is the input folder {tmp_path / 'in'}" in err
    else:
        assert "would replace the input" in err and f"{src}: inputs are never overwritten" in err
    assert _tree(tmp_path) == before


def test_an_existing_file_as_output_folder_is_refused(cartoonize, tmp_path):
    src = _photo(tmp_path / "a.png", 0)
    other = _photo(tmp_path / "b.png", 1)
    before = _tree(tmp_path)
    code, _, err = cartoonize(src, "-o", other)
    assert code == 2 and f"-o {other} is an existing file; give a folder" in err
    assert _tree(tmp_path) == before


def test_the_same_name_in_two_folders_is_refused_naming_both(cartoonize, tmp_path):
    a, b = _photo(tmp_path / "a" / "x.png", 0), _photo(tmp_path / "b" / "x.png", 1)
    before = _tree(tmp_path)
    code, _, err = cartoonize(tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out")
    assert code == 2 and f"{a} and {b} would both be written to {tmp_path / 'out' / 'x.png'}" in err
    assert _tree(tmp_path) == before  # not even the output folder was made


def test_names_differing_only_in_case_are_refused(tmp_path):
    """They would overwrite each other on macOS and Windows, whose file systems ignore case."""
    _photo(tmp_path / "a" / "x.png", 0)
    _photo(tmp_path / "b" / "X.png", 1)
    with pytest.raises(ValueError, match="would both be written to"):
        plan_outputs([tmp_path / "a", tmp_path / "b"], tmp_path / "out")


def test_same_stem_with_two_suffixes_gives_two_outputs(cartoonize, small_generator, tmp_path):
    jpg, png = tmp_path / "in" / "a.jpg", tmp_path / "in" / "a.png"
    jpg.parent.mkdir()
    Image.fromarray(np.full((24, 32, 3), 40, np.uint8)).save(jpg)  # dark
    Image.fromarray(np.full((24, 32, 3), 220, np.uint8)).save(png)  # bright
    before = _tree(tmp_path / "in")
    code, out, _ = cartoonize(jpg, png, "-o", tmp_path / "out")
    assert code == 0 and out.count("wrote") == 2
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")),
                                  _expected(small_generator, png))
    got_jpg = np.asarray(Image.open(tmp_path / "out" / "a.jpg")).astype(float)
    own, other = _expected(small_generator, jpg), _expected(small_generator, png)
    assert np.abs(got_jpg - own).mean() < np.abs(got_jpg - other).mean() / 4  # the jpg's own cartoon
    assert _tree(tmp_path / "in") == before


def test_folders_are_walked_recursively_and_mirrored(cartoonize, small_generator, tmp_path):
    inputs = [Path("x.png"), Path("sub/x.png"), Path("sub/deeper/y.png")]
    for seed, relative in enumerate(inputs):
        _photo(tmp_path / "in" / relative, seed)
    before = _tree(tmp_path / "in")
    code, out, _ = cartoonize(tmp_path / "in", "-o", tmp_path / "out")
    assert code == 0
    for relative in inputs:
        assert f"wrote {tmp_path / 'out' / relative}" in out
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / relative)),
                                      _expected(small_generator, tmp_path / "in" / relative))
    assert _tree(tmp_path / "in") == before


def test_an_output_folder_inside_the_input_folder_is_not_read(cartoonize, tmp_path):
    _photo(tmp_path / "in" / "a.png", 0)
    out = tmp_path / "in" / "cartoons"
    assert cartoonize(tmp_path / "in", "-o", out)[0] == 0
    first = _tree(tmp_path / "in")
    code, _, err = cartoonize(tmp_path / "in", "-o", out)  # run again: the cartoons are not cartoonized
    assert code == 0 and f"skipped {out}: the output folder (-o): not read as input" in err
    assert sorted(_tree(out)) == ["a.png"]
    assert _tree(tmp_path / "in") == first


def test_a_file_listed_twice_is_cartoonized_once(cartoonize, tmp_path):
    src = _photo(tmp_path / "in" / "a.png", 0)
    os.link(src, tmp_path / "in" / "hardlink.png")
    before = _tree(tmp_path / "in")
    code, out, err = cartoonize(tmp_path / "in", src, "-o", tmp_path / "out")
    assert code == 0 and out.count("wrote") == 1
    assert f"skipped {tmp_path / 'in' / 'hardlink.png'}: the same file as {src}, listed twice" in err
    assert f"skipped {src}: the same file as {src}, listed twice" in err
    assert sorted(_tree(tmp_path / "out")) == ["a.png"]
    assert _tree(tmp_path / "in") == before


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, error):
    target = tmp_path / "a.png"
    write_image(target, torch.zeros(1, 3, 8, 8))
    before = _tree(tmp_path)
    with pytest.raises(type(error)):
        with atomic_output(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".a.png.partial-") and tmp.suffix == ".png"
            tmp.write_bytes(b"\x89PNG half")
            raise error
    assert _tree(tmp_path) == before


def test_ctrl_c_mid_batch_keeps_finished_outputs_and_leaves_no_temporary_file(cartoonize, small_generator,
                                                                              tmp_path, monkeypatch):
    for seed, name in enumerate("abc"):
        _photo(tmp_path / "in" / f"{name}.png", seed)
    before = _tree(tmp_path / "in")
    replace, calls = os.replace, []

    def interrupted_before_the_second_rename(src, dst):
        calls.append(Path(src))
        if len(calls) == 2:  # the whole temporary file is there when Ctrl-C comes
            assert Path(src).is_file()
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(os, "replace", interrupted_before_the_second_rename)
    code, _, err = cartoonize(tmp_path / "in", "-o", tmp_path / "out")
    assert code == 130 and "interrupted" in err
    assert sorted(_tree(tmp_path / "out")) == ["a.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")),
                                  _expected(small_generator, tmp_path / "in" / "a.png"))
    assert calls[1].name.startswith(".b.png.partial-")  # the interrupted write went to a temporary name
    assert _no_partial_files(tmp_path) and _tree(tmp_path / "in") == before


def test_full_disk_fails_the_outputs_that_do_not_fit_and_leaves_nothing_partial(weights_file, tmp_path):
    """The real thing: RLIMIT_FSIZE makes every write past 12 KiB fail with EFBIG, as a full disk does."""
    small = _photo(tmp_path / "in" / "small.bmp", 0, size=(16, 16))  # 822 bytes of output
    _photo(tmp_path / "in" / "big.bmp", 1, size=(200, 200))  # 120 kB of output
    _video(tmp_path / "in" / "clip.avi", 60, size=(64, 48))  # about 22 kB of MJPG
    before = _tree(tmp_path / "in")
    limit = 12 * 1024

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, no kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "animescene", "cartoonize", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
         "--weights", str(weights_file), "--device", "cpu"],
        preexec_fn=limited, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert f"wrote {tmp_path / 'out' / small.name}" in result.stdout
    assert f"FAILED {tmp_path / 'in' / 'big.bmp'}: [Errno 27] File too large" in result.stderr
    assert f"FAILED {tmp_path / 'in' / 'clip.avi'}" in result.stderr and "nothing was written" in result.stderr
    assert "1 written, 2 failed, 0 skipped" in result.stderr
    assert sorted(_tree(tmp_path / "out")) == ["small.bmp"]
    assert _no_partial_files(tmp_path) and _tree(tmp_path / "in") == before


@pytest.mark.parametrize("how", ["read-only folder", "under a file"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(cartoonize, tmp_path, how):
    _photo(tmp_path / "in" / "a.png", 0)
    if how == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        out = tmp_path / "out"
        out.mkdir(mode=0o555)
    else:
        out = tmp_path / "in" / "a.png" / "out"
    before = _tree(tmp_path)
    code, _, err = cartoonize(tmp_path / "in", "-o", out)
    assert code == 2 and f"cannot write into the output folder {out}" in err
    assert _tree(tmp_path) == before


# ------------------------------------------------------------------------------------- videos
def test_a_truncated_video_fails_and_writes_nothing(cartoonize, tmp_path):
    good = _video(tmp_path / "in" / "good.avi", 4)
    full = _video(tmp_path / "full.avi", 20, seed=1)
    (tmp_path / "in" / "cut.avi").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    before = _tree(tmp_path / "in")
    code, out, err = cartoonize(tmp_path / "in", "-o", tmp_path / "out")
    assert code == 1
    assert f"wrote {tmp_path / 'out' / good.name}" in out
    assert "cut.avi: only" in err and "of the 20 frames its container declares could be decoded" in err
    assert sorted(_tree(tmp_path / "out")) == ["good.avi"]
    capture = cv2.VideoCapture(str(tmp_path / "out" / "good.avi"))
    assert sum(1 for _ in iter(lambda: capture.read()[0], False)) == 4
    assert _no_partial_files(tmp_path) and _tree(tmp_path / "in") == before


def test_a_video_that_reads_back_short_fails_and_writes_nothing(small_generator, tmp_path, monkeypatch):
    """An encoder that silently drops frames (codec error): the read-back check catches it."""
    from animescene import video

    src = _video(tmp_path / "clip.avi", 5)
    real_encode, encoded = video._encode, []

    def dropping_encode(stream, frame):
        if frame is not None and stream.type == "video":
            encoded.append(frame)
            if len(encoded) > 3:
                return []
        return real_encode(stream, frame)

    monkeypatch.setattr(video, "_encode", dropping_encode)
    with pytest.raises(OSError, match="reads back as 3 frames of 48x32 instead of 5 of 48x32"):
        Cartoonizer(small_generator, device="cpu").cartoonize_video(src, tmp_path / "out" / "clip.avi",
                                                                    progress=False)
    assert list((tmp_path / "out").iterdir()) == []


# ------------------------------------------------------------------------- silently wrong output
def test_weights_that_output_nan_stop_the_batch_naming_them(cartoonize, small_generator, tmp_path):
    state = {k: v.clone() for k, v in small_generator.state_dict().items()}
    first_conv = next(k for k, v in state.items() if k.endswith("weight") and v.ndim == 4)
    state[first_conv][0, 0, 0, 0] = float("nan")  # a corrupted but loadable file
    bad = tmp_path / "diverged.pt"
    torch.save({"generator": state, "generator_config": small_generator.config()}, bad)
    _photo(tmp_path / "in" / "a.png", 0)
    _photo(tmp_path / "in" / "b.png", 1)
    before = _tree(tmp_path / "in")
    code = cli(["cartoonize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", str(bad),
                "--device", "cpu"])
    assert code == 2
    assert not (tmp_path / "out").exists() or _tree(tmp_path / "out") == {}
    assert _tree(tmp_path / "in") == before


def test_the_nan_error_names_the_weights_file(small_generator, tmp_path, capsys):
    state = {k: v.clone() for k, v in small_generator.state_dict().items()}
    for value in state.values():
        if value.is_floating_point():
            value.fill_(float("inf"))
    bad = tmp_path / "exploded.pt"
    torch.save({"generator": state, "generator_config": small_generator.config()}, bad)
    _photo(tmp_path / "in" / "a.png", 0)
    cli(["cartoonize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", str(bad),
         "--device", "cpu"])
    err = capsys.readouterr().err
    assert f"the generator with weights {bad} outputs NaN or infinite values" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_exif_orientation_is_applied(cartoonize, tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)  # stored landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": a portrait phone photo
    path = tmp_path / "in" / "portrait.jpg"
    path.parent.mkdir()
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    with Image.open(path) as stored:
        shown = np.asarray(stored.convert("RGB").transpose(Image.Transpose.ROTATE_270))
    assert shown.shape == (40, 24, 3)
    np.testing.assert_array_equal(to_uint8(read_image(path)), shown)
    before = _tree(tmp_path / "in")
    assert cartoonize(path, "-o", tmp_path / "out")[0] == 0
    assert Image.open(tmp_path / "out" / "portrait.jpg").size == (24, 40)  # portrait, as shown
    assert _tree(tmp_path / "in") == before


def test_float_tiffs_are_read_as_zero_to_one_and_clipped_above(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.random((10, 12, 3)).astype(np.float32)
    rgb[0, 0] = [3.5, -0.25, 1.0]  # an HDR highlight and a negative: clipped to 1 and 0
    assert cv2.imwrite(str(tmp_path / "rgb.tif"), rgb[:, :, ::-1].copy())  # OpenCV writes BGR
    gray = rgb[:, :, 1].copy()
    Image.fromarray(gray).save(tmp_path / "gray.tif")  # PIL mode "F"
    assert Image.open(tmp_path / "gray.tif").mode == "F"
    expected_rgb = np.clip(rgb, 0, 1).astype(np.float64) * 2 - 1
    got = read_image(tmp_path / "rgb.tif")[0].permute(1, 2, 0).double().numpy()
    np.testing.assert_allclose(got, expected_rgb, atol=1e-6)
    got = read_image(tmp_path / "gray.tif")[0].double().numpy()
    np.testing.assert_allclose(got, np.broadcast_to(np.clip(gray, 0, 1) * 2.0 - 1, (3, 10, 12)), atol=1e-6)
    gray[2, 3] = np.nan
    Image.fromarray(gray).save(tmp_path / "nan.tif")
    with pytest.raises(ImageReadError, match="nan.tif: the image has NaN or infinite pixels"):
        read_image(tmp_path / "nan.tif")


def test_a_float_tiff_is_cartoonized_from_its_real_brightness(cartoonize, small_generator, tmp_path):
    rgb = np.random.default_rng(0).random((16, 20, 3)).astype(np.float32)
    path = tmp_path / "in" / "float.tif"
    path.parent.mkdir()
    assert cv2.imwrite(str(path), rgb[:, :, ::-1].copy())
    assert cartoonize(path, "-o", tmp_path / "out")[0] == 0
    photo = torch.from_numpy(rgb).permute(2, 0, 1)[None] * 2 - 1
    expected = to_uint8(Cartoonizer(small_generator, device="cpu")(photo))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "float.tif")), expected)


@pytest.mark.parametrize("suffix, loop", [(".gif", 0), (".gif", None), (".webp", 2), (".png", 1)])
def test_animations_keep_every_frame_their_durations_and_loop(cartoonize, small_generator, tmp_path, suffix,
                                                              loop):
    ramp = np.linspace(0, 1, 32)[None, :, None]
    colours = [(250, 40, 40), (40, 250, 40), (40, 40, 250)]
    frames = [Image.fromarray((ramp * np.array(c) + (1 - ramp) * 128).repeat(24, 0).astype(np.uint8))
              for c in colours]
    durations = [100, 200, 300]
    src = tmp_path / "in" / f"anim{suffix}"
    src.parent.mkdir()
    extra = {"lossless": True} if suffix == ".webp" else {}
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=durations,
                   **({} if loop is None else {"loop": loop}), **extra)
    before = _tree(tmp_path / "in")
    code, out, _ = cartoonize(src, "-o", tmp_path / "out")
    assert code == 0
    cartoonizer = Cartoonizer(small_generator, device="cpu")
    with Image.open(tmp_path / "out" / src.name) as written:
        assert written.n_frames == 3 and written.info.get("loop") == loop
        for index, frame in enumerate(frames):
            written.seek(index)
            got = np.asarray(written.convert("RGB")).astype(float)  # WebP sets the duration on load
            assert written.info["duration"] == durations[index]
            expected = to_uint8(cartoonizer(to_tensor(np.asarray(frame)))).astype(float)
            tolerance = 0 if suffix == ".png" else 12  # APNG is lossless; GIF has 256 colours, WebP is lossy
            assert np.abs(got - expected).mean() <= tolerance, (index, np.abs(got - expected).mean())
    assert _tree(tmp_path / "in") == before


def test_skipped_files_are_each_reported_with_the_reason(cartoonize, tmp_path):
    folder = tmp_path / "in"
    _photo(folder / "good.png", 0)
    (folder / "notes.txt").write_text("not a picture")
    _photo(folder / ".hidden.png", 1)
    (folder / "gone.png").symlink_to(folder / "absent.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to(folder)  # a folder loop
    os.mkfifo(folder / "pipe.png")  # reading it would hang
    before = _tree(folder)
    code, out, err = cartoonize(folder, "-o", tmp_path / "out")
    assert code == 0  # skips alone do not fail the run
    assert f"wrote {tmp_path / 'out' / 'good.png'}" in out
    for name, reason in [("notes.txt", "not an image or video (.txt)"), (".hidden.png", "hidden"),
                         ("gone.png", "broken symlink (No such file or directory)"), ("loop.png", "symlink loop"),
                         ("sub/up", f"symlink to the folder {folder}, already walked"),
                         ("pipe.png", "not a regular file")]:
        assert f"skipped {folder / name}: {reason}\n" in err
    assert "1 written, 0 failed, 6 skipped" in err
    assert _tree(folder) == before


def test_an_unreadable_subfolder_is_skipped(tmp_path, monkeypatch):
    _photo(tmp_path / "in" / "a.png", 0)
    _photo(tmp_path / "in" / "locked" / "b.png", 1)
    scandir = os.scandir

    def denied(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)  # root reads any folder: simulate the permission
    plan = plan_outputs([tmp_path / "in"], tmp_path / "out")
    assert plan.jobs == [(tmp_path / "in" / "a.png", tmp_path / "out" / "a.png")]
    assert plan.skipped == [(tmp_path / "in" / "locked", "unreadable folder (Permission denied)")]


# ---------------------------------------------------------------------- crashes that stop a batch
def _png_declaring(width: int, height: int) -> bytes:
    """A 70-byte PNG whose header declares ``width x height`` pixels: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 16))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def test_a_decompression_bomb_fails_alone(cartoonize, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a_bomb.png").write_bytes(_png_declaring(30000, 30000))
    _photo(tmp_path / "in" / "b_good.png", 0)
    before = _tree(tmp_path / "in")
    code, out, err = cartoonize(tmp_path / "in", "-o", tmp_path / "out")
    assert code == 1
    assert f"FAILED {tmp_path / 'in' / 'a_bomb.png'}: not a readable image (Image size (900000000 pixels)" in err
    assert "decompression bomb" in err and "Traceback" not in err
    assert f"wrote {tmp_path / 'out' / 'b_good.png'}" in out
    assert _tree(tmp_path / "in") == before


def test_an_unexpected_error_on_one_file_is_reported_and_the_batch_goes_on(cartoonize, tmp_path, monkeypatch,
                                                                           caplog):
    for seed, name in enumerate("abc"):
        _photo(tmp_path / "in" / f"{name}.png", seed)
    real = Cartoonizer.cartoonize_image

    def buggy(self, src, dst):
        if Path(src).name == "b.png":
            raise KeyError("a bug")
        return real(self, src, dst)

    monkeypatch.setattr(Cartoonizer, "cartoonize_image", buggy)
    code, out, err = cartoonize(tmp_path / "in", "-o", tmp_path / "out", "--debug")
    assert code == 1
    assert f"FAILED {tmp_path / 'in' / 'b.png'}: unexpected KeyError: 'a bug' (a bug: --debug shows" in err
    assert out.count("wrote") == 2 and sorted(_tree(tmp_path / "out")) == ["a.png", "c.png"]
    assert any(record.exc_info and record.exc_info[0] is KeyError for record in caplog.records)  # --debug


def test_an_input_that_vanishes_mid_run_fails_alone(cartoonize, tmp_path, monkeypatch):
    for seed, name in enumerate("abc"):
        _photo(tmp_path / "in" / f"{name}.png", seed)
    real = Cartoonizer.cartoonize_image

    def deleting_b(self, src, dst):
        if Path(src).name == "a.png":
            (tmp_path / "in" / "b.png").unlink()
        return real(self, src, dst)

    monkeypatch.setattr(Cartoonizer, "cartoonize_image", deleting_b)
    code, out, err = cartoonize(tmp_path / "in", "-o", tmp_path / "out")
    assert code == 1 and f"FAILED {tmp_path / 'in' / 'b.png'}: no such file" in err
    assert sorted(_tree(tmp_path / "out")) == ["a.png", "c.png"]


def test_tiny_images_fail_alone_naming_their_size_and_the_minimum(cartoonize, tmp_path):
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    good = _photo(tmp_path / "good.png", 0)
    code, out, err = cartoonize(tmp_path / "dot.png", good, "-o", tmp_path / "out")
    assert code == 1 and "FAILED" in err and "the image is 1x1 px; the cartoonizer needs at least 2 px" in err
    assert sorted(_tree(tmp_path / "out")) == ["good.png"]


@pytest.mark.parametrize("value", ["1", "-3"])
def test_a_max_short_side_below_the_minimum_is_refused_before_any_work(cartoonize, tmp_path, value):
    _photo(tmp_path / "in" / "a.png", 0)
    code, _, err = cartoonize(tmp_path / "in", "-o", tmp_path / "out", "--max-short-side", value)
    assert code == 2 and f"(--max-short-side) must be at least 2 px, got {value}" in err
    assert not (tmp_path / "out").exists()


def test_the_smallest_max_short_side_works(cartoonize, tmp_path):
    _photo(tmp_path / "in" / "a.png", 0, size=(40, 60))
    assert cartoonize(tmp_path / "in", "-o", tmp_path / "out", "--max-short-side", "2")[0] == 0
    assert Image.open(tmp_path / "out" / "a.png").size == (60, 40)


def test_an_unsupported_file_given_directly_fails_alone(cartoonize, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    good = _photo(tmp_path / "good.png", 0)
    code, _, err = cartoonize(tmp_path / "notes.txt", good, tmp_path / "absent.png", "-o", tmp_path / "out")
    assert code == 1
    assert f"FAILED {tmp_path / 'notes.txt'}: unsupported file type .txt; give images" in err
    assert f"FAILED {tmp_path / 'absent.png'}: no such file or folder" in err
    assert sorted(_tree(tmp_path / "out")) == ["good.png"]


def test_tensor_call_refuses_tiny_and_nan_images(small_generator):
    cartoonizer = Cartoonizer(small_generator, device="cpu")
    with pytest.raises(ValueError, match="1x5 px; the cartoonizer needs at least 2 px"):
        cartoonizer(torch.zeros(1, 3, 1, 5))
    with pytest.raises(ValueError, match="NaN or infinite"):
        cartoonizer(torch.full((1, 3, 8, 8), float("nan")))
