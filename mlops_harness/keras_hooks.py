"""Keras instrumentation: a per-epoch recorder and an atomic backup-and-restore on every ``fit``, and the
accuracy of the user's own ``evaluate``.

Imported by the post-import hook of ``keras`` (see ``runner.py``) once the script has imported Keras, never
when the harness starts, so it imports ``keras`` at its top. Keras ships no type hints: its objects are Any.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import keras

from mlops_harness import compat
from mlops_harness.protocol import (
    CHECKPOINT_DIR,
    ENV_CHECKPOINT_EVERY_BATCHES,
    ENV_CHECKPOINTS,
    ENV_PATIENCE,
    ENV_STOP_AT,
    StopReason,
    accuracy_key,
)
from mlops_harness.recorder import Recorder, say

Logs = dict[str, Any] | None
# A fit with no validation data stops past the target on its training accuracy, by this much more.
TRAIN_STOP_MARGIN = 0.08


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):  # type: ignore[misc]
    """Keras's backup-and-restore, each checkpoint written whole before it becomes the one to restore.

    A checkpoint is a folder ``ckpt-<epoch>-<batch>`` holding the weights (with the optimizer's state)
    and the epoch, renamed into place when complete, so a kill while writing leaves the one before
    intact. A checkpoint that cannot be read is skipped for the one before it, and a disk too full to
    write one is reported once while training goes on. Keras 3 only: Keras 2 keeps its own format.

    Saved once an epoch, except for an epoch that ends less than ``MIN_GAP_S`` after the last checkpoint
    was written: a small model's epochs are short (0.2 s for the demo's) and each checkpoint costs tens of
    milliseconds, a fifth of the training; a kill loses at most ``MIN_GAP_S`` more of it.
    """

    KEEP = 2
    MIN_GAP_S = 0.4

    def __init__(self, backup_dir: str, save_freq: str | int, rec: Recorder, fit_index: int) -> None:
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=False)
        self.folder = Path(backup_dir)
        self.rec = rec
        self.fit_index = fit_index
        self.disabled = False
        self.warned = False
        self.every_epoch = save_freq == "epoch"
        self.last_saved: float | None = None

    def _checkpoints(self) -> list[Path]:
        return sorted(self.folder.glob("ckpt-*"), reverse=True)

    def on_train_begin(self, logs: Logs = None) -> None:
        if not self.model.built:
            self.disabled = True
            say("checkpoints are off for this model: it is not built before fit()")
            return
        found = self._checkpoints()
        for checkpoint in found:
            try:
                meta = json.loads((checkpoint / "meta.json").read_text(encoding="utf-8"))
                if self.model.optimizer is not None and not self.model.optimizer.built:
                    self.model.optimizer.build(self.model.trainable_variables)
                self.model.load_weights(str(checkpoint / "model.weights.h5"))
                self.model._initial_epoch = int(meta["epoch"])
                return
            except Exception as e:  # noqa: BLE001 (a corrupt checkpoint of any sort)
                say(
                    f"checkpoint {checkpoint.name} cannot be read ({type(e).__name__}); trying the one before"
                )
        if found:
            say("no checkpoint could be read; training starts from the beginning")

    def _save_model(self) -> None:
        if self.disabled:
            return
        recent = self.last_saved is not None and time.monotonic() - self.last_saved < self.MIN_GAP_S
        if self.every_epoch and recent:
            return
        epoch, batch = int(self._current_epoch), int(self._last_batch_seen)
        name = f"ckpt-{epoch:06d}-{batch:06d}"
        tmp = self.folder / f".tmp-{name}"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            self.model.save_weights(str(tmp / "model.weights.h5"))
            meta = {"epoch": epoch, "batch": batch, "at": time.time()}
            (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            final = self.folder / name
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in self._checkpoints()[self.KEEP :]:
                shutil.rmtree(old, ignore_errors=True)
            self.last_saved = time.monotonic()
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if not self.warned:
                self.warned = True
                say(f"warning: could not write a checkpoint ({e.strerror or e}); training goes on without it")
            return
        self.rec.checkpoint(self.fit_index, epoch, batch, name)


class EpochRecorder(keras.callbacks.Callback):  # type: ignore[misc]
    """Records each epoch's logs as it ends, and a fit that starts after epoch 0 as a resume."""

    def __init__(self, rec: Recorder, fit_index: int) -> None:
        super().__init__()
        self.rec = rec
        self.fit_index = fit_index
        self.first_epoch: int | None = None

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        if self.first_epoch is None:
            self.first_epoch = epoch
            if epoch > 0:
                self.rec.resume(self.fit_index, epoch)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        epochs = (self.params or {}).get("epochs")
        self.rec.epoch(self.fit_index, epoch + 1, epochs, dict(logs or {}))


