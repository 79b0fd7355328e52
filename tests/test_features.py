"""The feature extractors and the folder/tensor batching that feeds them."""

import numpy as np
import pytest
import torch
from PIL import Image

from animescene.features import (
    FeatureExtractor,
    HEDVGGFeatures,
    InceptionFeatures,
    features_of_folder,
    features_of_tensors,
)
from animescene.runtime import torch_hub_checkpoint


class Pixels(FeatureExtractor):
    """Every pixel a feature: shows exactly which square of each image the extractor was given."""

    name = "pixels"

    def embed(self, x):
        return x.flatten(1)


def test_hed_features_shape_and_name_with_random_weights():
    extractor = HEDVGGFeatures(weights=None)
    features = extractor(torch.rand(2, 3, 48, 64) * 2 - 1)
    assert features.shape == (2, 1024) and features.dtype == torch.float64 and features.device.type == "cpu"
    assert extractor.name == "random-VGG16" and extractor.fd_label == "FD-random-VGG16"
    # each layer's half has unit RMS, so x . y / d is a mean cosine, the scale KID's kernel expects
    mean_squares = features.view(2, 2, 512).pow(2).mean(-1)
    torch.testing.assert_close(mean_squares, torch.ones(2, 2, dtype=torch.float64), rtol=1e-5, atol=0)


def test_hed_features_do_not_depend_on_batching():
    extractor = HEDVGGFeatures(weights=None)
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    one_by_one = np.concatenate([extractor(images[i : i + 1]).numpy() for i in range(3)])
    batched = features_of_tensors(images, extractor, batch_size=2)
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-4, atol=1e-6)


def test_hed_labels_are_never_fid(monkeypatch):
    """The pretrained HED VGG16 is reported as FD-/KID-HED-VGG16; checked without its weights file."""
    from animescene import vgg

    monkeypatch.setattr(vgg, "load_vgg_state", lambda weights, arch: (None, True))
    extractor = HEDVGGFeatures(weights="hed")
    labels = (extractor.name, extractor.fd_label, extractor.kid_label)
    assert labels == ("HED-VGG16", "FD-HED-VGG16", "KID-HED-VGG16")


def test_extractors_refuse_images_outside_minus_one_one():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        HEDVGGFeatures(weights=None)(torch.full((1, 3, 16, 16), 255.0))


def test_inception_features_are_2048_pool3_vectors():
    extractor = InceptionFeatures(weights=None)
    features = extractor(torch.rand(1, 3, 64, 80) * 2 - 1)  # resized to 299x299 inside
    assert features.shape == (1, 2048) and features.dtype == torch.float64
    assert extractor.fd_label == "FD-random-Inception-v3"


def test_inception_without_cached_weights_says_how_to_fix_it(monkeypatch, tmp_path):
    def offline(url, dst, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError, match=r"inception_v3_google-0cc3c7bd\.pth.*HEDVGGFeatures") as info:
        InceptionFeatures()
    assert str(tmp_path / "checkpoints") in str(info.value)


@pytest.mark.parametrize("height,width", [(64, 96), (96, 64)])
def test_folder_features_are_of_the_centre_square_at_the_evaluation_size(tmp_path, height, width):
    """Halving by 2x2 means (area resize at an exact factor), then the middle 32 x 32, in float64 numpy."""
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(3)]
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(tmp_path / f"{i}.png")
    got = features_of_folder(tmp_path, Pixels(), size=32, batch_size=2)
    expected = []
    for picture in pictures:
        half = (picture / 255.0 * 2 - 1).reshape(height // 2, 2, width // 2, 2, 3).mean(axis=(1, 3))
        top, left = (height // 2 - 32) // 2, (width // 2 - 32) // 2
        expected.append(half[top : top + 32, left : left + 32].transpose(2, 0, 1).ravel())
    np.testing.assert_allclose(got, np.stack(expected), rtol=0, atol=1e-6)


@pytest.mark.parametrize("url", ["https://example.invalid/models/tiny-0123abcd.pth",
                                 "https://example.invalid/models/tiny-0123abcd.pth?download=1"])
def test_the_hub_checkpoint_path_is_where_torch_hub_loads_from(monkeypatch, tmp_path, url):
    """A file put where the error messages say is what torch hub then loads, with no download."""
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    path = torch_hub_checkpoint(url)
    path.parent.mkdir(parents=True)
    torch.save({"weight": torch.arange(3.0)}, path)
    loaded = torch.hub.load_state_dict_from_url(url, progress=False, weights_only=True)
    torch.testing.assert_close(loaded["weight"], torch.arange(3.0))
