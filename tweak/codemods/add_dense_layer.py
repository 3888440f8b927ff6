"""Add a hidden Dense layer before the output layer."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.codemod import CodemodContext

from mlops.classify import Framework
from tweak.codemods.base import Tweak, insert_layers, layers_of, make_call
from tweak.codemods.torch_hidden_layer import add_hidden_layer as add_hidden_layer_torch


@dataclass(frozen=True)
class AddDenseLayer(Tweak):
    NAME = "add_dense_layer"
    DESCRIPTION = "Add a hidden Dense layer (relu) before the output layer."

    units: int = 64

    def transform(self, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
        dense = [s for s in layers_of(module) if s.kind == "dense"]
        if not dense:
            raise self.not_applicable("no Dense layer: there is no output layer to put a hidden layer before")
        output = dense[-1].call
        units = self.units
        new = make_call(output.func, [(None, units), ("activation", "relu")], quote)
        module = insert_layers(module, output, [new], tweak=self)
        return module, f"add Dense({units}, relu) before the output layer"

    REWRITES = {Framework.KERAS: transform, Framework.PYTORCH: add_hidden_layer_torch}
