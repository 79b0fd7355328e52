"""The export's TF1 upsampling (animescene/export.py): pooled form and fused linear Resize equal upsample2x_tf1."""

import pytest
import torch

from animescene.export import upsample2x_pooled
from animescene.models import UNetGenerator, upsample2x_tf1


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 8), (1, 4, 7, 2)])
def test_pooled_upsampling_equals_the_tf1_resize(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(upsample2x_pooled(x), upsample2x_tf1(x), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_tf_mode_export_has_one_linear_resize_per_upsampling_and_matches_pytorch(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from animescene.export import export_onnx, verify_onnx

    generator = UNetGenerator(channels=8, num_blocks=1, tf_mode=True, bounded=False).eval()
    path = export_onnx(generator, tmp_path / "g.onnx", example_size=(32, 48))
    nodes = onnx.load(str(path)).graph.node
    modes = [next(a.s for a in node.attribute if a.name == "mode") for node in nodes if node.op_type == "Resize"]
    assert modes == [b"linear", b"linear"]
    assert not [node.op_type for node in nodes if node.op_type in ("AveragePool", "Pad")]
    assert verify_onnx(path, generator, sizes=((16, 24), (40, 64))) < 1e-4
