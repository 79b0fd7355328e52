"""Benchmarks, run as ``animescene bench <benchmark>`` or ``python -m animescene.bench <benchmark>``.

``inference``: 1280 x 720 cartoonization (generator + guided filter) with every backend this machine
has: eager fp32, channels-last, bf16 (CPUs with AVX-512 BF16/AMX, GPUs), fp16 (GPUs), ``torch.compile``,
ONNX Runtime, the int8 backends of :mod:`animescene.backends` (ONNX Runtime, OpenVINO + NNCF) and
OpenVINO's float rows (the CPU peer to beat); ms per frame, frames per second, and each backend's
largest difference and PSNR against eager fp32. Below the table: the CPU's flags and issue 20's goal
ratio (:func:`goal_ratio`).

``filters``: our guided filter against OpenCV's (``cv2.ximgproc.guidedFilter``) on a 1280 x 720 frame,
and the cost per 256 x 256 image of each stage of the structure representation, in one process and
with a pool of worker processes.

``train``: training iterations per second on a small demo set, and the share of each iteration spent
waiting for the structure representation.

Every number is the median of ``--repeats`` timed runs after warm-up runs, in milliseconds. The
header says on what machine and with which versions, so that numbers from two machines are not
compared by accident.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import statistics
import time

import cv2
import numpy as np
import skimage.data
import torch

from . import segmentation
from .filters import guided_filter, post_process
from .images import psnr
from .representations import StructurePool, structure
from .runtime import cpu_flags, native_bf16

# Real photos from scikit-image's sample data, so that the segmentation sees natural content.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
# OpenVINO's float rows: the CPU peer the course's backends are measured against (issue 20)
OPENVINO_FLOAT = ("openvino fp32", "openvino bf16 (+ fp32 guided filter)")
# CPU flags that decide which kernels run; printed with the inference table
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
               "amx_tile", "amx_int8", "amx_bf16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m animescene.bench", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    filters = commands.add_parser(
        "filters", help="guided filter vs OpenCV at 1280x720; structure representation stages at 256x256"
    )
    filters.add_argument("--repeats", type=int, default=7, help="timed runs per number (default 7)")
    filters.add_argument(
        "--segments",
        type=int,
        nargs="+",
        default=[200, 80],
        help="structure region targets (default: 200, the paper's, and 80, where the reference ends up)",
    )
    filters.add_argument("--batch", type=int, default=16, help="images per structure batch (default 16)")
    filters.add_argument("--workers", type=int, default=2, help="structure pool size (default 2)")
    filters.add_argument("--quick", action="store_true", help="2 repeats, batch of 4, one target (smoke run)")
    filters.set_defaults(run=run_filters)
    inference = commands.add_parser("inference", help="1280x720 cartoonization with every available backend")
    inference.add_argument("--size", type=int, nargs=2, default=[720, 1280], metavar=("H", "W"))
    inference.add_argument("--repeats", type=int, default=5, help="timed frames per backend (default 5)")
    inference.add_argument("--weights", default="official",
                           help="'official', 'random', a generator made here (e.g. a distilled one) or a weights file")
    inference.add_argument("--device", default="auto")
    inference.add_argument("--skip", nargs="*", default=[], help="backends to leave out (e.g. compile)")
    inference.add_argument("--json", help="also write the rows to this JSON file")
    inference.set_defaults(run=run_inference)
    train = commands.add_parser("train", help="training iterations/s and structure wait on a demo set")
    train.add_argument("--size", type=int, default=128)
    train.add_argument("--batch", type=int, default=4)
    train.add_argument("--steps", type=int, default=20, help="timed adversarial steps (default 20)")
    train.add_argument("--structure-workers", type=int, default=-1, help="-1: cores - 1")
    train.add_argument("--device", default="auto")
    train.set_defaults(run=run_train)
    args = parser.parse_args(argv)
    print(machine_summary())
    args.run(args)
    return 0


def run_filters(args: argparse.Namespace) -> None:
    """The ``filters`` benchmark: prints two tables."""
    repeats, batch, segments = args.repeats, args.batch, args.segments
    if args.quick:
        repeats, batch, segments = 2, 4, segments[:1]
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    print(f"\nGuided filter, 1280x720, float32 RGB source, gray guide; torch and cv2 threads = {threads}")
    print_table(
        guided_filter_vs_opencv(repeats), ["case", "ours ms", "differentiable ms", "OpenCV ms", "ours/OpenCV"]
    )
    print(f"\nStructure representation, ms per 256x256 image (batch of {batch}, {args.workers}-worker pool)")
    rows = []
    for target in segments:
        rows += structure_stages(repeats, batch, target, args.workers)
    print_table(rows, ["segments", "stage", "ms/image", "regions"])


def guided_filter_vs_opencv(repeats: int) -> list[dict]:
    """Our ``guided_filter`` against ``cv2.ximgproc.guidedFilter`` at 1280 x 720, one row per case.

    OpenCV mirrors the border (``border="reflect"`` here, where the two agree to 1e-4); our default
    ``"clip"`` border is timed too. Inputs are a real photo as a contiguous ``(1, C, H, W)`` tensor (what a
    model hands over) and an ``(H, W, C)`` array for OpenCV. "ours" is what inference runs, the fused CPU
    kernel of :mod:`animescene.filters_cpu`; "differentiable" is the tensor-op form that runs when the
    inputs require a gradient (the forward pass only).
    """
    image = cv2.resize(skimage.data.astronaut(), (1280, 720), interpolation=cv2.INTER_LINEAR)
    src = image.astype(np.float32) / 255.0
    gray = cv2.cvtColor(src, cv2.COLOR_RGB2GRAY)
    src_t = torch.from_numpy(src).permute(2, 0, 1)[None].contiguous()
    gray_t = torch.from_numpy(gray)[None, None].contiguous()
    src_grad = src_t.clone().requires_grad_()
    rows = []
    for r, eps in ((1, 5e-3), (5, 0.2)):
        opencv = time_ms(lambda: cv2.ximgproc.guidedFilter(gray, src, r, eps), repeats)
        for border in ("reflect", "clip"):
            with torch.inference_mode():
                ours = time_ms(lambda: guided_filter(gray_t, src_t, r, eps, border=border), repeats)
            differentiable = time_ms(lambda: guided_filter(gray_t, src_grad, r, eps, border=border), repeats)
            rows.append(
                {
                    "case": f"r={r} eps={eps:g} border={border}",
                    "ours ms": ours,
                    "differentiable ms": differentiable,
                    "OpenCV ms": opencv,
                    "ours/OpenCV": ours / opencv,
                }
            )
    return rows


def structure_stages(repeats: int, batch: int, segments: int, workers: int) -> list[dict]:
    """Per-image time of each stage of the selective structure representation at 256 x 256.

    Stages: Felzenszwalb superpixels, selective-search grouping (Lab, histograms and merging), adaptive
    colouring with the contrast step, and the whole of :func:`structure` on one image at a time (tensor
    in and out); then :func:`structure` of the batch in this process and through a :class:`StructurePool`.
    """
    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    photos = [cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA) for photo in photos]
    # a batch of distinct images: the photos, then the photos turned by 90 degrees, and so on
    images = [np.ascontiguousarray(np.rot90(photos[i % len(photos)], i // len(photos))) for i in range(batch)]
    starts = [segmentation.felzenszwalb(image) for image in images]
    groups = [segmentation.selective_search_grouping(im, s, segments) for im, s in zip(images, starts)]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1

    def felzenszwalb():
        return [segmentation.felzenszwalb(image) for image in images]

    def grouping():
        return [segmentation.selective_search_grouping(im, s, segments) for im, s in zip(images, starts)]

    def colouring():
        return [segmentation.contrast(segmentation.adaptive_coloring(im, g)) for im, g in zip(images, groups)]

    def one_at_a_time():
        return [structure(x[i : i + 1], segments=segments) for i in range(batch)]

    def per_image(fn) -> float:
        return time_ms(fn, repeats, warmup=1) / batch

    superpixels = f"{np.mean([s.max() + 1 for s in starts]):.0f} superpixels"
    regions = f"{np.mean([g.max() + 1 for g in groups]):.0f} regions"
    rows = [
        ("felzenszwalb", per_image(felzenszwalb), superpixels),
        ("grouping", per_image(grouping), regions),
        ("colouring", per_image(colouring), ""),
        ("total, one image at a time", per_image(one_at_a_time), ""),
        ("total, batch, 1 process", per_image(lambda: structure(x, segments=segments)), ""),
    ]
    with StructurePool(workers) as pool:
        pooled = per_image(lambda: pool.submit(x, segments=segments).result())
    rows.append((f"total, batch, pool of {workers}", pooled, ""))
    columns = ("stage", "ms/image", "regions")
    return [{"segments": segments, **dict(zip(columns, row))} for row in rows]


def run_inference(args: argparse.Namespace) -> list[dict]:
    """The ``inference`` benchmark: prints the table (and writes JSON when asked); returns the rows."""
    import json

    rows = inference_backends(tuple(args.size), args.repeats, args.weights, args.device, skip=args.skip)
    print(f"\nCartoonization of a {args.size[0]}x{args.size[1]} frame (generator + guided filter), "
          f"median of {args.repeats} frames; difference and PSNR against eager fp32")
    print_table(rows, ["backend", "ms/frame", "frames/s", "max |diff|", "PSNR dB", "setup s"])
    print(f"CPU flags: {' '.join(f for f in SPEED_FLAGS if f in cpu_flags()) or 'unknown'}")
    print(goal_ratio(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_summary(), "rows": rows}, f, indent=2)
    return rows


def inference_backends(size=(720, 1280), repeats: int = 5, weights="official", device="auto", skip=()) -> list[dict]:
    """Time every backend this machine has on one real photo resized to ``size``; one row per backend.

    ``weights="official"`` falls back to a randomly initialised generator (with a note) where the
    official weights are not downloaded: the timing is the same, the pictures are not.
    """
    from .data import example_photos
    from .export import CartoonizeGraph
    from .models import UNetGenerator, load_official_whitebox
    from .runtime import resolve_device

    device = resolve_device(device)
    if weights == "official":
        try:
            generator = load_official_whitebox()
        except FileNotFoundError as err:
            print(f"note: {err}\n      timing a randomly initialised generator instead")
            generator = UNetGenerator()
    else:
        generator = UNetGenerator() if weights == "random" else UNetGenerator.from_weights(weights)
    photo, _ = example_photos(1, min(size))
    frame = torch.nn.functional.interpolate(photo, size=size, mode="bilinear", align_corners=False).clamp(-1, 1)
    graph = CartoonizeGraph(generator.eval()).to(device)
    backends = _backends(graph, device)
    rows, reference = [], None
    for name, build in backends:
        if any(word in name for word in skip):
            continue
        started = time.perf_counter()
        try:
            run = build(frame.to(device))
            with torch.inference_mode():
                output = run()  # the first call compiles / exports / warms up
        except Exception as err:  # a backend this machine cannot run is reported, not fatal
            print(f"note: {name} unavailable here ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
            continue
        setup = time.perf_counter() - started
        with torch.inference_mode():
            ms = time_ms(lambda: _synchronized(run, device), repeats, warmup=1)
        output = torch.as_tensor(output).float().cpu()
        if reference is None:
            reference = output
        rows.append({"backend": name, "ms/frame": ms, "frames/s": 1000.0 / ms,
                     "max |diff|": float((output - reference).abs().max()), "PSNR dB": psnr(output, reference),
                     "setup s": setup, "device": str(device)})
    return rows


def goal_ratio(rows: list[dict]) -> str:
    """Issue 20's goal in one line: the course's fastest backend with PSNR >= 40 dB against eager fp32,
    as a fraction of OpenVINO's fastest float row (goal: <= 0.6)."""
    course = [row for row in rows if row["backend"] not in OPENVINO_FLOAT and row["PSNR dB"] >= 40]
    peer = [row for row in rows if row["backend"] in OPENVINO_FLOAT]
    if not course or not peer:
        return "goal ratio: needs a course row >= 40 dB and an OpenVINO float row (pip install 'animescene[fast]')"
    ours, theirs = min(course, key=lambda r: r["ms/frame"]), min(peer, key=lambda r: r["ms/frame"])
    return (f"goal ratio: {ours['backend']} {ours['ms/frame']:.0f} ms / {theirs['backend']} "
            f"{theirs['ms/frame']:.0f} ms = {ours['ms/frame'] / theirs['ms/frame']:.2f} (goal <= 0.6)")


