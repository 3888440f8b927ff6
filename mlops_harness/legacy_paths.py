"""Module paths of older Keras 2 releases that Keras 2.13 (and Keras 3) moved, aliased to the public modules
that hold their names today.

Keras up to 2.12 had its layers in modules (``keras.layers.normalization``, ``keras.layers.convolutional``,
``keras.layers.core``, ``keras.layers.pooling``, ...; from 2.6 also one module per layer below them, as
``keras.layers.normalization.batch_normalization``), its utilities in ``keras.utils.<module>``
(``vis_utils`` for ``plot_model``, ``generic_utils``, ``data_utils``, ...) and its base classes in
``keras.engine`` (``keras.engine.topology`` in Keras 2.0 to 2.2), and scripts imported them from there.
Keras 2.13 moved that code to ``keras.src`` and kept only the public modules (its release notes: "accessible
symbols are now restricted to symbols that are intended to be public"); Keras 3 has no ``keras.src`` of
that shape either. Every name those modules were imported for is in a public module still, so an import
of one of the old paths gets a module that looks its names up there, said once per path in the log, and
only when the script imports it: this finder is asked last, when the real module is missing.

``keras.wrappers.scikit_learn`` is not aliased: its classes went to SciKeras, with another API.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from mlops_harness.recorder import say

PACKAGES = ("keras.layers", "tensorflow.keras.layers")
# The layer modules of Keras 2.0 to 2.12, by their name under keras.layers.
OLD_MODULES = frozenset(
    [
        "normalization",
        "convolutional",
        "core",
        "pooling",
        "recurrent",
        "embeddings",
        "merge",
        "advanced_activations",
        "wrappers",
        "noise",
        "local",
        "convolutional_recurrent",
        "cudnn_recurrent",
        "dense_attention",
        "normalization_v2",
        "recurrent_v2",
        "activation",
        "attention",
        "regularization",
        "reshaping",
        "rnn",
    ]
)
# Other modules of Keras 2.0 to 2.12 -> the public modules that hold their names now, looked in in order.
MOVED: dict[str, tuple[str, ...]] = {
    "keras.utils.vis_utils": ("keras.utils",),  # plot_model, model_to_dot
    "keras.utils.generic_utils": ("keras.utils", "keras.saving"),  # get_custom_objects, Progbar, ...
    "keras.utils.data_utils": ("keras.utils",),  # get_file, Sequence
    "keras.utils.layer_utils": ("keras.utils",),
    "keras.utils.io_utils": ("keras.utils",),
    "keras.engine": ("keras.layers", "keras.models"),  # Layer, InputSpec, Input, Model, Sequential
    "keras.engine.topology": ("keras.layers", "keras.models"),  # Keras 2.0 to 2.2
    "keras.engine.base_layer": ("keras.layers",),
    "keras.engine.input_layer": ("keras.layers",),
    "keras.engine.training": ("keras.models",),
    "keras.engine.sequential": ("keras.models",),
    "keras.engine.functional": ("keras.models",),
    "keras.callbacks.callbacks": ("keras.callbacks",),  # Keras 2.3
}


class _Alias(importlib.abc.Loader):
    """A module whose names are those of ``targets`` (the first that has each), made on import."""

    said: set[str] = set()

    def __init__(self, targets: tuple[str, ...]) -> None:
        self.targets = targets

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        holders = [importlib.import_module(target) for target in self.targets]
        shown = ", ".join(self.targets)

        def lookup(name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            for holder in holders:
                if hasattr(holder, name):
                    return getattr(holder, name)
            raise AttributeError(f"module {module.__name__!r} (an alias of {shown}) has no {name!r}")

        vars(module)["__getattr__"] = lookup
        module.__file__ = f"<an alias of {shown}>"  # what an ImportError of a missing name shows
        module.__path__ = []  # a package, so that deeper old paths (normalization.batch_normalization) import too
        top = self.top(module.__name__)
        if top not in _Alias.said:
            _Alias.said.add(top)
            say(f"note: {module.__name__} is an old Keras module path; the script gets an alias to {shown}")

    @staticmethod
    def top(name: str) -> str:
        """What a note is said once for: every old layer module at once (they are one alias), else the path."""
        return next((package for package in PACKAGES if name.startswith(package + ".")), name)


class OldLayerPaths(importlib.abc.MetaPathFinder):
    """Finds ``keras.layers.<old module>[.<more>]`` and the other moved modules (``MOVED``) when nothing else
    does (append it to ``sys.meta_path``)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in MOVED:
            return importlib.machinery.ModuleSpec(fullname, _Alias(MOVED[fullname]), is_package=True)
        for package in PACKAGES:
            prefix = package + "."
            parts = fullname[len(prefix) :].split(".") if fullname.startswith(prefix) else [""]
            # Deeper old paths are modules (normalization.batch_normalization); a CamelCase name is a
            # layer that ``from ... import`` looks for as a submodule once the alias lacks it: not ours.
            if parts[0] in OLD_MODULES and all(part.islower() for part in parts[1:]):
                return importlib.machinery.ModuleSpec(fullname, _Alias((package,)), is_package=True)
        return None


def install() -> None:
    if not any(isinstance(finder, OldLayerPaths) for finder in sys.meta_path):
        sys.meta_path.append(OldLayerPaths())
