"""Add a hidden layer (``AddDenseLayer``) to a PyTorch model: ``nn.Linear`` and a ReLU before its output
layer, which then takes the new layer's units."""

from __future__ import annotations

from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.base import arg_value
from tweak.codemods.torch_edits import (
    Edits,
    apply_before,
    bind_in_init,
    free_name,
    input_of,
    layer_call,
    main_model,
    relu,
    self_call,
)
from tweak.torch_flow import read

DESCRIPTION = "Add nn.Linear(N, units) and a ReLU before the output nn.Linear, which then takes the units."


def add_hidden_layer(
    tweak: Any, module: cst.Module, context: CodemodContext, quote: str
) -> tuple[cst.Module, str]:
    src = read(module)
    model = main_model(src, "dense")
    if model is None or model.flow is None:
        raise tweak.not_applicable(
            "no nn.Linear layer: there is no output layer to put a hidden layer before"
        )
    step = [s for s in model.flow if s.kind == "dense" and s.site][-1]
    out = step.site
    assert out is not None
    units = int(tweak.units)
    size = arg_value(out.call, *out.spec.ins) if out.spec.ins else None
    if size is None:
        new = layer_call(out.call, "LazyLinear", [(None, units)], context)
    else:
        new = layer_call(out.call, "Linear", [(None, size.value), (None, units)], context)
    edits = Edits()
    if out.spec.ins is not None and size is not None:
        edits.set_arg(out.call, out.spec.ins, cst.Integer(str(units)))
    box = out.container
    if box is not None:
        if box.keyed:
            raise tweak.not_applicable("the output layer is in an nn.Sequential(OrderedDict(...))")
        edits.call(box.call).inserts.append((out.index, [new, layer_call(out.call, "ReLU", [], context)]))
    else:
        use = step.use
        tensor = input_of(use) if use is not None else None
        if use is None or tensor is None or out.stmt is None:
            raise tweak.not_applicable("the output layer is not applied in forward")
        attr = free_name(model, "hidden")
        bind_in_init(edits, out, attr, new, after=False)
        activation, layer = relu(src, context), self_call(attr)
        apply_before(edits, src, use, tensor, lambda x: activation(layer(x)))
    said = f"add nn.Linear({units}) + ReLU before the output layer (nn.{out.name} at line {out.line})"
    return src.module.visit(edits), said
