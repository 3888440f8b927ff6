"""Run by the PyTorch environment's interpreter (torch is not in the development venv): builds the models each
golden file defines, runs a forward pass and one SGD step, and prints one JSON line per file with what went
wrong (an empty list when nothing did). Usage: ``python torch_golden_check.py CLASSES INPUTS_JSON FILE...``,
where INPUTS_JSON maps a case name to the shape of one sample."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import torch

KEPT_IMPORTS = ("torch", "pytorch_lightning", "lightning")


def models_of(path: Path) -> list[torch.nn.Module]:
    """The models a file defines, built: its nn.Module classes (with their defaults) and its module-level
    nn.Sequential models, from the file's torch imports, classes and constants only (nothing trains)."""
    tree = ast.parse(path.read_text())
    kept: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if all(n.split(".")[0] in KEPT_IMPORTS for n in names):
                kept.append(node)
        elif isinstance(node, ast.ClassDef) or (
            isinstance(node, ast.Assign) and _constant_or_sequential(node.value)
        ):
            kept.append(node)
    namespace: dict[str, object] = {}
    exec(compile(ast.Module(kept, []), str(path), "exec"), namespace)  # noqa: S102 (our own golden files)
    built = [v for v in namespace.values() if isinstance(v, torch.nn.Module)]
    classes = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)]
    built += [cls() for cls in classes if cls.__module__ in ("builtins", None)]
    return built


def _constant_or_sequential(value: ast.expr) -> bool:
    if isinstance(value, ast.Call):
        return ast.unparse(value.func).endswith("Sequential")
    return isinstance(value, ast.Constant)


def problems(path: Path, shape: list[int], classes: int) -> list[str]:
    """What is wrong with the file's models: none built, a wrong output shape, a weight one step left alone."""
    models = models_of(path)
    if not models:
        return [f"{path.name} defines no model"]
    found = []
    for model in models:
        torch.manual_seed(0)
        # As scripts do: the optimizer is made before the first batch (a LazyLinear is not sized yet).
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        out = model(torch.rand(4, *shape) * 255)
        if tuple(out.shape) != (4, classes):
            found.append(f"{path.name}: {type(model).__name__} gives {tuple(out.shape)}")
            continue
        before = [p.detach().clone() for p in model.parameters()]
        torch.nn.functional.cross_entropy(out, torch.arange(4)).backward()
        optimizer.step()
        # Every weight learns (a bias before a BatchNorm rightly gets no gradient).
        named = list(model.named_parameters())
        same = [
            n for (n, p), b in zip(named, before, strict=True) if n.endswith("weight") and torch.equal(p, b)
        ]
        if same:
            found.append(f"{path.name}: one SGD step left {same} as they were")
    return found


def main() -> None:
    classes, inputs = int(sys.argv[1]), json.loads(sys.argv[2])
    for name in sys.argv[3:]:
        path = Path(name)
        try:
            found = problems(path, inputs[path.name.split(".")[0]], classes)
        except Exception as error:  # noqa: BLE001 (reported to the test, which fails on it)
            found = [f"{path.name}: {type(error).__name__}: {error}"]
        print(json.dumps({"file": path.name, "problems": found}), flush=True)


if __name__ == "__main__":
    main()
