"""The model behind the metric: which one it is, what it was fitted on, and saving it into the trial folder.

The hooks tell a :class:`ModelTracker` what the script does with its models (fitted on what, which
prediction came from which model, which model each measured metric measured); once the script has ended
and its metric is chosen, :func:`save` writes the model that produced that metric into ``<trial>/model/``
(Keras's native ``.keras``; a pickle for scikit-learn) and says so in a MODEL event. A model that cannot be
saved is a warning and an event with the reason, never a failed trial.

Standard library only at import: numpy, Keras and the pickler are imported when a model is described or
saved, by which time the script has imported them itself.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_harness.protocol import MODEL_DIR, EventKind, EventWriter, ModelFormat, file_sha256

KEPT_PREDICTIONS = 8  # the last predictions remembered, to find which model made the y_pred a metric gets
TEXT_EXAMPLE_CHARS = 64
# The version of each library a model may need to load, by the module name it is imported as.
LIBRARIES = {
    "numpy": "numpy",
    "keras": "keras",
    "tensorflow": "tensorflow",
    "scikit-learn": "sklearn",
    "joblib": "joblib",
    "pandas": "pandas",
    "scipy": "scipy",
    "torch": "torch",
    "torchvision": "torchvision",
    "lightning": "lightning",
}


class ModelTracker:
    """What the script did with its models, as the hooks saw it; holds only what it must (weakly if it can)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_observation: dict[int, Any] = {}  # index in Recorder.observations -> the model it measured
        self.by_fit: dict[int, Any] = {}  # Keras fit number -> its model
        self.restored: dict[int, int] = {}  # Keras fit number -> the epoch whose weights it ended with
        self.last_fitted: Any = None
        self.last_predicted: Any = None
        self._predictions: list[tuple[Any, Any]] = []  # (what predict returned, the model), newest last
        self._inputs: dict[int, tuple[Callable[[], Any], dict[str, Any] | None]] = {}
        self._hooked: list[tuple[Any, str, Any]] = []  # (class, method name, what its own dict had)

    def hooked(self, cls: Any, name: str, own: Any) -> None:
        """A hook replaced ``cls.<name>``; ``own`` is what the class itself defined (None: it inherited it)."""
        self._hooked.append((cls, name, own))

    def unhook(self) -> None:
        """Give the classes back their own methods (the script has ended): a class pickled by value (one of
        the script's or of its local modules) must carry the user's code, not the harness's wrappers."""
        for cls, name, own in reversed(self._hooked):
            with contextlib.suppress(AttributeError, TypeError):
                if own is None:
                    delattr(cls, name)
                else:
                    setattr(cls, name, own)
        self._hooked.clear()

    def fitted(self, model: Any, x: Any, fit: int | None = None) -> None:
        """``model`` was fitted (by the user's code) on ``x``; Keras fits also have their number."""
        spec = describe_input(x)
        try:
            ref: Callable[[], Any] = weakref.ref(model)
        except TypeError:
            ref = lambda: model  # noqa: E731 (an object that takes no weak reference is kept)
        with self.lock:
            self._inputs = {k: v for k, v in self._inputs.items() if v[0]() is not None}
            self._inputs[id(model)] = (ref, spec)
            self.last_fitted = model
            if fit is not None:
                self.by_fit[fit] = model

    def input_of(self, model: Any) -> dict[str, Any] | None:
        entry = self._inputs.get(id(model))
        return entry[1] if entry is not None and entry[0]() is model else None

    def predicted(self, model: Any, result: Any) -> None:
        with self.lock:
            self._predictions = [*self._predictions[-(KEPT_PREDICTIONS - 1) :], (result, model)]
            self.last_predicted = model

    def producer(self, *values: Any) -> Any:
        """The model whose prediction one of ``values`` is (the very object predict returned), or the model
        that predicted last (``accuracy_score(y, model.predict(X).argmax(1))`` changed the object)."""
        with self.lock:
            for value in values:
                for result, model in reversed(self._predictions):
                    if result is value:
                        return model
            return self.last_predicted

    def measured(self, index: int, model: Any) -> None:
        self.by_observation[index] = model

    def model_for(self, origin: tuple[str, int | None]) -> Any:
        """The model behind a metric chosen from ``origin``: ("observation", i), ("fit", n) or ("file", None)."""
        kind, key = origin
        found = None
        if kind == "observation" and key is not None:
            found = self.by_observation.get(key)
        elif kind == "fit" and key is not None:
            found = self.by_fit.get(key)
        return found if found is not None else self.last_fitted


