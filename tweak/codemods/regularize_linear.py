"""Make an ordinary least-squares ``LinearRegression`` a ``Ridge`` regression: its one knob, regularization."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.codemod import CodemodContext

from mlops.classify import Framework
from tweak.codemods.base import Tweak, last_name, literal, needs_import, sibling, with_arg

# LinearRegression's keywords that Ridge takes too; the others (n_jobs) have no meaning for Ridge.
KEPT = ("fit_intercept", "copy_X", "positive")


@dataclass(frozen=True)
class RegularizeLinear(Tweak):
    NAME = "regularize_linear"
    DESCRIPTION = "Make LinearRegression a Ridge regression of the given alpha (least squares, penalized)."

    alpha: float

    def transform(self, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
        alpha = self.alpha
        dropped: list[str] = []
        found: list[cst.Call] = []

        class Swap(cst.CSTTransformer):
            def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:  # noqa: N802
                if last_name(original.func) != "LinearRegression":
                    return updated
                found.append(original)
                kept = [a for a in updated.args if a.keyword is not None and a.keyword.value in KEPT]
                dropped.extend(
                    cst.Module([]).code_for_node(a).rstrip(", ") for a in updated.args if a not in kept
                )
                if kept:
                    kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                needs_import(context, original.func, "Ridge", module)
                bare = updated.with_changes(func=sibling(updated.func, "Ridge"), args=[])
                first = with_arg(bare, 0, ("alpha",), literal(alpha)).args[0]
                if kept:  # alpha first, as Ridge's signature has it; then what the script set
                    first = first.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                    kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                return bare.with_changes(args=[first, *kept])

        new = module.visit(Swap())
        if not found:
            raise self.not_applicable("no LinearRegression is built in this code")
        without = f" (without {', '.join(dropped)}, which Ridge does not take)" if dropped else ""
        return new, f"LinearRegression -> Ridge(alpha={alpha!r}){without}"

    # Estimators are found by name in code of any framework (a Keras script may fit one too).
    REWRITES = {Framework.KERAS: transform, Framework.PYTORCH: transform}
