"""Fine-tuning: the film/time split, starting from weights, frozen parts, named generators, the command."""

import json
from pathlib import Path

import pytest
import torch

from animescene.data import split_by_film_and_time
from animescene.errors import UsageError
from animescene.finetune import ENCODER, finetune_config, save_made_generator
from animescene.models import GeneratorWeights, UNetGenerator, made_generator_path, save_generator
from animescene.train import TrainConfig, Trainer
from animescene.weights import MissingWeightsError


def _names(paths):
    return [Path(p).name for p in paths]


def test_split_holds_out_the_end_of_each_film_with_a_gap():
    files = [f"totoro_{n:05d}.jpg" for n in (0, 100, 200, 300, 400, 500, 600, 700, 800, 900)]
    files += [f"ponyo_{n:05d}.jpg" for n in (10, 20, 500)] + ["poster.jpg"]
    train, test = split_by_film_and_time(files, held_out=0.2, gap=150)
    # totoro: 10 frames, the last 2 in time held out (800, 900); 700 is within 150 of 800: dropped
    # ponyo: 3 frames, round(0.6) = 1 held out (500); 20 and 10 are far enough
    # poster: no frame number, its own one-frame film, always trained on
    assert _names(test) == ["ponyo_00500.jpg", "totoro_00800.jpg", "totoro_00900.jpg"]
    assert _names(train) == ["ponyo_00010.jpg", "ponyo_00020.jpg", "poster.jpg"] + [
        f"totoro_{n:05d}.jpg" for n in (0, 100, 200, 300, 400, 500, 600)]
    # never by random frame: the held-out frames are the latest of each film
    for film in ("totoro", "ponyo"):
        latest_train = max(int(p.stem[-5:]) for p in train if p.stem.startswith(film))
        assert latest_train < min(int(p.stem[-5:]) for p in test if p.stem.startswith(film))


def test_split_without_hold_out_keeps_everything_and_checks_its_share():
    files = [f"a_{n:05d}.png" for n in range(5)]
    assert split_by_film_and_time(files, held_out=0.0) == (sorted(map(Path, files)), [])
    with pytest.raises(UsageError, match="held_out"):
        split_by_film_and_time(files, held_out=1.0)


@pytest.mark.parametrize("values, match", [
    ({"freeze": ["encoder"]}, "not parts of the generator"),
    ({"freeze": "head"}, "list of generator parts"),
    ({"hold_out": 0.99}, "hold_out"),
])
def test_config_refuses_bad_fine_tuning_fields(values, match):
    with pytest.raises(UsageError, match=match):
        TrainConfig(**values)


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory):
    from animescene.demo_set import make_demo_set

    out = tmp_path_factory.mktemp("demo")
    make_demo_set(out, short_side=64, use_shared=False)
    return out


@pytest.fixture
def start_file(tmp_path):
    torch.manual_seed(1)
    generator = UNetGenerator(channels=8, num_blocks=1, tf_mode=True, bounded=False)
    return generator, save_generator(generator, tmp_path / "start.pt", licence="test", source="test")


def _tiny(demo_set, out, start, **extra):
    return finetune_config([str(demo_set / "cartoons")], [str(demo_set / "photos")], out, start, size=32,
                           batch_size=2, steps=3, num_workers=0, structure_workers=0, segments=10, vgg_weights=None,
                           vgg_layer="conv2_2", device="cpu", log_every=1, sample_every=3, checkpoint_every=3,
                           hold_out=0.0, **extra)


def test_finetuning_starts_from_the_weights_and_trains_only_the_decoder(demo_set, tmp_path, start_file):
    start, path = start_file
    config = _tiny(demo_set, tmp_path / "run", path)
    # the shape and conventions come from the weights
    assert (config.channels, config.num_blocks, config.tf_mode, config.bounded) == (8, 1, True, False)
    assert config.pretrain_steps == 0 and config.freeze == ENCODER
    trainer = Trainer(config)
    for name, tensor in trainer.generator.state_dict().items():
        assert torch.equal(tensor, start.state_dict()[name]), f"{name} does not start from the weights"
    trainer.fit()
    after = trainer.generator.state_dict()
    for name, tensor in start.state_dict().items():
        frozen = name.split(".")[0] in ENCODER
        assert torch.equal(after[name], tensor) == frozen, f"{name}: frozen={frozen}"
    # the optimizer holds only what trains
    trained = sum(p.numel() for p in trainer.generator.parameters() if p.requires_grad)
    assert sum(p.numel() for g in trainer.g_opt.param_groups for p in g["params"]) == trained


def test_init_weights_of_another_shape_are_refused(demo_set, tmp_path, start_file):
    _, path = start_file
    config = _tiny(demo_set, tmp_path / "run", path, channels=16)
    with pytest.raises(UsageError, match="init_weights .* are a UNetGenerator"):
        Trainer(config)


def test_a_named_generator_is_found_by_its_name(tmp_path, monkeypatch, start_file):
    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path / "home"))
    start, _ = start_file
    files = save_made_generator(start, tmp_path / "run", "my-style", source="a test")
    assert files == [tmp_path / "run" / "generator.pt", made_generator_path("my-style")]
    loaded = UNetGenerator.from_weights("my-style")
    assert loaded.config() == start.config()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), start.state_dict().values()))
    payload = torch.load(files[1], weights_only=True)
    assert payload["licence"] == GeneratorWeights.WHITEBOX_OFFICIAL.licence  # derived weights keep it
    with pytest.raises(MissingWeightsError, match="generators made here: my-style"):
        UNetGenerator.from_weights("other-style")
    with pytest.raises(UsageError, match="letters, digits"):
        save_made_generator(start, tmp_path / "run", "../escape", source="a test")


def test_finetune_command_trains_saves_reports_and_resumes(demo_set, tmp_path, monkeypatch, start_file):
    from animescene.cli import main

    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path / "home"))
    _, path = start_file
    run = tmp_path / "run"
    # frames named FILM_NNNNN so that the split holds some out
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, file in enumerate(sorted((demo_set / "cartoons").iterdir())):
        (frames / f"film_{i * 100:05d}{file.suffix}").write_bytes(file.read_bytes())
    argv = ["finetune", "--cartoons", str(frames), "--photos", str(demo_set / "photos"), "--from", str(path),
            "--out", str(run), "--steps", "2", "--device", "cpu", "--name", "tiny"]
    assert main([*argv, "--max-steps", "1", "--eval-photos", str(demo_set / "photos")]) == 0
    assert not (run / "generator.pt").exists()  # not finished: nothing saved yet
    assert main(["finetune", "--resume", str(run)]) == 0  # remembers --name and --eval-photos
    assert (run / "generator.pt").is_file() and UNetGenerator.from_weights("tiny").config()["channels"] == 8
    report = json.loads((run / "report.json").read_text())
    assert set(report["style"]) == {"photo", "start", "finetuned"}
    low, high = report["style_gain"]["ci95"]
    assert low <= report["style_gain"]["mean"] <= high
    assert (run / "comparison.png").is_file()
