"""Checkpoints never lose work: a damaged latest checkpoint is skipped (and named), good ones are never
touched, non-finite weights are never written, and the command line says all of it in one line."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from animescene import checkpoint, cli
from animescene.checkpoint import CheckpointSkippedWarning, DamagedCheckpoint
from animescene.errors import UsageError
from animescene.train import TrainConfig, Trainer, TrainingDiverged

FILES = ("models.pt", "optimizers.pt", "state.pt", "pending_rank0.pt")


def _folders(root):
    rng = np.random.default_rng(0)
    for kind in ("photos", "cartoons"):
        (root / kind).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / kind / f"{i}.png")
    return root


def _config(data, out_dir, **overrides):
    values = dict(
        photo_dirs=[str(data / "photos")], cartoon_dirs=[str(data / "cartoons")], size=16, batch_size=2,
        pretrain_steps=2, steps=4, num_workers=0, structure_workers=0, segments=20, vgg_weights=None,
        vgg_layer="conv1_2", channels=4, num_blocks=1, out_dir=str(out_dir), log_every=0, sample_every=0,
        checkpoint_every=2, keep_checkpoints=3, device="cpu",
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished run with checkpoints at steps 2, 4 and 6 (the last two adversarial, with a pending target)."""
    root = tmp_path_factory.mktemp("trained")
    data = _folders(root / "data")
    Trainer(_config(data, root / "run")).fit()
    return root


@pytest.fixture
def run(trained, tmp_path):
    """A private copy of the trained run folder, to damage."""
    shutil.copytree(trained / "run", tmp_path / "run")
    return tmp_path / "run"


