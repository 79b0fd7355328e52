"""The trainer: exact resume, checkpoints, logs, guards, and that training moves towards cartoons."""

import csv
import json

import numpy as np
import pytest
import torch

from animescene.errors import UsageError
from animescene.train import TrainConfig, Trainer, TrainingDiverged


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory):
    from animescene.demo_set import make_demo_set

    out = tmp_path_factory.mktemp("demo")
    make_demo_set(out, short_side=96, use_shared=False)
    return out


def _config(demo_set, out_dir, **overrides):
    values = dict(
        photo_dirs=[str(demo_set / "photos")],
        cartoon_dirs=[str(demo_set / "cartoons")],
        size=32, batch_size=2, pretrain_steps=2, steps=4, num_workers=0, structure_workers=0,
        segments=20, vgg_weights=None, vgg_layer="conv2_2", channels=8, num_blocks=1,
        out_dir=str(out_dir), log_every=2, sample_every=3, checkpoint_every=3, keep_checkpoints=2, device="cpu",
    )
    values.update(overrides)
    return TrainConfig(**values)


def _assert_same_state(a: dict, b: dict, path=""):
    assert a.keys() == b.keys(), path
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, dict):
            _assert_same_state(x, y, f"{path}.{key}")
        elif isinstance(x, torch.Tensor):
            assert torch.equal(x, y), f"{path}.{key} differs"
        elif isinstance(x, (list, tuple)) and x and isinstance(x[0], (dict, torch.Tensor)):
            for i, (u, v) in enumerate(zip(x, y)):
                _assert_same_state({i: u}, {i: v}, f"{path}.{key}")
        else:
            assert x == y, f"{path}.{key}: {x} != {y}"


def test_killed_and_resumed_run_is_bit_identical(demo_set, tmp_path):
    straight = Trainer(_config(demo_set, tmp_path / "straight"))
    straight.fit()
    interrupted = Trainer(_config(demo_set, tmp_path / "interrupted"))
    interrupted.fit(max_steps=3)  # stops mid-adversarial phase with a structure target pending
    del interrupted  # "killed": nothing of it survives but its checkpoint folder
    resumed = Trainer.resume(tmp_path / "interrupted")
    assert resumed.step == 3 and resumed.structure.pending is not None
    resumed.fit()
    assert resumed.step == straight.step == 6
    a, b = straight.state_dict(), resumed.state_dict()
    for state in (a, b):
        state.pop("config")
    _assert_same_state(a, b)


def test_checkpoints_are_complete_and_only_the_last_k_kept(demo_set, tmp_path):
    trainer = Trainer(_config(demo_set, tmp_path, steps=7, checkpoint_every=2))
    trainer.fit()
    folders = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert folders == ["step_0000008", "step_0000009"]
    for name in ("models.pt", "optimizers.pt", "state.pt", "config.json"):
        assert (tmp_path / "checkpoints" / "step_0000009" / name).is_file()
    models = torch.load(tmp_path / "checkpoints" / "step_0000009" / "models.pt", weights_only=True)
    assert models["config"]["steps"] == 7 and models["generator_config"]["channels"] == 8
    assert json.loads((tmp_path / "checkpoints" / "step_0000009" / "config.json").read_text())["size"] == 32


def test_metrics_log_and_sample_grids(demo_set, tmp_path):
    Trainer(_config(demo_set, tmp_path)).fit()
    with (tmp_path / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    assert rows[0]["recon"] and not rows[0]["g_total"]
    for name in ("g_total", "tv", "surface", "structure", "texture", "content", "d_total"):
        assert np.isfinite(float(rows[-1][name])), name
    assert 0.0 <= float(rows[-1]["structure_wait"]) <= 1.0
    samples = sorted((tmp_path / "samples").glob("*.png"))
    assert [p.name for p in samples] == ["step_0000003.png", "step_0000006.png"]


def test_structure_wait_is_public_and_resettable(demo_set, tmp_path):
    # no workers: every structure target is computed inside the step, so the wait is a real share of it
    trainer = Trainer(_config(demo_set, tmp_path, steps=2, log_every=0, checkpoint_every=0, sample_every=0))
    trainer.fit()
    wait = trainer.structure_wait
    assert 0.0 < wait.waited_s < wait.busy_s and wait.share == wait.waited_s / wait.busy_s
    wait.reset()
    assert (wait.waited_s, wait.busy_s, wait.share) == (0.0, 0.0, 0.0)


def test_config_round_trips_through_yaml_and_json(tmp_path):
    import yaml

    config = TrainConfig(photo_dirs=["a"], cartoon_dirs=["b"], steps=10, betas={"tv": 1.0})
    assert config.betas["content"] == 200.0
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config.to_dict()))
    (tmp_path / "c.json").write_text(json.dumps(config.to_dict()))
    assert TrainConfig.from_file(tmp_path / "c.yaml") == config == TrainConfig.from_file(tmp_path / "c.json")
    (tmp_path / "bad.yaml").write_text("stepz: 3\n")
    with pytest.raises(ValueError, match="stepz"):
        TrainConfig.from_file(tmp_path / "bad.yaml")
    with pytest.raises(UsageError, match="unknown loss term 'colour'"):
        TrainConfig.from_dict({"betas": {"colour": 1.0}})


