"""Scale the units of hidden Dense layers, or the filters of convolutions."""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodContext

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


class _Scale(Tweak):
    WHAT = ""
    NAMES: tuple[str, ...] = ()

    def targets(self, sites: list[LayerSite]) -> list[LayerSite]:
        raise NotImplementedError

    def transform(self, module: cst.Module, context: CodemodContext) -> cst.Module:
        factor = float(self.params.get("factor", 2.0))
        targets = {id(s.call) for s in self.targets(layers_of(module))}
        if not targets:
            raise self.not_applicable(f"no {self.WHAT} to scale")
        changed = []

        class Scale(cst.CSTTransformer):
            def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:  # noqa: N802
                if id(original) not in targets:
                    return updated
                arg = arg_value(updated, 0, *names)
                value = int_of(arg.value) if arg else None
                if value is None:
                    return updated
                new = max(1, round(value * factor))
                changed.append((value, new))
                return with_arg(updated, 0, names, literal(new))

        names = self.NAMES
        new = module.visit(Scale())
        if not changed:
            raise self.not_applicable(f"the {self.WHAT} are not written as numbers")
        self.changed = changed
        return new

    def describe(self) -> str:
        pairs = getattr(self, "changed", [])
        if pairs:
            return f"{self.WHAT} " + ", ".join(f"{a} -> {b}" for a, b in pairs)
        return f"{self.WHAT} x{self.params.get('factor', 2.0):g}"


class ScaleUnits(_Scale):
    NAME = "scale_units"
    DESCRIPTION = "Multiply the units of every hidden Dense layer (not the output layer) by a factor."
    WHAT = "hidden units"
    NAMES = ("units", "output_dim")

    def targets(self, sites: list[LayerSite]) -> list[LayerSite]:
        return hidden_dense(sites)


class ScaleFilters(_Scale):
    NAME = "scale_filters"
    DESCRIPTION = "Multiply the filters of every convolution layer by a factor."
    WHAT = "filters"
    NAMES = ("filters", "nb_filter")

    def targets(self, sites: list[LayerSite]) -> list[LayerSite]:
        return [s for s in sites if s.kind == "conv"]
