"""Add a convolution block (``AddConvBlock``) to a PyTorch model: a 3x3 convolution with padding 1 and a
ReLU after its last convolution block, before the flatten, with the layer after it kept consistent."""

from __future__ import annotations

from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.base import arg_value
from tweak.codemods.torch_edits import (
    Edits,
    anchor_of,
    apply_before,
    bind_in_init,
    free_name,
    input_of,
    layer_call,
    main_model,
    number_arg,
    relu,
    self_call,
)
from tweak.codemods.torch_widen import consistent
from tweak.torch_flow import follow, read
from tweak.torch_model import Model, Site, Source, Step

DESCRIPTION = "Add nn.Conv2d(C, filters, 3, padding=1) and a ReLU after the last convolution block."
BETWEEN = ("act", "norm", "pool", "dropout")  # what a convolution block holds after its convolution
AFTER = ("flatten", "view", "global_pool", "dense")  # where the convolution blocks end


def add_conv_block(
    tweak: Any, module: cst.Module, context: CodemodContext, quote: str
) -> tuple[cst.Module, str]:
    src = read(module)
    model = main_model(src, "conv")
    if model is None or model.flow is None:
        raise tweak.not_applicable("no convolution layer to add another like it")
    flow = model.flow
    last = max(i for i, s in enumerate(flow) if s.kind == "conv" and s.site)
    end = last + 1
    while end < len(flow) and flow[end].kind in BETWEEN:
        end += 1
    if end == len(flow) or flow[end].kind not in AFTER:
        raise tweak.not_applicable("no flatten or pooling after the last convolution to put a block before")
    conv = flow[last].site
    assert conv is not None and conv.spec.outs is not None
    channels = number_arg(conv.call, conv.spec.outs)
    if channels is None:
        raise tweak.not_applicable(f"the out_channels of nn.{conv.name} at line {conv.line} is not a number")
    filters = int(tweak.filters)
    notes: list[str] = []
    ops = consistent(src, follow(flow, end - 1, produced=False), channels, filters, notes)
    if ops is None:
        raise tweak.not_applicable("; ".join(notes))
    edits = Edits()
    for op in ops:
        op(edits)
    _place(tweak, src, model, (flow[end - 1], flow[end]), conv, context, edits)
    said = f"add a convolution block ({filters} filters + ReLU) after nn.{conv.name} at line {conv.line}"
    return src.module.visit(edits), said + "".join(f"; {n}" for n in notes)


def _place(
    tweak: Any,
    src: Source,
    model: Model,
    around: tuple[Step, Step],
    conv: Site,
    context: CodemodContext,
    edits: Edits,
) -> None:
    """The new layers, between the two steps ``around``: in a Sequential, or bound and used in forward."""
    prev, nxt = around
    assert conv.spec.outs is not None
    channels = arg_value(conv.call, *conv.spec.outs)
    assert channels is not None
    name = conv.name.replace("Lazy", "").replace("Transpose", "")
    args: list[tuple[str | None, object]] = [(None, channels.value), (None, int(tweak.filters)), (None, 3)]
    new = layer_call(conv.call, name, [*args, ("padding", 1)], context)
    for step, offset in ((prev, 1), (nxt, 0)):
        box = step.site.container if step.site else None
        if (
            box is not None
            and step.site is not None
            and (offset == 0 or nxt.site is None or nxt.site.container is not box)
        ):
            if box.keyed:
                raise tweak.not_applicable("the convolutions are in an nn.Sequential(OrderedDict(...))")
            edits.call(box.call).inserts.append(
                (step.site.index + offset, [new, layer_call(conv.call, "ReLU", [], context)])
            )
            return
    anchor = anchor_of(model, conv)
    use = nxt.use or nxt.node
    tensor = input_of(use)
    if anchor is None or tensor is None:
        raise tweak.not_applicable("the convolutions are not bound as self.<name> in __init__")
    attr = free_name(model, conv.attr or "conv")
    bind_in_init(edits, anchor, attr, new, after=True)
    activation, layer = relu(src, context), self_call(attr)
    apply_before(edits, src, use, tensor, lambda x: activation(layer(x)))
