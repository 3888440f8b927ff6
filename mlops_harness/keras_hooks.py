"""Keras instrumentation: a per-epoch recorder and an atomic backup-and-restore on every ``fit``, an early
stop on the fits of tuning trials, and the accuracy of the user's own ``evaluate``; what ``fit`` and
``evaluate`` return is what the script would have got without them (``keras_returns``).

Imported by the post-import hook of ``keras`` (see ``runner.py``) once the script has imported Keras, never
when the harness starts, so it imports ``keras`` at its top. Keras ships no type hints: its objects are Any.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import keras

from mlops_harness import compat, keras_checkpoints, keras_returns, loops
from mlops_harness.protocol import (
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
        self.ran: int | None = None  # the epochs run, when it stopped the fit before its last

    def on_train_begin(self, logs: Logs = None) -> None:
        self.inner = None
        self.ran = None

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
        if epoch + 1 >= self.epochs():
            return  # it was the last epoch anyway
        self.ran = epoch + 1
        value = logs.get(monitor)
        number = float(value) if isinstance(value, int | float) else None
        self.rec.stop(self.fit_index, epoch + 1, why, monitor, number, self.patience, int(best) + 1)

    def on_train_end(self, logs: Logs = None) -> None:
        if self.inner is not None:
            self.inner.on_train_end(logs)

    def epochs(self) -> int:
        """The epochs the fit asked for."""
        return int((self.params or {}).get("epochs") or 0)


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
        early = None
        if patience > 0 or stop_at is not None:
            own = _argument(original, self, args, kwargs, "callbacks") or []
            early = _early_stop(rec, index, patience, stop_at, own)
            extra += [early] if early is not None else []
        if checkpoints_on:
            extra.insert(0, keras_checkpoints.backup(rec, index, every, keras_major))
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
        keras_returns.numpy_history(history)
        if early is not None and early.ran is not None:
            _fill(history, early.ran, early.epochs(), restored or early.ran, index)
        return history

    return fit


def _early_stop(
    rec: Recorder, index: int, patience: int, stop_at: float | None, own: list[Any]
) -> EarlyStop | None:
    """The early stop of fit number ``index``; None for a fit run inside a ``while`` loop of the user's
    code, which decides by what each fit gives (``while accuracy < .90:``): stopped early, it would run
    rounds it would not have run, or never end."""
    loop = loops.enclosing_while(rec.work_root, depth=3)
    if loop is not None:
        rec.note(
            f"the fit at {loop.file}:{loop.call_line} runs inside the while loop of line {loop.line}: mlops does "
            "not stop it early, as the loop decides by what each fit gives"
        )
        return None
    user_stops = any(isinstance(c, keras.callbacks.EarlyStopping) for c in own)
    return EarlyStop(rec, index, patience, stop_at, user_stops)


def _fill(history: Any, ran: int, epochs: int, kept: int, index: int) -> None:
    """A fit that mlops stopped early returns a history as long as the epochs asked for (keras_returns)."""
    added = keras_returns.pad_history(history, epochs, kept)
    if added:
        say(
            f"fit {index} ran {ran} of its {epochs} epochs: the history it returns is filled to {epochs} with "
            f"the values of epoch {kept}, whose weights the model keeps, so the script reads it as it would"
        )


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
        return keras_returns.as_numpy(original(self, *args, **kwargs))  # numpy scalars, as Keras 2 gave

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