class EarlyStop(keras.callbacks.Callback):  # type: ignore[misc]
    """Keras's ``EarlyStopping(restore_best_weights=True)`` on the best value the fit reports, chosen at its
    first epoch (the validation accuracy, else the accuracy, else the validation loss, else the loss);
    and a stop as soon as the validation accuracy reaches ``stop_at`` (the run's target and a margin), or,
    for a fit without validation data, the training accuracy reaches ``stop_at + TRAIN_STOP_MARGIN``.

    Keras decides when the patience has run out and puts the best weights back; this only chooses what
    it watches, which a script's metrics decide and cannot be known before the first epoch.
    """

    def __init__(
        self, rec: Recorder, fit_index: int, patience: int, stop_at: float | None, user_stops: bool
    ) -> None:
        super().__init__()
        self.rec = rec
        self.fit_index = fit_index
        self.patience = 0 if user_stops else patience  # the script's own EarlyStopping is respected
        self.stop_at = stop_at
        self.inner: Any = None

    def on_train_begin(self, logs: Logs = None) -> None:
        self.inner = None

    def _watch(self, logs: dict[str, Any]) -> None:
        monitor = (
            accuracy_key(logs, "val_")
            or accuracy_key(logs)
            or next((key for key in ("val_loss", "loss") if key in logs), None)
        )
        if monitor is None or self.patience <= 0:
            return
        self.inner = keras.callbacks.EarlyStopping(
            monitor=monitor,
            mode="min" if monitor.endswith("loss") else "max",
            patience=self.patience,
            restore_best_weights=True,
        )
        self.inner.set_model(self.model)
        self.inner.on_train_begin()

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        values = dict(logs or {})
        if self.inner is None:
            self._watch(values)
        if self.inner is not None and not self.model.stop_training:
            self.inner.on_epoch_end(epoch, values)
            if self.model.stop_training:
                self._stopped(epoch, StopReason.PATIENCE, self.inner.monitor, values, self.inner.best_epoch)
                return
        # Past the target: the validation accuracy; without validation data, the training accuracy by a
        # wider margin, since it overstates what the script's own evaluation on held-out data will give.
        val = accuracy_key(values, "val_")
        watched, margin = (val, 0.0) if val else (accuracy_key(values), TRAIN_STOP_MARGIN)
        if self.stop_at is None or not watched or self.model.stop_training:
            return
        if values[watched] >= self.stop_at + margin:
            self.model.stop_training = True
            self._stopped(epoch, StopReason.TARGET, watched, values, epoch)

    def _stopped(self, epoch: int, why: StopReason, monitor: str, logs: dict[str, Any], best: int) -> None:
        if epoch + 1 >= int((self.params or {}).get("epochs") or 0):
            return  # it was the last epoch anyway
        value = logs.get(monitor)
        number = float(value) if isinstance(value, int | float) else None
        self.rec.stop(self.fit_index, epoch + 1, why, monitor, number, self.patience, int(best) + 1)

    def on_train_end(self, logs: Logs = None) -> None:
        if self.inner is not None:
            self.inner.on_train_end(logs)


class EvaluateCapture(keras.callbacks.Callback):  # type: ignore[misc]
    """The accuracy of an ``evaluate`` the user's code called, and the model it evaluated."""

    def __init__(self, rec: Recorder, evaluated: Any) -> None:
        super().__init__()
        self.rec = rec
        self.evaluated = evaluated

    def on_test_end(self, logs: Logs = None) -> None:
        values = dict(logs or {})
        key = accuracy_key(values)
        if key:
            self.rec.observe("accuracy", values[key], "evaluate", model=self.evaluated)


def install(module: Any, rec: Recorder, seed: int | None) -> None:
    """Hook ``module.Model``'s ``fit`` and ``evaluate`` (once), and seed Keras."""
    model_cls = getattr(module, "Model", None)
    if model_cls is None or getattr(model_cls, "_mlops_hooked", False):
        return
    if seed is not None:
        with suppress(Exception):  # old versions lack it; seeding is best effort
            module.utils.set_random_seed(seed)
    model_cls.fit = _wrap_fit(model_cls.fit, rec, _major(module))
    model_cls.evaluate = _wrap_evaluate(model_cls.evaluate, rec)
    model_cls.predict = _wrap_predict(model_cls.predict, rec)
    model_cls._mlops_hooked = True


def _major(module: Any) -> int:
    return int(str(getattr(module, "__version__", "3")).split(".")[0])


