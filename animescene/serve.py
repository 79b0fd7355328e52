"""``animescene serve``: cartoonize photos and short videos in the browser (a Gradio app, lesson 07).

The page offers every generator on the machine (:func:`find_models`): the registry's weights that
are downloaded (``"official"``), the generators made here by name (``animescene finetune`` and
``animescene distill --name NAME``) and the files :func:`~animescene.models.save_generator` wrote into the
``--models`` folder. A person uploads photos or a video, picks a model, compares each photo with its
cartoon on a before/after slider and downloads the results.

The work is :meth:`Cartoonizer.cartoonize_paths`, so the page follows the command line's rules: the
same file types, the same reasons for a file it cannot read (corrupt, a decompression bomb), shown in
the page, file by file; Gradio refuses uploads above ``--max-file-size`` before they reach the app.

Privacy: the server listens on 127.0.0.1 unless ``--host`` says otherwise, Gradio's analytics are off
(the page loads nothing from the internet), and everything the app writes (uploads, cartoons) is in
one temporary folder: a session's files are deleted when its tab closes, the folder when the server
stops (Ctrl-C or SIGTERM).
"""

import argparse
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .backends import BACKENDS
from .errors import UsageError
from .images import IMAGE_SUFFIXES, read_image, to_uint8
from .inference import Cartoonizer
from .models import GeneratorWeights, made_generators_dir

DEFAULT_PORT = 7860
DEFAULT_MAX_FILE_MB = 100


def find_models(models_dir=None) -> dict[str, object]:
    """The generators this machine has, by the name the page shows -> what :class:`Cartoonizer` takes.

    Registry weights whose file is downloaded come first, by their short name (``"official"``), then the
    generators made here, by their names, then each ``*.pt`` file of ``models_dir``, by its file name.

    Raises:
        UsageError: ``models_dir`` is given but is not a folder.
    """
    models: dict[str, object] = {m.value: m for m in GeneratorWeights if m.filename and m.cache_path().is_file()}
    # the generators made here (animescene finetune / distill --name NAME), by their names
    models.update((path.stem, path) for path in sorted(made_generators_dir().glob("*.pt")) if path.stem not in models)
    if models_dir is not None:
        folder = Path(models_dir).expanduser()
        if not folder.is_dir():
            raise UsageError(f"--models {folder} is not a folder; give the folder of generator files written "
                             f"by animescene.models.save_generator")
        models.update((path.name, path) for path in sorted(folder.glob("*.pt")))
    return models


def missing_official_note(models: dict[str, object]) -> str:
    """A line saying how to get the registry's weights that are not on this machine ("" when all are)."""
    missing = [m for m in GeneratorWeights if m.value not in models]
    return " ".join(f"The {m.value!r} weights ({m.licence.split(':')[0]}) are not on this machine: get them "
                    f"with {m.how_to_get()} and restart." for m in missing)


@dataclass
class Result:
    """What one click produced: the files to download, the (photo, cartoon) image pairs to compare,
    the first cartoon video, and a Markdown line per input that could not be cartoonized."""

    written: list[Path] = field(default_factory=list)
    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    video: Path | None = None
    message: str = ""


