"""Post-import hooks: a function runs on a module right after the script (or a library) first imports it."""

from __future__ import annotations

import importlib.abc
import importlib.util
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

from mlops_harness.recorder import say

Hook = Callable[[ModuleType], None]


class PostImportHooks(importlib.abc.MetaPathFinder):
    """Runs a function on a module right after it is first imported (put first on ``sys.meta_path``)."""

    def __init__(self, hooks: dict[str, Hook]) -> None:
        self.hooks = hooks
        self.busy: set[str] = set()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        hook = self.hooks.get(fullname)
        if hook is None or fullname in self.busy:
            return None
        self.busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            try:
                hook(module)
            except Exception as e:  # a hook must never break the user's import
                say(f"warning: could not instrument {module.__name__}: {e}")

        # This loader instance, and only it, runs the hook after the module's own code.
        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
