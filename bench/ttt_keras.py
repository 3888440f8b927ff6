"""The in-process Keras contenders of bench/bench_time_to_target.py: KerasTuner (Hyperband, random search)
and Optuna, each tuning a hypermodel written here by hand over the same space as mlops's TPE; and the
Result every contender gives."""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET = 0.80  # set by the bench's --target
PATIENCE = 3  # the harness's default (mlops/config.py)
Spec = Any  # bench_time_to_target.Spec: its name, kind, epochs, optimizer, batch size, units, filters


@dataclass
class Result:
    reached_s: float | None = None  # wall time from the contender's start to the target
    after0_s: float | None = None  # mlops: from the end of trial 0
    trials: int | None = None  # trials until the target (mlops: trial 0 included)
    ran: int = 0  # trials run in all
    best: float | None = None
    overhead_s: float | None = None  # mlops: median start of a trial -> start of its first fit
    wall_s: float | None = None  # mlops: the whole command, to its end
    note: str = ""


# ---- the in-process contenders: one hypermodel, written by hand over TPE's space -------------------------


def space(spec: Spec) -> dict[str, Any]:
    """tweak/strategies.py TPE.space for this model, as plain ranges; plus the rescaling choice."""
    out: dict[str, Any] = {
        "epochs": (max(1, spec.epochs), max(40, spec.epochs * 10)),
        "learning_rate": (5e-4, 5e-2),
        "extra_dense": (0, 1),
    }
    if spec.units:
        out["units"] = [32, 64, 128, 256]
    if spec.kind == "cnn" and spec.filters:
        out["filters"] = [8, 16, 32, 64]
    if spec.unscaled:
        out["rescale"] = [True, False]
    return out


def build(spec: Spec, shape: tuple[int, ...], classes: int, p: dict[str, Any]):
    import keras

    layers = keras.layers
    x = inputs = keras.Input(shape=shape)
    if p.get("rescale"):
        x = layers.Rescaling(1.0 / 255)(x)
    if spec.kind == "cnn":
        x = layers.Conv2D(p.get("filters", spec.filters), (3, 3), activation="relu")(x)
        x = layers.MaxPooling2D((2, 2))(x)
        x = layers.Flatten()(x)
    if spec.units:
        x = layers.Dense(p.get("units", spec.units), activation="relu")(x)
    if p.get("extra_dense"):
        x = layers.Dense(p.get("units", 64), activation="relu")(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    optimizer = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}[spec.optimizer]
    model.compile(
        optimizer=optimizer(learning_rate=p["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class Budget:
    """The target's watch: it records the first epoch at or above the target and says when to stop."""

    def __init__(self, max_minutes: float) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + max_minutes * 60
        self.trials = 0
        self.result = Result()

    def callbacks(self):
        import keras

        budget = self

        class Watch(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                value = (logs or {}).get("val_accuracy")
                if value is None:
                    return
                budget.result.best = max(budget.result.best or 0.0, float(value))
                if value >= TARGET and budget.result.reached_s is None:
                    budget.result.reached_s = time.monotonic() - budget.started
                    budget.result.trials = budget.trials
                if budget.done():
                    self.model.stop_training = True

        stop = keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=PATIENCE, restore_best_weights=True
        )
        return [Watch(), stop]

    def done(self) -> bool:
        return self.result.reached_s is not None or time.monotonic() > self.deadline


def _fit_args(spec: Spec, data) -> dict[str, Any]:
    x, y, validation = data
    args: dict[str, Any] = {"x": x, "y": y, "batch_size": spec.batch_size, "verbose": 0}
    if isinstance(validation, float):
        args["validation_split"] = validation
    else:
        args["validation_data"] = validation
    return args


def run_kerastuner(spec: Spec, data, algorithm: str, args: argparse.Namespace, tmp: Path) -> Result:
    import keras_tuner as kt

    sp = space(spec)
    shape, classes = data[0].shape[1:], int(data[1].max()) + 1
    budget = Budget(args.max_minutes)

    class Done(kt.errors.FatalError):
        pass

    class HyperModel(kt.HyperModel):
        def build(self, hp):
            p = {"learning_rate": hp.Float("learning_rate", *sp["learning_rate"], sampling="log")}
            p["extra_dense"] = hp.Int("extra_dense", *sp["extra_dense"])
            for key in ("units", "filters", "rescale"):
                if key in sp:
                    p[key] = hp.Choice(key, sp[key])
            return build(spec, shape, classes, p)

        def fit(self, hp, model, *fit_args, **kwargs):
            if algorithm == "random":  # Hyperband sets the epochs itself
                kwargs["epochs"] = hp.Int("epochs", *sp["epochs"], sampling="log")
            return model.fit(*fit_args, **kwargs)

    common = {"objective": "val_accuracy", "directory": str(tmp), "project_name": f"{spec.name}-{algorithm}"}
    common |= {"seed": 0, "overwrite": True}
    base: Any = kt.RandomSearch
    if algorithm == "hyperband":
        base = kt.Hyperband
        common |= {"max_epochs": sp["epochs"][1], "factor": 3, "hyperband_iterations": 1}
    else:
        common["max_trials"] = args.max_trials

    class Timed(base):
        def on_trial_begin(self, trial):
            budget.trials += 1
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            if budget.done():
                raise Done("target reached or out of time")

    tuner = Timed(HyperModel(), **common)
    with contextlib.suppress(Done):
        tuner.search(**_fit_args(spec, data), epochs=sp["epochs"][0], callbacks=budget.callbacks())
    budget.result.ran = budget.trials
    return budget.result


def run_optuna(spec: Spec, data, args: argparse.Namespace) -> Result:
    import keras
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sp = space(spec)
    shape, classes = data[0].shape[1:], int(data[1].max()) + 1
    budget = Budget(args.max_minutes)

    def objective(trial: optuna.Trial) -> float:
        budget.trials += 1
        p: dict[str, Any] = {
            "epochs": trial.suggest_int("epochs", *sp["epochs"], log=True),
            "learning_rate": trial.suggest_float("learning_rate", *sp["learning_rate"], log=True),
            "extra_dense": trial.suggest_int("extra_dense", *sp["extra_dense"]),
        }
        for key in ("units", "filters", "rescale"):
            if key in sp:
                p[key] = trial.suggest_categorical(key, sp[key])
        keras.utils.set_random_seed(trial.number)
        model = build(spec, shape, classes, p)

        class Report(keras.callbacks.Callback):  # the median pruner, as mlops's tpe uses it
            pruned = False

            def on_epoch_end(self, epoch, logs=None):
                trial.report(float((logs or {}).get("val_accuracy", 0.0)), epoch)
                if trial.should_prune() and not budget.done():
                    Report.pruned = True
                    self.model.stop_training = True

        history = model.fit(
            **_fit_args(spec, data), epochs=p["epochs"], callbacks=[*budget.callbacks(), Report()]
        )
        best = max(history.history.get("val_accuracy", [0.0]))
        if Report.pruned:
            raise optuna.TrialPruned()
        return float(best)

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2),
    )
    study.optimize(
        objective,
        n_trials=args.max_trials,
        callbacks=[lambda study, trial: study.stop() if budget.done() else None],
    )
    budget.result.ran = budget.trials
    return budget.result
