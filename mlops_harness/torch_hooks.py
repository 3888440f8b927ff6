"""PyTorch instrumentation: what a plain training loop does (passes over a ``DataLoader``, the losses
``backward()`` is called on, the modules, optimizers and schedulers it makes; see torch_training.py), the
metrics it computes with torchmetrics, and the accuracy it prints.

Imported by the post-import hook of ``torch`` (see ``runner.py``) once the script has imported torch, so it
imports torch at its top; the torchmetrics hooks are installed when the script imports torchmetrics.
The metric, in order (see metrics.py): Lightning's ``Trainer.test`` metrics, a torchmetrics metric's
``compute()`` or a ``sklearn.metrics`` call (the last one the script made after training), ``accuracy.txt``,
the last accuracy the script printed after training (``Test Accuracy: 97.8 %``, ``acc=0.978``; a test one
before a validation one), Lightning's validation metrics, then a regression's loss.
"""

from __future__ import annotations

import builtins
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.utils.data

from mlops_harness import printed, torch_loops, torch_model
from mlops_harness.recorder import Recorder
from mlops_harness.torch_training import Training

STATE: dict[str, Training] = {}  # the one Training of this process, once torch is imported
# torchmetrics classes by what they measure (lower case, in the class's name)
METRIC_KINDS = (
    ("accuracy", "accuracy"),
    ("r2", "r2"),
    ("meansquarederror", "loss"),
    ("meanabsoluteerror", "loss"),
)


def install(module: Any, rec: Recorder, seed: int | None) -> Training:
    """Hook torch's DataLoader, backward, modules, optimizers and schedulers (once), seed it, and follow
    what the script prints."""
    if "training" in STATE:
        return STATE["training"]
    training = Training(rec, rec.out)
    STATE["training"] = training
    torch_loops.REGISTRY.watcher = training
    if seed is not None:
        module.manual_seed(seed)
    data = torch.utils.data
    data.DataLoader.__init__ = _made_loader(data.DataLoader.__init__, training)
    data.DataLoader.__iter__ = _wrap_iter(data.DataLoader.__iter__, training)
    base_iter = data.dataloader._BaseDataLoaderIter
    base_iter.__next__ = _wrap_next(base_iter.__next__, training)
    torch.Tensor.backward = _wrap_backward(torch.Tensor.backward, training)
    torch.nn.Module.__init__ = _made(torch.nn.Module.__init__, training, "modules")
    torch.optim.Optimizer.__init__ = _made(torch.optim.Optimizer.__init__, training, "optimizers")
    scheduler = getattr(torch.optim.lr_scheduler, "LRScheduler", None)
    for cls in {c for c in (scheduler, getattr(torch.optim.lr_scheduler, "ReduceLROnPlateau", None)) if c}:
        cls.__init__ = _made(cls.__init__, training, "schedulers")
    builtins.print = _wrap_print(builtins.print, training)
    return training


