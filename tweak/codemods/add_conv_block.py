"""Add a convolution block (convolution and pooling) before Flatten."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.codemod import CodemodContext

from mlops.classify import Framework
from tweak.codemods.base import Tweak, insert_layers, last_name, layers_of, make_call, needs_import, sibling
from tweak.codemods.torch_conv_block import add_conv_block


@dataclass(frozen=True)
class AddConvBlock(Tweak):
    NAME = "add_conv_block"
    DESCRIPTION = "Add a convolution (3x3, same padding, relu) and a pooling layer before Flatten."

    filters: int = 32

    def transform(self, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
        sites = layers_of(module)
        convs = [s for s in sites if s.kind == "conv"]
        flatten = [s for s in sites if s.kind in ("flatten", "global_pool")]
        if not convs:
            raise self.not_applicable("no convolution layer to add another like it")
        if not flatten:
            raise self.not_applicable("no Flatten layer to put a convolution block before")
        conv = convs[-1].call
        name = last_name(conv.func) or "Conv2D"
        dims = "1D" if "1D" in name else "3D" if "3D" in name else "2D"
        kernel = 3 if dims == "1D" else (3,) * int(dims[0])
        filters = self.filters
        new_conv = make_call(
            conv.func, [(None, filters), (None, kernel), ("padding", "same"), ("activation", "relu")]
        )
        pools = [s for s in sites if s.kind == "pool"]
        if pools:
            pool_func = pools[-1].call.func
        else:
            pool_name = f"MaxPooling{dims}"
            pool_func = sibling(conv.func, pool_name)
            needs_import(context, conv.func, pool_name, module)
        new_pool = make_call(
            pool_func, [(None, 2 if dims == "1D" else (2,) * int(dims[0])), ("padding", "same")], quote
        )
        module = insert_layers(module, flatten[0].call, [new_conv, new_pool], tweak=self)
        return module, f"add a convolution block ({filters} filters + pooling) before Flatten"

    REWRITES = {Framework.KERAS: transform, Framework.PYTORCH: add_conv_block}
