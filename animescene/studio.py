"""``animescene finetune`` and ``animescene distill``: make a cartoonizer of your own, and measure it.

Both commands train on the machine they run on (a laptop CPU is enough: see docs/benchmarks.md for the
times), resume exactly with ``--resume RUN``, show a progress bar, write sample grids to
``RUN/samples/``, and end with a report (``RUN/report.json`` and ``RUN/comparison.png``) that compares the
new generator with the one it came from on photos and film frames it never saw:

- **finetune**: style distance to held-out frames (paired per photo, with a bootstrap CI) and content
  distance to the photo, official vs fine-tuned (:mod:`animescene.distances`);
- **distill**: multiply-adds and parameters, 720p milliseconds in the same run, PSNR of the student
  against its teacher, and the same two distances for teacher and student.

The weights are saved as ``RUN/generator.pt`` and, with ``--name NAME``, under that name for
``--weights NAME`` in ``cartoonize``, ``export``, ``evaluate``, ``serve`` and ``Cartoonizer``. They derive
from the official weights and keep their licence (CC BY-NC-SA 4.0, non-commercial): they are made on
your machine and never shipped with the course.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

from .bench import time_ms
from .data import centre_square, resize_short_side, split_by_film_and_time
from .distances import compare_generators, paired_bootstrap
from .distill import AMP_CHOICES, DistillConfig, Distiller
from .errors import UsageError
from .features import HEDVGGFeatures
from .finetune import finetune_config, save_made_generator
from .images import atomic_output, list_images, psnr, read_image, write_image
from .models import UNetGenerator, conv_macs
from .runtime import smoke_mode
from .train import Trainer, TrainingDiverged
from .weights import MissingWeightsError

EVAL_SIZE = 256  # side of the squares the distances are measured on


def load_squares(files, size: int = EVAL_SIZE) -> torch.Tensor:
    """``(N, 3, size, size)``: each image's short side resized to ``size``, then its centre square."""
    return torch.cat([centre_square(resize_short_side(read_image(f), size).clamp(-1, 1), size) for f in files])


def held_out_frames(cartoon_dirs, hold_out: float) -> list[Path]:
    """The frames a run with ``hold_out`` never trained on (:func:`~animescene.data.split_by_film_and_time`)."""
    files = [f for folder in cartoon_dirs for f in list_images(Path(folder))]
    return split_by_film_and_time(files, hold_out)[1]


def report_features() -> HEDVGGFeatures:
    """The HED-VGG16 features of the reports; a random VGG only in smoke mode (tests), named as such."""
    try:
        return HEDVGGFeatures("hed")
    except MissingWeightsError:
        if smoke_mode():
            return HEDVGGFeatures(None)
        raise


def remembered(run_dir: Path, **given) -> dict:
    """The options of a run's first invocation (``--name``, ``--eval-photos``...) kept in ``RUN/options.json``,
    so that ``--resume RUN`` ends the run as it was started; options given now win."""
    path = Path(run_dir) / "options.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    options = {**saved, **{k: v for k, v in given.items() if v is not None}}
    if options != saved:
        write_json(path, options)
    return options


def style_report(generators: dict, photos: torch.Tensor, frames: torch.Tensor, baseline: str, candidate: str,
                 extractor=None) -> dict:
    """Distances of every generator, and the paired style gain and content ratio of ``candidate`` over
    ``baseline`` (positive gain: closer to the frames)."""
    extractor = extractor or report_features()
    rows = compare_generators(generators, photos, frames, extractor)
    gain, low, high = paired_bootstrap(rows[baseline]["style"], rows[candidate]["style"])
    content_ratio = float(rows[candidate]["content"].mean() / max(rows[baseline]["content"].mean(), 1e-12))
    return {
        "features": extractor.name, "photos": len(photos), "frames": len(frames),
        "style": {name: float(r["style"].mean()) for name, r in rows.items()},
        "content": {name: float(r["content"].mean()) for name, r in rows.items()},
        "style_gain": {"mean": gain, "ci95": [low, high], "of": candidate, "over": baseline},
        "content_ratio": content_ratio,
        "cartoons": {name: r["cartoons"] for name, r in rows.items()},
    }


