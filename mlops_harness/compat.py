"""Aliases for legacy Keras code: ``keras.utils.np_utils`` and ``fit(nb_epoch=...)``.

Each one is said in the log when, and only when, the script uses the old name: a note that is said for
every script whether it applies or not teaches people to ignore notes.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from typing import Any

from mlops_harness.recorder import Recorder, say

NP_UTILS = "keras.utils.np_utils"
NP_UTILS_NAMES = ("to_categorical", "normalize")


class NpUtilsAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``keras.utils.np_utils``, gone after Keras 2.8, made on import from ``keras.utils``'s functions.

    It goes last on ``sys.meta_path``, so a Keras that still has the module imports its own; the alias is
    made (and said) only when the script imports the old name (``from keras.utils import np_utils``,
    ``import keras.utils.np_utils``) or reads it as an attribute (see :func:`lazy_np_utils`).
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


def lazy_np_utils(utils: Any) -> None:
    """Let ``keras.utils.np_utils`` be read as an attribute, as Keras 2 allowed, without importing it first:
    the first read imports the alias (and says so); any other missing name is an AttributeError as before."""
    if not hasattr(utils, "to_categorical") or "np_utils" in vars(utils):
        return
    earlier = vars(utils).get("__getattr__")

    def __getattr__(name: str) -> Any:
        if name == "np_utils":
            return importlib.import_module(NP_UTILS)
        if earlier is not None:
            return earlier(name)
        raise AttributeError(f"module {utils.__name__!r} has no attribute {name!r}")

    vars(utils)["__getattr__"] = __getattr__


def fit_kwargs(kwargs: dict[str, Any], rec: Recorder) -> dict[str, Any]:
    """``fit``'s keyword arguments with Keras 1's ``nb_epoch`` (refused since Keras 2) read as ``epochs``."""
    if "nb_epoch" in kwargs and "epochs" not in kwargs:
        kwargs = dict(kwargs)
        kwargs["epochs"] = kwargs.pop("nb_epoch")
        rec.note("fit(nb_epoch=...) is Keras 1's name for epochs; it is read as epochs")
    return kwargs
