"""The web demo's work without a browser: which models it offers, what one click writes and shows, what a
closed tab deletes, and how the command refuses bad options. The page itself: tests/e2e/test_serve_in_browser.py."""

import hashlib
import subprocess
import sys

import av
import numpy as np
import pytest
import torch
from PIL import Image

from animescene.cli import main
from animescene.images import read_image, to_uint8
from animescene.inference import Cartoonizer
from animescene.models import GeneratorWeights, UNetGenerator, save_generator
from animescene.serve import WebDemo, find_models, missing_official_note


@pytest.fixture
def models_dir(tmp_path):
    """A --models folder with one small random generator, as save_generator writes it."""
    torch.manual_seed(0)
    folder = tmp_path / "models"
    save_generator(UNetGenerator(channels=8, num_blocks=1), folder / "tiny.pt", licence="MIT", source="test")
    (folder / "notes.txt").write_text("not a model")
    return folder


@pytest.fixture
def no_official(tmp_path, monkeypatch):
    """An empty weights cache: a machine that never ran `animescene download`."""
    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path / "cache"))


def _photo(path, seed=0, size=(40, 30)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_models_are_the_saved_generators_and_official_only_when_downloaded(models_dir, no_official):
    models = find_models(models_dir)
    assert models == {"tiny.pt": models_dir / "tiny.pt"}
    assert "`animescene download whitebox-official`" in missing_official_note(models)
    official = GeneratorWeights.WHITEBOX_OFFICIAL.cache_path()
    official.parent.mkdir(parents=True)
    official.write_bytes(b"present")  # only its presence is looked at until the model is picked
    models = find_models(models_dir)
    assert list(models) == ["official", "tiny.pt"] and models["official"] is GeneratorWeights.WHITEBOX_OFFICIAL
    assert missing_official_note(models) == ""


def test_generators_made_here_are_offered_by_name(models_dir, no_official):
    from animescene.finetune import save_made_generator

    generator = UNetGenerator(channels=8, num_blocks=1)
    save_made_generator(generator, models_dir.parent / "run", "mystyle", source="test")
    models = find_models(models_dir)
    assert list(models) == ["mystyle", "tiny.pt"]
    cartoon = WebDemo(models, models_dir.parent / "work", device="cpu").cartoonizer("mystyle")
    assert cartoon.generator.config() == generator.config()


def test_a_models_folder_that_is_missing_is_a_usage_error(tmp_path, no_official):
    with pytest.raises(ValueError, match="--models .* is not a folder"):
        find_models(tmp_path / "nowhere")


def test_a_click_writes_what_the_library_computes_and_names_the_refused_files(models_dir, no_official, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    photos = [_photo(uploads / "a.png", 0), _photo(uploads / "b.png", 1, (33, 21))]
    bad = uploads / "notes.txt"
    bad.write_text("hello")
    corrupt = uploads / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    before = {path: _sha256(path) for path in [*photos, bad, corrupt]}
    demo = WebDemo(find_models(models_dir), tmp_path / "work", device="cpu")

    result = demo.cartoonize([*map(str, photos), str(bad), str(corrupt)], "tiny.pt", "session1", progress=False)

    assert {path.name for path in result.written} == {"a.png", "b.png"}
    assert all(path.is_relative_to(tmp_path / "work" / "session1") for path in result.written)
    reference = Cartoonizer(models_dir / "tiny.pt", device="cpu")
    for (photo, cartoon), expected in zip(result.pairs, photos):
        assert photo == expected
        np.testing.assert_array_equal(np.asarray(Image.open(cartoon).convert("RGB")),
                                      to_uint8(reference(read_image(expected))))
    lines = result.message.split("\n\n")
    assert len(lines) == 2
    assert "notes.txt" in lines[0] and "unsupported file type .txt" in lines[0]
    assert "broken.jpg" in lines[1] and "not a readable image" in lines[1]
    assert result.video is None
    assert {path: _sha256(path) for path in before} == before, "an upload was modified"


def test_a_video_upload_gives_a_video_of_the_same_frames(models_dir, no_official, tmp_path):
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for t in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 60 * t, np.uint8), format="rgb24")
            frame.pts = t
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    demo = WebDemo(find_models(models_dir), tmp_path / "work", device="cpu")

    result = demo.cartoonize([str(clip)], "tiny.pt", "s", progress=False)

    assert result.message == "" and result.pairs == [] and result.video == result.written[0]
    with av.open(str(result.video)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (24, 32, 3)


def test_an_unknown_model_or_no_upload_is_a_message_not_a_crash(models_dir, no_official, tmp_path):
    demo = WebDemo(find_models(models_dir), tmp_path / "work", device="cpu")
    photo = _photo(tmp_path / "a.png")
    result = demo.cartoonize([str(photo)], "official", "s", progress=False)
    assert result.written == [] and "animescene download whitebox-official" in result.message
    assert demo.cartoonize([], "tiny.pt", "s", progress=False).message == "Upload photos or a video first."


def test_a_generator_file_that_is_not_one_is_refused_in_the_page(tmp_path, no_official):
    folder = tmp_path / "models"
    folder.mkdir()
    torch.save({"w": torch.zeros(3)}, folder / "junk.pt")
    demo = WebDemo(find_models(folder), tmp_path / "work", device="cpu")
    result = demo.cartoonize([str(_photo(tmp_path / "a.png"))], "junk.pt", "s", progress=False)
    assert result.written == [] and result.message.startswith("**Refused:**") and "junk.pt" in result.message


def test_closing_a_session_deletes_its_uploads_and_cartoons_only(models_dir, no_official, tmp_path):
    demo = WebDemo(find_models(models_dir), tmp_path / "work", device="cpu")
    mine, theirs = _photo(tmp_path / "mine.png", 0), _photo(tmp_path / "theirs.png", 1)
    kept = demo.cartoonize([str(theirs)], "tiny.pt", "other", progress=False)
    gone = demo.cartoonize([str(mine)], "tiny.pt", "closing", progress=False)

    demo.forget("closing")

    assert not mine.exists() and not (tmp_path / "work" / "closing").exists()
    assert not gone.written[0].exists()
    assert theirs.exists() and kept.written[0].exists()


def test_the_page_builds_with_the_models_offered(models_dir, no_official, tmp_path):
    gr = pytest.importorskip("gradio")
    page = WebDemo(find_models(models_dir), tmp_path / "work", device="cpu").page("a note")
    assert isinstance(page, gr.Blocks)
    dropdowns = [block for block in page.blocks.values() if isinstance(block, gr.Dropdown) and block.label == "Model"]
    assert [choice[0] for choice in dropdowns[0].choices] == ["tiny.pt"]
    assert not page.analytics_enabled


def test_the_web_demo_never_imports_training():
    code = ("import sys, animescene.serve; print(sorted(m for m in sys.modules if m.startswith('animescene.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    training = ("train", "train_config", "checkpoint", "runlog", "distributed")
    assert "animescene.serve" in loaded
    assert not [name for name in training if f"'animescene.{name}'" in loaded]


@pytest.mark.parametrize("argv, message", [
    (["serve", "--models", "/nowhere/at/all"], "--models /nowhere/at/all is not a folder"),
    (["serve", "--device", "cuda:7"], "is not available"),
])
def test_bad_serve_options_are_one_line_usage_errors(argv, message, capsys, no_official):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
