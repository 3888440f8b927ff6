"""The PyTorch model behind a trial's metric: which module it is, what it was called on, and saving it.

Each module the script makes is watched until its first call (a forward pre-hook that removes itself), which
records the form of its input (shape with a free batch dimension, dtype) and keeps two rows of it as an
example. When the script has ended, the model is the outermost module with trained parameters (those an
optimizer holds; the largest one if there are several), and it is saved into ``<trial>/model/``:

- ``model.pt``: its ``state_dict`` (``torch.save``; loads with ``torch.load(..., weights_only=True)``);
- the model in a form that loads without the script's source: ``torch.export``'s program (``model.pt2``,
  its batch dimension free), else TorchScript (``model.ts``: ``torch.jit.script``, else ``torch.jit.trace``
  on the example). Each form is loaded back and must give the module's own output on the example, or the
  next is tried. ``torch.jit`` is deprecated by torch 2.14 in favour of ``torch.export``, hence the order.

Imported once the script has imported torch (by torch_hooks), so it imports torch at its top.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mlops_harness.protocol import STATE_DICT_FILE as STATE_DICT
from mlops_harness.protocol import ModelFormat, file_sha256

EXAMPLE_ROWS = 2  # a batch of one would fix the exported program's batch dimension to 1
TOLERANCE = 1e-5
# module -> (the form of its first input, two rows of it), recorded at its first call
INPUTS: weakref.WeakKeyDictionary[Any, tuple[dict[str, Any], tuple[Any, ...]]] = weakref.WeakKeyDictionary()
WATCHING: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # module -> its hook's handle
ACTIVE = [
    True
]  # False once the model is being saved: the modules torch makes to export it are not the script's


def watch(module: Any) -> None:
    """Record the input of ``module``'s first call (then the hook goes away: no cost afterwards); never a
    module torch makes while the model is saved, nor a TorchScript one (which takes no Python hook)."""
    if not ACTIVE[0] or isinstance(module, torch.jit.ScriptModule):
        return

    def first_call(mod: Any, args: tuple[Any, ...]) -> None:
        handle = WATCHING.pop(mod, None)
        if handle is not None:
            handle.remove()
        if not ACTIVE[0] or torch.compiler.is_compiling():
            return
        try:
            found = _example(args)
        except Exception:  # noqa: BLE001 (recording an input never breaks a forward)
            found = None
        if found is not None:
            INPUTS[mod] = found

    try:
        WATCHING[module] = module.register_forward_pre_hook(first_call)
    except Exception:  # noqa: BLE001 (following a module never breaks making it)
        return


def _example(args: tuple[Any, ...]) -> tuple[dict[str, Any], tuple[Any, ...]] | None:
    if not args or not all(isinstance(a, torch.Tensor) and a.dim() >= 1 and len(a) for a in args):
        return None
    specs = [
        {"kind": "array", "shape": [None, *a.shape[1:]], "dtype": str(a.dtype).removeprefix("torch.")}
        for a in args
    ]
    rows = tuple(_rows(a.detach()[:EXAMPLE_ROWS].to("cpu").clone()) for a in args)
    return (specs[0] if len(specs) == 1 else {"kind": "list", "items": specs}), rows


def _rows(x: Any) -> Any:
    return x if len(x) >= EXAMPLE_ROWS else torch.cat([x] * EXAMPLE_ROWS)


def input_of(model: Any) -> dict[str, Any] | None:
    found = INPUTS.get(model)
    return found[0] if found is not None else None


def unwatch() -> None:
    """Remove the hooks of modules never called (a hook would be compiled with the module by TorchScript)."""
    for handle in list(WATCHING.values()):
        handle.remove()
    WATCHING.clear()


def chosen(modules: list[Any], optimizers: list[Any]) -> Any:
    """The model: of the outermost modules the script called, those whose parameters an optimizer trains
    (any with parameters when none does), the largest; None when there is none."""
    trained = {id(p) for o in optimizers for g in o.param_groups for p in g["params"]}
    called = [m for m in modules if m in INPUTS and not _is_metric(m) and _size(m)]
    preferred = [m for m in called if any(id(p) in trained for p in m.parameters())] or called
    return max(preferred, key=_size, default=None)


def _is_metric(module: Any) -> bool:
    return any(cls.__module__.startswith("torchmetrics") for cls in type(module).__mro__)


def _size(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


# -- saving --------------------------------------------------------------------------------------------


def save(model: Any, folder: Path) -> tuple[ModelFormat, dict[str, Any]]:
    """Save ``model``'s state_dict and a form that loads without the source into ``folder``; the form, and
    the fields the MODEL event adds (``state_dict``, what the forms tried before it said)."""
    ACTIVE[0] = False
    unwatch()
    model.eval()
    _write(folder / STATE_DICT, lambda path: torch.save(model.state_dict(), path))
    weights = folder / STATE_DICT
    extra: dict[str, Any] = {
        "state_dict": {
            "file": f"{folder.name}/{STATE_DICT}",
            "size_bytes": weights.stat().st_size,
            "sha256": file_sha256(weights),
        }
    }
    found = INPUTS.get(model)
    if found is None:
        raise ValueError(f"the {type(model).__name__} was never called: no input to export it on")
    example = found[1]
    tried: list[str] = []
    for fmt, write in (
        (ModelFormat.TORCH_EXPORT, _export),
        (ModelFormat.TORCHSCRIPT, _script),
        (ModelFormat.TORCHSCRIPT, _trace),
    ):
        try:
            _write(folder / fmt.file_name, lambda path, w=write: w(model, example, path))  # type: ignore[misc]
            _same_output(model, fmt, folder / fmt.file_name, example)
        except Exception as e:  # noqa: BLE001 (the next form is tried; the reasons are said)
            first = (str(e).strip().splitlines() or [""])[0][:200]
            tried.append(f"{write.__name__.strip('_')}: {type(e).__name__}: {first}")
            (folder / fmt.file_name).unlink(missing_ok=True)
            continue
        if tried:
            extra["tried"] = tried
        return fmt, extra
    raise RuntimeError("no form of the model loads back without its source: " + "; ".join(tried))


def _write(path: Path, write: Callable[[str], None]) -> None:
    partial = path.with_name(f".partial-{path.name}")  # a kill leaves no half model
    try:
        write(str(partial))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _export(model: Any, example: tuple[Any, ...], path: str) -> None:
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, example, dynamic_shapes=tuple({0: batch} for _ in example))
    torch.export.save(program, path)


def _script(model: Any, example: tuple[Any, ...], path: str) -> None:
    torch.jit.save(torch.jit.script(model), path)


def _trace(model: Any, example: tuple[Any, ...], path: str) -> None:
    torch.jit.save(torch.jit.trace(model, example), path)


def load(path: Path, fmt: ModelFormat) -> Any:
    """The model a file of ``fmt`` holds, ready to call."""
    if fmt is ModelFormat.TORCH_EXPORT:
        return torch.export.load(str(path)).module()
    return torch.jit.load(str(path), map_location="cpu")


def _same_output(model: Any, fmt: ModelFormat, path: Path, example: tuple[Any, ...]) -> None:
    with torch.no_grad():
        expected, got = model(*example), load(path, fmt)(*example)
    if not isinstance(expected, torch.Tensor) or not isinstance(got, torch.Tensor):
        return  # several outputs: it loaded and ran, which is what can be checked here
    if expected.shape != got.shape or not torch.allclose(expected, got, atol=TOLERANCE, rtol=TOLERANCE):
        raise ValueError("the saved form does not give the module's own output on its example")


def predict(model: Any, batch: Any) -> Any:
    """``model`` on a batch of numpy arrays (one, or a list of them: its inputs)."""
    inputs = batch if isinstance(batch, list) else [batch]
    with torch.no_grad():
        return model(*(torch.as_tensor(x) for x in inputs))
