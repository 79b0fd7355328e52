"""Video files with PyAV (FFmpeg): frames streamed one at a time, sound and subtitles kept, output verified.

:func:`transcode` is what ``animescene cartoonize clip.mp4`` runs:

- the video stream is decoded frame by frame with its own time stamps (so the frame rate, even a
  variable one, and the time base are kept) and the rotation of its display matrix is applied, so a
  phone's portrait clip comes out upright (and without rotation metadata);
- each frame goes through a function (the cartoonizer) and is encoded as H.264 ``yuv420p``
  (``libx264`` with a ``crf`` quality; VP9 for ``.webm``); an odd width or height loses its last
  column or row, as ``yuv420p`` needs even sizes;
- every audio stream is copied packet by packet (re-encoded to AAC, or Opus for ``.webm``, when the
  container cannot hold its codec), so the sound stays in sync; subtitle streams and chapters are
  copied when the container can hold them;
- memory does not grow with the video's length: only the frame at hand (and the encoder's look-ahead)
  is in memory;
- the result is then checked: it must decode to as many frames as were read, of the right size, with
  the video's and every audio stream's duration within a frame of the input's. A short read (fewer
  frames or seconds than the container declares) and a failed write raise.

Write into a temporary file (:func:`animescene.images.atomic_output`) so that a failure or Ctrl-C never
leaves a broken file under the final name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .images import ImageReadError

# H.264 encoders in order of preference; a PyAV wheel without libx264 falls back to the next one
H264_ENCODERS = ("libx264", "libopenh264", "mpeg4")
# containers that cannot hold H.264 / AAC
VIDEO_ENCODERS = {".webm": ("libvpx-vp9",)}
AUDIO_ENCODERS = {".webm": "libopus"}
DEFAULT_CRF = 18  # x264's "visually lossless" end; flat cartoon colours compress well anyway
MAX_CRF = 51

log = logging.getLogger(__name__)


@dataclass
class VideoStats:
    """What was read from the input and written to the output.

    ``frames`` video frames; ``width`` x ``height`` of the written frames; ``video_seconds`` from the
    first frame's start to the last one's end; ``audio_seconds`` per audio stream, in output order.
    """

    frames: int
    width: int
    height: int
    video_seconds: float
    audio_seconds: list[float]


def pick_encoder(suffix: str) -> str:
    """The video encoder for a container suffix (``.mp4``, ``.webm``, ...): the first this PyAV has."""
    candidates = VIDEO_ENCODERS.get(suffix.lower(), H264_ENCODERS)
    for name in candidates:
        if name in av.codecs_available:
            if name != candidates[0]:
                log.warning("this PyAV has no %s encoder; writing %s with %s", candidates[0], suffix, name)
            return name
    raise OSError(f"this PyAV build has none of the encoders {', '.join(candidates)}; reinstall av from PyPI")


def check_crf(crf) -> int:
    """``crf`` if it is an int in [0, 51] (lower is better and bigger; 18 is near transparent)."""
    from .errors import UsageError

    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= MAX_CRF:
        raise UsageError(f"--crf must be a whole number from 0 (lossless) to {MAX_CRF} (smallest), got {crf!r}; "
                         f"{DEFAULT_CRF} is the default, 23 is x264's")
    return crf


def open_video(path) -> av.container.InputContainer:
    """Open ``path`` for reading; ImageReadError when FFmpeg cannot, or it holds no video stream."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise ImageReadError(f"{path}: not a video FFmpeg can read ({err}); check the file") from err
    if not container.streams.video:
        container.close()
        raise ImageReadError(f"{path}: holds no video stream")
    return container


