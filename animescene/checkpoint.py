"""Checkpoint folders that are written whole or not at all, and a resume that skips damaged ones.

:func:`capture` gathers a trainer's state and :func:`restore` puts it back. A run folder keeps its
checkpoints in ``checkpoints/step_NNNNNNN/``:

- ``models.pt``: the config, the generator (all that inference needs) and both discriminators;
- ``optimizers.pt``: the Adam states and the fp16 gradient scaler;
- ``state.pt``: the step, the world size and every random state;
- ``pending_rank{r}.pt``: each process's pending structure target (each rank's batch differs);
- ``config.json``: the config, for people;
- ``manifest.json``: the sha256 of each of the files above, written last. A folder is *complete* when
  every file matches it: a truncated or zero-byte file (a full disk, a copy cut short, a crash of the
  file system) is found before ``torch.load`` sees it.

:func:`write` fills a hidden ``.partial_step_NNNNNNN`` folder, flushes every file to disk and renames
the folder into place, so a crash at any moment leaves either the old set or the new one. It refuses
nothing itself; the trainer never hands it non-finite weights. :func:`resume_state` reads the newest
usable checkpoint of a run: damaged, incomplete or non-finite ones are skipped with a
:class:`CheckpointSkippedWarning` that names the file and the reason, and when none is usable a
:class:`~animescene.errors.UsageError` lists them all. Damaged folders are never deleted: a person may
want to look at them.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings
import zipfile
from pathlib import Path

import torch

from . import distributed
from .errors import UsageError
from .transfers import file_sha256

MODEL_KEYS = ("config", "generator_config", "generator", "disc_surface", "disc_texture")  # and the step
OPTIMIZER_KEYS = ("g_opt", "d_opt", "scaler")
MANIFEST = "manifest.json"
PREFIX = "step_"


class CheckpointSkippedWarning(UserWarning):
    """A damaged, incomplete or diverged checkpoint was passed over on resume."""


class DamagedCheckpoint(UsageError):
    """A checkpoint folder that cannot be resumed from; the message names the file and the reason."""


def capture(trainer) -> dict:
    """A trainer's whole state, what :func:`write` saves: models, optimizers, step, every random state
    and the pending structure target (waited for: every rank stays in step)."""
    return {
        "config": trainer.config.to_dict(),
        "step": trainer.step,
        "generator_config": trainer.generator.config(),
        "generator": trainer.generator.state_dict(),
        "disc_surface": trainer.disc_surface.state_dict(),
        "disc_texture": trainer.disc_texture.state_dict(),
        "g_opt": trainer.g_opt.state_dict(),
        "d_opt": trainer.d_opt.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "rng_texture": trainer.texture_rng.get_state(),
        "world_size": trainer.world_size,
        "pending_structure": trainer.structure.pending_tensor(),
    }


def restore(trainer, state: dict) -> None:
    """Put a :func:`capture` (or :func:`read`) state back into ``trainer``; its data stream restarts at
    the state's step. The learning rate and Adam betas come from the trainer's config, so that a resumed
    run may change them (they equal the saved ones otherwise)."""
    trainer.step = int(state["step"])
    trainer.generator.load_state_dict(state["generator"])
    trainer.disc_surface.load_state_dict(state["disc_surface"])
    trainer.disc_texture.load_state_dict(state["disc_texture"])
    for optimizer, key in ((trainer.g_opt, "g_opt"), (trainer.d_opt, "d_opt")):
        optimizer.load_state_dict(state[key])
        for group in optimizer.param_groups:
            group["lr"], group["betas"] = trainer.config.lr, tuple(trainer.config.adam_betas)
    trainer.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    trainer.texture_rng.set_state(state["rng_texture"])
    trainer.structure.pending = state["pending_structure"]
    trainer.batches = None


def write(root, state: dict, *, rank: int = 0, keep: int = 3) -> Path | None:
    """Write ``state`` (a :meth:`Trainer.state_dict`) as ``root/step_NNNNNNN`` atomically.

    Every rank calls this (it holds barriers): each writes its own ``pending_rank{r}.pt``, rank 0 the
    rest, the manifest and the rename. Afterwards rank 0 deletes all but the newest ``keep`` checkpoints
    up to this step (never newer ones: after a fallback they are the damaged ones a person may inspect,
    and the run overwrites them when it gets there). Returns the folder on rank 0, None on the others.
    """
    root = Path(root)
    state = dict(state)
    step = int(state["step"])
    final, partial = root / f"{PREFIX}{step:07d}", root / f".partial_{PREFIX}{step:07d}"
    if rank == 0:
        shutil.rmtree(partial, ignore_errors=True)  # left by a write that was killed
        partial.mkdir(parents=True)
    distributed.barrier()
    _save({"pending_structure": state.pop("pending_structure")}, partial / f"pending_rank{rank}.pt")
    distributed.barrier()
    if rank == 0:
        _write_text(partial / "config.json", json.dumps(state["config"], indent=2))
        # a run without discriminators (animescene.distill) saves what it has
        _save({k: state.pop(k) for k in MODEL_KEYS if k in state} | {"step": step}, partial / "models.pt")
        _save({k: state.pop(k) for k in OPTIMIZER_KEYS if k in state}, partial / "optimizers.pt")
        _save(state, partial / "state.pt")
        files = {p.name: file_sha256(p) for p in sorted(partial.iterdir())}
        manifest = {"step": step, "world_size": state["world_size"], "sha256": files}
        _write_text(partial / MANIFEST, json.dumps(manifest, indent=2))
        _fsync_dir(partial)
        if final.exists():  # an older write of this step (the run went back to an earlier checkpoint)
            shutil.rmtree(final)
        os.replace(partial, final)
        _fsync_dir(root)
        older = [p for p in folders(root.parent) if _step(p) <= step]
        for old in older[keep:]:
            shutil.rmtree(old)
    distributed.barrier()
    return final if rank == 0 else None


def folders(run_dir) -> list[Path]:
    """The checkpoint folders of a run, newest first (complete or not)."""
    root = Path(run_dir) / "checkpoints"
    found = [p for p in root.glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=_step, reverse=True)


def read(folder, *, rank: int = 0, world_size: int = 1) -> dict:
    """The whole state of one checkpoint folder for process ``rank``, checked.

    Raises :class:`DamagedCheckpoint` for a missing, truncated or changed file, or non-finite weights,
    and a plain :class:`~animescene.errors.UsageError` when the folder was written by another number of
    processes (no other checkpoint of the run would fit either).
    """
    folder = Path(folder)
    _verify(folder)
    state = {}
    for name in ("models.pt", "optimizers.pt", "state.pt"):
        state.update(_load(folder / name))
    if state.get("world_size") != world_size:
        raise UsageError(
            f"{folder} was written by {state.get('world_size')} process(es) but this run has {world_size}: "
            "resume onto the same world size (the data order and batch split depend on it)"
        )
    state.update(_load(folder / f"pending_rank{rank}.pt"))
    if not all_finite([state[k] for k in MODEL_KEYS + OPTIMIZER_KEYS if k in state]):
        raise DamagedCheckpoint(f"{folder / 'models.pt'}: holds non-finite weights or optimizer state (the run "
                                "had diverged); resume from an earlier checkpoint")
    return state


def resume_state(path, *, rank: int = 0, world_size: int = 1) -> tuple[Path, dict]:
    """The folder and state to resume from: ``path`` itself if it is a checkpoint folder, else the newest
    usable checkpoint under the run folder ``path``, skipping damaged ones with a warning (on rank 0)."""
    path = Path(path)
    if _is_checkpoint(path):
        try:
            return path, read(path, rank=rank, world_size=world_size)
        except DamagedCheckpoint as err:
            usable = newest_usable(path.parent.parent, world_size=world_size)
            hint = f"resume from {usable} instead" if usable else "no other checkpoint of this run is usable"
            raise DamagedCheckpoint(f"cannot resume: {err}; {hint}") from None
    candidates = folders(path)
    if not candidates:
        raise UsageError(f"{path}: no checkpoint here (a step_*/ folder, or a run folder with checkpoints/); "
                         "check the path")
    skipped = []
    for folder in candidates:
        try:
            state = read(folder, rank=rank, world_size=world_size)
        except DamagedCheckpoint as err:
            skipped.append(str(err))
            continue
        if skipped and rank == 0:
            warnings.warn(f"resuming from {folder}, the newest usable checkpoint; skipped: {'; '.join(skipped)}",
                          CheckpointSkippedWarning, stacklevel=2)
        return folder, state
    raise UsageError(f"no usable checkpoint in {path / 'checkpoints'}: {'; '.join(skipped)}; "
                     "start a new run (another --out) or restore the files")


def run_folder(folder) -> Path | None:
    """The run folder that a checkpoint folder belongs to (``RUN/checkpoints/step_NNNNNNN``), or None."""
    folder = Path(folder)
    return folder.parent.parent if folder.parent.name == "checkpoints" else None


def newest_usable(run_dir, *, world_size: int = 1) -> Path | None:
    """The newest checkpoint of a run that is complete and holds finite weights, or None."""
    for folder in folders(run_dir):
        try:
            read(folder, world_size=world_size)
        except UsageError:
            continue
        return folder
    return None


def all_finite(tree) -> bool:
    """True when every floating-point tensor in a nest of dicts, lists and tuples is finite."""
    if isinstance(tree, torch.Tensor):
        return not tree.is_floating_point() or bool(torch.isfinite(tree).all())
    if isinstance(tree, dict):
        return all(all_finite(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return all(all_finite(v) for v in tree)
    return True


def _verify(folder: Path) -> None:
    """Every file of the manifest is there with its recorded sha256 (a folder without one, written
    before manifests existed, is checked by loading it)."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        for name in ("models.pt", "optimizers.pt", "state.pt"):
            if not (folder / name).is_file():
                raise DamagedCheckpoint(f"{folder / name}: missing (an incomplete checkpoint)")
        return
    try:
        recorded = json.loads(manifest_path.read_text())["sha256"]
    except (ValueError, KeyError, TypeError) as err:
        raise DamagedCheckpoint(f"{manifest_path}: unreadable ({err})") from None
    for name, digest in recorded.items():
        file = folder / name
        if not file.is_file():
            raise DamagedCheckpoint(f"{file}: missing (an incomplete checkpoint)")
        if file_sha256(file) != digest:
            raise DamagedCheckpoint(f"{file}: {file.stat().st_size} bytes that do not match the sha256 in "
                                    f"{MANIFEST} (truncated or overwritten)")


def _load(file: Path) -> dict:
    if not file.is_file():
        raise DamagedCheckpoint(f"{file}: missing (an incomplete checkpoint)")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        raise DamagedCheckpoint(f"{file}: cannot be read ({type(err).__name__}: {err})".split("\n")[0]) from None


def _is_checkpoint(path: Path) -> bool:
    return path.name.startswith(PREFIX) or (path / MANIFEST).is_file() or (path / "models.pt").is_file()


def _step(folder: Path) -> int:
    return int(folder.name[len(PREFIX):])


def _save(obj, file: Path) -> None:
    with open(file, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename makes it visible: no zero-byte files after a crash


def _write_text(file: Path, text: str) -> None:
    with open(file, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

