"""The state of a PyTorch training at an epoch's end, saved whole, and put back in a restarted training.

What is saved: the ``state_dict`` of the script's modules (each model the script made, not its layers:
modules that no other module holds), of its optimizers and learning-rate schedulers, the random number
generators (torch's, CUDA's, numpy's, Python's, the training ``DataLoader``'s own) and where the training was
(its epoch loop, the epoch). Objects are named by their class and their rank among the objects of that
class in the order the script made them (``Net#0``, ``Adam#0``): a script run again makes them again in the
same order. A checkpoint is written to a temporary file and renamed into place, so a kill while writing
leaves the one before intact; the two newest are kept. Imported by torch_hooks.py, once torch is.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

KEEP = 2
FORMAT = 1


@dataclass
class Made:
    """The script's modules, optimizers and schedulers, in the order it made them (held weakly)."""

    modules: list[weakref.ref[Any]] = field(default_factory=list)
    optimizers: list[weakref.ref[Any]] = field(default_factory=list)
    schedulers: list[weakref.ref[Any]] = field(default_factory=list)
    generators: list[weakref.ref[Any]] = field(default_factory=list)  # of the training DataLoaders
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, obj: Any) -> None:
        with self.lock:
            refs: list[weakref.ref[Any]] = getattr(self, kind)
            if len(refs) > 256:  # a script that makes modules in a loop: forget the dead ones
                refs[:] = [r for r in refs if r() is not None]
            if not any(r() is obj for r in refs):
                refs.append(weakref.ref(obj))

    def named(self, kind: str) -> dict[str, Any]:
        """The living objects of ``kind`` by name (``Net#0``); for modules, only the outermost ones."""
        with self.lock:
            alive = [o for o in (r() for r in getattr(self, kind)) if o is not None]
        if kind == "modules":
            inner = {id(child) for m in alive for child in m.modules() if child is not m}
            alive = [m for m in alive if id(m) not in inner and _has_state(m)]
        names: dict[str, Any] = {}
        counts: dict[str, int] = {}
        for obj in alive:
            cls = type(obj).__qualname__
            names[f"{cls}#{counts.get(cls, 0)}"] = obj
            counts[cls] = counts.get(cls, 0) + 1
        return names


def _has_state(module: Any) -> bool:
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _plain(random.getstate())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        name, keys, pos, has_gauss, cached = numpy.random.get_state()
        state["numpy"] = [str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = sys.modules.get("numpy")
    if numpy is not None and "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        numpy.random.set_state((name, numpy.asarray(keys, dtype=numpy.uint32), pos, has_gauss, cached))


def _plain(value: Any) -> Any:
    """Python's random state as lists (what ``torch.load(weights_only=True)`` reads back)."""
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def capture(made: Made, where: dict[str, Any]) -> dict[str, Any]:
    """Everything a restarted training needs, at this moment; ``where``: its loop and epoch."""
    return {
        "format": FORMAT,
        **where,
        "modules": {name: m.state_dict() for name, m in made.named("modules").items()},
        "optimizers": {name: o.state_dict() for name, o in made.named("optimizers").items()},
        "schedulers": {name: s.state_dict() for name, s in made.named("schedulers").items()},
        "generators": {name: g.get_state() for name, g in made.named("generators").items()},
        "rng": rng_state(),
    }


def unfit(made: Made, state: dict[str, Any]) -> list[str]:
    """Why a checkpoint cannot be put back into this run of the script (none: it can): objects it holds
    that this run has not made (yet), or modules whose weights have other names or shapes. Checked before
    anything is loaded, so a refused checkpoint leaves the script's objects as they were."""
    why = []
    for kind in ("modules", "optimizers", "schedulers"):
        objects = made.named(kind)
        for name, saved in state.get(kind, {}).items():
            if name not in objects:
                why.append(f"no {name}")
            elif kind == "modules" and _shapes(objects[name].state_dict()) != _shapes(saved):
                why.append(f"{name} of another shape")
    return why


def _shapes(state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def restore(made: Made, state: dict[str, Any]) -> None:
    """Put ``state`` back into the objects of this run of the script (see :func:`unfit` first)."""
    for kind in ("modules", "optimizers", "schedulers", "generators"):
        objects = made.named(kind)
        for name, saved in state.get(kind, {}).items():
            if name in objects:
                if kind == "generators":
                    objects[name].set_state(saved)
                else:
                    objects[name].load_state_dict(saved)
    set_rng_state(state["rng"])


@dataclass
class Folder:
    """The checkpoints of one training (``checkpoints/torch-<fit>/ckpt-<epoch>.pt``)."""

    path: Path
    warned: bool = False

    def newest(self, say: Callable[[str], None]) -> dict[str, Any] | None:
        """The newest checkpoint that reads back; a corrupt one is said and the one before tried."""
        found = sorted(self.path.glob("ckpt-*.pt"), reverse=True)
        for checkpoint in found:
            try:
                state: dict[str, Any] = torch.load(checkpoint, map_location="cpu", weights_only=True)
                if state.get("format") == FORMAT:
                    return state
            except Exception as e:  # noqa: BLE001 (a checkpoint cut short, of any sort)
                say(
                    f"checkpoint {checkpoint.name} cannot be read ({type(e).__name__}); trying the one before"
                )
        return None

    def write(self, state: dict[str, Any], say: Callable[[str], None]) -> str | None:
        """Save ``state`` whole (a temporary file renamed into place); its name, or None when the disk
        refused (said once: training goes on without checkpoints)."""
        name = f"ckpt-{int(state['epoch']):06d}.pt"
        tmp = self.path / f".tmp-{name}"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)
            torch.save(state, tmp)
            os.replace(tmp, self.path / name)
            for old in sorted(self.path.glob("ckpt-*.pt"), reverse=True)[KEEP:]:
                old.unlink(missing_ok=True)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if not self.warned:
                self.warned = True
                say(f"warning: could not write a checkpoint ({e.strerror or e}); training goes on without it")
            return None
        return name
