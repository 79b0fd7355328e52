"""Bounded (tanh) or unbounded generator output? The measurement behind ``UNetGenerator(bounded=True)``.

White-box's generator ends in a plain convolution; its output is clipped to [-1, 1] afterwards. Values
far outside the range saturate to pure colours, a known source of colour speckle. This script trains
the same small run twice (same seed, data and steps), once with each output, and measures on held-out
photos:

- **clipped**: the share of output values outside [-1, 1] before clipping (what clipping destroys);
- **chroma noise**: mean |Laplacian| of the output's chroma (Cb, Cr), relative to the photo's own
  (speckle raises it; a flat cartoon lowers it);
- **content**: mean |output - photo| (how much of the photo survives).

It also reports the official weights' clipped share, for scale. Results go to stdout; the numbers are
recorded in docs/benchmarks.md. Takes about 25 minutes on a 2-core CPU.

    python tools/bounded_output_experiment.py [--steps 200] [--size 96] [--content-beta 200]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from animescene.data import example_photos
from animescene.filters import post_process
from animescene.train import TrainConfig, Trainer


def chroma_noise(x: torch.Tensor) -> torch.Tensor:
    """Mean |Laplacian| of the Cb and Cr channels (BT.601) of ``(B, 3, H, W)`` images in [-1, 1]."""
    r, g, b = x.unbind(1)
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    chroma = torch.stack([cb, cr], 1).flatten(0, 1)[:, None]
    return F.conv2d(chroma, laplacian).abs().mean()


def measure(generator: torch.nn.Module, photos: torch.Tensor) -> dict:
    generator.eval()
    with torch.no_grad():
        raw = generator(photos)
        clipped = float((raw.abs() > 1).float().mean())  # 0 by construction with tanh
        out = post_process(photos, raw.clamp(-1, 1))
    return {
        "clipped %": 100 * clipped,
        "chroma noise / photo's": float(chroma_noise(out) / chroma_noise(photos)),
        "mean |out - photo|": float((out - photos).abs().mean()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--pretrain-steps", type=int, default=100)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--content-beta", type=float, default=200.0,
                        help="beta5 (White-box: 200; lesson 06 uses 2e4 on its dozen cartoons)")
    args = parser.parse_args(argv)

    from animescene.demo_set import make_demo_set

    photos, _ = example_photos(4, 128)
    rows = {}
    try:
        from animescene.models import load_official_whitebox

        rows["official White-box weights"] = measure(load_official_whitebox(), photos)
    except FileNotFoundError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        make_demo_set(demo, short_side=max(160, args.size))
        for bounded in (False, True):
            config = TrainConfig(
                photo_dirs=[str(demo / "photos")], cartoon_dirs=[str(demo / "cartoons")], size=args.size,
                batch_size=args.batch, pretrain_steps=args.pretrain_steps, steps=args.steps, bounded=bounded,
                seed=args.seed, betas={"content": args.content_beta}, structure_workers=1, num_workers=1, out_dir=str(Path(tmp) / f"run_{bounded}"),
                log_every=0, sample_every=0, checkpoint_every=0, device="cpu",
            )
            trainer = Trainer(config)
            trainer.fit()
            rows[f"trained, bounded={bounded}"] = measure(trainer.generator, photos)
    columns = ["clipped %", "chroma noise / photo's", "mean |out - photo|"]
    print(f"{'model':32s}" + "".join(f"{c:>26s}" for c in columns))
    for name, row in rows.items():
        print(f"{name:32s}" + "".join(f"{row[c]:26.4f}" for c in columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