def _wrap_fit(original: Callable[..., Any], rec: Recorder, keras_major: int) -> Callable[..., Any]:
    every = int(os.environ.get(ENV_CHECKPOINT_EVERY_BATCHES, "0") or 0)
    checkpoints_on = os.environ.get(ENV_CHECKPOINTS, "1") != "0"
    patience = int(os.environ.get(ENV_PATIENCE, "0") or 0)
    stop_at = float(os.environ[ENV_STOP_AT]) if os.environ.get(ENV_STOP_AT) else None

    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if rec.fit_depth:
            return original(self, *args, **kwargs)
        index = rec.fit_calls
        rec.fit_calls += 1
        kwargs = compat.fit_kwargs(kwargs, rec)
        extra: list[Any] = [EpochRecorder(rec, index)]
        if patience > 0 or stop_at is not None:
            own = _argument(original, self, args, kwargs, "callbacks") or []
            user_stops = any(isinstance(c, keras.callbacks.EarlyStopping) for c in own)
            extra.append(EarlyStop(rec, index, patience, stop_at, user_stops))
        if checkpoints_on:
            backup_dir = rec.out / CHECKPOINT_DIR / f"fit-{index}"
            backup_dir.mkdir(parents=True, exist_ok=True)
            freq: str | int = every if every > 0 else "epoch"
            if keras_major >= 3:
                backup = AtomicBackupAndRestore(str(backup_dir), freq, rec, index)
            else:  # Keras 2 keeps its own training-state format; its callback restores it
                backup = keras.callbacks.BackupAndRestore(
                    str(backup_dir), save_freq=freq, delete_checkpoint=False
                )
            extra.insert(0, backup)
        quiet = not sys.stdout.isatty()
        args, kwargs = _add_callbacks(original, self, args, kwargs, extra, quiet)
        x = _argument(original, self, args, kwargs, "x")
        rec.models.fitted(self, x, index)
        rec.fit_inputs(index, x)
        rec.fit_depth += 1
        try:
            history = original(self, *args, **kwargs)
        finally:
            rec.fit_depth -= 1
        restored = _restored_epoch(self, _argument(original, self, args, kwargs, "callbacks"))
        if restored is not None:
            rec.models.restored[index] = restored
            say(f"fit {index} ended with the weights of its best epoch, {restored}")
        return history

    return fit


def _restored_epoch(model: Any, callbacks: Any) -> int | None:
    """The epoch (from 1) whose weights an EarlyStopping(restore_best_weights=True) put back, if it did."""
    import numpy as np

    for given in callbacks or []:
        callback = given.inner if isinstance(given, EarlyStop) else given
        best = getattr(callback, "best_weights", None)
        if not isinstance(callback, keras.callbacks.EarlyStopping) or best is None:
            continue
        weights = model.get_weights()
        if len(weights) == len(best) and all(
            np.array_equal(a, b) for a, b in zip(weights, best, strict=True)
        ):
            return int(getattr(callback, "best_epoch", 0)) + 1
    return None


def _wrap_predict(original: Callable[..., Any], rec: Recorder) -> Callable[..., Any]:
    def predict(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if not rec.fit_depth and rec.called_from_user():
            rec.models.predicted(self, result)
        return result

    return predict


def _wrap_evaluate(original: Callable[..., Any], rec: Recorder) -> Callable[..., Any]:
    def evaluate(self: Any, *args: Any, **kwargs: Any) -> Any:
        if rec.fit_depth or not rec.called_from_user():
            return original(self, *args, **kwargs)
        args, kwargs = _add_callbacks(original, self, args, kwargs, [EvaluateCapture(rec, self)])
        return original(self, *args, **kwargs)

    return evaluate


def _argument(
    function: Callable[..., Any], model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], name: str
) -> Any:
    """The value of the argument ``name`` in a call of ``function``, wherever the caller put it."""
    try:
        return inspect.signature(function).bind(model, *args, **kwargs).arguments.get(name)
    except (TypeError, ValueError):
        return kwargs.get(name, args[0] if name == "x" and args else None)


def _add_callbacks(
    function: Callable[..., Any],
    model: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    extra: list[Any],
    quiet: bool = False,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments with ``extra`` callbacks added, wherever the caller put its own."""
    try:
        bound = inspect.signature(function).bind(model, *args, **kwargs)
    except (TypeError, ValueError):
        kwargs = dict(kwargs, callbacks=list(kwargs.get("callbacks") or []) + extra)
        return args, kwargs
    bound.arguments["callbacks"] = list(bound.arguments.get("callbacks") or []) + extra
    if quiet and bound.arguments.get("verbose", "auto") in ("auto", 1):
        bound.arguments["verbose"] = 2  # one line per epoch in a log, not a redrawn bar
    return bound.args[1:], bound.kwargs
