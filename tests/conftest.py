"""Shared fixtures: smoke mode on, deterministic seeds, and the course's local data when present."""

import os

os.environ.setdefault("ANIMESCENE_SMOKE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from animescene.runtime import shared_data_dir  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def shared_data():
    """``../shared/data`` (photos, frames, weights), or a skip saying it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("the course's local data (../shared/data or $ANIMESCENE_SHARED_DATA) is absent here")
    return path


@pytest.fixture(scope="session")
def kodak_image(shared_data):
    """One real photo as a ``(1, 3, H, W)`` tensor in [-1, 1]."""
    from animescene.images import read_image

    path = shared_data / "photos" / "kodak24" / "kodim23.png"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return read_image(path)


@pytest.fixture(scope="module")
def small_generator():
    """A narrow random :class:`UNetGenerator` (8 channels, 1 residual block): fast, any picture."""
    from animescene.models import UNetGenerator

    torch.manual_seed(0)
    return UNetGenerator(channels=8, num_blocks=1).eval()


@pytest.fixture(scope="module")
def weights_file(small_generator, tmp_path_factory):
    """``small_generator`` saved as a training checkpoint's ``models.pt`` saves it (config beside weights)."""
    path = tmp_path_factory.mktemp("weights") / "small.pt"
    torch.save({"generator": small_generator.state_dict(), "generator_config": small_generator.config()}, path)
    return path


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
