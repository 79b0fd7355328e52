"""TrainConfig is checked whole before any work: each mistake is one UsageError line naming the field and
the fix, from Python, from a YAML file and from ``animescene train`` (exit 2, nothing written)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from animescene import cli
from animescene.errors import UsageError
from animescene.segmentation import STRUCTURE_DEFAULTS, structure_image
from animescene.train import TrainConfig


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("betas", {"structure": -1.0}, r"betas.structure must be a finite number >= 0.0, got -1.0"),
        ("betas", {"tv": math.nan}, r"betas.tv must be a finite number >= 0.0, got nan"),
        ("betas", {"content": math.inf}, r"betas.content must be a finite number >= 0.0, got inf"),
        ("betas", {"colour": 1.0}, r"unknown loss term 'colour' in betas; the terms are tv, surface"),
        ("betas", {"texture": "1"}, r"betas.texture must be a number, got '1'"),
        ("steps", -1, r"steps must be >= 0, got -1"),
        ("pretrain_steps", -5, r"pretrain_steps must be >= 0, got -5"),
        ("steps", "100", r"steps must be a whole number, got '100'"),
        ("steps", 2.5, r"steps must be a whole number, got 2.5"),
        ("batch_size", 0, r"batch_size must be >= 1, got 0"),
        ("batch_size", True, r"batch_size must be a whole number, got True"),
        ("lr", "2e-4", r"lr must be a number, got '2e-4'; in YAML write e.g. 2.0e-4"),
        ("lr", 0.0, r"lr must be a finite number > 0.0, got 0.0"),
        ("lr", math.nan, r"lr must be a finite number > 0.0, got nan"),
        ("size", 30, r"size must be a multiple of 8 .* got 30; use e.g. 24"),
        ("face_ratio", 1.5, r"face_ratio must be a finite number in \[0.0, 1.0\], got 1.5"),
        ("adam_betas", (0.5,), r"adam_betas must be two numbers in \[0, 1\)"),
        ("adam_betas", (0.5, 1.0), r"adam_betas must be two numbers in \[0, 1\)"),
        ("amp", "fp8", r"amp must be one of 'auto', 'bf16', 'fp16', 'none'; got 'fp8'"),
        ("structure_method", "watershed", r"structure_method must be one of 'selective', 'slic'"),
        ("vgg_layer", "conv9_9", r"vgg_layer 'conv9_9' is not a layer of vgg16"),
        ("bounded", "yes", r"bounded must be true or false, got 'yes'"),
        ("photo_dirs", [3], r"photo_dirs must be a list of folder paths, got \[3\]"),
        ("keep_checkpoints", 0, r"keep_checkpoints must be >= 1, got 0"),
        ("structure_workers", -2, r"structure_workers must be >= -1, got -2"),
    ],
)
def test_each_bad_value_is_a_usage_error_naming_the_field(field, value, message):
    with pytest.raises(UsageError, match=message) as err:
        TrainConfig(**{field: value})
    assert "\n" not in str(err.value)


def test_good_values_are_normalised():
    config = TrainConfig(photo_dirs="photos", lr=1, betas={"tv": 2}, adam_betas=[0.5, 0.9])
    assert config.photo_dirs == ["photos"]  # one folder written alone in YAML is a list of one
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.betas == {"tv": 2.0, "surface": 0.1, "structure": 200.0, "texture": 1.0, "content": 200.0}
    assert config.adam_betas == (0.5, 0.9)
    assert TrainConfig(device=torch.device("cpu")).device == "cpu"  # stays a name: the config is saved as JSON


def test_unknown_field_suggests_the_nearest_one():
    with pytest.raises(UsageError, match=r"unknown TrainConfig field 'stepz'; did you mean 'steps'\?"):
        TrainConfig.from_dict({"stepz": 3})


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("broken.yaml", "steps: [1, 2\n", r"broken.yaml is not valid YAML: .*line 2"),
        ("list.yaml", "- 1\n- 2\n", r"list.yaml: expected a mapping of TrainConfig fields .* got a list"),
        ("float.yaml", "lr: 2e-4\n", r"float.yaml: lr must be a number, got '2e-4'; in YAML write e.g. 2.0e-4"),
        ("typo.yaml", "segmentz: 20\n", r"typo.yaml: unknown TrainConfig field 'segmentz'; did you mean 'segments'"),
        ("bad.json", "{\"steps\": }", r"bad.json is not valid JSON"),
    ],
)
def test_bad_config_files_are_usage_errors(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(UsageError, match=message) as err:
        TrainConfig.from_file(tmp_path / name)
    assert "\n" not in str(err.value)


def test_a_missing_config_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"cannot read the config file .*nope.yaml"):
        TrainConfig.from_file(tmp_path / "nope.yaml")


def test_structure_defaults_are_one_definition_used_everywhere():
    # the reference values, written out once here as the independent record
    assert (STRUCTURE_DEFAULTS.segments, STRUCTURE_DEFAULTS.method, STRUCTURE_DEFAULTS.gamma1,
            STRUCTURE_DEFAULTS.gamma2, STRUCTURE_DEFAULTS.mu) == (200, "selective", 20.0, 40.0, 1.2)
    config = TrainConfig()
    assert (config.segments, config.structure_method) == (STRUCTURE_DEFAULTS.segments, STRUCTURE_DEFAULTS.method)
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.float32)
    explicit = structure_image(image, segments=200, method="selective", gamma1=20.0, gamma2=40.0, mu=1.2)
    np.testing.assert_array_equal(structure_image(image), explicit)


def _images(folder):
    folder.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 60 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _train(capsys, tmp_path, *argv):
    status = cli.main(["train", "--out", str(tmp_path / "run"), *argv])
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--photos", "{missing}", "--cartoons", "{cartoons}"], "photo folder {missing} does not exist"),
        (["--cartoons", "{cartoons}"], "no photo_dirs given: pass --photos DIR"),
        (["--photos", "{photos}", "--cartoons", "{cartoons}", "--steps", "-3"], "steps must be >= 0, got -3"),
        (["--photos", "{photos}", "--cartoons", "{cartoons}", "--size", "20"], "size must be a multiple of 8"),
        (["--photos", "{photos}", "--cartoons", "{cartoons}", "--lr", "-1"], "lr must be a finite number > 0"),
        (["--photos", "{photos}", "--cartoons", "{cartoons}", "--amp", "fp8"], "amp must be one of"),
        (["--config", "{bad_yaml}"], "is not valid YAML"),
        (["--config", "{unknown_yaml}"], "unknown TrainConfig field 'colour'"),
        (["--photos", "{photos}", "--cartoons", "{cartoons}", "--device", "cuda:7"], "device 'cuda:7' is not available"),
    ],
)
def test_cli_train_mistakes_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setenv("ANIMESCENE_SMOKE", "1")
    paths = {"photos": _images(tmp_path / "photos"), "cartoons": _images(tmp_path / "cartoons"),
             "missing": tmp_path / "missing", "bad_yaml": tmp_path / "bad.yaml", "unknown_yaml": tmp_path / "u.yaml"}
    paths["bad_yaml"].write_text("steps: [1\n")
    paths["unknown_yaml"].write_text("colour: 1\n")
    if "cuda:7" in argv and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    status, err = _train(capsys, tmp_path, *(a.format(**paths) for a in argv))
    assert status == 2
    assert err.startswith("animescene: error: ") and err.count("\n") == 1, err
    assert message.format(**paths) in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