def upright(frame: av.VideoFrame) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of ``frame``, rotated as its display matrix says (a portrait phone clip)."""
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = round((frame.rotation or 0) / 90) % 4  # counterclockwise, as np.rot90 turns
    return np.ascontiguousarray(np.rot90(rgb, quarter_turns)) if quarter_turns else rgb


def transcode(src, dst, process: Callable[[np.ndarray], np.ndarray], crf: int = DEFAULT_CRF,
              progress: bool = True, name: str | None = None) -> VideoStats:
    """Write ``dst``: ``src`` with each upright video frame replaced by ``process(frame)``, sound kept.

    Args:
        src: the video to read.
        dst: the file to write (its suffix picks the container); give a temporary name, see the module.
        process: ``(H, W, 3)`` uint8 RGB -> ``(H, W, 3)`` uint8 RGB of the same size.
        crf: the encoder's quality, 0 (lossless) to 51.
        progress: show a progress bar (frames/s and time left).
        name: how messages call the output (the final path); ``dst`` by default.

    Returns:
        :class:`VideoStats` of the checked output.

    Raises:
        ImageReadError: ``src`` cannot be opened, a frame cannot be decoded, or it decodes fewer frames or
            seconds than its container declares (truncated or damaged).
        OSError: writing failed (full disk, codec error) or the output does not read back complete.
    """
    from tqdm.auto import tqdm

    src, dst, name = Path(src), Path(dst), name or str(dst)
    check_crf(crf)
    source = open_video(src)
    try:
        video_in = source.streams.video[0]
        video_in.thread_type = "AUTO"
        declared, declared_seconds = _declared_length(source, video_in)
        output = _open_output(dst, name)
        try:
            with tqdm(total=declared or None, desc=src.name, unit="frame", disable=not progress) as bar:
                stats = _copy_streams(source, video_in, output, src, name, process, crf, declared, bar.update)
            _close_output(output, name)
        except BaseException:
            output.close()
            raise
    finally:
        source.close()
    if stats.frames == 0:
        raise ImageReadError(f"{src}: no frame could be decoded; check the file and its codec")
    if stats.frames < declared:
        raise ImageReadError(f"{src}: only {stats.frames} of the {declared} frames its container declares could be "
                             f"decoded: the file is truncated or damaged; nothing was written")
    frame_seconds = 1 / float(video_in.average_rate or 25)
    if declared_seconds and stats.video_seconds < declared_seconds - max(2 * frame_seconds, 0.1):
        raise ImageReadError(f"{src}: only {stats.video_seconds:.2f} s of the {declared_seconds:.2f} s its "
                             f"container declares could be decoded: the file is truncated or damaged; "
                             f"nothing was written")
    _check_output(dst, name, stats, frame_seconds)
    return stats


def _declared_length(source, stream) -> tuple[int, float]:
    """The frame count (0 when unknown) and duration in seconds (0 when unknown) the container declares."""
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    else:
        seconds = source.duration / av.time_base if source.duration else 0.0
    return max(stream.frames, 0), seconds


def _open_output(dst: Path, name: str):
    try:
        return av.open(str(dst), "w")
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise OSError(f"cannot write {name} ({err}); use .mp4, .mkv, .mov, .avi or .webm") from err


def _close_output(output, name: str) -> None:
    try:
        output.close()  # writes the trailer (the index of an .mp4): a full disk can fail here
    except (av.error.FFmpegError, OSError) as err:
        raise OSError(f"writing {name} failed ({err}); nothing was written") from err


def _copy_streams(source, video_in, output, src: Path, name: str, process, crf: int, declared: int,
                  advance) -> VideoStats:
    """Demux ``source`` once: video frames through ``process`` and the encoder, other streams copied."""
    encoder = pick_encoder(Path(name).suffix)
    width, height = _first_frame_size(src)  # every stream must exist before the first packet is written
    size = (width // 2 * 2, height // 2 * 2)
    video_out = _add_video(output, video_in, encoder, size, crf, name)
    audio = {stream.index: _add_audio(output, stream, Path(name).suffix) for stream in source.streams.audio}
    copied = {stream.index: output.add_stream_from_template(stream) for stream in source.streams.subtitles
              if stream.codec_context.name in output.supported_codecs}
    for stream in source.streams.subtitles:
        if stream.index not in copied:
            log.warning("%s: subtitle stream %d (%s) cannot go into %s; dropped", src, stream.index,
                        stream.codec_context.name, Path(name).suffix)
    output.metadata.update(source.metadata)
    if chapters := source.chapters():
        output.set_chapters(chapters)
    audio_seconds = {index: 0.0 for index in audio}
    frames, first_start, last_end = 0, None, 0.0
    default_duration = Fraction(1, 1) / (video_in.average_rate or 25)
    try:
        for packet in source.demux(video_in, *source.streams.audio, *source.streams.subtitles):
            if packet.stream.index in audio:
                audio_seconds[packet.stream.index] += _pass_audio(output, audio[packet.stream.index], packet)
                continue
            if packet.stream.index in copied:
                if packet.dts is not None:
                    packet.stream = copied[packet.stream.index]
                    _mux(output, packet)
                continue
            if packet.stream.type != "video":
                continue
            for frame in _decode(packet, src, frames, declared):
                picture = upright(frame)
                if (picture.shape[1] // 2 * 2, picture.shape[0] // 2 * 2) != size:
                    raise ImageReadError(f"{src}: frame {frames} is {picture.shape[1]}x{picture.shape[0]}, the "
                                         f"first was {size[0]}x{size[1]}; re-encode the video")
                cartoon = process(picture[: size[1], : size[0]])
                out_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(cartoon), format="rgb24")
                out_frame.pts = frame.pts if frame.pts is not None else frames
                out_frame.time_base = frame.time_base or video_in.time_base
                _mux(output, _encode(video_out, out_frame))
                start = float(out_frame.pts * out_frame.time_base)
                duration = float(frame.duration * frame.time_base) if frame.duration else float(default_duration)
                first_start = start if first_start is None else min(first_start, start)
                last_end = max(last_end, start + duration)
                frames += 1
                advance(1)
        _mux(output, _encode(video_out, None))  # drain the encoder's look-ahead
        for stream in audio.values():
            if stream.codec_context.is_encoder:
                _mux(output, _encode(stream, None))
    except (av.error.FFmpegError, OSError) as err:
        raise OSError(f"writing {name} failed ({err}); nothing was written") from err
    return VideoStats(frames, *size, last_end - (first_start or 0.0), list(audio_seconds.values()))


def _first_frame_size(src: Path) -> tuple[int, int]:
    """Width and height of the first frame, upright (the header's size may differ from the frames')."""
    with open_video(src) as container:
        try:
            for frame in container.decode(video=0):
                picture = upright(frame)
                return picture.shape[1], picture.shape[0]
        except av.error.FFmpegError as err:
            raise ImageReadError(f"{src}: the first video frame cannot be decoded ({err}); check the file") from err
    raise ImageReadError(f"{src}: no frame could be decoded; check the file and its codec")


def _decode(packet, src: Path, decoded: int, declared: int):
    try:
        return packet.decode()
    except av.error.FFmpegError as err:
        of = f"of the {declared} frames its container declares " if declared else ""
        raise ImageReadError(f"{src}: only {decoded} {of}could be decoded ({err}): the file is truncated or "
                             f"damaged; nothing was written") from err


def _encode(stream, frame):
    """The packets ``stream``'s encoder gives for ``frame`` (None drains it)."""
    return stream.encode(frame)


