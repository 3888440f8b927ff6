"""Put a Rescaling layer in front of a Sequential model whose inputs are raw pixel values (0..255)."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext

from mlops.classify import Framework
from tweak.codemods.base import Tweak, insert_layers, layers_of, needs_import, sibling
from tweak.codemods.torch_rescale import add_rescaling

INPUT_SHAPE = ("input_shape", "input_dim", "batch_input_shape")


class _Sequential(cst.CSTVisitor):
    """Whether a layer call is written inside ``Sequential([...])`` or ``model.add(...)``."""

    def __init__(self, anchor: cst.Call) -> None:
        super().__init__()
        self.anchor = anchor
        self.found = False

    def visit_List(self, node: cst.List) -> None:  # noqa: N802 (LibCST's name)
        self.found |= any(e.value is self.anchor for e in node.elements)

    def visit_Call(self, node: cst.Call) -> None:  # noqa: N802
        if m.matches(node.func, m.Attribute(attr=m.Name("add"))) and node.args:
            self.found |= node.args[0].value is self.anchor


@dataclass(frozen=True)
class AddRescaling(Tweak):
    NAME = "add_rescaling"
    DESCRIPTION = (
        "Divide the inputs of a Sequential model by a constant (255 for pixels) in a first Rescaling layer."
    )

    divisor: float = 255.0

    def transform(self, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
        sites = layers_of(module)
        if not sites:
            raise self.not_applicable("no Keras layer to put a Rescaling layer before")
        if any(s.kind == "preprocess" for s in sites):
            raise self.not_applicable("the model already rescales or normalizes its inputs")
        first = sites[0].call
        finder = _Sequential(first)
        module.visit(finder)
        if not finder.found:
            raise self.not_applicable("only a Sequential model (a list or model.add) gets a Rescaling layer")
        divisor = cst.parse_expression(f"1.0 / {self.divisor:g}")
        args = [cst.Arg(divisor)]
        shape = next((a for a in first.args if a.keyword and a.keyword.value in INPUT_SHAPE), None)
        anchor = first
        if shape is not None:
            # The first layer declares the input: the Rescaling layer, now first, declares it instead.
            args.append(shape.with_changes(comma=cst.MaybeSentinel.DEFAULT))
            kept = [a for a in first.args if a is not shape]
            if kept:
                kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            anchor = first.with_changes(args=kept)
            replaced = module.deep_replace(first, anchor)
            assert isinstance(replaced, cst.Module)  # a node inside it was replaced, not the module
            module = replaced
        func = sibling(first.func, "Rescaling")
        needs_import(context, first.func, "Rescaling", module)
        module = insert_layers(module, anchor, [cst.Call(func=func, args=args)], tweak=self)
        return (
            module,
            f"add Rescaling(1/{self.divisor:g}) in front of the model (inputs were 0..{self.divisor:g})",
        )

    REWRITES = {Framework.KERAS: transform, Framework.PYTORCH: add_rescaling}
