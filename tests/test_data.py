"""animescene.data: reproducible unpaired crops, face mixing, and unreadable files that do not stop a run."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from animescene.data import (
    ImageFolderDataset,
    SkippedImageWarning,
    StepBatches,
    StepSampler,
    UnpairedImages,
    resize_short_side,
)
from animescene.errors import UsageError

SIZE = 32


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def _noise_folder(folder, count, seed, shapes=((48, 64), (40, 40), (20, 44))):
    rng = np.random.default_rng(seed)
    for i in range(count):
        height, width = shapes[i % len(shapes)]
        _save(folder / f"img{i:02d}.png", rng.integers(0, 256, (height, width, 3)))
    return folder


def _flat_folder(folder, values):
    """One flat ``SIZE x SIZE`` image per value, so a crop tells which file it came from."""
    for i, value in enumerate(values):
        _save(folder / f"flat{i:02d}.png", np.full((SIZE, SIZE, 3), value))
    return folder


@pytest.fixture
def folders(tmp_path):
    return _noise_folder(tmp_path / "photos", 6, 1), _noise_folder(tmp_path / "cartoons", 4, 2)


def test_same_seed_and_index_give_identical_items_in_any_order(folders):
    first = UnpairedImages(*folders, size=SIZE, seed=3)
    second = UnpairedImages(*folders, size=SIZE, seed=3)
    indices = [0, 5, 17, 100, 5, 0]
    expected = [first[i] for i in indices]
    for i, (photo, cartoon) in zip(reversed(indices), reversed(expected)):
        again_photo, again_cartoon = second[i]
        assert torch.equal(photo, again_photo) and torch.equal(cartoon, again_cartoon)


def test_different_seeds_give_different_items(folders):
    a = UnpairedImages(*folders, size=SIZE, seed=0)
    b = UnpairedImages(*folders, size=SIZE, seed=1)
    assert any(not torch.equal(a[i][0], b[i][0]) for i in range(6))


def test_items_are_size_crops_in_range_even_from_small_images(folders):
    dataset = UnpairedImages(*folders, size=SIZE)  # the (20, 44) images are enlarged first
    assert len(dataset) == 6
    for i in range(12):
        for crop in dataset[i]:
            assert crop.shape == (3, SIZE, SIZE) and crop.dtype == torch.float32
            assert crop.min() >= -1 and crop.max() <= 1


def test_each_epoch_visits_every_file_once_in_a_new_order(tmp_path):
    values = [10 * i for i in range(7)]
    photos = _flat_folder(tmp_path / "photos", values)
    cartoons = _flat_folder(tmp_path / "cartoons", values[:3])
    dataset = UnpairedImages(photos, cartoons, size=SIZE, seed=5)
    assert len(dataset) == 7

    def order(epoch):
        return [round((dataset[7 * epoch + i][0][0, 0, 0].item() + 1) * 127.5) for i in range(7)]

    epochs = [order(e) for e in range(3)]
    assert all(sorted(e) == values for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1
    cartoon_values = [round((dataset[i][1][0, 0, 0].item() + 1) * 127.5) for i in range(3)]
    assert sorted(cartoon_values) == values[:3]  # the smaller pool has its own epochs of 3


def test_about_half_of_the_crops_are_flipped(tmp_path):
    ramp = np.tile(np.linspace(0, 255, SIZE), (SIZE, 1))[:, :, None].repeat(3, axis=2)
    folder = _save(tmp_path / "ramp" / "ramp.png", ramp).parent
    dataset = UnpairedImages(folder, folder, SIZE)
    flipped = [bool(photo[0, 0, 0] > photo[0, 0, -1]) for photo, _ in (dataset[i] for i in range(400))]
    assert 0.4 < np.mean(flipped) < 0.6
    unflipped = UnpairedImages(folder, folder, SIZE, flip=False)
    assert all(unflipped[i][0][0, 0, 0] < unflipped[i][0][0, 0, -1] for i in range(50))


def test_face_ratio_is_honoured_and_faces_come_in_pairs(tmp_path):
    scenery = _flat_folder(tmp_path / "scenery", [0, 0])
    faces = _flat_folder(tmp_path / "faces", [255, 255])
    dataset = UnpairedImages(
        scenery, scenery, SIZE, face_photo_dirs=faces, face_cartoon_dirs=faces, face_ratio=0.3, seed=2
    )
    items = [dataset[i] for i in range(600)]
    photo_is_face = np.array([p.mean().item() > 0 for p, _ in items])
    cartoon_is_face = np.array([c.mean().item() > 0 for _, c in items])
    assert abs(photo_is_face.mean() - 0.3) < 0.06
    assert np.array_equal(photo_is_face, cartoon_is_face)


def test_face_ratio_without_face_folders_is_an_error(folders):
    with pytest.raises(ValueError, match="face photo"):
        UnpairedImages(*folders, face_ratio=0.5)


def test_unreadable_file_is_dropped_with_a_warning_naming_it(folders):
    photos, cartoons = folders
    broken = photos / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    with pytest.warns(SkippedImageWarning, match="broken.jpg"):
        dataset = UnpairedImages(photos, cartoons, size=SIZE)
    assert dataset.skipped == [broken]
    assert broken not in dataset.photos and len(dataset.photos) == 6


def test_truncated_jpeg_is_skipped_once_at_load_time_and_the_item_still_comes(tmp_path, folders):
    photos = _noise_folder(tmp_path / "two", 1, 3, shapes=((40, 40),))
    rng = np.random.default_rng(4)
    truncated = photos / "truncated.jpg"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(truncated, quality=95)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    dataset = UnpairedImages(photos, folders[1], size=SIZE)  # header intact: the pre-scan lets it through
    assert dataset.skipped == []
    with pytest.warns(SkippedImageWarning) as record:
        items = [dataset[i] for i in range(8)]
    assert len(record) == 1 and "truncated.jpg" in str(record[0].message)
    assert dataset.skipped == [truncated]
    assert all(p.shape == (3, SIZE, SIZE) for p, _ in items)


def test_empty_or_missing_folder_is_a_clear_error(tmp_path, folders):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*holds no images"):
        UnpairedImages(folders[0], tmp_path / "empty")
    with pytest.raises(UsageError, match="photo folder .*nowhere does not exist"):
        UnpairedImages(tmp_path / "nowhere", folders[1])
    with pytest.raises(UsageError, match="no cartoon folder given"):
        UnpairedImages(folders[0], [])


def test_two_dataloader_workers_give_the_single_process_tensors(folders):
    dataset = UnpairedImages(*folders, size=SIZE, seed=7)
    sampler = range(10, 26)  # a resumed run: global item counter from 10
    single = list(DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=0))
    parallel = list(DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=2))
    assert len(single) == len(parallel) == 4
    for (p1, c1), (p2, c2) in zip(single, parallel):
        assert torch.equal(p1, p2) and torch.equal(c1, c2)


def _reference_stream(length: int, seed: int, epochs: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """What StepSampler must yield: per epoch ``e`` a torch.randperm seeded with ``seed + e`` (as
    DistributedSampler draws it), cut to a multiple of the world size, rank ``r`` taking every W-th from r,
    offset by ``e * length``."""
    stream = []
    for epoch in range(epochs):
        order = torch.randperm(length, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        order = order[: length // world_size * world_size]
        stream += [epoch * length + i for i in order[rank::world_size]]
    return stream


@pytest.mark.parametrize("start_step", [0, 1, 4, 7])
def test_step_sampler_starts_anywhere_in_the_same_stream(start_step):
    batch_size, length, seed = 3, 10, 5
    reference = _reference_stream(length, seed, epochs=6)
    stream = iter(StepSampler(length, batch_size, start_step, rank=0, world_size=1, seed=seed))
    got = [next(stream) for _ in range(24)]
    assert got == reference[start_step * batch_size : start_step * batch_size + 24]


def test_step_sampler_gives_two_ranks_disjoint_shards_of_each_epoch():
    length, seed = 11, 2
    for rank in (0, 1):
        stream = iter(StepSampler(length, 1, 0, rank=rank, world_size=2, seed=seed))
        assert [next(stream) for _ in range(15)] == _reference_stream(length, seed, 3, rank, 2)
    first = [set(_reference_stream(length, seed, 1, r, 2)) for r in (0, 1)]
    assert not first[0] & first[1] and len(first[0] | first[1]) == 10


def test_step_batches_serve_the_sampled_items_one_step_ahead(folders):
    dataset = UnpairedImages(*folders, size=SIZE, seed=3)
    batches = StepBatches(dataset, batch_size=2, start_step=5, seed=4)
    indices = _reference_stream(len(dataset), 4, epochs=5)[10:18]
    for step in range(3):
        expected = [dataset[i] for i in indices[2 * step : 2 * step + 2]]
        upcoming = [dataset[i] for i in indices[2 * step + 2 : 2 * step + 4]]
        photo, cartoon = next(batches)
        assert torch.equal(photo, torch.stack([e[0] for e in expected]))
        assert torch.equal(cartoon, torch.stack([e[1] for e in expected]))
        assert torch.equal(batches.upcoming[0], torch.stack([u[0] for u in upcoming]))


def test_resize_short_side_keeps_aspect_and_hits_the_size():
    assert resize_short_side(torch.zeros(1, 3, 20, 44), 32).shape == (1, 3, 32, 70)
    assert resize_short_side(torch.zeros(1, 3, 300, 200), 100).shape == (1, 3, 150, 100)


def test_image_folder_dataset_serves_centre_squares_and_paths(folders):
    dataset = ImageFolderDataset(folders[0], size=SIZE)
    image, path = dataset[2]
    assert len(dataset) == 6 and image.shape == (3, SIZE, SIZE) and path.endswith("img02.png")
    whole, _ = ImageFolderDataset(folders[0])[0]
    assert whole.shape == (3, 48, 64)


def test_psnr_matches_hand_computed_values():
    from animescene.images import psnr

    x = torch.zeros(1, 3, 4, 4)
    assert psnr(x + 0.2, x) == pytest.approx(20.0)  # mse 0.04 -> 10 log10(4 / 0.04)
    noisy = x.clone()
    noisy[0, 0, 0, 0] = 2.0  # one error of 2 in 48 values: mse 4/48
    assert psnr(noisy, x) == pytest.approx(10 * np.log10(48))
    assert psnr(x, x) == float("inf")
