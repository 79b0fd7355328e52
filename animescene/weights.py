"""Pretrained weights as values that carry their conventions (torchvision's ``Weights`` pattern).

Each model family has an enum of the pretrained weights it knows (``GeneratorWeights`` in
:mod:`animescene.models`, ``VGGWeights`` in :mod:`animescene.vgg`). A member is also its short name, so
``GeneratorWeights.WHITEBOX_OFFICIAL == "official"``, and it holds what using the file right needs:

- ``source``: the download-registry entry that makes the file (``animescene download NAME``);
- ``fingerprint``: :func:`state_fingerprint` of the state dict, which recognises the weights in any
  file that holds them;
- ``licence``, ``preprocessing`` (one line for people) and ``config`` (what the model needs: the
  generator's ``tf_mode`` and output bound, the VGG's input convention).

:meth:`WeightsEnum.resolve` is the one place where a name becomes a member and anything else a path.
Cached files are checked before use: their sha256 against the stamp the fetch wrote
(``cache_dir()/fetched/NAME.json``), then their tensors against the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path

import torch

from .errors import UsageError
from .runtime import cache_dir


class MissingWeightsError(UsageError, FileNotFoundError):
    """A weights file is not where it should be; the message says how to get it.

    Both a :class:`~animescene.errors.UsageError` (the command line prints one line) and a
    ``FileNotFoundError`` (code that falls back when weights are absent keeps working).
    """


@dataclass(frozen=True)
class Weights:
    """What one pretrained file is and how to use it.

    Attributes:
        source: the download-registry entry that makes the file, or None where another library
            provides the weights (torchvision's ImageNet VGGs).
        filename: the file's name in :func:`~animescene.downloads.weights_dir`, when ``source`` is set.
        fingerprint: :func:`state_fingerprint` of the file's state dict, when ``source`` is set.
        licence: the licence of the weights, with what it asks of users.
        preprocessing: what the model expects and what to do with its output, in one line.
        config: what the model needs to use the weights right (constructor arguments, input convention).
    """

    source: str | None
    filename: str | None
    fingerprint: str | None
    licence: str
    preprocessing: str
    config: dict = field(default_factory=dict)


class WeightsEnum(str, Enum):
    """Base of the per-family weights enums: a member is its short name and carries a :class:`Weights`.

    Declare members as ``NAME = "short name", Weights(...)``; the :class:`Weights` fields read as the
    member's own attributes (``GeneratorWeights.WHITEBOX_OFFICIAL.licence``).
    """

    def __new__(cls, short_name: str, weights: Weights):
        member = str.__new__(cls, short_name)
        member._value_ = short_name
        member.weights = weights
        return member

    def __getattr__(self, name: str):
        # only reached for names the member lacks: the Weights fields
        weights = self.__dict__.get("weights")
        if weights is not None and name in {f.name for f in fields(Weights)}:
            return getattr(weights, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __str__(self) -> str:
        return self.value

    @classmethod
    def resolve(cls, spec) -> WeightsEnum | Path:
        """A member for a member, its name (``"official"``, ``"WHITEBOX_OFFICIAL"``) or its cached file's path;
        else an existing file.

        Raises:
            MissingWeightsError: ``spec`` is neither a name nor an existing file; the message lists the
                names and how to download each.
        """
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, str):
            for member in cls:
                if spec.strip().lower() in (member.value.lower(), member.name.lower()):
                    return member
        if isinstance(spec, (str, os.PathLike)) and Path(spec).expanduser().is_file():
            path = Path(spec).expanduser()
            # the cached file named by its path is the named weights, and is verified the same way
            return next((m for m in cls if m.filename and m.cache_path().resolve() == path.resolve()), path)
        names = ", ".join(f"{m.value!r}: {m.how_to_get()}" for m in cls)
        raise MissingWeightsError(
            f"weights {str(spec)!r} are neither a known name ({names}) nor an existing file; check the path"
        )

    def how_to_get(self) -> str:
        """How a user gets these weights, e.g. ```animescene download whitebox-official```."""
        return f"`animescene download {self.source}`" if self.source else "from torchvision"

    def cache_path(self) -> Path:
        """Where ``animescene download`` puts the file (for weights with a ``source``), present or not."""
        from .downloads import weights_dir

        return weights_dir() / self.filename

    def path(self) -> Path:
        """The cached file (for weights with a ``source``); :class:`MissingWeightsError` when absent."""
        path = self.cache_path()
        if not path.is_file():
            raise MissingWeightsError(
                f"{path}: the {self.value!r} weights are not here; get them with {self.how_to_get()} "
                f"(licence: {self.licence})"
            )
        return path

    def load_state_dict(self) -> dict[str, torch.Tensor]:
        """The cached file's state dict, verified: sha256 against the fetch stamp, then the fingerprint.

        Raises:
            MissingWeightsError: the file is absent.
            UsageError: the file was altered since it was fetched, or holds other weights; the message
                names the file and ``animescene download NAME --force``.
        """
        from .downloads import file_sha256

        path = self.path()
        refetch = f"fetch it again with `animescene download {self.source} --force`"
        recorded = _stamped_sha256(self.source, path)
        if recorded is not None:
            actual = file_sha256(path)
            if actual != recorded:
                raise UsageError(f"{path} is damaged: its sha256 {actual} is not the {recorded} recorded when "
                                 f"it was fetched; {refetch}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # unpickling raises many types; all mean the file is not what we wrote
            raise UsageError(f"{path} is damaged ({quote_error(err)}); {refetch}") from err
        if not is_state_dict(state) or state_fingerprint(state) != self.fingerprint:
            raise UsageError(f"{path} does not hold the {self.value!r} weights (its tensors' fingerprint differs "
                             f"from the registry's); {refetch}")
        return state

    @classmethod
    def recognise(cls, state: dict) -> WeightsEnum | None:
        """The member whose fingerprint ``state`` has, or None."""
        fingerprint = state_fingerprint(state)
        return next((m for m in cls if m.fingerprint == fingerprint), None)


def state_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the sorted names, dtypes, shapes and bytes of a state dict's tensors.

    Independent of how the tensors were saved (``torch.save``'s container, strides, device): the same
    weights give the same fingerprint from a converted ``.pt``, a copy of it or the ``.tflite``.
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def quote_error(err: Exception, limit: int = 200) -> str:
    """``"TypeName: message"`` on one line of at most ``limit`` characters, to quote inside a UsageError."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_state_dict(payload) -> bool:
    """True for a non-empty ``{name: tensor}`` dict, the only thing a fingerprint can recognise."""
    return isinstance(payload, dict) and bool(payload) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items())


def _stamped_sha256(source: str, path: Path) -> str | None:
    """The sha256 the fetch of ``source`` recorded for ``path``, or None without a readable stamp."""
    stamp = cache_dir() / "fetched" / f"{source}.json"
    try:
        outputs = json.loads(stamp.read_text(encoding="utf-8"))["outputs"]
    except (OSError, ValueError, KeyError, TypeError):  # never fetched here (e.g. a file copied in)
        return None
    root = cache_dir().resolve()
    return next((sha for name, sha in outputs.items() if (root / name).resolve() == path.resolve()), None)