class WebDemo:
    """The app's work, apart from its page: cartoonize uploads into a session's folder, forget a session.

    Args:
        models: name -> weights, as :func:`find_models` returns.
        work_dir: where the sessions' cartoons go (each session in a sub-folder, each click in its own).
        device: ``"auto"`` (the GPU when there is one) or a torch device, for every model.
        backend: what runs the generators (:mod:`animescene.backends`): ``"torch"`` (exact) or
            ``"auto"``, the fastest one installed (int8 on a CPU: the serve command's default).
    """

    def __init__(self, models: dict[str, object], work_dir, device="auto", backend: str = "torch"):
        self.models, self.work_dir, self.device, self.backend = models, Path(work_dir), device, backend
        self._cartoonizers: dict[str, Cartoonizer] = {}
        self._uploads: dict[str, set[Path]] = {}  # session -> the uploads to delete when it ends

    def cartoonizer(self, name: str) -> Cartoonizer:
        """The :class:`Cartoonizer` of model ``name``, loaded once; UsageError for an unknown name."""
        if name not in self.models:
            hint = missing_official_note(self.models) or "restart with --models DIR to add generator files"
            raise UsageError(f"no model {name!r} on this machine (there are: {', '.join(self.models) or 'none'}); "
                             f"{hint}")
        if name not in self._cartoonizers:
            self._cartoonizers[name] = Cartoonizer(self.models[name], device=self.device, backend=self.backend)
        return self._cartoonizers[name]

    def cartoonize(self, uploads, name: str, session: str, progress: bool = True) -> Result:
        """Cartoonize the uploaded files ``uploads`` (paths) with model ``name`` for ``session``.

        A file that fails is named in :attr:`Result.message` with the command line's reason, and the
        others are still done; a model that cannot load gives only a message. ``progress`` shows tqdm
        bars (files, video frames), which the page turns into its progress bar.
        """
        uploads = [Path(path) for path in uploads or []]
        self._uploads.setdefault(session, set()).update(uploads)
        if not uploads:
            return Result(message="Upload photos or a video first.")
        out_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self._session_dir(session)))
        try:
            report = self.cartoonizer(name).cartoonize_paths(uploads, out_dir, progress=progress)
        except UsageError as err:  # a model that cannot load, NaN outputs, two uploads with one name
            return Result(message=f"**Refused:** {err}")
        source_of = {out_dir / path.name: path for path in uploads}  # uploads are files: out/<name>
        result = Result(written=report.written, message="\n\n".join(
            f"**{path.name}** was not cartoonized: {reason}" for path, reason in report.failed))
        for dst in report.written:
            if dst.suffix.lower() in IMAGE_SUFFIXES:
                result.pairs.append((source_of[dst], dst))
            elif result.video is None:
                result.video = dst
        return result

    def forget(self, session: str) -> None:
        """Delete a session's uploads and cartoons (its tab was closed)."""
        for path in self._uploads.pop(session, ()):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.work_dir / session, ignore_errors=True)

    def _session_dir(self, session: str) -> Path:
        path = self.work_dir / session
        path.mkdir(parents=True, exist_ok=True)
        return path

    def page(self, note: str = ""):
        """The Gradio page (a ``gr.Blocks``) over this demo; ``note`` is shown under the title."""
        import gradio as gr

        def compare(pairs, index):
            """The slider's value: the photo and its cartoon as the library reads them."""
            if not pairs:
                return None
            photo, cartoon = pairs[int(index or 0)]
            return to_uint8(read_image(photo)), to_uint8(read_image(cartoon))

        # `progress` is never called: declaring it makes Gradio show the library's tqdm bars (files, video
        # frames) as the page's progress bar
        def run(files, name, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
            result = self.cartoonize(files, name, request.session_hash)
            pairs = [(str(a), str(b)) for a, b in result.pairs]
            choices = [(Path(cartoon).name, i) for i, (_, cartoon) in enumerate(pairs)]
            return (pairs, gr.Dropdown(choices=choices, value=0 if pairs else None, visible=len(pairs) > 1),
                    compare(pairs, 0), gr.Video(value=result.video, visible=result.video is not None),
                    [str(path) for path in result.written] or None, result.message)

        def forget(request: gr.Request):  # the tab was closed
            self.forget(request.session_hash)

        with gr.Blocks(title="animescene", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
            gr.Markdown(f"# Photo → anime scene\n{note}")
            with gr.Row():
                with gr.Column():
                    files = gr.File(label="Photos or a short video", file_count="multiple", elem_id="uploads")
                    model = gr.Dropdown(list(self.models), value=next(iter(self.models), None), label="Model")
                    button = gr.Button("Cartoonize", variant="primary", elem_id="cartoonize")
                    message = gr.Markdown(elem_id="message")
                with gr.Column():
                    shown = gr.Dropdown(label="Compare", visible=False)
                    slider = gr.ImageSlider(label="Before / after", format="png", elem_id="compare")
                    video = gr.Video(label="Cartoon video", visible=False)
                    downloads = gr.File(label="Download", file_count="multiple", elem_id="downloads")
            pairs = gr.State([])
            button.click(run, [files, model], [pairs, shown, slider, video, downloads, message])
            shown.change(compare, [pairs, shown], slider)
            page.unload(forget)
        return page


def serve(models_dir=None, host: str = "127.0.0.1", port: int = DEFAULT_PORT, device="auto",
          max_file_mb: int = DEFAULT_MAX_FILE_MB, backend: str = "auto") -> None:
    """Run the web demo until Ctrl-C (or SIGTERM); prints its URL. Everything it writes is in a temporary
    folder, deleted when it stops."""
    from .runtime import resolve_device

    resolve_device(device)  # a missing GPU is a usage error now, not on the first upload
    models = find_models(models_dir)
    note = missing_official_note(models)
    if not models:
        note += " No model to offer: give a folder of generator files with --models DIR."
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as Ctrl-C does: clean up on the way out
    with tempfile.TemporaryDirectory(prefix="animescene-serve-") as work:
        # Gradio reads these when imported: so it never calls out, and writes nothing outside `work`
        os.environ.update(GRADIO_TEMP_DIR=str(Path(work) / "gradio"), GRADIO_ANALYTICS_ENABLED="False")
        try:
            import gradio  # noqa: F401  (a missing extra is one line, not a traceback)
        except ImportError as err:
            raise UsageError("animescene serve needs Gradio: pip install 'animescene[serve]' (make env installs it)") from err
        # the cartoons go inside Gradio's folder, so it serves them as they are instead of keeping copies
        page = WebDemo(models, Path(work) / "gradio" / "sessions", device, backend).page(note)
        try:
            _, url, _ = page.launch(server_name=host, server_port=port, max_file_size=max_file_mb * 1024 ** 2,
                                    share=False, ssr_mode=False, quiet=True, prevent_thread_lock=True)
        except OSError as err:
            raise UsageError(f"cannot listen on {host}:{port} ({err}); choose another --port") from err
        print(f"animescene serve: open {url} (Ctrl-C stops)", flush=True)
        try:
            page.block_thread()
        finally:
            page.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="animescene serve", description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="a folder of generator files (animescene.models.save_generator) to offer")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on; 0.0.0.0 shows the demo to the whole network")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backend", default="auto", choices=("auto", *BACKENDS),
                        help="what runs the generator: auto (the fastest installed: int8 on a CPU) or one of them")
    parser.add_argument("--max-file-size", type=int, default=DEFAULT_MAX_FILE_MB, metavar="MB",
                        help="uploads larger than this are refused")
    args = parser.parse_args(argv)
    serve(args.models, args.host, args.port, args.device, args.max_file_size, args.backend)
    return 0
