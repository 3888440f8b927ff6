"""Add a hidden Dense layer before the output layer."""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.base import Tweak, insert_layers, layers_of, make_call


class AddDenseLayer(Tweak):
    NAME = "add_dense_layer"
    DESCRIPTION = "Add a hidden Dense layer (relu) before the output layer."

    def transform(self, module: cst.Module, context: CodemodContext) -> cst.Module:
        dense = [s for s in layers_of(module) if s.kind == "dense"]
        if not dense:
            raise self.not_applicable("no Dense layer: there is no output layer to put a hidden layer before")
        output = dense[-1].call
        units = int(self.params.get("units", 64))
        new = make_call(output.func, [(None, units), ("activation", "relu")], self.quote)
        return insert_layers(module, output, [new], tweak=self)

    def describe(self) -> str:
        return f"add Dense({self.params.get('units', 64)}, relu) before the output layer"
