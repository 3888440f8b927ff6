"""Regularize: dropout after every hidden Dense layer, an existing Dropout's lower rate raised."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.codemod import CodemodContext

from mlops.classify import Framework
from tweak.codemods.base import (
    Tweak,
    arg_value,
    hidden_dense,
    insert_layers,
    last_name,
    layers_of,
    literal,
    make_call,
    needs_import,
    sibling,
    with_arg,
)
from tweak.codemods.torch_dropout import add_dropout as add_dropout_torch


class _RaiseRates(cst.CSTTransformer):
    """Sets the rate of the given Dropout calls whose rate is a number below ``rate``."""

    def __init__(self, targets: set[int], rate: float) -> None:
        super().__init__()
        self.targets = targets
        self.rate = rate
        self.changed: list[float] = []

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:  # noqa: N802 (LibCST's name)
        arg = arg_value(updated, 0, "rate", "p") if id(original) in self.targets else None
        if arg is None or not isinstance(arg.value, cst.Float | cst.Integer):
            return updated
        old = float(arg.value.value)
        if old >= self.rate:
            return updated
        self.changed.append(old)
        return with_arg(updated, 0, ("rate", "p"), literal(self.rate))


@dataclass(frozen=True)
class AddDropout(Tweak):
    NAME = "add_dropout"
    DESCRIPTION = (
        "Add a Dropout layer after every hidden Dense layer that has none; raise a lower Dropout rate."
    )

    rate: float = 0.2

    def transform(self, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
        rate = float(self.rate)
        # Only Dropout's rate: a GaussianDropout or AlphaDropout of the user's is left as written.
        plain = {
            id(s.call)
            for s in layers_of(module)
            if s.kind == "dropout" and last_name(s.call.func) == "Dropout"
        }
        raise_ = _RaiseRates(plain, rate)
        module = module.visit(raise_)
        done = [f"Dropout {old:g} -> {rate:g}" for old in raise_.changed]
        sites = layers_of(module)
        hidden = hidden_dense(sites)
        followed = {id(sites[i].call) for i in range(len(sites) - 1) if sites[i + 1].kind == "dropout"}
        targets = [s for s in hidden if id(s.call) not in followed]
        if not targets and not done:
            raise self.not_applicable(
                f"no hidden Dense layer without dropout, and no Dropout rate below {rate:g}"
            )
        if targets:
            func = sibling(targets[0].call.func, "Dropout")
            needs_import(context, targets[0].call.func, "Dropout", module)
            dense = [s.call for s in sites if s.kind == "dense"]
            for position in [dense.index(s.call) for s in targets]:
                # Nodes are immutable: find the same Dense layer (by its rank) in the tree as changed so far.
                current = [s.call for s in layers_of(module) if s.kind == "dense"][position]
                module = insert_layers(
                    module, current, [make_call(func, [(None, rate)], quote)], after=True, tweak=self
                )
            done.insert(0, f"add Dropout({self.rate}) after hidden Dense layers")
        return module, ", ".join(done)

    REWRITES = {Framework.KERAS: transform, Framework.PYTORCH: add_dropout_torch}
