"""Set the batch size of the training ``DataLoader`` (``SetBatchSize``), not of the ones that evaluate:
its ``batch_size`` (keyword, positional, or in the ``**kwargs`` dict it takes), or the value it reads
when no evaluating loader reads it too."""

from __future__ import annotations

from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.torch_edits import Edits
from tweak.torch_flow import read
from tweak.torch_training import Loader, Values, loaders

DESCRIPTION = "Set batch_size of the training DataLoader (or the value only it reads), not the test one."


def set_batch_size(
    tweak: Any, module: cst.Module, context: CodemodContext, quote: str
) -> tuple[cst.Module, str]:
    src = read(module)
    values = Values(src)
    found = loaders(src, values)
    if not found:
        raise tweak.not_applicable("no DataLoader is built in this code")
    training = [loader for loader in found if loader.training]
    if not training:
        raise tweak.not_applicable("no DataLoader that trains (named train..., or with shuffle=True)")
    size = int(tweak.batch_size)
    others = {_text(loader) for loader in found if not loader.training} - {None}
    edits = Edits()
    said = [_set(edits, values, loader, size, others, src.line(loader.call)) for loader in training]
    return src.module.visit(edits), ", ".join(dict.fromkeys(said))


def _text(loader: Loader) -> str | None:
    expr = loader.batch.value if loader.batch is not None else loader.via
    return cst.Module([]).code_for_node(expr) if expr is not None else None


def _set(edits: Edits, values: Values, loader: Loader, size: int, others: set[str | None], line: int) -> str:
    new = cst.Integer(str(size))
    expr = loader.batch.value if loader.batch is not None else loader.via
    if expr is None:
        edits.set_arg(loader.call, (99, "batch_size"), new)
        return f"batch size 1 (default) -> {size} (DataLoader at line {line})"
    written = values.resolve(expr) if _text(loader) not in others else []
    for found in written:
        edits.replace[found.node] = lambda _: new
    if not written:
        edits.replace[expr] = lambda _: new
    old = f"{int(written[0].value)}" if written else cst.Module([]).code_for_node(expr)
    return f"batch size {old} -> {size} (DataLoader at line {line})"
