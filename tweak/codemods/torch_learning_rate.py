"""Set the learning rate of PyTorch optimizers (``SetLearningRate``): ``lr=`` (keyword or positional) or
the value it reads (a constant, argparse's ``--lr`` default, a hyperparameter's default); an optimizer
built without one gets one."""

from __future__ import annotations

from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.base import literal
from tweak.codemods.torch_edits import Edits
from tweak.torch_flow import read
from tweak.torch_training import DEFAULT_RATE, Values, optimizers, rate_arg

DESCRIPTION = "Set lr of the torch.optim optimizers (or the value it reads); add lr= where none is given."


def set_rate(tweak: Any, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
    src = read(module)
    values = Values(src)
    rate = float(tweak.learning_rate)
    new = literal(rate)
    edits = Edits()
    said: list[str] = []
    for call in optimizers(src):
        name = (src.names.full(call.func) or "").rsplit(".", 1)[-1]
        arg = rate_arg(call)
        if arg is None:
            edits.set_arg(call, (99, "lr"), new)
            said.append(f"learning rate {DEFAULT_RATE[name]:g} (default) -> {rate:g} ({name})")
            continue
        written = values.resolve(arg.value)
        for found in written:
            edits.replace[found.node] = lambda _: new
        if not written:
            edits.replace[arg.value] = lambda _: new
        old = f"{written[0].value:g} -> " if written else ""
        said.append(f"learning rate {old}{rate:g} ({name})")
    if not said:
        raise tweak.not_applicable("no torch.optim optimizer is built in this code")
    return src.module.visit(edits), ", ".join(dict.fromkeys(said))
