"""Measure temporal stability: E_warp of stabilised vs per-frame cartoons, and the stabiliser's cost.

    .venv/bin/python tools/video_stability.py [--frames 16] [--out /tmp/video_stability]

Two clips, cartoonized with the official White-box weights:

(a) ``pan``: a camera panning and zooming over a Kodak photo, with sensor noise and exposure drift
    (:func:`animescene.temporal.camera_move`); E_warp uses the exact flow and occlusion mask.
(b) ``bunny``: a pan over a Big Buck Bunny frame with a second character (cut from another frame)
    walking the other way, encoded with H.264 at crf 28 and decoded (real codec noise). Still
    synthetic: the course has no real camera footage. E_warp uses OpenCV's Farneback flow on the
    input frames with a forward-backward mask (a different flow from the stabiliser's DIS).

Prints the CPU, a table of E_warp for per-frame output, the default stabiliser and the variants that
lost, the change on the moving character (ghosting shows as a large change there), and the cost of
the stabiliser per 720p frame next to the generator's. Saves side-by-side PNGs to ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from animescene.filters import post_process
from animescene.images import to_tensor, to_uint8
from animescene.inference import Cartoonizer
from animescene.runtime import shared_data_dir
from animescene.temporal import (TemporalStabilizer, camera_move, mean_warping_error, occlusion_mask,
                                 warping_error)

SIZE = (256, 384)  # (height, width) of the measured clips: the generator fits the time on a CPU

# name -> (stabiliser keyword arguments, blend before the guided filter?)
METHODS = {
    "per-frame": (None, True),
    "stabilised (default: w=0.8, before guided filter)": ({}, True),
    "after the guided filter": ({}, False),
    "w=0.6": ({"weight": 0.6}, True),
    "w=0.9": ({"weight": 0.9}, True),
    "no photo-change check": ({"tolerance": 1e9}, True),
}


def pan_clip(frames: int):
    photo = np.asarray(Image.open(shared_data_dir() / "photos/kodak24/kodim05.png").convert("RGB"))
    clip, flows, masks = camera_move(photo, frames, SIZE, pan=3.0, zoom=0.01, noise=0.02, drift=0.04)
    return clip, flows, masks, None


def bunny_clip(frames: int):
    """Background pan + a character moving left; H.264 round trip. Flow estimated (Farneback)."""
    import av

    folder = shared_data_dir() / "cartoon/bigbuckbunny"
    background = np.asarray(Image.open(folder / "bbb_f0012.png").convert("RGB"))
    sprite_source = np.asarray(Image.open(folder / "bbb_f0144.png").convert("RGB"))
    clip, _, _ = camera_move(background, frames, SIZE, pan=2.0, zoom=0.0, noise=0.01, drift=0.03, seed=1)
    sprite = cv2.resize(sprite_source[100:300, 220:420], (96, 96))
    disc = (np.hypot(*np.mgrid[-48:48, -48:48]) < 46)[..., None]
    objects = []
    for t, frame in enumerate(clip):
        left, top = SIZE[1] - 120 - 7 * t, 120
        region = frame[top : top + 96, left : left + 96]
        region[:] = np.where(disc, sprite, region)
        mask = np.zeros(SIZE, bool)
        mask[top : top + 96, left : left + 96] = disc[..., 0]
        objects.append(mask)
    path = Path("/tmp/video_stability_bunny.mp4")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt, stream.options = SIZE[1], SIZE[0], "yuv420p", {"crf": "28"}
        for frame in clip:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    with av.open(str(path)) as container:
        clip = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    flows, masks = [], []
    for before, now in zip(clip[:-1], clip[1:]):
        grey_before, grey_now = (cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in (before, now))
        backward = cv2.calcOpticalFlowFarneback(grey_now, grey_before, None, 0.5, 4, 21, 5, 7, 1.5, 0)
        forward = cv2.calcOpticalFlowFarneback(grey_before, grey_now, None, 0.5, 4, 21, 5, 7, 1.5, 0)
        flows.append(backward)
        masks.append(occlusion_mask(backward, forward))
    return clip, flows, masks, objects


def cartoonize_all(cartoonizer: Cartoonizer, clip) -> dict[str, list[np.ndarray]]:
    """Every method's output for ``clip``; the generator runs once per frame."""
    outputs = {name: [] for name in METHODS}
    stabilizers = {name: TemporalStabilizer(**kwargs) for name, (kwargs, _) in METHODS.items() if kwargs is not None}
    with torch.no_grad():
        for frame in clip:
            photo = to_tensor(frame)
            small, cartoon = cartoonizer._checked_generate(photo)
            per_frame = post_process(photo, cartoon)
            for name, (kwargs, before_filter) in METHODS.items():
                if kwargs is None:
                    out = per_frame
                elif before_filter:
                    out = post_process(photo, stabilizers[name](small, cartoon))
                else:
                    out = stabilizers[name](photo, per_frame)
                outputs[name].append(to_uint8(out))
    return outputs


