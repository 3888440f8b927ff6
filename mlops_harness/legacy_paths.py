"""Module paths of older Keras 2 releases that Keras 2.15 (and Keras 3) moved, aliased to ``keras.layers``.

Keras up to 2.8 had its layers in modules (``keras.layers.normalization``, ``keras.layers.convolutional``,
``keras.layers.core``, ``keras.layers.pooling``, ...; from 2.6 also one module per layer below them, as
``keras.layers.normalization.batch_normalization``), and scripts imported them from there. Keras 2.13
moved that code to ``keras.src`` and kept only the public ``keras.layers``. Every layer those modules held
is in ``keras.layers`` still, so an import of one of the old paths gets a module that looks its names up in
``keras.layers``, said once in the log. Only when the real module is missing: this finder is asked last.
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


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        layers = importlib.import_module(self.target)

        def lookup(name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            try:
                return getattr(layers, name)
            except AttributeError:
                raise AttributeError(
                    f"module {module.__name__!r} (an alias of {self.target}) has no {name!r}"
                ) from None

        vars(module)["__getattr__"] = lookup
        module.__path__ = []  # a package, so that deeper old paths (normalization.batch_normalization) import too
        if not OldLayerPaths.said:
            OldLayerPaths.said = True
            say(
                f"note: {module.__name__} is an old Keras module path; the script gets an alias to {self.target}"
            )


class OldLayerPaths(importlib.abc.MetaPathFinder):
    """Finds ``keras.layers.<old module>[.<more>]`` when nothing else does (append it to ``sys.meta_path``)."""

    said = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        for package in PACKAGES:
            prefix = package + "."
            parts = fullname[len(prefix) :].split(".") if fullname.startswith(prefix) else [""]
            # Deeper old paths are modules (normalization.batch_normalization); a CamelCase name is a
            # layer that ``from ... import`` looks for as a submodule once the alias lacks it: not ours.
            if parts[0] in OLD_MODULES and all(part.islower() for part in parts[1:]):
                return importlib.machinery.ModuleSpec(fullname, _Alias(package), is_package=True)
        return None


def install() -> None:
    if not any(isinstance(finder, OldLayerPaths) for finder in sys.meta_path):
        sys.meta_path.append(OldLayerPaths())