def print_style_report(report: dict) -> None:
    print(f"\non {report['photos']} photos and {report['frames']} frames of the style ({report['features']} features):")
    print(f"{'':12} {'style distance':>15} {'content distance':>17}")
    for name in report["style"]:
        print(f"{name:12} {report['style'][name]:15.4f} {report['content'][name]:17.4f}")
    g = report["style_gain"]
    print(f"style gain of {g['of']} over {g['over']}: {g['mean']:+.4f}, 95% CI [{g['ci95'][0]:+.4f}, "
          f"{g['ci95'][1]:+.4f}]; content distance x{report['content_ratio']:.3f}")


def write_json(path: Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))


def _write_report(run_dir: Path, report: dict, names: list[str]) -> None:
    from torchvision.utils import make_grid

    cartoons = report.pop("cartoons")
    count = min(6, len(cartoons["photo"]))
    grid = make_grid(torch.cat([cartoons[n][:count] for n in names]), nrow=count, padding=2, pad_value=1.0)
    write_image(run_dir / "comparison.png", grid)
    write_json(run_dir / "report.json", report)
    print(f"wrote {run_dir / 'report.json'} and {run_dir / 'comparison.png'} (rows: {', '.join(names)})")


def _run_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """The options both commands share: the run folder, the name, the report's photos, resuming, device."""
    parser.add_argument("--eval-photos", help="photos for the report, never trained on (e.g. the Kodak set)")
    parser.add_argument("--out", default=out, help="the run folder")
    parser.add_argument("--name", help="save the result as --weights NAME")
    parser.add_argument("--resume", help="a run or checkpoint folder to continue")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps of this invocation")
    parser.add_argument("--device", default=None)


def _saved_when_done(generator: UNetGenerator, step: int, total: int, run_dir: Path, options: dict,
                     source: str) -> bool:
    """Save a finished run's generator (in eval mode) and say where; say how to go on when it is not finished."""
    if step < total:
        print(f"stopped at step {step} of {total}; continue with --resume {run_dir}")
        return False
    # saved in the plain layout whatever the run trained in (the distiller trains channels-last with bf16)
    generator = generator.eval().to(memory_format=torch.contiguous_format)
    files = save_made_generator(generator, run_dir, options.get("name"), source=source)
    print("saved " + " and ".join(map(str, files)) + " (CC BY-NC-SA 4.0 like the official weights: non-commercial)")
    return True


# ------------------------------------------------------------------------------------------- finetune
def finetune_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="animescene finetune", description=(
        "Fine-tune a generator (the official one by default) towards your own cartoon frames; a laptop CPU "
        "takes about 20 minutes. The weights keep the official licence (CC BY-NC-SA 4.0, non-commercial)."))
    parser.add_argument("--cartoons", nargs="+", help="folders of your cartoon frames (FILM_NNNNN.jpg)")
    parser.add_argument("--photos", nargs="+", help="folders of photos to train on")
    parser.add_argument("--from", dest="start", default="official", help="the weights to start from")
    parser.add_argument("--steps", type=int)
    _run_arguments(parser, "runs/finetune")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("steps", args.steps), ("device", args.device)) if v is not None}
    try:
        if args.resume:
            trainer = Trainer.resume(args.resume, **overrides)
        else:
            if not args.cartoons or not args.photos:
                raise UsageError("finetune needs --cartoons DIR... and --photos DIR... (or --resume RUN)")
            trainer = Trainer(finetune_config(args.cartoons, args.photos, args.out, args.start, **overrides))
        trainer.fit(args.max_steps)
    except TrainingDiverged as err:
        print(f"animescene finetune: {err}", file=sys.stderr)
        return 1
    config, run_dir = trainer.config, Path(trainer.config.out_dir)
    options = remembered(run_dir, name=args.name, eval_photos=args.eval_photos)
    if not _saved_when_done(trainer.generator, trainer.step, config.total_steps, run_dir, options,
                            f"animescene finetune of {config.init_weights} on {config.cartoon_dirs}"):
        return 0
    if options.get("eval_photos"):
        photos = load_squares(list_images(Path(options["eval_photos"])))
        frames = load_squares(held_out_frames(config.cartoon_dirs, config.hold_out))
        generators = {"start": UNetGenerator.from_weights(config.init_weights), "finetuned": trainer.generator}
        report = style_report(generators, photos, frames, "start", "finetuned")
        print_style_report(report)
        _write_report(run_dir, report, ["photo", "start", "finetuned"])
    return 0