def _backends(graph, device: torch.device) -> list[tuple[str, callable]]:
    """``(name, build)`` pairs; ``build(x)`` prepares a backend and returns a no-argument callable.

    Eager fp32 comes first: it is the reference the others are compared with.
    """
    import copy

    channels_last = torch.channels_last

    def eager(dtype=None, memory=torch.contiguous_format, compile_mode=None):
        def build(x):
            model = copy.deepcopy(graph).to(memory_format=memory)
            x = x.contiguous(memory_format=memory)
            if compile_mode is not None:
                model = torch.compile(model, mode=compile_mode, dynamic=False)

            def run():
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    return model(x)

            return run

        return build

    backends = [("eager fp32", eager()), ("eager fp32 channels_last", eager(memory=channels_last))]
    if native_bf16(device):
        backends.append(("eager bf16 channels_last", eager(torch.bfloat16, channels_last)))
    if device.type == "cuda":
        backends.append(("eager fp16 channels_last", eager(torch.float16, channels_last)))
    compile_mode = "max-autotune" if device.type == "cuda" else None
    backends.append(("compile fp32 channels_last", eager(memory=channels_last, compile_mode=compile_mode or "default")))
    if native_bf16(device):
        backends.append(("compile bf16 channels_last", eager(torch.bfloat16, channels_last, compile_mode or "default")))
    if device.type == "cuda":
        backends.append(("compile fp16 channels_last", eager(torch.float16, channels_last, compile_mode)))
    backends.append(("onnxruntime fp32", lambda x: _onnxruntime(graph, x, device)))
    if device.type == "cpu":
        for name in ("onnxruntime-int8", "openvino-int8"):
            label = f"{name.replace('-', ' ')} (+ fp32 guided filter)"
            backends.append((label, lambda x, name=name: _int8_backend(name, graph, x)))
        backends.append((OPENVINO_FLOAT[0], lambda x: _openvino(graph, x, "f32")))
        if native_bf16(device):
            backends.append((OPENVINO_FLOAT[1], lambda x: _openvino(graph, x, "bf16")))
    return backends


