"""Set an argument of ``fit``: the epochs or the batch size (the keyword, or the variable it reads)."""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.base import Tweak, arg_value, last_name, literal, with_arg

FIT = ("fit", "fit_generator")


class _SetFitArgument(Tweak):
    PARAM = ""
    KEYWORDS: tuple[str, ...] = ()

    def transform(self, module: cst.Module, context: CodemodContext) -> cst.Module:
        value = int(self.params[self.PARAM])
        keywords = self.KEYWORDS
        fits: list[cst.Call] = []
        variables: set[str] = set()

        class Find(cst.CSTVisitor):
            def visit_Call(self, node: cst.Call) -> None:  # noqa: N802
                if last_name(node.func) in FIT and isinstance(node.func, cst.Attribute):
                    fits.append(node)
                    arg = next((a for a in node.args if a.keyword and a.keyword.value in keywords), None)
                    if arg is not None and isinstance(arg.value, cst.Name):
                        variables.add(arg.value.value)

        module.visit(Find())
        if not fits:
            raise self.not_applicable("no fit() call")
        self.old = None
        tweak = self

        class Set(cst.CSTTransformer):
            def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:  # noqa: N802
                names = {t.target.value for t in original.targets if isinstance(t.target, cst.Name)}
                if names & variables and isinstance(original.value, cst.Integer):
                    tweak.old = original.value.value
                    return updated.with_changes(value=literal(value))
                return updated

            def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:  # noqa: N802
                if not any(original is f for f in fits):
                    return updated
                arg = next((a for a in updated.args if a.keyword and a.keyword.value in keywords), None)
                if arg is not None and isinstance(arg.value, cst.Name) and arg.value.value in variables:
                    return updated  # the variable's assignment is changed instead
                if arg is not None and isinstance(arg.value, cst.Integer):
                    tweak.old = arg.value.value
                existing = arg_value(updated, 99, *keywords)
                if existing is not None:
                    return updated.with_changes(
                        args=[
                            a.with_changes(value=literal(value)) if a is existing else a for a in updated.args
                        ]
                    )
                return with_arg(updated, 99, keywords, literal(value))

        return module.visit(Set())

    def describe(self) -> str:
        old = getattr(self, "old", None)
        label = self.PARAM.replace("_", " ")
        return (
            f"{label} {old} -> {self.params[self.PARAM]}" if old else f"{label} = {self.params[self.PARAM]}"
        )


class SetEpochs(_SetFitArgument):
    NAME = "set_epochs"
    DESCRIPTION = (
        "Set the number of epochs of fit() (its keyword, legacy nb_epoch, or the variable it reads)."
    )
    PARAM = "epochs"
    KEYWORDS = ("epochs", "nb_epoch")


class SetBatchSize(_SetFitArgument):
    NAME = "set_batch_size"
    DESCRIPTION = "Set the batch size of fit() (its keyword, or the variable it reads)."
    PARAM = "batch_size"
    KEYWORDS = ("batch_size",)