# -------------------------------------------------------------------------------------------- distill
def student_report(teacher: UNetGenerator, student: UNetGenerator, photos: torch.Tensor,
                   size=(720, 1280), repeats: int = 3) -> dict:
    """Multiply-adds, parameters and eager float32 milliseconds of both on one ``size`` frame, timed one after
    the other on the CPU (where a small generator is deployed), and the PSNR of the student's cartoons
    against the teacher's on ``photos``. The models themselves are left where they are."""
    from .distances import cartoonize_batch

    frame = torch.rand(1, 3, *size) * 2 - 1
    report: dict = {"size": list(size)}
    for name, model in (("teacher", teacher), ("student", student)):
        model = copy.deepcopy(model).cpu().eval()
        with torch.no_grad():
            ms = time_ms(lambda m=model: m(frame), repeats, warmup=1)
        report[name] = {"macs": conv_macs(model, *size), "parameters": sum(p.numel() for p in model.parameters()),
                        "cpu_ms": ms}
    teacher_cartoons, student_cartoons = cartoonize_batch(teacher, photos), cartoonize_batch(student, photos)
    per_photo = [psnr(s, t) for s, t in zip(student_cartoons, teacher_cartoons)]
    report["psnr_db"] = {"mean": float(np.mean(per_photo)), "min": float(np.min(per_photo))}
    report["macs_ratio"] = report["student"]["macs"] / report["teacher"]["macs"]
    report["speedup"] = report["teacher"]["cpu_ms"] / report["student"]["cpu_ms"]
    return report


def distill_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="animescene distill", description=(
        "Train a small student generator (a quarter of the multiply-adds) to copy a teacher's cartoons. "
        "The weights keep the official licence (CC BY-NC-SA 4.0, non-commercial)."))
    parser.add_argument("--photos", nargs="+", help="folders of photos to distil on")
    parser.add_argument("--teacher", default="official", help="a generator name or file (e.g. a fine-tuned one)")
    parser.add_argument("--style-frames", nargs="+", help="cartoon frames for the style distances of the report")
    parser.add_argument("--hold-out", type=float,
                        help="with --style-frames: the share of each film's last frames to measure on (0.2)")
    for flag in ("steps", "channels", "num-blocks", "batch-size", "size"):
        parser.add_argument(f"--{flag}", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--amp", choices=AMP_CHOICES,
                        help="bf16 autocast; auto: where the CPU has AMX or AVX-512 BF16, or on a GPU")
    _run_arguments(parser, "runs/distill")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("steps", args.steps), ("channels", args.channels), ("num_blocks", args.num_blocks),
                                   ("batch_size", args.batch_size), ("size", args.size), ("lr", args.lr),
                                   ("amp", args.amp), ("device", args.device)) if v is not None}
    if args.resume:
        distiller = Distiller.resume(args.resume, **overrides)
    else:
        if not args.photos:
            raise UsageError("distill needs --photos DIR... (or --resume RUN)")
        distiller = Distiller(DistillConfig(photo_dirs=args.photos, teacher=args.teacher, out_dir=args.out,
                                            **overrides))
    distiller.fit(args.max_steps)
    config, run_dir = distiller.config, Path(distiller.config.out_dir)
    options = remembered(run_dir, name=args.name, eval_photos=args.eval_photos, style_frames=args.style_frames,
                         hold_out=args.hold_out)
    if not _saved_when_done(distiller.generator, distiller.step, config.steps, run_dir, options,
                            f"animescene distill of {config.teacher}"):
        return 0
    student = distiller.generator
    if options.get("eval_photos"):
        photos = load_squares(list_images(Path(options["eval_photos"])))
        report = student_report(distiller.teacher, student, photos)
        print(json.dumps(report, indent=2))
        if options.get("style_frames"):
            frames = load_squares(held_out_frames(options["style_frames"], options.get("hold_out", 0.2)))
            style = style_report({"teacher": distiller.teacher, "student": student}, photos, frames, "teacher",
                                 "student")
            print_style_report(style)
            report["style"] = style
            _write_report(run_dir, style, ["photo", "teacher", "student"])
        write_json(run_dir / "student_report.json", report)
    return 0
