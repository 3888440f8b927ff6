"""The harness: runs one variant of a user's training script, unchanged, and collects its metric.

It is the entry point of every training image and of the local runtime, so it imports nothing but the
standard library at module level (the images do not install mlops). Keras and scikit-learn are
instrumented when the script imports them, the way MLflow's autolog does it: Keras ``fit`` gets a
per-epoch recorder and a backup-and-restore callback, ``evaluate`` and scikit-learn's scores are
captured when the user's own code calls them, and KMeans fits are measured (silhouette, the WCSS curve).

Usage::

    python harness.py --code CODE_DIR --script REL/PATH.py --source VARIANT.py --out TRIAL_DIR

Files written into TRIAL_DIR: ``work/`` (a copy of the code, the working directory), ``metrics.json``,
``accuracy.txt``, ``outcome.json``, ``history.jsonl`` (epochs as they finish, kept across restarts) and
``checkpoints/``. Exit codes: 0 a metric was collected, 1 the script raised, 3 it ran but produced no
metric, 4 the harness was called wrongly.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import importlib.abc
import importlib.util
import json
import math
import os
import random
import re
import runpy
import shutil
import sys
import threading
import time
import traceback
from pathlib import Path

EXIT_OK = 0
EXIT_SCRIPT_ERROR = 1
EXIT_NO_METRIC = 3
EXIT_BAD_INVOCATION = 4

COPY_LIMIT_BYTES = 8 * 1024 * 1024  # bigger files (datasets) are linked into work/, not copied
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".mlops", "node_modules"}
ACCURACY_FILES = ("accuracy.txt", "accuracy.json", "acc.txt", "result.txt", "score.txt")
CURVE_MAX_K = 10
CURVE_SAMPLE = 2000


def say(message: str) -> None:
    """A progress line for the person watching (the runtimes show lines that start with [mlops])."""
    sys.__stdout__.write(f"[mlops] {message}\n")
    sys.__stdout__.flush()


def write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default), encoding="utf-8")
    os.replace(tmp, path)


def _json_default(value: object) -> object:
    try:
        return float(value)  # numpy scalars
    except (TypeError, ValueError):
        return str(value)


# --------------------------------------------------------------------------------------------------
# Reading accuracies people write: 0.93, 93, "93%", "[0.21, 0.93]", {"accuracy": 0.93}


def normalize_accuracy(raw: object) -> float | None:
    """A fraction between 0 and 1 from what a script wrote, or None if it is not an accuracy."""
    if isinstance(raw, dict):
        for key in ("accuracy", "acc", "val_accuracy", "test_accuracy", "score"):
            if key in raw:
                return normalize_accuracy(raw[key])
        return None
    if isinstance(raw, list | tuple):
        return normalize_accuracy(raw[-1]) if raw else None
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None
        try:
            return normalize_accuracy(json.loads(text))
        except ValueError:
            pass
        numbers = re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)
        if not numbers:
            return None
        value = float(numbers[-1])
        if "%" in text:
            value /= 100.0
        return normalize_accuracy(value)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        try:
            raw = float(raw)  # numpy scalars
        except (TypeError, ValueError):
            return None
    value = float(raw)
    if math.isnan(value) or value < 0:
        return None
    if value > 1.0:
        if value <= 100.0:
            return value / 100.0
        return None
    return value


def read_accuracy_file(folder: Path) -> tuple[float, str] | None:
    for name in ACCURACY_FILES:
        path = folder / name
        if path.is_file():
            try:
                value = normalize_accuracy(path.read_text(encoding="utf-8", errors="replace")[:10000])
            except OSError:
                continue
            if value is not None:
                return value, name
    return None


# --------------------------------------------------------------------------------------------------
# What the script did, as observed by the hooks


class Recorder:
    """Observations made while the script runs; the metric is chosen from them at the end."""

    def __init__(self, out: Path, work_root: Path) -> None:
        self.out = out
        self.work_root = str(work_root.resolve())
        self.lock = threading.Lock()
        self.observations: list[dict] = []  # {"name", "value", "source"}
        self.fit_calls = 0
        self.fit_depth = 0
        self.history = self._load_history()
        self.kmeans: list[dict] = []  # {"X", "model", "estimator"}
        self.datasets: list[tuple[object, object]] = []  # (X, y) returned by sklearn.datasets
        self.in_harness = False  # set while the harness itself computes (the WCSS curve)
        self.resumed = self._load_history("resumed.jsonl")  # every restore, across restarts

    def _load_history(self, name: str = "history.jsonl") -> list[dict]:
        path = self.out / name
        rows: list[dict] = []
        if path.exists():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue  # a line cut short by a kill
        return rows

    def called_from_user(self, depth: int = 2) -> bool:
        """True when the hooked function was called by the user's code, perhaps through library code.

        Library frames (site-packages) between the hook and its caller are skipped, so a subclass that
        overrides ``score`` and calls ``super().score`` still counts; the first other frame decides.
        """
        frame = sys._getframe(depth)
        while frame is not None and _is_library(frame.f_code.co_filename):
            frame = frame.f_back
        return frame is not None and os.path.realpath(frame.f_code.co_filename).startswith(self.work_root)

    def measuring(self):
        """A context in which nested metric calls (accuracy_score inside score) are not recorded again."""
        return _Nesting(self)

    def observe(self, name: str, value: object, source: str) -> None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return
        if math.isnan(number):
            return
        with self.lock:
            self.observations.append({"name": name, "value": number, "source": source})

    def epoch(self, fit: int, epoch: int, epochs: int | None, logs: dict) -> None:
        row = {"fit": fit, "epoch": epoch}
        row.update({k: _as_float(v) for k, v in (logs or {}).items() if _as_float(v) is not None})
        with self.lock:
            self.history = [h for h in self.history if not (h["fit"] == fit and h["epoch"] == epoch)]
            self.history.append(row)
            with (self.out / "history.jsonl").open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        shown = " ".join(f"{k}={v:.4f}" for k, v in row.items() if k not in ("fit", "epoch"))
        total = f"/{epochs}" if epochs else ""
        say(f"epoch {epoch}{total} {shown}".rstrip())


def _is_library(filename: str) -> bool:
    return "site-packages" in filename or "dist-packages" in filename


class _Nesting:
    """Counts hooked calls in progress on this thread; only the outermost one records."""

    local = threading.local()

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def __enter__(self) -> bool:
        depth = getattr(self.local, "depth", 0)
        self.local.depth = depth + 1
        return depth == 0

    def __exit__(self, *exc: object) -> None:
        self.local.depth -= 1


def _as_float(value: object) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def accuracy_key(logs: dict, prefix: str = "") -> str | None:
    """The accuracy entry among Keras's logs ('accuracy', 'acc', 'sparse_categorical_accuracy', ...)."""
    keys = [k for k in logs if k.startswith(prefix) and (prefix or not k.startswith("val_"))]
    for wanted in ("accuracy", "acc"):
        if prefix + wanted in keys:
            return prefix + wanted
    for key in keys:
        if key.endswith("accuracy") or key.endswith("_acc"):
            return key
    return None


