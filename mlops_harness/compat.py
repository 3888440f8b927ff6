"""Aliases for legacy Keras code: ``keras.utils.np_utils`` (and the other ``keras.utils.<module>`` paths of
``legacy_paths.MOVED`` read as attributes), ``fit(nb_epoch=...)``, and ``plot_model`` without pydot.

Each one is said in the log when, and only when, the script uses the old name: a note that is said for
every script whether it applies or not teaches people to ignore notes.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.util
import sys
import types
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from typing import Any

from mlops_harness.legacy_paths import MOVED
from mlops_harness.recorder import Recorder, say

NP_UTILS = "keras.utils.np_utils"
NP_UTILS_NAMES = ("to_categorical", "normalize")
UTILS = "keras.utils"
# The old modules of keras.utils that Keras 2 let a script read as attributes (``keras.utils.vis_utils``).
OLD_UTILS = frozenset(
    [NP_UTILS.rpartition(".")[2]]
    + [name.rpartition(".")[2] for name in MOVED if name.startswith(UTILS + ".")]
)


class NpUtilsAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``keras.utils.np_utils``, gone after Keras 2.8, made on import from ``keras.utils``'s functions.

    It goes last on ``sys.meta_path``, so a Keras that still has the module imports its own; the alias is
    made (and said) only when the script imports the old name (``from keras.utils import np_utils``,
    ``import keras.utils.np_utils``) or reads it as an attribute (see :func:`lazy_old_utils`).
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> ModuleSpec | None:
        utils = sys.modules.get(NP_UTILS.rpartition(".")[0])
        if fullname != NP_UTILS or utils is None or not hasattr(utils, "to_categorical"):
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: ModuleSpec) -> types.ModuleType | None:
        return None  # the default module

    def exec_module(self, module: types.ModuleType) -> None:
        utils = sys.modules[NP_UTILS.rpartition(".")[0]]
        for name in NP_UTILS_NAMES:
            if hasattr(utils, name):
                vars(module)[name] = getattr(utils, name)
        say("note: keras.utils.np_utils is gone from this Keras; the script gets an alias to keras.utils")


def lazy_old_utils(utils: Any) -> None:
    """Let ``keras.utils.np_utils`` (and ``vis_utils``, ``generic_utils``, ...) be read as attributes, as
    Keras 2 allowed, without importing them first: the first read imports the alias (and says so); any
    other missing name is an AttributeError as before."""
    if not hasattr(utils, "to_categorical") or "np_utils" in vars(utils):
        return
    earlier = vars(utils).get("__getattr__")

    def __getattr__(name: str) -> Any:
        if name in OLD_UTILS:
            return importlib.import_module(f"{UTILS}.{name}")
        if earlier is not None:
            return earlier(name)
        raise AttributeError(f"module {utils.__name__!r} has no attribute {name!r}")

    vars(utils)["__getattr__"] = __getattr__


def quiet_plot_model(utils: Any) -> None:
    """``utils.plot_model`` that, without pydot or Graphviz (which draw the picture), skips the plot with a
    note instead of raising: a picture of the model is no part of its training."""
    original = vars(utils).get("plot_model")
    if not callable(original) or getattr(original, "_mlops_quiet", False):
        return
    said: list[bool] = []

    @functools.wraps(original)
    def plot_model(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        except ImportError as e:
            if "pydot" not in str(e) and "graphviz" not in str(e).lower():
                raise
            if not said:
                said.append(True)
                say("note: plot_model needs pydot and Graphviz, which this environment does not have: "
                    "the picture of the model is skipped")  # fmt: skip
            return None

    plot_model._mlops_quiet = True  # type: ignore[attr-defined]
    vars(utils)["plot_model"] = plot_model


def keras_utils(utils: Any) -> None:
    lazy_old_utils(utils)
    quiet_plot_model(utils)


# Post-import hooks (see runner.py) of the modules that hold ``keras.utils`` in each generation: Keras 3 (and
# tf.keras on it), Keras 2.15's own, and tf.keras of TensorFlow 2.15.
HOOKS = {
    UTILS: keras_utils,
    "keras.api._v2.keras.utils": quiet_plot_model,
    "tf_keras.utils": quiet_plot_model,
}


def fit_kwargs(kwargs: dict[str, Any], rec: Recorder) -> dict[str, Any]:
    """``fit``'s keyword arguments with Keras 1's ``nb_epoch`` (refused since Keras 2) read as ``epochs``."""
    if "nb_epoch" in kwargs and "epochs" not in kwargs:
        kwargs = dict(kwargs)
        kwargs["epochs"] = kwargs.pop("nb_epoch")
        rec.note("fit(nb_epoch=...) is Keras 1's name for epochs; it is read as epochs")
    return kwargs