def _mux(output, packets) -> None:
    output.mux(packets)


def _add_video(output, video_in, encoder: str, size: tuple[int, int], crf: int, name: str):
    rate = video_in.average_rate or video_in.guessed_rate or Fraction(25)
    stream = output.add_stream(encoder, rate=rate)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.time_base = video_in.time_base
    stream.codec_context.time_base = video_in.time_base
    if encoder in ("libx264", "libvpx-vp9"):
        stream.options = {"crf": str(crf), **({"b:v": "0"} if encoder == "libvpx-vp9" else {})}
    else:  # no crf: a bitrate for about the same quality on cartoons
        stream.bit_rate = size[0] * size[1] * float(rate) * (51 - crf) // 16
    stream.thread_type = "AUTO"
    return stream


def _add_audio(output, stream, suffix: str):
    """A copy of the audio ``stream`` in ``output``, or an encoder when the container cannot hold its codec."""
    if stream.codec_context.name in output.supported_codecs:
        return output.add_stream_from_template(stream)
    codec = AUDIO_ENCODERS.get(suffix.lower(), "aac")
    log.warning("%s audio cannot go into %s files; re-encoding it to %s", stream.codec_context.name, suffix, codec)
    encoder = output.add_stream(codec, rate=48000 if codec == "libopus" else stream.rate)
    encoder.layout = stream.layout.name if stream.channels <= 2 else "stereo"
    return encoder


def _pass_audio(output, stream, packet) -> float:
    """Copy or re-encode one audio packet; its duration in seconds."""
    if not stream.codec_context.is_encoder:
        seconds = float(packet.duration * packet.time_base) if packet.duration and packet.time_base else 0.0
        if packet.dts is not None:
            packet.stream = stream
            _mux(output, packet)
        return seconds
    seconds = 0.0
    for frame in packet.decode():
        seconds += frame.samples / frame.sample_rate
        frame.pts = None  # the encoder numbers its own samples
        _mux(output, _encode(stream, frame))
    return seconds


def _check_output(path: Path, name: str, written: VideoStats, frame_seconds: float) -> None:
    """Re-open the written file: OSError unless its frames, size and durations are those written."""
    try:
        with av.open(str(path)) as container:
            got = _measure(container)
    except (av.error.FFmpegError, OSError) as err:
        raise OSError(f"the written video {name} cannot be read back ({err}); nothing was written") from err
    if (got.frames, got.width, got.height) != (written.frames, written.width, written.height):
        raise OSError(f"the written video {name} reads back as {got.frames} frames of {got.width}x{got.height} "
                      f"instead of {written.frames} of {written.width}x{written.height} (disk full or codec "
                      f"failure); nothing was written")
    tolerance = max(2 * frame_seconds, 0.1)
    if abs(got.video_seconds - written.video_seconds) > tolerance:
        raise OSError(f"the written video {name} lasts {got.video_seconds:.2f} s instead of "
                      f"{written.video_seconds:.2f} s; nothing was written")
    if len(got.audio_seconds) != len(written.audio_seconds) or any(
        abs(a - b) > tolerance for a, b in zip(got.audio_seconds, written.audio_seconds)
    ):
        raise OSError(f"the written video {name} has audio of {got.audio_seconds} s instead of "
                      f"{written.audio_seconds} s; nothing was written")


def _measure(container) -> VideoStats:
    """Decode every video and audio frame of an open container: its :class:`VideoStats`."""
    video = container.streams.video[0]
    frames, width, height, first_start, last_end = 0, 0, 0, None, 0.0
    audio_seconds = {stream.index: 0.0 for stream in container.streams.audio}
    for packet in container.demux(video, *container.streams.audio):
        for frame in packet.decode():
            if packet.stream.type == "audio":
                audio_seconds[packet.stream.index] += frame.samples / frame.sample_rate
                continue
            frames, width, height = frames + 1, frame.width, frame.height
            start = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
            duration = float(frame.duration * frame.time_base) if frame.duration else 1 / float(video.average_rate or 25)
            first_start = start if first_start is None else min(first_start, start)
            last_end = max(last_end, start + duration)
    return VideoStats(frames, width, height, last_end - (first_start or 0.0), list(audio_seconds.values()))