def choose_metric(rec: Recorder) -> dict | None:
    """The metric of the trial, from what the script did. Pure but for reading the recorder.

    Order: an accuracy the user's code measured itself (Keras evaluate, accuracy_score, a classifier's
    score; the last one, which is the test one in scripts that score train then test), a clustering's
    silhouette, the last validation accuracy of fit, the last training accuracy of fit.
    """
    measured = [o for o in rec.observations if o["name"] in ("accuracy", "r2")]
    if measured:
        last = measured[-1]
        return {"metric": last["name"], "value": last["value"], "source": last["source"]}
    if os.environ.get("MLOPS_CLUSTER_METRIC") == "ari":  # the run declared the adjusted Rand index
        aris = [o for o in rec.observations if o["name"] == "ari"]
        if aris:
            return {"metric": "ari", "value": aris[-1]["value"], "source": aris[-1]["source"]}
    silhouettes = [o for o in rec.observations if o["name"] == "silhouette"]
    if silhouettes:
        last = silhouettes[-1]
        return {"metric": "silhouette", "value": last["value"], "source": last["source"]}
    if rec.history:
        last_fit = max(h["fit"] for h in rec.history)
        rows = sorted((h for h in rec.history if h["fit"] == last_fit), key=lambda h: h["epoch"])
        last = rows[-1]
        for prefix, source in (("val_", "val_accuracy"), ("", "train_accuracy")):
            key = accuracy_key(last, prefix)
            if key:
                return {"metric": "accuracy", "value": last[key], "source": source}
    return None