def _onnx_file(graph, x, post_process: bool = True) -> str:
    import tempfile

    from .export import export_onnx

    path = os.path.join(tempfile.mkdtemp(prefix="animescene_bench_"), "cartoonize.onnx")
    export_onnx(graph.generator, path, example_size=tuple(x.shape[-2:]), post_process=post_process)
    return path


def _onnxruntime(graph, x, device):
    import onnxruntime as ort

    providers = ["CUDAExecutionProvider"] if device.type == "cuda" else []
    session = ort.InferenceSession(_onnx_file(graph, x), providers=providers + ["CPUExecutionProvider"])
    feed = {"input": x.cpu().numpy()}
    return lambda: torch.from_numpy(session.run(["output"], feed)[0])


def _int8_backend(name: str, graph, x):
    """A :mod:`animescene.backends` int8 backend (what ``Cartoonizer(backend=name)`` runs), the guided
    filter in float32 (PyTorch). Calibrated on five course photos other than the measured frame, so the
    PSNR is not flattered. The quantized model is built once and cached: "setup s" is short after that.
    """
    from .backends import make_runner

    run_generator = make_runner(name, graph.generator, torch.device("cpu"))[1]
    return lambda: post_process(x, run_generator(x))


def _openvino(graph, x, precision: str):
    """OpenVINO on the CPU. In bf16 only the generator runs in OpenVINO and the guided filter stays in
    float32 (PyTorch), as in our own bf16 backend: in bf16 its variance terms lose the picture."""
    import openvino as ov

    whole = precision == "f32"
    core = ov.Core()
    model = core.read_model(_onnx_file(graph, x, post_process=whole))
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision})
    request = compiled.create_infer_request()
    feed = x.cpu().numpy()

    def run():
        out = torch.from_numpy(request.infer({0: feed})[compiled.output(0)].copy())
        return out if whole else post_process(x, out)

    return run


