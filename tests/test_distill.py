"""Distillation: multiply-adds by hand, the teacher cache, exact resume, learning, and the command."""

import json

import pytest
import torch

from animescene.distill import DistillConfig, Distiller, TeacherCache
from animescene.errors import UsageError
from animescene.models import UNetGenerator, conv_macs, save_generator


def _unet_macs_by_hand(c: int, blocks: int, h: int, w: int) -> int:
    """The generator's convolutions, listed from its docstring: (in, out, kernel, resolution divisor)."""
    convs = [(3, c, 7, 1), (c, c, 3, 2), (c, 2 * c, 3, 2), (2 * c, 2 * c, 3, 4), (2 * c, 4 * c, 3, 4)]
    convs += [(4 * c, 4 * c, 3, 4)] * (2 * blocks)
    convs += [(4 * c, 2 * c, 3, 4), (2 * c, 2 * c, 3, 2), (2 * c, c, 3, 2), (c, c, 3, 1), (c, 3, 7, 1)]
    return sum(cin * cout * k * k * (h // d) * (w // d) for cin, cout, k, d in convs)


@pytest.mark.parametrize("channels, blocks", [(32, 4), (16, 3), (8, 1)])
def test_conv_macs_match_the_hand_count(channels, blocks):
    model = UNetGenerator(channels, blocks)
    assert conv_macs(model, 64, 96) == _unet_macs_by_hand(channels, blocks, 64, 96)


def test_default_student_is_at_most_a_quarter_of_the_teacher_at_720p():
    teacher = UNetGenerator(tf_mode=True, bounded=False)
    student = DistillConfig().student()
    # TF mode pads stride-2 convs by hand; the count is the same as PyTorch's padding
    assert conv_macs(teacher, 720, 1280) == _unet_macs_by_hand(32, 4, 720, 1280)
    assert conv_macs(student, 720, 1280) <= conv_macs(teacher, 720, 1280) / 4


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from animescene.demo_set import make_demo_set

    out = tmp_path_factory.mktemp("demo")
    make_demo_set(out, short_side=48, use_shared=False)
    return out / "photos"


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    torch.manual_seed(2)
    teacher = UNetGenerator(channels=8, num_blocks=1, tf_mode=True, bounded=False)
    with torch.no_grad():
        teacher.tail.weight.mul_(30)  # outputs of order 1, like a trained generator's, not near 0
    return save_generator(teacher, tmp_path_factory.mktemp("teacher") / "teacher.pt", licence="test", source="test")


def _config(photos, teacher_file, out, **extra):
    values = dict(photo_dirs=[str(photos)], teacher=str(teacher_file), channels=4, num_blocks=1, size=16,
                  cache_size=32, batch_size=2, steps=4, perceptual_every=2, vgg_weights=None, device="cpu",
                  out_dir=str(out), log_every=1, sample_every=2, checkpoint_every=2)
    return DistillConfig(**{**values, **extra})


def test_teacher_cache_holds_the_teachers_outputs_and_is_rebuilt_for_other_weights(photos, teacher_file, tmp_path):
    distiller = Distiller(_config(photos, teacher_file, tmp_path))
    cache = distiller.cache
    with torch.no_grad():
        expected = distiller.teacher(cache.photos[0].float()[None])[0]
    assert torch.allclose(cache.outputs[0].float(), expected, atol=2e-3)  # float16 storage
    assert all(p.shape[-2] % 8 == 0 and p.shape[-1] % 8 == 0 and min(p.shape[-2:]) == 32 for p in cache.photos)
    # the same batch for the same (seed, step), another for another step
    a, b, c = cache.batch(0, 5, 2, 16), cache.batch(0, 5, 2, 16), cache.batch(0, 6, 2, 16)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    # another teacher in the same run folder: rebuilt, not reused
    other = UNetGenerator(channels=8, num_blocks=1, tf_mode=True, bounded=False)
    rebuilt = TeacherCache.build(other, sorted(photos.iterdir()), 32, tmp_path / "teacher_cache.pt",
                                 torch.device("cpu"))
    with torch.no_grad():
        assert torch.allclose(rebuilt.outputs[0].float(), other(rebuilt.photos[0].float()[None])[0], atol=2e-3)


def test_a_damaged_cache_is_rebuilt_and_a_bad_photo_skipped(photos, teacher_file, tmp_path):
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    files = sorted(folder.iterdir())
    teacher = UNetGenerator.from_weights(teacher_file)
    cache_file = tmp_path / "teacher_cache.pt"
    with pytest.warns(UserWarning, match="broken.png"):
        first = TeacherCache.build(teacher, files, 32, cache_file, torch.device("cpu"))
    assert len(first.photos) == len(files) - 1
    cache_file.write_bytes(cache_file.read_bytes()[:1000])  # truncated
    with pytest.warns(UserWarning, match="damaged"):
        again = TeacherCache.build(teacher, files, 32, cache_file, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(first.outputs, again.outputs))


@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_killed_and_resumed_distillation_is_bit_identical(photos, teacher_file, tmp_path, amp):
    straight = Distiller(_config(photos, teacher_file, tmp_path / "straight", amp=amp))
    straight.fit()
    interrupted = Distiller(_config(photos, teacher_file, tmp_path / "interrupted", amp=amp))
    interrupted.fit(max_steps=2)
    del interrupted
    resumed = Distiller.resume(tmp_path / "interrupted")
    assert resumed.step == 2
    resumed.fit()
    for name, tensor in straight.generator.state_dict().items():
        assert torch.equal(tensor, resumed.generator.state_dict()[name]), name
    assert (tmp_path / "interrupted" / "samples" / "step_0000004.png").is_file()
    with pytest.raises(UsageError, match="cannot change channels"):
        Distiller.resume(tmp_path / "interrupted", channels=8)


def test_the_student_learns_the_teacher(photos, teacher_file, tmp_path):
    distiller = Distiller(_config(photos, teacher_file, tmp_path, steps=100, lr=1e-2, perceptual=0.0, channels=8,
                                  sample_every=0, checkpoint_every=0, log_every=0))
    photo, target = distiller.cache.batch(seed=99, step=0, batch_size=8, size=16)  # not a training batch

    def l1() -> float:
        with torch.no_grad():
            return float((distiller.generator(photo) - target).abs().mean())

    before = l1()
    distiller.fit()
    after = l1()
    assert after < 0.85 * before, (before, after)  # an untrained student stays where it started


def test_a_bf16_step_computes_the_float32_losses(photos, teacher_file, tmp_path):
    # the same first step in float32 and in bf16 autocast: the losses agree to bf16's precision, and the
    # weights stay float32 (Adam updates full-precision weights)
    exact = Distiller(_config(photos, teacher_file, tmp_path / "fp32", amp="none", perceptual=0.0)).train_step()
    mixed = Distiller(_config(photos, teacher_file, tmp_path / "bf16", amp="bf16", perceptual=0.0))
    values = mixed.train_step()
    assert values["l1"] == pytest.approx(exact["l1"], rel=0.02)
    assert values["l1"] != exact["l1"]  # bf16 really ran
    assert all(p.dtype == torch.float32 for p in mixed.generator.parameters())


def test_config_is_checked():
    with pytest.raises(UsageError, match="amp must be one of"):
        DistillConfig(amp="fp16")
    with pytest.raises(UsageError, match="size must be a multiple of 8"):
        DistillConfig(size=20)
    with pytest.raises(UsageError, match="no larger than cache_size"):
        DistillConfig(size=512, cache_size=256)


def test_distill_command_saves_a_generator_that_cartoonize_loads_by_name(photos, teacher_file, tmp_path, monkeypatch):
    from animescene.cli import main
    from animescene.inference import Cartoonizer

    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    argv = ["distill", "--photos", str(photos), "--teacher", str(teacher_file), "--out", str(run), "--steps", "2",
            "--channels", "4", "--num-blocks", "1", "--size", "16", "--batch-size", "2", "--device", "cpu",
            "--name", "fast", "--eval-photos", str(photos)]
    assert main([*argv, "--max-steps", "1"]) == 0 and not (run / "generator.pt").exists()
    assert main(["distill", "--resume", str(run)]) == 0
    report = json.loads((run / "student_report.json").read_text())
    assert report["student"]["parameters"] == sum(p.numel() for p in UNetGenerator(4, 1).parameters())
    assert report["macs_ratio"] == pytest.approx(_unet_macs_by_hand(4, 1, 720, 1280) /
                                                 _unet_macs_by_hand(8, 1, 720, 1280))
    cartoonizer = Cartoonizer("fast", device="cpu")
    out = cartoonizer(torch.zeros(1, 3, 40, 48))
    assert out.shape == (1, 3, 40, 48)