def _hashes(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _step(run, step):
    return run / "checkpoints" / f"step_{step:07d}"


def _damage(file, how):
    data = file.read_bytes()
    file.write_bytes(b"" if how == "empty" else data[: len(data) // 2])


def test_the_manifest_holds_the_sha256_of_every_file(run):
    folder = _step(run, 6)
    manifest = json.loads((folder / "manifest.json").read_text())
    files = sorted(p.name for p in folder.iterdir() if p.name != "manifest.json")
    assert sorted(manifest["sha256"]) == files == sorted([*FILES, "config.json"])
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert manifest["step"] == 6 and manifest["world_size"] == 1
    assert not list((run / "checkpoints").glob(".partial*"))


@pytest.mark.parametrize("how", ["empty", "truncated"])
@pytest.mark.parametrize("name", FILES)
def test_resume_skips_a_damaged_latest_checkpoint_names_it_and_loses_nothing(run, name, how):
    good = _hashes(_step(run, 4)), _hashes(_step(run, 2))
    _damage(_step(run, 6) / name, how)
    damaged = _hashes(_step(run, 6))
    with pytest.warns(CheckpointSkippedWarning, match=f"resuming from .*step_0000004.*step_0000006/{name}"):
        trainer = Trainer.resume(run)
    assert trainer.step == 4
    saved = torch.load(_step(run, 4) / "models.pt", weights_only=True)["generator"]
    for key, value in trainer.generator.state_dict().items():
        assert torch.equal(value, saved[key]), key
    # the good checkpoints are byte-identical, and the damaged one is left for a person to look at
    assert (_hashes(_step(run, 4)), _hashes(_step(run, 2))) == good
    assert _hashes(_step(run, 6)) == damaged


def test_resume_after_a_fallback_reaches_the_uninterrupted_result(run, trained):
    _damage(_step(run, 6) / "state.pt", "empty")
    with pytest.warns(CheckpointSkippedWarning):
        trainer = Trainer.resume(run)
    trainer.fit()  # steps 5 and 6 again; step_0000006 is written anew
    straight = torch.load(trained / "run" / "checkpoints" / "step_0000006" / "models.pt", weights_only=True)
    for key, value in trainer.generator.state_dict().items():
        assert torch.equal(value, straight["generator"][key]), key
    checkpoint.read(_step(run, 6))  # complete again


def test_no_usable_checkpoint_is_a_usage_error_naming_every_damaged_file(run):
    before = {}
    for step, name in ((2, "models.pt"), (4, "optimizers.pt"), (6, "pending_rank0.pt")):
        _damage(_step(run, step) / name, "truncated")
        before[step] = _hashes(_step(run, step))
    with pytest.raises(UsageError, match="no usable checkpoint") as err:
        Trainer.resume(run)
    for step, name in ((2, "models.pt"), (4, "optimizers.pt"), (6, "pending_rank0.pt")):
        assert f"step_{step:07d}/{name}" in str(err.value)
        assert _hashes(_step(run, step)) == before[step]


def test_a_named_damaged_checkpoint_is_refused_with_the_newest_good_one(run):
    _damage(_step(run, 6) / "models.pt", "empty")
    with pytest.raises(DamagedCheckpoint, match=r"step_0000006/models.pt: 0 bytes.*resume from .*step_0000004"):
        Trainer.resume(_step(run, 6))
    assert Trainer.resume(_step(run, 4)).step == 4


def test_a_checkpoint_without_manifest_loads_and_a_broken_one_is_skipped(run):
    # folders written before manifests existed: complete ones resume; a zero-byte file (the bare EOFError
    # of old) is caught by loading it
    (_step(run, 6) / "manifest.json").unlink()
    assert Trainer.resume(run).step == 6
    (_step(run, 6) / "models.pt").write_bytes(b"")
    with pytest.warns(CheckpointSkippedWarning, match="step_0000006/models.pt: cannot be read"):
        assert Trainer.resume(run).step == 4


def test_pruning_keeps_the_new_checkpoint_and_leaves_newer_damaged_ones(run):
    _damage(_step(run, 6) / "models.pt", "empty")
    with pytest.warns(CheckpointSkippedWarning):
        trainer = Trainer.resume(run, keep_checkpoints=1, checkpoint_every=1)
    trainer.fit(max_steps=1)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["step_0000005", "step_0000006"]  # the old rule deleted step 5, the one just written
    checkpoint.read(_step(run, 5))
    trainer.fit(max_steps=1)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000006"]
    checkpoint.read(_step(run, 6))


@pytest.mark.parametrize("part", ["generator", "optimizer"])
def test_non_finite_weights_are_never_saved_and_the_message_names_the_newest_finite_checkpoint(run, part):
    with pytest.warns(CheckpointSkippedWarning, match="non-finite"):
        # a checkpoint with exploded weights, as older versions could write: the newest on disk, not usable
        trainer = Trainer.resume(run, checkpoint_every=1)
        state = checkpoint.capture(trainer)
        state["generator"] = {k: v * float("nan") for k, v in state["generator"].items()}
        state["step"] = 7
        checkpoint.write(run / "checkpoints", state, keep=5)
        Trainer.resume(run)
    before = _hashes(run / "checkpoints")
    if part == "generator":
        with torch.no_grad():
            next(trainer.generator.parameters()).fill_(float("inf"))
    else:
        exp_avg = next(iter(trainer.g_opt.state.values()))["exp_avg"]
        exp_avg.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"non-finite \(not saved\).*finite weights is .*step_0000006"):
        trainer.save_checkpoint()
    assert _hashes(run / "checkpoints") == before  # nothing written, nothing removed


def test_a_non_finite_loss_names_the_newest_finite_checkpoint(run, monkeypatch):
    trainer = Trainer.resume(_step(run, 4))
    monkeypatch.setattr("animescene.train.discriminator_loss",
                        lambda *args: {"total": torch.tensor(float("nan"), requires_grad=True)})
    with pytest.raises(TrainingDiverged, match=r"step 4: loss became non-finite.*step_0000006.*--lr"):
        trainer.fit()


def test_resume_may_change_the_learning_rate(run):
    trainer = Trainer.resume(run, lr=1e-5, adam_betas=(0.9, 0.999))
    for optimizer in (trainer.g_opt, trainer.d_opt):
        assert optimizer.param_groups[0]["lr"] == 1e-5 and tuple(optimizer.param_groups[0]["betas"]) == (0.9, 0.999)


@pytest.mark.parametrize("override", [{"size": 32}, {"batch_size": 3}, {"channels": 8}, {"bounded": False}])
def test_resume_refuses_to_change_the_model_or_batch_shape(run, override):
    before = _hashes(run)
    (name, value), = override.items()
    with pytest.raises(UsageError, match=f"cannot take {name}={value!r} \\(it was trained with"):
        Trainer.resume(run, **override)
    assert _hashes(run) == before


def _cli(capsys, *argv):
    status = cli.main(["train", *argv])
    err = capsys.readouterr().err
    return status, err


def test_cli_resume_falls_back_past_a_damaged_checkpoint(run, capsys):
    _damage(_step(run, 6) / "models.pt", "empty")
    with pytest.warns(CheckpointSkippedWarning, match="step_0000006/models.pt"):
        status, _ = _cli(capsys, "--resume", str(run), "--max-steps", "0")
    assert status == 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--config", "c.yaml"], "--config does not apply"),
        (["--size", "32"], "cannot take size=32"),
        (["--batch-size", "4"], "cannot take batch_size=4"),
        (["--steps", "-1"], "steps must be >= 0"),
        (["--max-steps", "-2"], "max_steps must be a whole number >= 0"),
    ],
)
def test_cli_resume_mistakes_are_one_line_and_change_nothing(run, capsys, extra, message):
    before = _hashes(run)
    status, err = _cli(capsys, "--resume", str(run), *extra)
    assert status == 2
    assert err.startswith("animescene: error: ") and err.count("\n") == 1 and message in err, err
    assert _hashes(run) == before


def test_cli_resume_with_nothing_usable_names_the_files(run, capsys):
    for step in (2, 4, 6):
        _damage(_step(run, step) / "state.pt", "empty")
    before = _hashes(run)
    status, err = _cli(capsys, "--resume", str(run))
    assert status == 2 and err.count("\n") == 1
    assert all(f"step_{s:07d}/state.pt" in err for s in (2, 4, 6)), err
    assert _hashes(run) == before
