"""The library's layers (docs/architecture.md): what may import what, and the size limits of its rooms.

The import graph is read from the sources with ``ast`` (imports inside functions count too), so a lazy
import cannot slip past the rule.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "animescene"

# docs/architecture.md draws these layers; a module may import its own layer and the layers below it.
# Training and inference are side by side on purpose: neither may import the other.
LAYERS = {
    "base": (0, {"errors", "runtime", "images", "filters_cpu", "convert", "archives", "transfers"}),
    "fetching": (1, {"registry", "downloads", "weights"}),
    "method": (2, {"filters", "segmentation", "representations", "models", "vgg", "edges", "losses"}),
    "data": (3, {"data", "demo_set"}),
    "training": (4, {"train_config", "train", "checkpoint", "runlog", "distributed", "finetune", "distill"}),
    "inference": (4, {"inference", "video", "temporal", "export", "backends"}),
    "evaluation": (5, {"features", "metrics", "evaluate", "distances"}),
    "front ends": (6, {"cli", "__main__", "bench", "app", "checks", "serve", "studio"}),
}
LAYER_OF = {module: name for name, (_, modules) in LAYERS.items() for module in modules}


def _files(module: str) -> list[Path]:
    """The source files of a module: ``name.py``, or every file of the sub-package ``name/``."""
    folder = PACKAGE / module
    return sorted(folder.glob("*.py")) if folder.is_dir() else [PACKAGE / f"{module}.py"]


def _imports(module: str) -> set[str]:
    """The ``animescene`` modules that ``module`` imports, relative or absolute, anywhere in its files."""
    depth = 2 if (PACKAGE / module).is_dir() else 1  # `from ..x` inside a sub-package is `from .x` here
    found = set()
    for file in _files(module):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == depth:
                found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("animescene."):
                found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("animescene."))
    return found - {module}


MODULES = sorted(
    [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    + [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
)
GRAPH = {module: _imports(module) for module in MODULES}


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in GRAPH[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_every_module_has_a_layer():
    assert sorted(set(MODULES) - set(LAYER_OF)) == [], "add new modules to LAYERS and docs/architecture.md"
    assert sorted(set(LAYER_OF) - set(MODULES)) == [], "LAYERS names a module that no longer exists"


@pytest.mark.parametrize("module", MODULES)
def test_imports_go_down_the_layers(module):
    layer = LAYER_OF[module]
    rank = LAYERS[layer][0]
    for target in GRAPH[module]:
        target_layer = LAYER_OF[target]
        target_rank = LAYERS[target_layer][0]
        assert target_rank < rank or target_layer == layer, (
            f"{module} ({layer}) imports {target} ({target_layer}): layers import only their own layer and "
            "the layers below (docs/architecture.md)"
        )


@pytest.mark.parametrize("module", sorted(LAYERS["inference"][1] | LAYERS["evaluation"][1]))
def test_inference_and_evaluation_never_reach_training(module):
    reached = _reachable(module) & LAYERS["training"][1]
    assert not reached, f"{module} reaches the training modules {sorted(reached)}"


def test_the_reachability_check_can_fail():
    assert "train_config" in _reachable("train") and "losses" in _reachable("train")


def test_no_module_over_500_lines_and_no_class_over_200():
    for file in [f for module in MODULES for f in _files(module)]:
        source = file.read_text(encoding="utf-8")
        name = file.relative_to(PACKAGE)
        assert source.count("\n") <= 500, f"{name} has {source.count(chr(10))} lines; split it by what it holds"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 200, f"{name}: {node.name} is {length} lines long"
