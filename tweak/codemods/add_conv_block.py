"""Add a convolution block (convolution and pooling) before Flatten."""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.base import Tweak, insert_layers, last_name, layers_of, make_call, needs_import, sibling


class AddConvBlock(Tweak):
    NAME = "add_conv_block"
    DESCRIPTION = "Add a convolution (3x3, same padding, relu) and a pooling layer before Flatten."

    def transform(self, module: cst.Module, context: CodemodContext) -> cst.Module:
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
        filters = int(self.params.get("filters", 32))
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
            pool_func, [(None, 2 if dims == "1D" else (2,) * int(dims[0])), ("padding", "same")], self.quote
        )
        return insert_layers(module, flatten[0].call, [new_conv, new_pool], tweak=self)

    def describe(self) -> str:
        return f"add a convolution block ({self.params.get('filters', 32)} filters + pooling) before Flatten"