def test_non_finite_loss_stops_with_a_clear_message(demo_set, tmp_path, monkeypatch):
    trainer = Trainer(_config(demo_set, tmp_path, pretrain_steps=1))
    monkeypatch.setattr("animescene.train.F.l1_loss", lambda a, b: torch.tensor(float("nan")))
    with pytest.raises(TrainingDiverged, match="non-finite.*lower learning rate"):
        trainer.fit()


def test_real_run_refuses_a_random_vgg(demo_set, tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMESCENE_SMOKE", "0")
    with pytest.raises(UsageError, match="animescene download vgg16-hed"):
        Trainer(_config(demo_set, tmp_path, vgg_weights=None))


def test_structure_workers_give_the_same_training(demo_set, tmp_path):
    in_process = Trainer(_config(demo_set, tmp_path / "a", steps=2))
    in_process.fit()
    pooled = Trainer(_config(demo_set, tmp_path / "b", steps=2, structure_workers=2))
    pooled.fit()
    for key, value in in_process.generator.state_dict().items():
        assert torch.equal(value, pooled.generator.state_dict()[key]), key


def test_fit_in_two_calls_with_a_pool_equals_one_call(demo_set, tmp_path):
    # each fit() starts and stops its own workers; the target pending between the calls carries over
    once = Trainer(_config(demo_set, tmp_path / "a", steps=3, structure_workers=1))
    once.fit()
    twice = Trainer(_config(demo_set, tmp_path / "b", steps=3, structure_workers=1))
    twice.fit(max_steps=3)  # 2 pretraining steps, then 1 adversarial step leaves a target pending
    assert twice.structure.pool is None and twice.step == 3
    twice.fit()
    assert twice.step == once.step
    for key, value in once.generator.state_dict().items():
        assert torch.equal(value, twice.generator.state_dict()[key]), key


def _flat_share(x: torch.Tensor) -> float:
    """Share of pixels of ``(B, 3, H, W)`` images whose gray gradient is under 2 grey levels: flat paint."""
    gray = x.mean(dim=1) * 127.5
    gradient = ((gray[:, 1:, :-1] - gray[:, :-1, :-1]) ** 2 + (gray[:, :-1, 1:] - gray[:, :-1, :-1]) ** 2).sqrt()
    return (gradient < 2).double().mean().item()


@pytest.mark.slow
def test_a_short_run_lowers_the_loss_and_flattens_outputs_towards_the_cartoons(demo_set, tmp_path):
    # The cartoon domain here is flat paint: most of a (stand-in) cartoon's pixels have no gradient,
    # few of a photo's do. From one pretrained checkpoint, the five losses must make the outputs
    # flatter than the pretrained ones, and flatter than the same steps with only the content loss
    # (which keeps pulling towards the photo): the adversarial and structure terms, not more training,
    # move the outputs towards the cartoons.
    from animescene.filters import guided_filter

    sizes = dict(size=32, batch_size=4, channels=16, num_blocks=2, log_every=5, sample_every=0)
    pretrained = Trainer(_config(demo_set, tmp_path / "pre", pretrain_steps=60, steps=0, checkpoint_every=60, **sizes))
    pretrained.fit()
    photos = torch.stack([pretrained.dataset[1000 + i][0] for i in range(16)])
    cartoons = torch.stack([pretrained.dataset[1000 + i][1] for i in range(16)])

    def outputs(trainer):
        trainer.generator.eval()
        with torch.no_grad():
            return guided_filter(photos, trainer.generator(photos), 1, 5e-3).clamp(-1, 1)

    assert _flat_share(cartoons) > _flat_share(photos) + 0.2  # the measure tells the domains apart
    runs = {}
    for name, zeroed in (("five losses", ()), ("content only", ("tv", "surface", "structure", "texture"))):
        betas = {**pretrained.config.betas, **{term: 0.0 for term in zeroed}}
        trainer = Trainer.resume(tmp_path / "pre", steps=40, betas=betas, out_dir=str(tmp_path / name))
        trainer.fit()
        runs[name] = trainer
    with open(tmp_path / "five losses" / "metrics.csv", newline="") as f:
        g_total = [float(row["g_total"]) for row in csv.DictReader(f) if row["phase"] == "adversarial"]
    assert np.mean(g_total[-3:]) < 0.6 * np.mean(g_total[:2]), g_total
    flat = {name: _flat_share(outputs(trainer)) for name, trainer in runs.items()}
    flat["pretrained"] = _flat_share(outputs(pretrained))
    assert flat["five losses"] > flat["pretrained"] + 0.05, flat
    assert flat["five losses"] > flat["content only"] + 0.05, flat


def test_the_shipped_config_is_valid_and_follows_the_reference():
    from pathlib import Path

    config = TrainConfig.from_file(Path(__file__).resolve().parent.parent / "configs" / "whitebox.yaml")
    assert config.batch_size == 16 and config.size == 256 and config.adam_betas == (0.5, 0.99)
    assert config.betas == {"tv": 1e4, "surface": 0.1, "structure": 200.0, "texture": 1.0, "content": 200.0}
