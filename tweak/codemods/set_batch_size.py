"""Set the batch size of the training: ``fit(batch_size=...)`` (or the variable it reads) for Keras, the
training DataLoader's for PyTorch."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.codemod import CodemodContext

from mlops.classify import Framework
from tweak.codemods.base import Tweak
from tweak.codemods.set_fit_argument import FindFits, SetFitKeyword
from tweak.codemods.torch_batch_size import set_batch_size


@dataclass(frozen=True)
class SetBatchSize(Tweak):
    NAME = "set_batch_size"
    DESCRIPTION = "Set the training batch size (fit's batch_size, or the training DataLoader's)."

    batch_size: int

    def transform(self, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
        found = FindFits(("batch_size",))
        module.visit(found)
        if not found.fits:
            raise self.not_applicable("no fit() call")
        setter = SetFitKeyword(found, int(self.batch_size))
        new = module.visit(setter)
        old = setter.old or "32 (default)"
        return new, f"batch size {old} -> {self.batch_size}"

    REWRITES = {Framework.KERAS: transform, Framework.PYTORCH: set_batch_size}