# -- what a model was fitted on ------------------------------------------------------------------------


def describe_input(x: Any) -> dict[str, Any] | None:
    """The form of what ``fit`` got (see protocol.MODEL_FIELDS), without its values; None if unknown."""
    try:
        return _describe(x, depth=0)
    except Exception:  # noqa: BLE001 (a description is a nicety; an odd input must not break fit)
        return None


def _describe(x: Any, depth: int) -> dict[str, Any] | None:
    if x is None or depth > 2:
        return None
    if hasattr(x, "columns") and hasattr(x, "dtypes") and hasattr(x, "iloc"):  # a pandas DataFrame
        columns = [str(c) for c in x.columns]
        dtypes = [str(d) for d in x.dtypes]
        examples = {
            column: _text(x.iloc[0, i]) for i, (column, d) in enumerate(zip(columns, dtypes, strict=True))
            if not _numeric(d) and len(x)
        }  # fmt: skip
        return {"kind": "frame", "columns": columns, "dtypes": dtypes, "examples": examples}
    if isinstance(x, dict):
        items = {str(k): _describe(v, depth + 1) for k, v in x.items()}
        return {"kind": "dict", "items": items}
    if isinstance(x, tuple | list) and x and all(hasattr(v, "shape") for v in x):  # several inputs
        return {"kind": "list", "items": [_describe(v, depth + 1) for v in x]}
    if hasattr(x, "shape") and hasattr(x, "dtype") and not callable(x.shape):
        shape = [None, *(int(d) if d is not None else None for d in tuple(x.shape)[1:])]
        spec: dict[str, Any] = {"kind": "array", "shape": shape, "dtype": _dtype_name(x.dtype)}
        if not _numeric(spec["dtype"]) and len(x):
            first = x.iloc[0] if hasattr(x, "iloc") else x[0]  # a pandas Series is indexed by label
            spec["example"] = _text(first if len(shape) == 1 else first.reshape(-1)[0])
        return spec
    if isinstance(x, list | tuple) and x:  # rows as Python lists: look at a few
        import numpy as np

        head = np.asarray(x[:5])
        spec = {"kind": "array", "shape": [None, *head.shape[1:]], "dtype": str(head.dtype)}
        if not _numeric(spec["dtype"]):
            spec["example"] = _text(head.reshape(-1)[0])
        return spec
    return None  # a generator, a tf.data pipeline, ...: the model's own inputs may say (see _keras_inputs)


def _dtype_name(dtype: Any) -> str:
    name = getattr(dtype, "name", None)  # numpy and TensorFlow dtypes
    return str(name if isinstance(name, str) else dtype)


def _numeric(dtype: str) -> bool:
    return dtype.startswith(("float", "int", "uint", "bool", "complex", "bfloat"))


def _text(value: Any) -> str:
    return str(value)[:TEXT_EXAMPLE_CHARS]


