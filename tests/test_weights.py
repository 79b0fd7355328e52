"""Weights enums: names and paths resolved in one place, fingerprints, verified cache loading."""

import hashlib
import json

import numpy as np
import pytest
import torch

from animescene.errors import UsageError
from animescene.weights import MissingWeightsError, Weights, WeightsEnum, state_fingerprint

TOY_STATE = {"scale": torch.tensor([1.5, -2.0]), "shift": torch.tensor([[3]], dtype=torch.int32)}


class ToyWeights(WeightsEnum):
    """A family with one cached entry, built like GeneratorWeights and VGGWeights."""

    TOY = "toy", Weights(source="toy-source", filename="toy.pt", fingerprint=state_fingerprint(TOY_STATE),
                         licence="CC0", preprocessing="none", config={"width": 2})


def test_fingerprint_is_sha256_over_sorted_names_dtypes_shapes_and_bytes():
    expected = hashlib.sha256()
    expected.update(b"scale\0torch.float32\0(2,)\0" + np.array([1.5, -2.0], np.float32).tobytes())
    expected.update(b"shift\0torch.int32\0(1, 1)\0" + np.array([[3]], np.int32).tobytes())
    reordered = {"shift": TOY_STATE["shift"], "scale": TOY_STATE["scale"]}
    assert state_fingerprint(reordered) == state_fingerprint(TOY_STATE) == expected.hexdigest()


def test_fingerprint_ignores_container_and_strides_but_not_values_names_or_dtypes(tmp_path):
    state = {"w": torch.arange(6.0).view(2, 3)}
    fingerprint = state_fingerprint(state)
    torch.save(state, tmp_path / "zip.pt")
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert (tmp_path / "zip.pt").read_bytes() != (tmp_path / "legacy.pt").read_bytes()
    for name in ("zip.pt", "legacy.pt"):
        assert state_fingerprint(torch.load(tmp_path / name, weights_only=True)) == fingerprint
    assert state_fingerprint({"w": state["w"].t().contiguous().t()}) == fingerprint  # not contiguous
    changed = state["w"].clone()
    changed[1, 2] += 1e-6
    for other in ({"w": changed}, {"v": state["w"]}, {"w": state["w"].double()}, {"w": state["w"].view(3, 2)}):
        assert state_fingerprint(other) != fingerprint


def test_a_member_is_its_name_and_reads_its_weights_fields():
    assert ToyWeights.TOY == "toy" and str(ToyWeights.TOY) == "toy" and ToyWeights("toy") is ToyWeights.TOY
    assert (ToyWeights.TOY.licence, ToyWeights.TOY.config, ToyWeights.TOY.source) == ("CC0", {"width": 2},
                                                                                     "toy-source")
    with pytest.raises(AttributeError):
        ToyWeights.TOY.url


def test_resolve_turns_names_into_members_and_anything_else_into_existing_files(tmp_path):
    for spec in (ToyWeights.TOY, "toy", "TOY", " Toy "):
        assert ToyWeights.resolve(spec) is ToyWeights.TOY
    (tmp_path / "w.pt").write_bytes(b"")
    assert ToyWeights.resolve(tmp_path / "w.pt") == tmp_path / "w.pt"
    assert ToyWeights.resolve(str(tmp_path / "w.pt")) == tmp_path / "w.pt"
    with pytest.raises(MissingWeightsError, match=r"neither a known name \('toy': `animescene download "
                                                  r"toy-source`\) nor an existing file") as caught:
        ToyWeights.resolve(tmp_path / "absent.pt")
    assert isinstance(caught.value, UsageError) and isinstance(caught.value, FileNotFoundError)
    with pytest.raises(MissingWeightsError):
        ToyWeights.resolve(tmp_path)  # a folder is not a weights file


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A temporary ANIMESCENE_HOME with the toy file and the stamp a finished fetch writes."""
    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    torch.save(TOY_STATE, tmp_path / "weights" / "toy.pt")
    sha = hashlib.sha256((tmp_path / "weights" / "toy.pt").read_bytes()).hexdigest()
    (tmp_path / "fetched").mkdir()
    (tmp_path / "fetched" / "toy-source.json").write_text(json.dumps(
        {"sources": {}, "outputs": {"weights/toy.pt": sha}}))
    return tmp_path


def test_named_weights_load_from_the_cache_when_stamp_and_fingerprint_agree(home):
    state = ToyWeights.TOY.load_state_dict()
    assert state.keys() == TOY_STATE.keys() and all(torch.equal(state[k], TOY_STATE[k]) for k in state)


def test_the_cached_file_named_by_its_path_is_the_named_weights(home, tmp_path_factory):
    assert ToyWeights.resolve(home / "weights" / "toy.pt") is ToyWeights.TOY  # so it is verified too
    copy = tmp_path_factory.mktemp("elsewhere") / "toy.pt"
    copy.write_bytes((home / "weights" / "toy.pt").read_bytes())
    assert ToyWeights.resolve(copy) == copy  # a copy elsewhere is a file, recognised by its contents


def test_a_cached_file_whose_bytes_were_altered_is_refused_naming_file_and_fix(home):
    path = home / "weights" / "toy.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="damaged: its sha256") as caught:
        ToyWeights.TOY.load_state_dict()
    assert str(path) in str(caught.value) and "`animescene download toy-source --force`" in str(caught.value)
    assert path.read_bytes() == bytes(data)  # refused, not repaired or deleted behind the user's back


def test_without_a_stamp_other_tensors_are_refused_by_fingerprint(home):
    (home / "fetched" / "toy-source.json").unlink()
    torch.save({**TOY_STATE, "scale": torch.tensor([1.5, -2.5])}, home / "weights" / "toy.pt")
    with pytest.raises(UsageError, match="does not hold the 'toy' weights"):
        ToyWeights.TOY.load_state_dict()


def test_a_truncated_cached_file_without_a_stamp_is_refused(home):
    (home / "fetched" / "toy-source.json").unlink()
    path = home / "weights" / "toy.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UsageError, match=r"damaged \(.*animescene download toy-source --force"):
        ToyWeights.TOY.load_state_dict()


def test_absent_named_weights_say_how_to_get_them(home):
    (home / "weights" / "toy.pt").unlink()
    with pytest.raises(MissingWeightsError, match=r"toy.pt: the 'toy' weights are not here; get them with "
                                                  r"`animescene download toy-source` \(licence: CC0\)"):
        ToyWeights.TOY.load_state_dict()
