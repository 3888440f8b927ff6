"""Set the epochs of a PyTorch training (``SetEpochs``): the epoch loop's ``range(N)`` or the value it
reads (``EPOCHS = 5``, argparse's ``--epochs`` default, a parameter's default), or Lightning's
``Trainer(max_epochs=...)``."""

from __future__ import annotations

from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.torch_edits import Edits
from tweak.torch_flow import read
from tweak.torch_training import Values, epoch_loops, keyword, trainers

DESCRIPTION = "Set the epochs of the epoch loop (range(N) or what it reads) or of Lightning's Trainer."


def set_epochs(tweak: Any, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
    src = read(module)
    values = Values(src)
    epochs = int(tweak.epochs)
    edits = Edits()
    said: list[str] = []
    for loop in epoch_loops(src):
        said.append(
            _set(edits, values, loop.count, epochs, loop.offset, f"the epoch loop at line {loop.line}")
        )
    for trainer in trainers(src):
        arg = keyword(trainer, "max_epochs")
        if arg is None:
            edits.set_arg(trainer, (99, "max_epochs"), cst.Integer(str(epochs)))
            said.append(f"max_epochs = {epochs}")
        else:
            said.append(_set(edits, values, arg.value, epochs, 0, "max_epochs"))
    if not said:
        raise tweak.not_applicable("no epoch loop (for epoch in range(...)) and no Lightning Trainer")
    return src.module.visit(edits), ", ".join(dict.fromkeys(said))


def _set(
    edits: Edits, values: Values, count: cst.BaseExpression, epochs: int, offset: int, where: str
) -> str:
    """The number of epochs where ``count`` is written (or in its place), and what was done in words."""
    new = cst.Integer(str(epochs + offset))
    written = values.resolve(count)
    for found in written:
        edits.replace[found.node] = lambda _, n=new: n  # type: ignore[misc]
    if not written:
        edits.replace[count] = lambda _: new
        return f"epochs = {epochs} ({where})"
    return f"epochs {int(written[0].value) - offset} -> {epochs}"