def _keras_inputs(model: Any) -> dict[str, Any] | None:
    """The form of a Keras model's inputs from the model itself (fit got a generator or a dataset)."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None
    specs = [
        {"kind": "array", "shape": [None, *(d for d in tuple(t.shape)[1:])], "dtype": _dtype_name(t.dtype)}
        for t in inputs
    ]
    return specs[0] if len(specs) == 1 else {"kind": "list", "items": specs}


# -- saving --------------------------------------------------------------------------------------------


def framework_of(model: Any) -> str | None:
    """Say "keras", "sklearn" or "pytorch" from where the model's classes come from; None for anything else."""
    for cls in type(model).__mro__:
        module = cls.__module__ or ""
        if module == "torch.nn.modules.module" and cls.__name__ == "Module":
            return "pytorch"
        if module.startswith(("keras", "tf_keras", "tensorflow")) and cls.__name__ in ("Model", "Functional"):
            return "keras"
        if module.startswith("sklearn.") and cls.__name__ == "BaseEstimator":
            return "sklearn"
    return None


def describe_class(model: Any) -> str:
    name = type(model).__name__
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and all(isinstance(s, tuple) and len(s) == 2 for s in steps):
        name += "(" + ", ".join(type(step).__name__ for _, step in steps) + ")"
    return name


def versions() -> dict[str, str]:
    """Python's version and those of the libraries this process imported (what loading may need)."""
    found = {"python": platform.python_version()}
    for name, module_name in LIBRARIES.items():
        module = sys.modules.get(module_name)
        version = getattr(module, "__version__", None) if module is not None else None
        if isinstance(version, str):
            found[name] = version
    keras = sys.modules.get("keras")
    backend = getattr(getattr(keras, "backend", None), "backend", None)
    if callable(backend):
        with contextlib.suppress(Exception):
            found["keras_backend"] = str(backend())
    return found


def _save_keras(model: Any, folder: Path) -> ModelFormat:
    keras = sys.modules.get("keras")
    major, minor = (int(p) for p in (str(getattr(keras, "__version__", "3.0")).split(".") + ["0"])[:2])
    fmt = ModelFormat.KERAS if (major, minor) >= (2, 13) else ModelFormat.H5
    partial = folder / f".partial-{fmt.file_name}"  # Keras wants the suffix; a kill leaves no half model
    try:
        model.save(str(partial))
        os.replace(partial, folder / fmt.file_name)
    finally:
        partial.unlink(missing_ok=True)
    return fmt


def _keras_reload_error(path: Path) -> str | None:
    """Why the saved file does not load back (Keras saves a custom layer it cannot rebuild without a word:
    one that lacks get_config, or is not registered); None when it does."""
    keras = sys.modules.get("keras")
    try:
        keras.models.load_model(str(path))  # type: ignore[union-attr]
    except Exception as e:  # noqa: BLE001
        return describe_error(e)
    return None


def describe_error(e: BaseException) -> str:
    """One line on why something failed: the exception at the root of the chain (Keras wraps "could not
    locate class 'Scale'" in a TypeError about the whole model), its first line."""
    root, depth = e, 0
    while depth < 8 and (root.__cause__ or root.__context__) is not None:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
        depth += 1
    lines = str(root).strip().splitlines()
    return f"{type(root).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")