def _synchronized(run, device: torch.device):
    out = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out


def run_train(args: argparse.Namespace) -> dict:
    """The ``train`` benchmark: adversarial iterations/s and the structure-wait share on a demo set."""
    import tempfile

    from .demo_set import make_demo_set
    from .train import TrainConfig, Trainer

    with tempfile.TemporaryDirectory() as tmp:
        make_demo_set(os.path.join(tmp, "demo"), short_side=max(args.size, 160), use_shared=True)
        config = TrainConfig(
            photo_dirs=[os.path.join(tmp, "demo", "photos")], cartoon_dirs=[os.path.join(tmp, "demo", "cartoons")],
            size=args.size, batch_size=args.batch, pretrain_steps=0, steps=args.steps + 3,
            structure_workers=args.structure_workers, num_workers=1, device=args.device,
            out_dir=os.path.join(tmp, "run"), log_every=0, sample_every=0, checkpoint_every=0,
        )
        trainer = Trainer(config)
        trainer.fit(max_steps=3)  # warm-up: workers start, first target computed in-line
        trainer.structure_wait.reset()
        started = time.perf_counter()
        trainer.fit(max_steps=args.steps)
        elapsed = time.perf_counter() - started
        result = {"iterations/s": args.steps / elapsed, "images/s": args.steps * args.batch / elapsed,
                  "structure wait share": trainer.structure_wait.share, "structure workers": trainer.structure.workers,
                  "size": args.size, "batch": args.batch, "device": str(trainer.device)}
    print(f"\nAdversarial training at {args.size}x{args.size}, batch {args.batch}, {args.steps} timed steps")
    print_table([result], list(result))
    return result


def time_ms(fn, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` runs, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def print_table(rows: list[dict], columns: list[str]) -> None:
    """Print ``rows`` as an aligned text table; floats with 2 decimals."""
    cells = [[f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for line in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))


def machine_summary() -> str:
    """CPU model and cores, GPU if any, library versions and the date, for the header of every benchmark."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass  # not Linux: keep platform's answer
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    runtimes = ""
    for name in ("onnxruntime", "openvino"):  # optional backends of the inference benchmark
        try:
            runtimes += f", {name} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            pass
    return (
        f"machine: {cpu}, {os.cpu_count()} logical cores, GPU: {gpu}\n"
        f"versions: python {platform.python_version()}, torch {torch.__version__}, opencv {cv2.__version__}, "
        f"numpy {np.__version__}{runtimes}\n"
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}"
    )


if __name__ == "__main__":
    main()
