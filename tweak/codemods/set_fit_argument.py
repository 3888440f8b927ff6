"""Set the epochs of ``fit``: the keyword (or legacy ``nb_epoch``), or the variable it reads."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.codemod import CodemodContext

from mlops.classify import Framework
from tweak.codemods.base import Tweak, arg_value, last_name, literal, with_arg
from tweak.codemods.torch_epochs import set_epochs

FIT = ("fit", "fit_generator")
KEYWORDS = ("epochs", "nb_epoch")


def _keyword_arg(call: cst.Call, keywords: tuple[str, ...]) -> cst.Arg | None:
    return next((a for a in call.args if a.keyword and a.keyword.value in keywords), None)


class FindFits(cst.CSTVisitor):
    """The ``x.fit(...)`` calls, and the variables one of their keywords reads (``epochs=EPOCHS``)."""

    def __init__(self, keywords: tuple[str, ...]) -> None:
        super().__init__()
        self.keywords = keywords
        self.fits: list[cst.Call] = []
        self.variables: set[str] = set()

    def visit_Call(self, node: cst.Call) -> None:  # noqa: N802 (LibCST's name)
        if last_name(node.func) in FIT and isinstance(node.func, cst.Attribute):
            self.fits.append(node)
            arg = _keyword_arg(node, self.keywords)
            if arg is not None and isinstance(arg.value, cst.Name):
                self.variables.add(arg.value.value)


class SetFitKeyword(cst.CSTTransformer):
    """Sets the keyword of every fit() call, or the variable it reads when that is a number."""

    def __init__(self, found: FindFits, value: int) -> None:
        super().__init__()
        self.found = found
        self.value = value
        self.old: str | None = None  # the value as written before, when it was a number

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:  # noqa: N802
        names = {t.target.value for t in original.targets if isinstance(t.target, cst.Name)}
        if names & self.found.variables and isinstance(original.value, cst.Integer):
            self.old = original.value.value
            return updated.with_changes(value=literal(self.value))
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:  # noqa: N802
        if not any(original is f for f in self.found.fits):
            return updated
        keywords = self.found.keywords
        arg = _keyword_arg(updated, keywords)
        if arg is not None and isinstance(arg.value, cst.Name) and arg.value.value in self.found.variables:
            return updated  # the variable's assignment is changed instead
        if arg is not None and isinstance(arg.value, cst.Integer):
            self.old = arg.value.value
        existing = arg_value(updated, 99, *keywords)
        if existing is not None:
            return updated.with_changes(
                args=[a.with_changes(value=literal(self.value)) if a is existing else a for a in updated.args]
            )
        return with_arg(updated, 99, keywords, literal(self.value))


@dataclass(frozen=True)
class SetEpochs(Tweak):
    NAME = "set_epochs"
    DESCRIPTION = (
        "Set the number of epochs of fit() (its keyword, legacy nb_epoch, or the variable it reads)."
    )

    epochs: int

    def transform(self, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
        found = FindFits(KEYWORDS)
        module.visit(found)
        if not found.fits:
            raise self.not_applicable("no fit() call")
        setter = SetFitKeyword(found, int(self.epochs))
        new = module.visit(setter)
        said = f"epochs {setter.old} -> {self.epochs}" if setter.old else f"epochs = {self.epochs}"
        return new, said

    REWRITES = {Framework.KERAS: transform, Framework.PYTORCH: set_epochs}
