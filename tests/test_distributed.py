"""Training under torchrun with two Gloo ranks on 127.0.0.1 equals a one-process run of the global batch,
and a killed two-rank run resumes to the same result as an uninterrupted one."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

pytestmark = pytest.mark.slow

# Runs under torchrun (or alone): trains, then every rank saves its own weights.
WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from animescene import distributed
    from animescene.train import TrainConfig, Trainer

    args = json.loads(sys.argv[1])
    distributed.setup()
    try:
        if args.get("resume"):
            trainer = Trainer.resume(args["resume"])
        else:
            trainer = Trainer(TrainConfig(**args["config"]))
        crash_at = args.get("crash_at")
        while trainer.step < trainer.config.total_steps:
            trainer.fit(max_steps=1)
            if crash_at is not None and trainer.step == crash_at and trainer.rank == 1:
                os._exit(17)  # a rank dies without any clean-up, as if killed
        state = {"generator": trainer.generator.state_dict(), "disc_surface": trainer.disc_surface.state_dict(),
                 "disc_texture": trainer.disc_texture.state_dict()}
        torch.save(state, os.path.join(args["dump"], f"rank{trainer.rank}.pt"))
    finally:
        distributed.cleanup()
    """
)


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory):
    from animescene.demo_set import make_demo_set

    out = tmp_path_factory.mktemp("demo")
    make_demo_set(out, short_side=64, use_shared=False)
    return out


def _config(demo_set, out_dir, batch_size, steps=3, **extra):
    return dict(
        photo_dirs=[str(demo_set / "photos")], cartoon_dirs=[str(demo_set / "cartoons")], size=32,
        batch_size=batch_size, pretrain_steps=1, steps=steps, num_workers=0, structure_workers=0, segments=20,
        vgg_weights=None, vgg_layer="conv2_2", channels=8, num_blocks=1, out_dir=str(out_dir), device="cpu",
        log_every=1, sample_every=0, checkpoint_every=extra.pop("checkpoint_every", 0), **extra,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp_path, args: dict, ranks: int) -> subprocess.CompletedProcess:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "ANIMESCENE_SMOKE": "1", "OMP_NUM_THREADS": "1"}
    if ranks == 1:
        command = [sys.executable, str(script), json.dumps(args)]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}", "--nnodes=1",
                   "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script), json.dumps(args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def _load(path):
    return torch.load(path, weights_only=True)


def _assert_close(a: dict, b: dict, atol: float):
    for part in a:
        for key, value in a[part].items():
            torch.testing.assert_close(value, b[part][key], atol=atol, rtol=0, msg=f"{part}.{key}")


def test_two_gloo_ranks_equal_one_process_on_the_global_batch(demo_set, tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    single = _run(tmp_path, {"config": _config(demo_set, tmp_path / "run1", batch_size=4), "dump": str(tmp_path / "one")}, 1)
    assert single.returncode == 0, single.stderr[-3000:]
    double = _run(tmp_path, {"config": _config(demo_set, tmp_path / "run2", batch_size=2), "dump": str(tmp_path / "two")}, 2)
    assert double.returncode == 0, double.stderr[-3000:]
    rank0, rank1 = _load(tmp_path / "two" / "rank0.pt"), _load(tmp_path / "two" / "rank1.pt")
    _assert_close(rank0, rank1, atol=0)  # DDP keeps the ranks identical
    _assert_close(rank0, _load(tmp_path / "one" / "rank0.pt"), atol=1e-5)
    # only rank 0 logs
    assert (tmp_path / "run2" / "metrics.csv").read_text().count("\n") == 5  # header + 4 steps


def test_killed_two_rank_run_resumes_to_the_uninterrupted_result(demo_set, tmp_path):
    for name in ("straight", "crashed", "resumed"):
        (tmp_path / name).mkdir()
    straight = _run(tmp_path, {"config": _config(demo_set, tmp_path / "a", 2, steps=4), "dump": str(tmp_path / "straight")}, 2)
    assert straight.returncode == 0, straight.stderr[-3000:]
    config = _config(demo_set, tmp_path / "b", 2, steps=4, checkpoint_every=3)
    crashed = _run(tmp_path, {"config": config, "dump": str(tmp_path / "crashed"), "crash_at": 4}, 2)
    assert crashed.returncode != 0, "the crash should fail the whole run (and not hang)"
    assert (tmp_path / "b" / "checkpoints" / "step_0000003" / "pending_rank1.pt").is_file()
    resumed = _run(tmp_path, {"resume": str(tmp_path / "b"), "dump": str(tmp_path / "resumed")}, 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_close(_load(tmp_path / "resumed" / "rank0.pt"), _load(tmp_path / "straight" / "rank0.pt"), atol=0)
    _assert_close(_load(tmp_path / "resumed" / "rank1.pt"), _load(tmp_path / "straight" / "rank1.pt"), atol=0)


def test_resume_onto_another_world_size_is_refused(demo_set, tmp_path, monkeypatch):
    from animescene import distributed
    from animescene.errors import UsageError
    from animescene.train import TrainConfig, Trainer

    trainer = Trainer(TrainConfig(**_config(demo_set, tmp_path, 2, steps=1, checkpoint_every=1)))
    trainer.fit()
    monkeypatch.setattr(distributed, "world_size", lambda: 2)  # this process pretends to be one of two
    with pytest.raises(UsageError, match="written by 1 process.*this run has 2.*same world size"):
        Trainer.resume(tmp_path)  # refused outright: no older checkpoint of the run fits either
