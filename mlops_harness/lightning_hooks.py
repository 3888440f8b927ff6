"""PyTorch Lightning instrumentation: a callback on every ``Trainer`` (epoch events, a checkpoint at each
epoch's end, early stop), the resume of a killed ``fit`` from that checkpoint (Lightning's own
``ckpt_path``), and the metrics the script logs: ``Trainer.test``'s ``test_*``, ``Trainer.validate``'s and
``fit``'s last ``val_*``.

Installed by the post-import hooks of ``lightning.pytorch`` and ``pytorch_lightning`` (one module each, with
its own ``Trainer`` and ``Callback``); torch is imported by then. While a ``Trainer`` runs, the plain-loop
hooks (torch_training.py) stand aside: Lightning's loop is told by its callback.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_harness.protocol import CHECKPOINT_DIR, ENV_CHECKPOINTS, StopReason, accuracy_key, as_float
from mlops_harness.recorder import Recorder, say
from mlops_harness.torch_training import MIN_GAP_S, Stop, Training, dataset_inputs

KEEP = 2
TRAIN_LOSS = ("train_loss_epoch", "train_loss", "loss_epoch", "training_loss")


def install(module: Any, rec: Recorder, training: Training) -> None:
    """Hook ``module.Trainer`` (``lightning.pytorch`` or ``pytorch_lightning``) once."""
    trainer_cls = getattr(module, "Trainer", None)
    if trainer_cls is None or getattr(trainer_cls, "_mlops_hooked", False):
        return
    callback_cls = _callback_class(module.callbacks.Callback)
    init = trainer_cls.__init__

    @functools.wraps(init)
    def trainer_init(self: Any, *args: Any, **kwargs: Any) -> None:
        hook = callback_cls(rec)
        given = kwargs.get("callbacks")
        kwargs["callbacks"] = [
            *(given if isinstance(given, list | tuple) else [given] if given else []),
            hook,
        ]
        init(self, *args, **kwargs)
        self._mlops_hook = hook

    trainer_cls.__init__ = trainer_init
    trainer_cls.fit = _wrap_fit(trainer_cls.fit, rec, training)
    trainer_cls.test = _wrap_measure(trainer_cls.test, rec, training, "test")
    trainer_cls.validate = _wrap_measure(trainer_cls.validate, rec, training, "validate")
    trainer_cls._mlops_hooked = True


def _scalars(metrics: Any) -> dict[str, float]:
    out = {}
    for key, value in dict(metrics or {}).items():
        try:
            number = as_float(value.item() if hasattr(value, "numel") and value.numel() == 1 else value)
        except (TypeError, ValueError, RuntimeError):
            number = None
        if number is not None:
            out[str(key)] = number
    return out


class EpochWatch:
    """Mixed into Lightning's ``Callback`` (:func:`_callback_class`): says each epoch, saves a checkpoint at
    its end, stops a fit early (not in trial 0: the orchestrator sets no stop for it)."""

    def __init__(self, rec: Recorder) -> None:
        super().__init__()
        self.rec = rec
        self.fit = 0
        self.folder: Path | None = None
        self.stop = Stop()
        self.last_saved: float | None = None
        self.first = True

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.first:
            self.first = False
            if trainer.current_epoch > 0:
                self.rec.resume(self.fit, int(trainer.current_epoch))

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        epoch = int(trainer.current_epoch) + 1
        logs = _scalars(trainer.callback_metrics)
        trained = next((k for k in TRAIN_LOSS if k in logs), None)
        if trained is not None and "loss" not in logs:  # the learning curve's loss
            logs["loss"] = logs[trained]
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        self.rec.epoch(self.fit, epoch, total, logs)
        self._save(trainer, epoch, final=total is not None and epoch >= total)
        if total is None or epoch < total:
            self._check_stop(trainer, epoch, logs)

    def _save(self, trainer: Any, epoch: int, final: bool) -> None:
        recent = self.last_saved is not None and time.monotonic() - self.last_saved < MIN_GAP_S
        if self.folder is None or (recent and not final):
            return
        name = f"epoch-{epoch:06d}.ckpt"
        tmp = self.folder / f".tmp-{name}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(str(tmp), weights_only=False)
            os.replace(tmp, self.folder / name)
            for old in sorted(self.folder.glob("epoch-*.ckpt"), reverse=True)[KEEP:]:
                old.unlink(missing_ok=True)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            say(f"warning: could not write a checkpoint ({e.strerror or e}); training goes on without it")
            self.folder = None
            return
        self.last_saved = time.monotonic()
        self.rec.checkpoint(self.fit, epoch, 0, name)

    def _check_stop(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        key = accuracy_key(logs, "val_")
        rule = self.stop
        if key is None or (rule.stop_at is None and rule.patience <= 0):
            return
        value = logs[key]
        if rule.best is None or value > rule.best:
            rule.best, rule.best_epoch = value, epoch
        why = None
        if rule.stop_at is not None and value >= rule.stop_at:
            why = StopReason.TARGET
        elif rule.patience > 0 and epoch - rule.best_epoch >= rule.patience:
            why = StopReason.PATIENCE
        if why is not None:
            trainer.should_stop = True  # Lightning ends the fit; the script goes on to its test
            self.rec.stop(self.fit, epoch, why, key, value, rule.patience, epoch)


def _callback_class(base: type) -> type:
    """The callback class of one Lightning module (``lightning.pytorch`` and ``pytorch_lightning`` each have
    their own ``Callback``, which a Trainer checks its callbacks against)."""
    return type("MlopsCallback", (EpochWatch, base), {})


def _newest(folder: Path) -> tuple[Path, int] | None:
    """The newest checkpoint written whole (a zip archive, as torch saves), and its epoch."""
    for path in sorted(folder.glob("epoch-*.ckpt"), reverse=True):
        if zipfile.is_zipfile(path):
            return path, int(path.stem.split("-")[1])
        say(f"checkpoint {path.name} cannot be read; trying the one before")
    return None


def _wrap_fit(original: Callable[..., Any], rec: Recorder, training: Training) -> Callable[..., Any]:
    checkpoints = os.environ.get(ENV_CHECKPOINTS, "1") != "0"

    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        index = rec.fit_calls
        rec.fit_calls += 1
        hook = getattr(self, "_mlops_hook", None)
        if hook is not None:
            hook.fit = index
            hook.folder = rec.out / CHECKPOINT_DIR / f"lightning-{index}" if checkpoints else None
            found = _newest(hook.folder) if hook.folder is not None else None
            if found is not None:  # a restarted training: Lightning resumes from its own checkpoint
                kwargs["ckpt_path"] = str(found[0])
                say(f"fit {index} resumes from its checkpoint at epoch {found[1]}")
        model = args[0] if args else kwargs.get("model")
        if model is not None:
            rec.models.fitted(model, None, index)
        rec.fit_inputs(index, dataset_inputs(args[1] if len(args) > 1 else kwargs.get("train_dataloaders")))
        training.in_lightning += 1
        try:
            result = original(self, *args, **kwargs)
        finally:
            training.in_lightning -= 1
        _observe(rec, _scalars(self.callback_metrics), "val", f"Trainer.fit at {_caller()}")
        return result

    return fit


def _wrap_measure(
    original: Callable[..., Any], rec: Recorder, training: Training, verb: str
) -> Callable[..., Any]:
    @functools.wraps(original)
    def measure(self: Any, *args: Any, **kwargs: Any) -> Any:
        training.in_lightning += 1
        try:
            results = original(self, *args, **kwargs)
        finally:
            training.in_lightning -= 1
        where = f"Trainer.{verb} at {_caller()}"
        for logged in results if isinstance(results, list) else []:
            _observe(rec, _scalars(logged), "test" if verb == "test" else "val", where)
        return results

    return measure


def _observe(rec: Recorder, logs: dict[str, float], phase: str, where: str) -> None:
    """The accuracy (else R², else the loss) among a Lightning run's logged metrics of ``phase``."""
    prefixed = {k: v for k, v in logs.items() if k.startswith(f"{phase}_") or k.startswith(f"{phase}/")}
    key = accuracy_key({k.replace("/", "_"): v for k, v in prefixed.items()}, f"{phase}_")
    if key is not None:
        key = next(k for k in prefixed if k.replace("/", "_") == key)
        rec.observe("accuracy" if phase == "test" else "val_accuracy", prefixed[key], f"{where}: {key}")
        return
    for kind, names in (("r2", ("r2",)), ("loss", ("loss", "mse", "mae"))):
        key = next((k for k in prefixed if any(k.lower().endswith(n) for n in names)), None)
        if key is not None:
            rec.observe(kind if phase == "test" else f"val_{kind}", prefixed[key], f"{where}: {key}")
            return


def _caller() -> str:
    frame: Any = sys._getframe(2)
    while frame is not None and (
        "site-packages" in frame.f_code.co_filename or "mlops_harness" in frame.f_code.co_filename
    ):
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
