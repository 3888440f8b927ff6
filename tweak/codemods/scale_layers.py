"""Scale the units of hidden Dense layers, or the filters of convolutions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import libcst as cst
from libcst.codemod import CodemodContext

from mlops.classify import Framework
from tweak.codemods.base import (
    LayerSite,
    Tweak,
    arg_value,
    hidden_dense,
    int_of,
    layers_of,
    literal,
    with_arg,
)
from tweak.codemods.torch_widen import widen_filters, widen_units


class _ScaleCalls(cst.CSTTransformer):
    """Multiplies the first argument (or its keyword) of the given layer calls, noting each change."""

    def __init__(self, targets: set[int], names: tuple[str, ...], factor: float) -> None:
        super().__init__()
        self.targets = targets
        self.names = names
        self.factor = factor
        self.changed: list[tuple[int, int]] = []

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:  # noqa: N802 (LibCST's name)
        if id(original) not in self.targets:
            return updated
        arg = arg_value(updated, 0, *self.names)
        value = int_of(arg.value) if arg else None
        if value is None:
            return updated
        new = max(1, round(value * self.factor))
        self.changed.append((value, new))
        return with_arg(updated, 0, self.names, literal(new))


@dataclass(frozen=True)
class _Scale(Tweak):
    WHAT: ClassVar[str] = ""
    NAMES: ClassVar[tuple[str, ...]] = ()

    factor: float = 2.0

    def targets(self, sites: list[LayerSite]) -> list[LayerSite]:
        raise NotImplementedError

    def transform(self, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
        targets = {id(s.call) for s in self.targets(layers_of(module))}
        if not targets:
            raise self.not_applicable(f"no {self.WHAT} to scale")
        scale = _ScaleCalls(targets, self.NAMES, float(self.factor))
        new = module.visit(scale)
        if not scale.changed:
            raise self.not_applicable(f"the {self.WHAT} are not written as numbers")
        return new, f"{self.WHAT} " + ", ".join(f"{a} -> {b}" for a, b in scale.changed)


@dataclass(frozen=True)
class ScaleUnits(_Scale):
    NAME = "scale_units"
    DESCRIPTION = "Multiply the units of every hidden Dense layer (not the output layer) by a factor."
    WHAT = "hidden units"
    NAMES = ("units", "output_dim")
    REWRITES = {Framework.KERAS: _Scale.transform, Framework.PYTORCH: widen_units}

    def targets(self, sites: list[LayerSite]) -> list[LayerSite]:
        return hidden_dense(sites)


@dataclass(frozen=True)
class ScaleFilters(_Scale):
    NAME = "scale_filters"
    DESCRIPTION = "Multiply the filters of every convolution layer by a factor."
    WHAT = "filters"
    NAMES = ("filters", "nb_filter")
    REWRITES = {Framework.KERAS: _Scale.transform, Framework.PYTORCH: widen_filters}

    def targets(self, sites: list[LayerSite]) -> list[LayerSite]:
        return [s for s in sites if s.kind == "conv"]