# --------------------------------------------------------------------------------------------------
# Hooks, installed when the script imports the library (post-import hooks)


class PostImportHooks(importlib.abc.MetaPathFinder):
    """Runs a function on a module right after it is first imported."""

    def __init__(self, hooks: dict[str, object]) -> None:
        self.hooks = hooks
        self.busy: set[str] = set()

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 (importlib's signature)
        hook = self.hooks.get(name)
        if hook is None or name in self.busy:
            return None
        self.busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.busy.discard(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original = spec.loader.exec_module

        def exec_module(module, _original=original, _hook=hook):  # noqa: ANN001
            _original(module)
            try:
                _hook(module)
            except Exception as e:  # a hook must never break the user's import
                say(f"warning: could not instrument {module.__name__}: {e}")

        spec.loader.exec_module = exec_module
        return spec


def install_keras_hooks(keras, rec: Recorder, seed: int | None) -> None:
    model_cls = getattr(keras, "Model", None)
    if model_cls is None or getattr(model_cls, "_mlops_hooked", False):
        return
    if seed is not None:
        with contextlib.suppress(Exception):  # old versions lack it; seeding is best effort
            keras.utils.set_random_seed(seed)
    callbacks = keras.callbacks
    keras_major = int(str(getattr(keras, "__version__", "3")).split(".")[0])
    every = int(os.environ.get("MLOPS_CHECKPOINT_EVERY_BATCHES", "0") or 0)
    checkpoints_on = os.environ.get("MLOPS_CHECKPOINTS", "1") != "0"

    class AtomicBackupAndRestore(callbacks.BackupAndRestore):
        """Keras's backup-and-restore, each checkpoint written whole before it becomes the one to restore.

        A checkpoint is a folder ``ckpt-<epoch>-<batch>`` holding the weights (with the optimizer's state)
        and the epoch, renamed into place when complete, so a kill while writing leaves the one before
        intact. A checkpoint that cannot be read is skipped for the one before it, and a disk too full to
        write one is reported once while training goes on.
        """

        KEEP = 2

        def __init__(self, backup_dir: str, save_freq: str | int) -> None:
            super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=False)
            self.folder = Path(backup_dir)
            self.disabled = False
            self.warned = False

        def _checkpoints(self) -> list[Path]:
            return sorted(self.folder.glob("ckpt-*"), reverse=True)

        def on_train_begin(self, logs=None):  # noqa: ANN001
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
            name = f"ckpt-{self._current_epoch:06d}-{self._last_batch_seen:06d}"
            tmp = self.folder / f".tmp-{name}"
            try:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                self.model.save_weights(str(tmp / "model.weights.h5"))
                meta = {"epoch": self._current_epoch, "batch": self._last_batch_seen, "at": time.time()}
                (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
                final = self.folder / name
                shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
                for old in self._checkpoints()[self.KEEP :]:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError as e:
                shutil.rmtree(tmp, ignore_errors=True)
                if not self.warned:
                    self.warned = True
                    say(
                        f"warning: could not write a checkpoint ({e.strerror or e}); training goes on without it"
                    )

    class MlopsRecorder(callbacks.Callback):
        def __init__(self, fit_index: int) -> None:
            super().__init__()
            self.fit_index = fit_index
            self.first_epoch: int | None = None

        def on_epoch_begin(self, epoch, logs=None):  # noqa: ANN001
            if self.first_epoch is None:
                self.first_epoch = epoch
                if epoch > 0:
                    rec.resumed.append({"fit": self.fit_index, "epoch": epoch})
                    with (rec.out / "resumed.jsonl").open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(rec.resumed[-1]) + "\n")
                    say(f"resumed fit {self.fit_index} from its checkpoint at epoch {epoch}")

        def on_epoch_end(self, epoch, logs=None):  # noqa: ANN001
            epochs = (self.params or {}).get("epochs")
            rec.epoch(self.fit_index, epoch + 1, epochs, dict(logs or {}))

    class EvaluateCapture(callbacks.Callback):
        def on_test_end(self, logs=None):  # noqa: ANN001
            logs = dict(logs or {})
            key = accuracy_key(logs)
            if key:
                rec.observe("accuracy", logs[key], "evaluate")

    def wrap_fit(original):  # noqa: ANN001
        def fit(self, *args, **kwargs):  # noqa: ANN001
            if rec.fit_depth:
                return original(self, *args, **kwargs)
            index = rec.fit_calls
            rec.fit_calls += 1
            if "nb_epoch" in kwargs and "epochs" not in kwargs:  # Keras 1's name, refused since Keras 2
                kwargs["epochs"] = kwargs.pop("nb_epoch")
            extra = [MlopsRecorder(index)]
            if checkpoints_on:
                backup_dir = rec.out / "checkpoints" / f"fit-{index}"
                backup_dir.mkdir(parents=True, exist_ok=True)
                freq = every if every > 0 else "epoch"
                if keras_major >= 3:
                    backup = AtomicBackupAndRestore(str(backup_dir), freq)
                else:  # Keras 2 keeps its own training-state format; its callback restores it
                    backup = callbacks.BackupAndRestore(
                        str(backup_dir), save_freq=freq, delete_checkpoint=False
                    )
                extra.insert(0, backup)
            quiet = not sys.stdout.isatty()
            args, kwargs = _add_callbacks(original, self, args, kwargs, extra, quiet)
            rec.fit_depth += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                rec.fit_depth -= 1

        return fit

    def wrap_evaluate(original):  # noqa: ANN001
        def evaluate(self, *args, **kwargs):  # noqa: ANN001
            if rec.fit_depth or not rec.called_from_user():
                return original(self, *args, **kwargs)
            args, kwargs = _add_callbacks(original, self, args, kwargs, [EvaluateCapture()])
            return original(self, *args, **kwargs)

        return evaluate

    model_cls.fit = wrap_fit(model_cls.fit)
    model_cls.evaluate = wrap_evaluate(model_cls.evaluate)
    model_cls._mlops_hooked = True


def _add_callbacks(function, model, args: tuple, kwargs: dict, extra: list, quiet: bool = False):
    """The call's arguments with ``extra`` callbacks added, wherever the caller put its own."""
    import inspect

    try:
        bound = inspect.signature(function).bind(model, *args, **kwargs)
    except (TypeError, ValueError):
        kwargs = dict(kwargs, callbacks=list(kwargs.get("callbacks") or []) + extra)
        return args, kwargs
    bound.arguments["callbacks"] = list(bound.arguments.get("callbacks") or []) + extra
    if quiet and bound.arguments.get("verbose", "auto") in ("auto", 1):
        bound.arguments["verbose"] = 2  # one line per epoch in a log, not a redrawn bar
    return bound.args[1:], bound.kwargs


def install_keras_utils_compat(utils) -> None:
    """``keras.utils.np_utils`` went away after Keras 2.8; old scripts still import it. Alias it."""
    if hasattr(utils, "np_utils") or not hasattr(utils, "to_categorical"):
        return
    import types

    np_utils = types.ModuleType(f"{utils.__name__}.np_utils")
    np_utils.to_categorical = utils.to_categorical
    if hasattr(utils, "normalize"):
        np_utils.normalize = utils.normalize
    sys.modules[np_utils.__name__] = np_utils
    utils.np_utils = np_utils
    say("note: keras.utils.np_utils is gone from this Keras; the script gets an alias to keras.utils")


def install_sklearn_base_hooks(base, rec: Recorder) -> None:
    def wrap_score(original, name: str, source: str):  # noqa: ANN001
        def score(self, *args, **kwargs):  # noqa: ANN001
            with rec.measuring() as outermost:
                value = original(self, *args, **kwargs)
            if outermost and rec.called_from_user():
                rec.observe(name, value, source)
            return value

        return score

    base.ClassifierMixin.score = wrap_score(base.ClassifierMixin.score, "accuracy", "score")
    base.RegressorMixin.score = wrap_score(base.RegressorMixin.score, "r2", "score")


def install_sklearn_metrics_hooks(metrics, rec: Recorder) -> None:
    def wrap(original, name: str):  # noqa: ANN001
        def metric(*args, **kwargs):  # noqa: ANN001
            with rec.measuring() as outermost:
                value = original(*args, **kwargs)
            if outermost and not rec.in_harness and rec.called_from_user():
                rec.observe(name, value, original.__name__)
            return value

        metric.__wrapped__ = original
        metric.__name__ = original.__name__
        return metric

    for func, name in (
        ("accuracy_score", "accuracy"),
        ("silhouette_score", "silhouette"),
        ("adjusted_rand_score", "ari"),
        ("r2_score", "r2"),
    ):
        if hasattr(metrics, func):
            setattr(metrics, func, wrap(getattr(metrics, func), name))


def install_sklearn_cluster_hooks(cluster, rec: Recorder) -> None:
    for cls_name in ("KMeans", "MiniBatchKMeans"):
        cls = getattr(cluster, cls_name, None)
        if cls is None:
            continue

        def wrap(original, estimator=cls_name):  # noqa: ANN001
            def fit(self, X, *args, **kwargs):  # noqa: ANN001, N803
                model = original(self, X, *args, **kwargs)
                if not rec.in_harness:
                    rec.kmeans.append({"X": X, "model": self, "estimator": estimator})
                    if len(rec.kmeans) > 50:  # a user's own elbow loop; keep the first and the last
                        del rec.kmeans[1:-1]
                return model

            return fit

        cls.fit = wrap(cls.fit)


def install_sklearn_datasets_hooks(datasets, rec: Recorder) -> None:
    """Remember labelled data the script loads, so a clustering of it can report its adjusted Rand index."""

    def wrap(original):  # noqa: ANN001
        def load(*args, **kwargs):  # noqa: ANN001
            result = original(*args, **kwargs)
            try:
                if isinstance(result, tuple) and len(result) >= 2:
                    rec.datasets.append((result[0], result[1]))
                elif hasattr(result, "data") and hasattr(result, "target"):
                    rec.datasets.append((result.data, result.target))
            except Exception:  # noqa: BLE001
                pass
            return result

        return load

    for name in dir(datasets):
        if name.startswith(("load_", "make_")) and name not in ("load_files", "load_svmlight_file"):
            setattr(datasets, name, wrap(getattr(datasets, name)))


def measure_kmeans(rec: Recorder, seed: int | None) -> dict | None:
    """Silhouette of the script's final clustering, the WCSS curve for k = 2..10, and ARI if labelled."""
    if not rec.kmeans:
        return None
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    last = rec.kmeans[-1]
    X = np.asarray(last["X"], dtype=float)  # noqa: N806
    model = last["model"]
    labels = getattr(model, "labels_", None)
    rng = np.random.default_rng(seed or 0)
    sample = rng.choice(len(X), size=min(len(X), CURVE_SAMPLE), replace=False)
    result: dict = {
        "estimator": last["estimator"],
        "n_clusters": int(getattr(model, "n_clusters", 0)),
        "inertia": float(getattr(model, "inertia_", float("nan"))),
        "n_samples": len(X),
    }
    rec.in_harness = True
    try:
        if labels is not None and 1 < len(set(labels.tolist())) < len(X):
            result["silhouette"] = float(silhouette_score(X[sample], labels[sample]))
        ks, inertias, silhouettes = [], [], []
        for k in range(2, min(CURVE_MAX_K, len(X) - 1) + 1):
            km = KMeans(n_clusters=k, n_init=4, random_state=seed or 0).fit(X)
            ks.append(k)
            inertias.append(float(km.inertia_))
            silhouettes.append(float(silhouette_score(X[sample], km.labels_[sample])))
        result["curve"] = {"k": ks, "inertia": inertias, "silhouette": silhouettes}
        truth = [y for (data, y) in rec.datasets if _rows(data) == len(X)]
        if labels is not None and len(truth) >= 1:
            result["ari"] = float(adjusted_rand_score(np.asarray(truth[-1]), labels))
    finally:
        rec.in_harness = False
    if "silhouette" in result:
        rec.observe("silhouette", result["silhouette"], "kmeans")
    if "ari" in result:
        rec.observe("ari", result["ari"], "kmeans")
    return result


def _rows(data: object) -> int:
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return -1


# --------------------------------------------------------------------------------------------------
# The work folder and running the script


def prepare_work(code: Path, script: str, source: Path, out: Path) -> Path:
    """Copy the code into out/work (large files linked) and put the variant in the script's place."""
    work = out / "work"
    if not work.exists():
        staging = out / ".work.tmp"
        shutil.rmtree(staging, ignore_errors=True)

        def copy(src: str, dst: str) -> None:
            if os.path.getsize(src) > COPY_LIMIT_BYTES:
                os.symlink(os.path.abspath(src), dst)
            else:
                shutil.copy2(src, dst)

        shutil.copytree(
            code,
            staging,
            symlinks=True,
            ignore=shutil.ignore_patterns(*SKIP_DIRS),
            copy_function=copy,
        )
        os.replace(staging, work)
    target = work / script
    target.parent.mkdir(parents=True, exist_ok=True)
    text = source.read_text(encoding="utf-8", errors="surrogateescape")
    if target.is_symlink():
        target.unlink()
    target.write_text(text, encoding="utf-8", errors="surrogateescape")
    return target


class _IPythonShim:
    """Jupyter exports call get_ipython() for magics; outside IPython they are no-ops, said aloud."""

    def run_line_magic(self, name: str, line: str = "") -> None:
        say(f"ignored IPython magic %{name} {line}".rstrip())

    def run_cell_magic(self, name: str, line: str = "", cell: str = "") -> None:
        say(f"ignored IPython cell magic %%{name}")

    def system(self, command: str) -> None:
        say(f"ignored shell command !{command}")

    def magic(self, line: str) -> None:
        say(f"ignored IPython magic %{line}")


def error_location(exc: BaseException, script: Path) -> tuple[str | None, int | None]:
    """The deepest frame of the user's code in a traceback (or a SyntaxError's own position)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return exc.filename, exc.lineno
    best: tuple[str | None, int | None] = (None, None)
    root = os.path.realpath(script.parent)
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.realpath(frame.filename).startswith(root):
            best = (frame.filename, frame.lineno)
    return best


def relative_to(path: str | None, root: Path) -> str | None:
    if not path:
        return None
    try:
        return str(Path(os.path.realpath(path)).relative_to(os.path.realpath(root)))
    except ValueError:
        return path


def run(args: argparse.Namespace) -> int:
    code, out, source = Path(args.code).resolve(), Path(args.out).resolve(), Path(args.source).resolve()
    for label, path in (("code folder", code), ("source", source)):
        if not path.exists():
            print(f"mlops harness: {label} {path} does not exist", file=sys.stderr)
            return EXIT_BAD_INVOCATION
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    for stale in ("outcome.json", "metrics.json", "accuracy.txt"):
        (out / stale).unlink(missing_ok=True)
    seed = int(os.environ["MLOPS_SEED"]) if os.environ.get("MLOPS_SEED") else None

    script_path = prepare_work(code, args.script, source, out)
    work_root = out / "work"
    rec = Recorder(out, work_root)

    hooks = {
        "keras": lambda m: install_keras_hooks(m, rec, seed),
        "keras.utils": install_keras_utils_compat,
        "sklearn.base": lambda m: install_sklearn_base_hooks(m, rec),
        "sklearn.metrics": lambda m: install_sklearn_metrics_hooks(m, rec),
        "sklearn.cluster": lambda m: install_sklearn_cluster_hooks(m, rec),
        "sklearn.datasets": lambda m: install_sklearn_datasets_hooks(m, rec),
    }
    sys.meta_path.insert(0, PostImportHooks(hooks))
    if seed is not None:
        random.seed(seed)
        try:
            import numpy

            numpy.random.seed(seed)
        except ImportError:
            pass

    os.environ.setdefault("MPLBACKEND", "Agg")
    builtins.get_ipython = lambda: _IPythonShim()  # type: ignore[attr-defined]
    devnull = open(os.devnull)  # noqa: SIM115 (stays open for the script's lifetime)
    os.dup2(devnull.fileno(), 0)
    sys.stdin = devnull
    os.chdir(script_path.parent)
    # The harness's own folder must not shadow the user's modules (or the standard library's).
    here = os.path.dirname(os.path.realpath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != here]
    sys.path.insert(0, str(script_path.parent))
    sys.argv = [str(script_path)]

    say(f"running {args.script}")
    started = time.time()
    outcome: dict = {"status": "ok", "script": args.script}
    exit_code = EXIT_OK
    try:
        runpy.run_path(str(script_path), run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            outcome.update(status="error", error=f"the script called sys.exit({e.code!r})")
            exit_code = EXIT_SCRIPT_ERROR
    except BaseException as e:  # noqa: BLE001 (everything the user's code raises is a trial result)
        filename, line = error_location(e, script_path)
        message = f"{type(e).__name__}: {e}".strip()
        if isinstance(e, EOFError):
            message += " (the script asked for input, but a training has no standard input)"
        outcome.update(
            status="error",
            error=message.splitlines()[0] if message else type(e).__name__,
            file=relative_to(filename, work_root),
            line=line,
            traceback=traceback.format_exc(),
        )
        exit_code = EXIT_SCRIPT_ERROR
        traceback.print_exc()
    duration = time.time() - started
    os.chdir(out)

    kmeans = None
    try:
        kmeans = measure_kmeans(rec, seed)
    except Exception as e:  # noqa: BLE001
        say(f"warning: could not measure the clustering: {e}")
    chosen = choose_metric(rec)
    if chosen is None and exit_code == EXIT_OK:
        found = read_accuracy_file(script_path.parent)
        if found:
            chosen = {"metric": "accuracy", "value": found[0], "source": f"file:{found[1]}"}

    if chosen is None and exit_code == EXIT_OK:
        outcome.update(
            status="no_metric",
            error="the script finished but produced no metric: no Keras evaluate/fit accuracy, "
            "no scikit-learn score, no clustering, and no accuracy.txt written",
        )
        exit_code = EXIT_NO_METRIC

    metrics = {
        "history": rec.history,
        "observations": rec.observations,
        "duration_s": round(duration, 3),
        "epochs": len(rec.history),
        "resumed": rec.resumed,
    }
    if kmeans is not None:
        metrics["kmeans"] = kmeans
    if chosen is not None:
        metrics.update(chosen)
        write_json_atomic(out / "metrics.json", metrics)
        (out / "accuracy.txt").write_text(f"{chosen['value']:.6f}\n", encoding="utf-8")
        say(f"metric {chosen['metric']}={chosen['value']:.4f} (from {chosen['source']})")
    elif exit_code != EXIT_OK:
        write_json_atomic(out / "metrics.json", metrics)
    if outcome["status"] != "ok":
        say(f"error: {outcome['error']}")
    outcome["exit_code"] = exit_code
    outcome["duration_s"] = round(duration, 3)
    write_json_atomic(out / "outcome.json", outcome)
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness", description="Run a training script, collect its metric.")
    parser.add_argument("--code", required=True, help="the checkout (read-only)")
    parser.add_argument("--script", required=True, help="the entry point, relative to --code")
    parser.add_argument("--source", required=True, help="the variant's source, run in the script's place")
    parser.add_argument("--out", required=True, help="the trial folder (read-write)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