def _made(original: Callable[..., Any], training: Training, kind: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        training.made.add(kind, self)
        if kind == "modules":
            torch_model.watch(self)

    return init


def _made_loader(original: Callable[..., Any], training: Training) -> Callable[..., Any]:
    """A DataLoader's own random generators (``generator=``, its sampler's) are saved with the training."""

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        for generator in (
            getattr(self, "generator", None),
            getattr(getattr(self, "sampler", None), "generator", None),
        ):
            if isinstance(generator, torch.Generator):
                training.made.add("generators", generator)

    return init


def _wrap_iter(original: Callable[..., Any], training: Training) -> Callable[..., Any]:
    @functools.wraps(original)
    def iterate(self: Any) -> Any:
        iterator = original(self)
        if not training.in_lightning:
            try:
                training.pass_started(self, iterator)
            except torch_loops.TrialEnded:
                raise
            except Exception as e:  # noqa: BLE001 (following the training must never break it)
                training.rec.note(f"could not follow a DataLoader pass: {type(e).__name__}: {e}")
        return iterator

    return iterate


def _wrap_next(original: Callable[..., Any], training: Training) -> Callable[..., Any]:
    @functools.wraps(original)
    def next_batch(self: Any) -> Any:
        try:
            return original(self)
        except StopIteration:
            current = self.__dict__.get("_mlops_pass")
            if current is not None and not current.done:
                training.pass_ended(current)
            raise

    return next_batch


def _wrap_backward(original: Callable[..., Any], training: Training) -> Callable[..., Any]:
    @functools.wraps(original)
    def backward(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            training.backward(self)
        except Exception as e:  # noqa: BLE001
            training.rec.note(f"could not follow backward(): {type(e).__name__}: {e}")
        return original(self, *args, **kwargs)

    return backward


# -- what the script prints ----------------------------------------------------------------------------


def _wrap_print(original: Callable[..., None], training: Training) -> Callable[..., None]:
    """``print`` as it was, and each line the script itself prints to the terminal read for a metric."""

    def print_(
        *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
    ) -> None:
        to_terminal = file is None or file is sys.stdout or file is sys.stderr
        caller = sys._getframe(1)
        if not to_terminal or not os.path.realpath(caller.f_code.co_filename).startswith(training.work_root):
            original(*args, sep=sep, end=end, file=file, flush=flush)
            return
        text = (" " if sep is None else sep).join(str(a) for a in args)
        original(text, end=end, file=file, flush=flush)
        try:
            where = f"{os.path.relpath(caller.f_code.co_filename, training.rec.work_root)}:{caller.f_lineno}"
            for line in text.splitlines():
                _read_line(line, where, training)
        except Exception as e:  # noqa: BLE001 (reading a line never breaks the script's print)
            training.rec.note(f"could not read a printed line: {type(e).__name__}: {e}")

    return print_


def _read_line(line: str, where: str, training: Training) -> None:
    found = printed.mentions(line)
    if not found:
        return
    train = training.training_now()
    shown = line.strip()[:120]
    for kind in ("accuracy", "r2", "loss"):
        mention = printed.chosen(found, kind)
        if mention is None:
            continue
        qualifier = "train" if train else mention.qualifier
        name = {"test": f"printed_test_{kind}", "train": f"printed_train_{kind}"}.get(
            qualifier, f"printed_{kind}"
        )
        training.rec.observe(name, mention.value, f"printed at {where}: {shown!r}")


# -- torchmetrics ----------------------------------------------------------------------------------------

LOCAL = threading.local()


def install_torchmetrics(module: Any, rec: Recorder) -> None:
    """The values of torchmetrics metrics the script computes (``metric.compute()``, and the functional
    ``accuracy``/``r2_score``), each named by what it measures; a metric updated during a training pass is
    a training one. The batch values ``metric(preds, target)`` returns are not recorded."""
    training = STATE.get("training")
    metric = getattr(module, "Metric", None)
    if training is None or metric is None or getattr(metric, "_mlops_hooked", False):
        return
    compute, update, forward = metric._wrap_compute, metric._wrap_update, metric.forward

    def wrap_compute(self: Any, inner: Callable[..., Any]) -> Callable[..., Any]:
        wrapped = compute(self, inner)

        @functools.wraps(wrapped)
        def computed(*args: Any, **kwargs: Any) -> Any:
            value = wrapped(*args, **kwargs)
            if not getattr(LOCAL, "forward", 0) and not training.in_lightning:
                _observe_metric(self, value, training)
            return value

        return computed

    def wrap_update(self: Any, inner: Callable[..., Any]) -> Callable[..., Any]:
        wrapped = update(self, inner)

        @functools.wraps(wrapped)
        def updated(*args: Any, **kwargs: Any) -> Any:
            if training.training_now():
                self.__dict__["_mlops_train"] = True
            return wrapped(*args, **kwargs)

        return updated

    def forward_(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _in_forward():
            return forward(self, *args, **kwargs)

    metric._wrap_compute, metric._wrap_update, metric.forward = wrap_compute, wrap_update, forward_
    metric._mlops_hooked = True
    functional = getattr(module, "functional", None)
    for name, kind in (("accuracy", "accuracy"), ("r2_score", "r2")):
        if callable(getattr(functional, name, None)):
            setattr(functional, name, _wrap_functional(getattr(functional, name), kind, training))


def _wrap_functional(original: Callable[..., Any], kind: str, training: Training) -> Callable[..., Any]:
    """``torchmetrics.functional.accuracy(preds, target, ...)`` as the script calls it."""

    @functools.wraps(original)
    def measured(*args: Any, **kwargs: Any) -> Any:
        value = original(*args, **kwargs)
        rec = training.rec
        if training.in_lightning or not hasattr(value, "numel") or value.numel() != 1:
            return value
        if rec.called_from_user():
            name = f"train_{kind}" if training.training_now() else kind
            rec.observe(
                name, float(value), f"torchmetrics.functional.{original.__name__} at {_user_line(rec)}"
            )
        return value

    return measured


@contextmanager
def _in_forward() -> Iterator[None]:
    LOCAL.forward = getattr(LOCAL, "forward", 0) + 1
    try:
        yield
    finally:
        LOCAL.forward -= 1


def _observe_metric(metric: Any, value: Any, training: Training) -> None:
    lowered = type(metric).__name__.lower()
    kind = next((k for part, k in METRIC_KINDS if part in lowered), None)
    if kind is None or not hasattr(value, "numel") or value.numel() != 1:
        return
    rec = training.rec
    if not rec.called_from_user(3):
        return
    train = training.training_now() or metric.__dict__.get("_mlops_train", False)
    name = f"train_{kind}" if train else kind
    rec.observe(name, float(value), f"torchmetrics {type(metric).__name__}.compute() at {_user_line(rec)}")


def _user_line(rec: Recorder) -> str:
    frame: Any = sys._getframe(1)
    while frame is not None:
        path = os.path.realpath(frame.f_code.co_filename)
        if path.startswith(rec.work_root + os.sep):
            return f"{os.path.relpath(path, rec.work_root)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


def finish() -> None:
    """The script ended: a last epoch not yet said is said."""
    training = STATE.get("training")
    if training is not None:
        training.finish()
