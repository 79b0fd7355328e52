"""Generator and discriminator: sizes, shapes, TensorFlow semantics, official-weights parity."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from animescene.errors import UsageError
from animescene.models import (
    GeneratorWeights,
    PatchDiscriminator,
    UNetGenerator,
    load_generator,
    save_generator,
    upsample2x_tf1,
)


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_generator_has_exactly_the_papers_parameter_count():
    assert _count(UNetGenerator()) == 1_467_075
    assert _count(UNetGenerator(tf_mode=True)) == 1_467_075  # padding changes, weights do not


def test_discriminator_parameter_counts_by_hand():
    # three stages [k3 s2, k3] at 32/64/128 channels plus a 1x1 head
    def conv(cin, cout, k):
        return cin * cout * k * k + cout

    def expected(cin):
        return (
            conv(cin, 32, 3) + conv(32, 32, 3) + conv(32, 64, 3) + conv(64, 64, 3)
            + conv(64, 128, 3) + conv(128, 128, 3) + conv(128, 1, 1)
        )

    assert _count(PatchDiscriminator(3)) == expected(3) == 287_137
    assert _count(PatchDiscriminator(1)) == expected(1)


@pytest.mark.parametrize("tf_mode", [False, True])
@pytest.mark.parametrize("size", [(8, 8), (24, 40), (64, 48)])
def test_generator_keeps_any_multiple_of_8(tf_mode, size):
    out = UNetGenerator(tf_mode=tf_mode)(torch.zeros(2, 3, *size))
    assert out.shape == (2, 3, *size)


@pytest.mark.parametrize("size", [(30, 32), (32, 36), (7, 5)])
def test_generator_rejects_sizes_that_are_not_multiples_of_8(size):
    with pytest.raises(ValueError, match="multiples of 8"):
        UNetGenerator()(torch.zeros(1, 3, *size))


def test_generator_rejects_wrong_channels_and_dtype():
    with pytest.raises(ValueError, match="3 channels"):
        UNetGenerator()(torch.zeros(1, 4, 16, 16))
    with pytest.raises(TypeError, match="floating-point"):
        UNetGenerator()(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))


def test_bounded_output_stays_in_range_and_unbounded_does_not():
    torch.manual_seed(0)
    bounded, unbounded = UNetGenerator(bounded=True), UNetGenerator(bounded=False)
    unbounded.load_state_dict(bounded.state_dict())
    with torch.no_grad():
        for model in (bounded, unbounded):
            model.tail.bias.fill_(3.0)  # push the pre-activation far outside [-1, 1]
        x = torch.rand(1, 3, 16, 16) * 2 - 1
        assert bounded(x).abs().max() <= 1.0
        assert unbounded(x).max() > 1.0
        torch.testing.assert_close(bounded(x), torch.tanh(unbounded(x)))


def test_discriminator_output_is_a_patch_grid():
    out = PatchDiscriminator(3)(torch.zeros(2, 3, 64, 48))
    assert out.shape == (2, 1, 8, 6)
    assert PatchDiscriminator(1)(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 4, 4)


def test_discriminator_weights_are_spectrally_normalised():
    disc = PatchDiscriminator(3)
    disc.train()
    for _ in range(30):  # power iteration converges over forward passes
        disc(torch.rand(1, 3, 32, 32))
    conv = disc.net[2]
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert abs(sigma.item() - 1.0) < 0.05


def _tf1_resize_bilinear_reference(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 resize_bilinear (align_corners=False, half_pixel_centers=False), float64 loops."""
    in_h, in_w = x.shape
    out = np.empty((out_h, out_w))
    for i in range(out_h):
        src_y = i * in_h / out_h
        y0 = int(np.floor(src_y)); y1 = min(y0 + 1, in_h - 1); fy = src_y - y0  # noqa: E702
        for j in range(out_w):
            src_x = j * in_w / out_w
            x0 = int(np.floor(src_x)); x1 = min(x0 + 1, in_w - 1); fx = src_x - x0  # noqa: E702
            top = x[y0, x0] * (1 - fx) + x[y0, x1] * fx
            bottom = x[y1, x0] * (1 - fx) + x[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


def test_tf1_upsample_matches_the_legacy_formula_and_differs_from_pytorch():
    x = np.random.default_rng(0).random((5, 7))
    got = upsample2x_tf1(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, _tf1_resize_bilinear_reference(x, 10, 14), atol=1e-12)
    half_pixel = F.interpolate(torch.from_numpy(x)[None, None], scale_factor=2, mode="bilinear")[0, 0].numpy()
    assert np.abs(half_pixel - got).max() > 0.05


def test_tf_mode_pads_stride_two_convs_bottom_right():
    """A 3x3 stride-2 conv that sums its window: TF SAME sees rows/cols (0,1,2), (2,3,4)...; PyTorch (-1,0,1)..."""
    model = UNetGenerator(tf_mode=True)
    x = torch.arange(64.0).view(1, 1, 8, 8)
    ones = torch.ones(1, 1, 3, 3)
    got = F.conv2d(model._pad_down(x), ones, stride=2)
    expected = torch.tensor([[x[0, 0, r : r + 3, c : c + 3].sum() for c in range(0, 8, 2)] for r in range(0, 8, 2)])
    expected[-1, :] = torch.tensor([x[0, 0, 6:8, c : c + 3].sum() for c in range(0, 8, 2)])
    expected[:, -1] = torch.tensor([x[0, 0, r : r + 3, 6:8].sum() for r in range(0, 8, 2)])
    expected[-1, -1] = x[0, 0, 6:8, 6:8].sum()
    torch.testing.assert_close(got[0, 0], expected)


def test_checkpoint_round_trip(tmp_path):
    model = UNetGenerator(channels=8, num_blocks=1, tf_mode=True, bounded=False)
    torch.save({"generator": model.state_dict(), "generator_config": model.config()}, tmp_path / "g.pt")
    loaded = load_generator(tmp_path / "g.pt")
    assert loaded.config() == model.config()
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(loaded(x), model.eval()(x))


def _small(tf_mode, bounded):
    model = UNetGenerator(channels=8, num_blocks=1, tf_mode=tf_mode, bounded=bounded).eval()
    with torch.no_grad():
        model.tail.bias.fill_(1.5)  # outputs beyond [-1, 1], so the bound shows
    return model


@pytest.mark.parametrize("tf_mode,bounded", [(True, False), (False, True), (True, True), (False, False)])
def test_save_generator_round_trip_keeps_tf_mode_and_bound(tmp_path, tf_mode, bounded):
    model = _small(tf_mode, bounded)
    path = save_generator(model, tmp_path / "new" / "g.pt", licence="MIT", source="a test")
    assert [p.name for p in path.parent.iterdir()] == ["g.pt"]  # no temporary file left behind
    loaded = UNetGenerator.from_weights(path)
    assert loaded.config() == model.config() and not loaded.training
    x = torch.rand(1, 3, 16, 24) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
        # the conventions matter: the same tensors in the other padding/resize give another picture
        other = UNetGenerator(channels=8, num_blocks=1, tf_mode=not tf_mode, bounded=bounded).eval()
        other.load_state_dict(model.state_dict())
        assert (other(x) - model(x)).abs().max() > 1e-5
    payload = torch.load(path, weights_only=True)
    assert (payload["licence"], payload["source"]) == ("MIT", "a test")


def test_save_generator_replaces_a_file_only_when_the_new_one_is_complete(tmp_path, monkeypatch):
    path = save_generator(_small(True, False), tmp_path / "g.pt", licence="MIT", source="first")
    before = path.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        open(f, "wb").write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_generator(_small(False, True), path, licence="MIT", source="second")
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["g.pt"]


def test_a_bare_state_dict_of_unknown_origin_is_refused(tmp_path):
    torch.save(UNetGenerator().state_dict(), tmp_path / "bare.pt")
    with pytest.raises(UsageError, match="conventions of these weights are unknown.*save_generator"):
        UNetGenerator.from_weights(tmp_path / "bare.pt")
    # the same inside a checkpoint-like dict that lacks generator_config
    torch.save({"generator": UNetGenerator().state_dict()}, tmp_path / "old.pt")
    with pytest.raises(UsageError, match="conventions of these weights are unknown"):
        UNetGenerator.from_weights(tmp_path / "old.pt")


def test_files_that_hold_no_generator_are_usage_errors_on_one_line(tmp_path):
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    torch.save({"generator": PatchDiscriminator().state_dict(), "generator_config": UNetGenerator().config()},
               tmp_path / "wrong.pt")
    for name, message in (("photo.png", "not a generator file that torch can load safely"),
                          ("wrong.pt", "do not fit UNetGenerator")):
        with pytest.raises(UsageError, match=message) as caught:
            UNetGenerator.from_weights(tmp_path / name)
        assert "\n" not in str(caught.value)


def test_from_weights_passes_a_generator_through_and_names_unknown_specs(tmp_path):
    model = UNetGenerator(channels=8, num_blocks=1)
    assert UNetGenerator.from_weights(model) is model
    with pytest.raises(FileNotFoundError, match="neither a known name .*'official': `animescene download "
                                                "whitebox-official`"):
        UNetGenerator.from_weights(tmp_path / "typo.pt")
    assert GeneratorWeights("official") is GeneratorWeights.WHITEBOX_OFFICIAL
    assert "NC" in GeneratorWeights.WHITEBOX_OFFICIAL.licence  # non-commercial travels with the entry
    assert GeneratorWeights.WHITEBOX_OFFICIAL.config == {"channels": 32, "num_blocks": 4, "tf_mode": True,
                                                         "bounded": False}


@pytest.mark.gpu
def test_generator_on_gpu_matches_cpu():
    model = UNetGenerator().eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        cpu = model(x)
        gpu = model.cuda()(x.cuda()).cpu()
    assert (gpu - cpu).abs().max() < 1e-3
