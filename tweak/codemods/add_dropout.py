"""Add dropout after every hidden Dense layer."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.base import (
    Tweak,
    hidden_dense,
    insert_layers,
    layers_of,
    make_call,
    needs_import,
    sibling,
)


@dataclass(frozen=True)
class AddDropout(Tweak):
    NAME = "add_dropout"
    DESCRIPTION = "Add a Dropout layer after every hidden Dense layer that has none."

    rate: float = 0.2

    def transform(self, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
        sites = layers_of(module)
        rate = float(self.rate)
        hidden = hidden_dense(sites)
        followed = {id(sites[i].call) for i in range(len(sites) - 1) if sites[i + 1].kind == "dropout"}
        targets = [s for s in hidden if id(s.call) not in followed]
        if not targets:
            raise self.not_applicable("no hidden Dense layer without dropout")
        func = sibling(targets[0].call.func, "Dropout")
        needs_import(context, targets[0].call.func, "Dropout", module)
        dense = [s.call for s in sites if s.kind == "dense"]
        for position in [dense.index(s.call) for s in targets]:
            # Nodes are immutable: find the same Dense layer (by its rank) in the tree as changed so far.
            current = [s.call for s in layers_of(module) if s.kind == "dense"][position]
            module = insert_layers(
                module, current, [make_call(func, [(None, rate)], quote)], after=True, tweak=self
            )
        return module, f"add Dropout({self.rate}) after hidden Dense layers"