def _pickler() -> Any:
    """cloudpickle; the copy older joblib versions ship; else plain pickle (the script's classes by name)."""
    for name in ("cloudpickle", "joblib.externals.cloudpickle", "pickle"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("no pickler")  # pragma: no cover (pickle is in the standard library)


def _save_pickle(model: Any, folder: Path, work_root: str) -> ModelFormat:
    """cloudpickle (which joblib needs, so it is there with scikit-learn) writes the classes and functions
    of the user's script and local modules by value, so the model loads without them; what it writes is a
    plain pickle stream, which joblib.load and pickle.load read."""
    cloudpickle = _pickler()
    local = [
        m for name, m in list(sys.modules.items())
        if name != "__main__" and os.path.realpath(getattr(m, "__file__", None) or "/").startswith(work_root)
    ] if hasattr(cloudpickle, "register_pickle_by_value") else []  # fmt: skip
    for module in local:
        cloudpickle.register_pickle_by_value(module)
    partial = folder / f".partial-{ModelFormat.PICKLE.file_name}"
    try:
        with partial.open("wb") as fh:
            cloudpickle.dump(model, fh)
        os.replace(partial, folder / ModelFormat.PICKLE.file_name)
    finally:
        partial.unlink(missing_ok=True)
        for module in local:
            cloudpickle.unregister_pickle_by_value(module)
    return ModelFormat.PICKLE


def save(
    model: Any, origin: str, input_spec: dict[str, Any] | None, out: Path, work_root: str
) -> dict[str, Any]:
    """Save ``model`` into ``out/model/``; the fields of its MODEL event. Raises what saving raised."""
    framework = framework_of(model)
    if framework is None:
        raise TypeError(
            f"a {type(model).__name__} is neither a Keras model, a scikit-learn estimator nor a PyTorch module"
        )
    folder = out / MODEL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():  # an earlier launch of this trial saved one
        if stale.is_file():
            stale.unlink()
    reloads: str | None = None
    extra: dict[str, Any] = {}
    if framework == "keras":
        fmt = _save_keras(model, folder)
        input_spec = input_spec or _keras_inputs(model)
        reloads = _keras_reload_error(folder / fmt.file_name)
    elif framework == "pytorch":
        torch_model = importlib.import_module("mlops_harness.torch_model")
        fmt, extra = torch_model.save(model, folder)
        input_spec = input_spec or torch_model.input_of(model)
    else:
        fmt = _save_pickle(model, folder, work_root)
    path = folder / fmt.file_name
    return {
        **extra,
        "saved": True,
        "reload_error": reloads,
        "file": f"{MODEL_DIR}/{fmt.file_name}",
        "format": fmt.value,
        "framework": framework,
        "class": describe_class(model),
        "origin": origin,
        "input": input_spec,
        "versions": versions(),
        "size_bytes": path.stat().st_size,
        "sha256": file_sha256(path),
    }


def _torch_model() -> Any:
    """The PyTorch module the script trained and called (see torch_model.chosen), if torch was used."""
    hooks, chooser = (
        sys.modules.get("mlops_harness.torch_hooks"),
        sys.modules.get("mlops_harness.torch_model"),
    )
    training = getattr(hooks, "STATE", {}).get("training")
    if training is None or chooser is None:
        return None
    made = training.made
    return chooser.chosen(list(made.named("modules").values()), list(made.named("optimizers").values()))


def save_chosen(
    tracker: ModelTracker,
    origin: tuple[str, int | None],
    source: str,
    events: EventWriter,
    out: Path,
    work_root: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Save the model behind the chosen metric and write its MODEL event; a failure is said, not raised."""
    model = tracker.model_for(origin)
    if model is None:
        model = _torch_model()
    tracker.unhook()
    if model is None:
        fields: dict[str, Any] = {
            "saved": False,
            "error": f"no Keras model or scikit-learn estimator (nor PyTorch module) produced the metric (from {source})",
        }
    else:
        try:
            fields = save(model, source, tracker.input_of(model), out, work_root)
        except Exception as e:  # noqa: BLE001 (a custom layer, an unpicklable object, a full disk...)
            error = f"{type(e).__name__}: {e.strerror}" if isinstance(e, OSError) and e.strerror else None
            fields = {"saved": False, "error": error or describe_error(e), "class": describe_class(model)}
    if fields["saved"]:
        size = fields["size_bytes"]
        say(f"model saved: {fields['file']} ({fields['class']}, {size / 1024:.0f} KB)")
        if fields["reload_error"]:
            say(
                f"warning: the saved model does not load back ({fields['reload_error']}); a custom layer "
                "needs get_config() and @keras.saving.register_keras_serializable() to be rebuilt"
            )
    else:
        say(f"warning: the model was not saved: {fields['error']}; the trial keeps its metric")
    try:
        events.write(EventKind.MODEL, **fields)
    except OSError as e:  # the disk is full: the event cannot be written either
        say(f"warning: could not record the model event ({e.strerror or e})")
    return fields
