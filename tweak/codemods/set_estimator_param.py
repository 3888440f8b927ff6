"""Set a keyword argument of scikit-learn estimators: n_clusters, hidden_layer_sizes, max_iter, ..."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext

from mlops.classify import Framework
from tweak.codemods.base import Tweak, last_name, literal, with_arg


@dataclass(frozen=True)
class SetEstimatorParam(Tweak):
    NAME = "set_estimator_param"
    DESCRIPTION = "Set a keyword of the named estimators wherever they are built (also inside a Pipeline)."

    estimators: Sequence[str]  # class names: KMeans, MLPClassifier, ...
    param: str
    value: Any  # a literal: a number, a string, a tuple (a list is taken as a tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "estimators", tuple(self.estimators))
        if isinstance(self.value, list):
            object.__setattr__(self, "value", tuple(self.value))

    def transform(self, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
        estimators = set(self.estimators)
        param = self.param
        value = self.value
        olds: list[str] = []

        class Set(cst.CSTTransformer):
            def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:  # noqa: N802
                if last_name(original.func) not in estimators:
                    return updated
                existing = next((a for a in updated.args if a.keyword and a.keyword.value == param), None)
                olds.append(cst.Module([]).code_for_node(existing.value) if existing else "default")
                return with_arg(updated, 99, (param,), literal(value))

        new = module.visit(Set())
        if not olds:
            raise self.not_applicable(f"no {' or '.join(sorted(estimators))} is built in this code")
        return new, f"{param} {olds[0]} -> {value!r}"

    REWRITES = {Framework.KERAS: transform, Framework.PYTORCH: transform}