def cost_720p(cartoonizer: Cartoonizer) -> tuple[float, float]:
    """Median seconds per 720p frame: the generator (with its post-process) and the stabiliser."""
    rng = np.random.default_rng(0)
    photos = [to_tensor(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)) for _ in range(2)]
    generator_times, stabilizer_times = [], []
    stabilizer = TemporalStabilizer()
    with torch.no_grad():
        cartoon = None
        for photo in photos:
            start = time.perf_counter()
            _, cartoon = cartoonizer._checked_generate(photo)
            generator_times.append(time.perf_counter() - start)
        stabilizer(photos[0], cartoon)
        for index in range(5):
            start = time.perf_counter()
            stabilizer(photos[(index + 1) % 2], cartoon)
            stabilizer_times.append(time.perf_counter() - start)
    return float(np.median(generator_times)), float(np.median(stabilizer_times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("/tmp/video_stability"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {model}; {torch.get_num_threads()} torch threads; flags: "
          f"{' '.join(f for f in flags if f.startswith(('avx', 'fma', 'amx', 'sse4')))}")
    cartoonizer = Cartoonizer("official", device="cpu")
    for clip_name, make in (("pan", pan_clip), ("bunny", bunny_clip)):
        clip, flows, masks, objects = make(args.frames)
        outputs = cartoonize_all(cartoonizer, clip)
        base = mean_warping_error(outputs["per-frame"], flows, masks)
        print(f"\n({clip_name}) {len(clip)} frames {SIZE[1]}x{SIZE[0]}; E_warp of the input photos: "
              f"{mean_warping_error(clip, flows, masks):.5f}")
        print(f"{'method':52s} {'E_warp':>9s} {'x per-frame':>12s} {'moving-object change':>21s}")
        for name, frames in outputs.items():
            e_warp = mean_warping_error(frames, flows, masks)
            change = "-"
            if objects is not None:  # mean |stabilised - per-frame| on the moving character, in [0, 1]
                diffs = [np.abs(a.astype(np.float32) - b.astype(np.float32))[m].mean() / 255
                         for a, b, m in zip(frames, outputs["per-frame"], objects)]
                change = f"{np.mean(diffs):.4f}"
            print(f"{name:52s} {e_warp:9.5f} {e_warp / base:12.2f} {change:>21s}")
        last = len(clip) - 1
        side = np.concatenate([clip[last], outputs["per-frame"][last],
                               outputs["stabilised (default: w=0.8, before guided filter)"][last],
                               outputs["no photo-change check"][last]], 1)
        Image.fromarray(side).save(args.out / f"{clip_name}_input_perframe_stabilised_nocheck.png")
        per_pair = [warping_error(a, b, f, m) for a, b, f, m in
                    zip(outputs["per-frame"][:-1], outputs["per-frame"][1:], flows, masks)]
        print(f"per-pair E_warp, per-frame: {' '.join(f'{e:.4f}' for e in per_pair)}")
    generator, stabilizer = cost_720p(cartoonizer)
    print(f"\n720p frame: generator {generator:.2f} s, stabiliser {stabilizer * 1000:.0f} ms = "
          f"{100 * stabilizer / generator:.1f} % of the generator")


if __name__ == "__main__":
    main()
