"""Temporal stability for video: optical flow, occlusion masks, the warping error and the stabiliser (lesson 09).

A generator applied to each frame on its own turns sensor noise and small exposure changes into
texture that shimmers from frame to frame. :class:`TemporalStabilizer` removes most of it at
inference time, with no retraining:

1. dense optical flow from the current photo frame to the previous one (OpenCV's DIS flow, no
   weights), computed on a grey image whose short side is ``flow_short_side`` px, so it costs little
   next to the generator;
2. an occlusion mask by forward-backward consistency (Sundaram et al. 2010; the mask of Ruder et al.
   2016 and Lai et al. 2018): a pixel is reliable when following the backward flow and then the
   forward flow brings it back where it started, and when the photo itself did not change there;
3. the previous *stabilised* cartoon warped along the flow is blended with the current cartoon,
   ``out = w * m * warped + (1 - w * m) * cartoon``, ``m`` the soft reliability. Where the flow holds,
   each pixel is an exponential moving average along its motion path; where it fails (occlusions,
   objects that appear, cuts) the current cartoon is kept, so nothing ghosts.

:func:`warping_error` is the measure of Lai et al., ECCV 2018 ("Learning Blind Video Temporal
Consistency"): the mean squared difference between a frame and the previous one warped onto it,
over the pixels the occlusion mask keeps.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# Weight of the warped previous output where the flow is reliable (tuned on the pan/zoom benchmark of
# tools/video_stability.py: 0.8 gives E_warp about 0.2x per-frame; 0.9 lags visibly behind exposure
# changes, 0.6 leaves E_warp at about 0.45x).
BLEND_WEIGHT = 0.8
# The flow runs on a grey image of this short side: about 1/4 of a 720p frame in each direction.
FLOW_SHORT_SIDE = 180
# Forward-backward consistency (Sundaram et al. 2010): |f + b|^2 < ALPHA (|f|^2 + |b|^2) + BETA (px^2)
FB_ALPHA, FB_BETA = 0.01, 0.5
# Photo change (grey, [0, 1], after removing the global exposure change) at which a pixel stops
# trusting its warped past: well above sensor noise, well below a moving object's edge.
PHOTO_TOLERANCE = 0.08


def dis_flow(frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Dense optical flow with OpenCV's DIS: ``frame(p) ~ reference(p + flow(p))``.

    Args:
        frame, reference: ``(H, W)`` uint8 grey images.

    Returns:
        ``(H, W, 2)`` float32 flow in pixels, ``(dx, dy)``.
    """
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(frame, reference, None)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` at ``p + flow(p)`` (bilinear; the border repeated outside the frame).

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` float32.
        flow: ``(H, W, 2)`` float32, ``(dx, dy)`` in pixels.

    Returns:
        the warped image, shaped like ``image``.
    """
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def occlusion_mask(backward: np.ndarray, forward: np.ndarray, alpha: float = FB_ALPHA,
                   beta: float = FB_BETA) -> np.ndarray:
    """Pixels whose backward flow is confirmed by the forward flow (and lands inside the frame).

    ``backward`` maps frame t to frame t-1, ``forward`` maps t-1 to t. Following ``backward`` from p,
    then ``forward`` from where it lands, should come back to p: ``b(p) + f(p + b(p)) ~ 0``. A pixel is
    reliable when ``|b + f'|^2 < alpha (|b|^2 + |f'|^2) + beta``, with ``f' = warp(f, b)``.

    Args:
        backward, forward: ``(H, W, 2)`` float32 flows.

    Returns:
        ``(H, W)`` bool, True where frame t's pixel is visible in frame t-1.
    """
    forward_there = warp(forward, backward)
    round_trip = ((backward + forward_there) ** 2).sum(-1)
    scale = (backward**2).sum(-1) + (forward_there**2).sum(-1)
    height, width = backward.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
    target_x, target_y = grid_x + backward[..., 0], grid_y + backward[..., 1]
    inside = (target_x >= 0) & (target_x <= width - 1) & (target_y >= 0) & (target_y <= height - 1)
    return (round_trip < alpha * scale + beta) & inside


def warping_error(previous: np.ndarray, current: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """E_warp of Lai et al. 2018 for one pair of frames.

    ``sum_p m(p) |current(p) - previous(p + flow(p))|^2 / sum_p m(p)``, the squared difference summed
    over the colour channels of images in [0, 1].

    Args:
        previous, current: ``(H, W, 3)`` float images in [0, 1] (or uint8, divided by 255).
        flow: ``(H, W, 2)`` float32 from ``current`` to ``previous``.
        mask: ``(H, W)`` bool, the pixels of ``current`` visible in ``previous``.
    """
    previous, current = (_unit(image) for image in (previous, current))
    difference = ((current - warp(previous, flow)) ** 2).sum(-1)
    count = int(mask.sum())
    if count == 0:
        raise ValueError("the occlusion mask keeps no pixel; the warping error is undefined")
    return float(difference[mask].sum() / count)


def mean_warping_error(frames, flows, masks) -> float:
    """E_warp of a video: :func:`warping_error` averaged over its consecutive pairs.

    Args:
        frames: T ``(H, W, 3)`` images in [0, 1] (or uint8).
        flows, masks: T-1 flows and masks; ``flows[t]`` maps ``frames[t + 1]`` to ``frames[t]``.
    """
    pairs = list(zip(frames[:-1], frames[1:], flows, masks, strict=True))
    return float(np.mean([warping_error(previous, current, flow, mask) for previous, current, flow, mask in pairs]))


def camera_move(photo: np.ndarray, frames: int, size: tuple[int, int], pan: float = 3.0, zoom: float = 0.01,
                noise: float = 0.0, drift: float = 0.0, seed: int = 0):
    """A synthetic clip of a camera panning and zooming over ``photo``, with its true flow and occlusions.

    Frame t shows ``photo`` at ``q = c + (p - c_frame) / s_t + (pan * t, 0)``: ``s_t = 1 + zoom * t``
    magnifies about the photo's centre ``c`` while the view moves ``pan`` photo pixels right per frame.
    Then sensor noise (Gaussian, ``noise`` in [0, 1] units) and an exposure drift (gain
    ``1 + drift * sin(t / 2)``) are added, and the frame is rounded to uint8.

    Args:
        photo: ``(H, W, 3)`` uint8, larger than ``size`` with room for the pan.
        frames: the number of frames T.
        size: ``(height, width)`` of the frames.

    Returns:
        ``(clip, flows, masks)``: T ``(h, w, 3)`` uint8 frames; T-1 exact flows ``(h, w, 2)`` from frame t+1
        to frame t, and T-1 ``(h, w)`` bool masks of the pixels of frame t+1 visible in frame t.
    """
    height, width = size
    centre = np.array([photo.shape[1] / 2 - pan * frames / 2, photo.shape[0] / 2])
    frame_centre = np.array([width / 2, height / 2])
    rng = np.random.default_rng(seed)

    def matrix(t):  # frame pixel -> photo pixel, as a 2x3 affine map
        scale = 1 + zoom * t
        offset = centre + np.array([pan * t, 0]) - frame_centre / scale
        return np.array([[1 / scale, 0, offset[0]], [0, 1 / scale, offset[1]]])

    clip = []
    for t in range(frames):
        view = cv2.warpAffine(photo, matrix(t), (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        view = view.astype(np.float32) / 255 * (1 + drift * np.sin(t / 2)) + rng.normal(0, noise, view.shape)
        clip.append(np.clip(np.round(view * 255), 0, 255).astype(np.uint8))
    grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1).astype(np.float64)
    flows, masks = [], []
    for t in range(1, frames):
        now, before = matrix(t), matrix(t - 1)
        photo_point = grid @ now[:, :2].T + now[:, 2]
        there = (photo_point - before[:, 2]) @ np.linalg.inv(before[:, :2]).T
        flows.append((there - grid).astype(np.float32))
        masks.append((there[..., 0] >= 0) & (there[..., 0] <= width - 1) & (there[..., 1] >= 0)
                     & (there[..., 1] <= height - 1))
    return clip, flows, masks


def _unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255 if image.dtype == np.uint8 else image.astype(np.float32)


class TemporalStabilizer:
    """Blend each cartoon frame with the previous stabilised one, warped along the photo's optical flow.

    Call it on the frames of one video in order; it keeps the previous photo (grey, at flow size) and
    the previous output, so memory does not grow with the video.

    Args:
        weight: the warped past's share where the flow is reliable, in [0, 1); 0 is per-frame output.
        flow_short_side: the short side, in px, of the grey images the flow is computed on.
        tolerance: the photo change (grey, [0, 1]) at which a pixel stops trusting its warped past.

    Example:
        >>> stabilizer = TemporalStabilizer()
        >>> photo, cartoon = torch.zeros(1, 3, 64, 96), torch.zeros(1, 3, 64, 96)
        >>> stabilizer(photo, cartoon).shape
        torch.Size([1, 3, 64, 96])
    """

    def __init__(self, weight: float = BLEND_WEIGHT, flow_short_side: int = FLOW_SHORT_SIDE,
                 tolerance: float = PHOTO_TOLERANCE):
        if not 0 <= weight < 1:
            raise ValueError(f"weight must be in [0, 1), got {weight}")
        self.weight, self.flow_short_side, self.tolerance = weight, flow_short_side, tolerance
        self.previous_grey: np.ndarray | None = None
        self.previous_output: torch.Tensor | None = None

    def __call__(self, photo: torch.Tensor, cartoon: torch.Tensor) -> torch.Tensor:
        """``(1, 3, H, W)`` photo frame and its cartoon, both in [-1, 1] -> the stabilised cartoon.

        The first frame, or a frame whose size differs from the previous one, is returned unchanged.
        """
        grey = self._grey(photo)
        previous, previous_output = self.previous_grey, self.previous_output
        if previous is None or previous.shape != grey.shape or previous_output.shape != cartoon.shape:
            out = cartoon
        else:
            backward, reliable = self._flow_and_reliability(grey, previous)
            out = self._blend(cartoon, previous_output, backward, self.weight * reliable)
        self.previous_grey, self.previous_output = grey, out
        return out

    def _grey(self, photo: torch.Tensor) -> np.ndarray:
        """The photo as float32 grey in [0, 1] with a short side of ``flow_short_side`` px (area averaged)."""
        height, width = photo.shape[-2:]
        scale = min(self.flow_short_side / min(height, width), 1.0)
        size = (max(round(height * scale), 1), max(round(width * scale), 1))
        small = F.interpolate(photo.float(), size=size, mode="area") if scale < 1 else photo.float()
        luma = torch.tensor([0.299, 0.587, 0.114], device=photo.device).view(1, 3, 1, 1)
        return ((small * luma).sum(1)[0] * 0.5 + 0.5).clamp(0, 1).cpu().numpy()

    def _flow_and_reliability(self, grey: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The backward flow and a soft mask in [0, 1] (flow confirmed forward-backward, photo unchanged)."""
        current8, previous8 = (np.round(image * 255).astype(np.uint8) for image in (grey, previous))
        backward = dis_flow(current8, previous8)
        consistent = occlusion_mask(backward, dis_flow(previous8, current8))
        change = grey - warp(previous, backward)
        change -= np.median(change)  # an exposure change moves every pixel alike: not motion
        agreement = np.clip(1 - np.abs(change) / self.tolerance, 0, 1)
        return backward, consistent * agreement

    @staticmethod
    def _blend(cartoon: torch.Tensor, previous_output: torch.Tensor, flow: np.ndarray,
               weight: np.ndarray) -> torch.Tensor:
        """``w * warp(previous_output) + (1 - w) * cartoon``, flow and weight resized to the cartoon."""
        height, width = cartoon.shape[-2:]
        scale = np.array([width / flow.shape[1], height / flow.shape[0]], dtype=np.float32)
        flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR) * scale
        weight = cv2.resize(weight.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        previous = previous_output[0].permute(1, 2, 0).float().cpu().numpy()
        warped = torch.from_numpy(warp(previous, flow)).permute(2, 0, 1)[None].to(cartoon.device)
        mix = torch.from_numpy(weight)[None, None].to(cartoon.device)
        return (mix * warped + (1 - mix) * cartoon.float()).to(cartoon.dtype)
