"""The animescene command: cartoonize, train, fine-tune, distil, serve, bench, export and evaluate.

Each sub-command is a thin layer over the library function a lesson teaches; ``--help`` on each says
what it takes. Exit status: 0 on success, 1 when some inputs failed (the rest are still done), 2 on a
usage error (one line naming the problem and the fix; ``--debug`` anywhere shows the traceback), 130
on Ctrl-C.

``animescene cartoonize INPUT... -o OUT`` prints ``wrote OUT/x.png`` for each output (stdout), then
``skipped PATH: why`` for each file a folder walk left out and ``FAILED PATH: why`` for each input that
could not be cartoonized (stderr), and a summary. Exit 0: every input written (skips allowed); 1: some
inputs failed, the others were written; 2: a usage error found before any work (an output that would
replace an input, two inputs sharing an output, ``-o`` an existing file or unwritable, a bad option or
weights file), or weights whose outputs are NaN. Inputs are never modified and every output is written
atomically; see :mod:`animescene.inference` for the full list of promises.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .errors import UsageError


# sub-commands with parsers of their own: everything after the name is theirs
DELEGATED = {
    "bench": "animescene.bench", "evaluate": "animescene.evaluate", "download": "animescene.downloads",
    "serve": "animescene.serve", "finetune": "animescene.studio:finetune_main",
    "distill": "animescene.studio:distill_main",
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    if debug:  # the tracebacks of errors a batch reports and goes past (animescene.inference logs them)
        logging.basicConfig(format="%(name)s: %(message)s")
        logging.getLogger("animescene").setLevel(logging.DEBUG)
    try:
        return _run(argv)
    except UsageError as err:
        if debug:
            raise
        print(f"animescene: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("animescene: interrupted", file=sys.stderr)
        return 130


def _run(argv: list[str]) -> int:
    if argv[:1] and argv[0] in DELEGATED:
        import importlib

        module, _, function = DELEGATED[argv[0]].partition(":")
        return getattr(importlib.import_module(module), function or "main")(argv[1:])
    parser = argparse.ArgumentParser(prog="animescene", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    from .backends import BACKENDS

    cartoonize = commands.add_parser("cartoonize", help="cartoonize images, folders and videos")
    cartoonize.add_argument("inputs", nargs="+", help="image files, video files or folders")
    cartoonize.add_argument("-o", "--out", required=True,
                            help="output folder: file names are kept, folders are mirrored; never an input folder")
    cartoonize.add_argument("--weights", default="official",
                            help="'official' (White-box, non-commercial licence) or a checkpoint/weights file")
    cartoonize.add_argument("--device", default="auto")
    cartoonize.add_argument("--max-short-side", type=int, default=720, help="0 keeps the full size")
    cartoonize.add_argument("--bf16", action="store_true", help="run the generator in bfloat16")
    cartoonize.add_argument("--backend", default="torch", choices=("auto", *BACKENDS),
                            help="what runs the generator: torch (exact), an int8 runtime (2-3x faster on a CPU, "
                                 "above 40 dB), or auto: the fastest installed")
    cartoonize.add_argument("--no-temporal", action="store_true",
                            help="videos: cartoonize each frame on its own (default: blend along the optical "
                                 "flow, which removes flicker)")
    cartoonize.add_argument("--crf", type=int, default=18,
                            help="videos: H.264 quality, 0 (lossless) to 51 (smallest); 23 is x264's default")
    cartoonize.set_defaults(run=_cartoonize)

    train = commands.add_parser("train", help="train a generator (see animescene.train.TrainConfig)")
    train.add_argument("--config", help="YAML or JSON file of TrainConfig fields")
    train.add_argument("--resume", help="a run folder or checkpoint folder to continue")
    for flag, kind in (("photos", str), ("cartoons", str), ("out", str), ("steps", int), ("pretrain-steps", int),
                       ("batch-size", int), ("size", int), ("lr", float), ("device", str), ("amp", str),
                       ("seed", int), ("structure-workers", int)):
        train.add_argument(f"--{flag}", type=kind, nargs="+" if flag in ("photos", "cartoons") else None)
    train.add_argument("--max-steps", type=int, help="stop after this many steps of this invocation")
    train.set_defaults(run=_train)

    commands.add_parser("bench", help="benchmarks: inference (720p, every backend), filters, train")

    export = commands.add_parser("export", help="export generator + guided filter to ONNX (dynamic H, W)")
    export.add_argument("output", help="the .onnx file to write")
    export.add_argument("--weights", default="official")
    export.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime check against PyTorch")
    export.add_argument("--int8", action="store_true",
                        help="the bare generator quantized to int8 (calibrated on the course photos); apply the "
                             "guided filter in float32 to its output")
    export.set_defaults(run=_export)

    commands.add_parser("evaluate", help="distances of cartoonized photos to cartoons and photos")
    commands.add_parser("download", help="fetch datasets and pretrained weights into the cache (--list)")
    commands.add_parser("serve", help="a web demo on 127.0.0.1: upload photos or a video, compare, download")
    commands.add_parser("finetune", help="a new style: fine-tune the official weights on your frames (CPU: < 1 h)")
    commands.add_parser("distill", help="a small, fast generator that copies a teacher (CPU: < 1 h)")

    args = parser.parse_args(argv)
    return args.run(args)


def _cartoonize(args) -> int:
    import torch

    from .inference import Cartoonizer

    cartoonizer = Cartoonizer(args.weights, device=args.device, max_short_side=args.max_short_side or None,
                              dtype=torch.bfloat16 if args.bf16 else torch.float32, backend=args.backend)
    report = cartoonizer.cartoonize_paths(args.inputs, args.out, temporal=not args.no_temporal, crf=args.crf)
    for path in report.written:
        print(f"wrote {path}")
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    for path, reason in report.failed:
        print(f"FAILED {path}: {reason}", file=sys.stderr)
    print(f"{len(report.written)} written, {len(report.failed)} failed, {len(report.skipped)} skipped",
          file=sys.stderr)
    return 0 if report.ok else 1


def _train(args) -> int:
    from . import distributed
    from .train import TrainConfig, Trainer, TrainingDiverged

    if args.resume and args.config:
        raise UsageError("--resume continues a run with the config saved in its checkpoint, so --config does not "
                         "apply; drop --config, or start a new run with --config and another --out")
    overrides = {
        "photo_dirs": args.photos, "cartoon_dirs": args.cartoons, "out_dir": args.out, "steps": args.steps,
        "pretrain_steps": args.pretrain_steps, "batch_size": args.batch_size, "size": args.size, "lr": args.lr,
        "device": args.device, "amp": args.amp, "seed": args.seed, "structure_workers": args.structure_workers,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    distributed.setup()
    try:
        if args.resume:
            trainer = Trainer.resume(args.resume, **overrides)
        else:
            config = TrainConfig.from_file(args.config) if args.config else TrainConfig()
            trainer = Trainer(TrainConfig.from_dict({**config.to_dict(), **overrides}))
        trainer.fit(args.max_steps)
    except TrainingDiverged as err:  # not a usage mistake, but its message already says what to do
        print(f"animescene train: {err}", file=sys.stderr)
        return 1
    finally:
        distributed.cleanup()
    if trainer.is_main:
        print(f"trained to step {trainer.step}; checkpoints in {Path(trainer.config.out_dir) / 'checkpoints'}")
    return 0


def _export(args) -> int:
    from .export import export_onnx, verify_onnx
    from .models import UNetGenerator

    generator = UNetGenerator.from_weights(args.weights)
    if args.int8:
        return _export_int8(generator, args)
    path = export_onnx(generator, args.output)
    print(f"wrote {path}")
    if not args.no_verify:
        print(f"ONNX Runtime vs PyTorch: max |difference| = {verify_onnx(path, generator):.2e}")
    return 0


def _export_int8(generator, args) -> int:
    import onnxruntime as ort
    import torch

    from .data import example_photos
    from .export import export_int8_onnx
    from .images import psnr

    path = export_int8_onnx(generator, args.output)
    print(f"wrote {path} (int8 generator without the guided filter: apply it in float32 to the output)")
    if not args.no_verify:
        photo, _ = example_photos(1, 360)  # left out of the calibration
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(["output"], {"input": photo.numpy()})[0])
        with torch.no_grad():
            expected = generator.eval().cpu().float()(photo)
        print(f"int8 vs float32 PyTorch on a photo outside the calibration: PSNR {psnr(got, expected):.1f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
