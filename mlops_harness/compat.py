"""Aliases for legacy Keras code, each said aloud in the log: ``keras.utils.np_utils`` and ``nb_epoch``."""

from __future__ import annotations

import sys
import types
from typing import Any

from mlops_harness.recorder import say


def alias_np_utils(utils: Any) -> None:
    """``keras.utils.np_utils`` went away after Keras 2.8; old scripts still import it. Alias it."""
    if hasattr(utils, "np_utils") or not hasattr(utils, "to_categorical"):
        return
    np_utils = types.ModuleType(f"{utils.__name__}.np_utils")
    vars(np_utils)["to_categorical"] = utils.to_categorical
    if hasattr(utils, "normalize"):
        vars(np_utils)["normalize"] = utils.normalize
    sys.modules[np_utils.__name__] = np_utils
    utils.np_utils = np_utils
    say("note: keras.utils.np_utils is gone from this Keras; the script gets an alias to keras.utils")


def fit_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``fit``'s keyword arguments with Keras 1's ``nb_epoch`` (refused since Keras 2) read as ``epochs``."""
    if "nb_epoch" in kwargs and "epochs" not in kwargs:
        kwargs = dict(kwargs)
        kwargs["epochs"] = kwargs.pop("nb_epoch")
    return kwargs
