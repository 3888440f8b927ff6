"""Set a keyword argument of scikit-learn estimators: n_clusters, hidden_layer_sizes, max_iter, ..."""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.base import Tweak, last_name, literal, with_arg


class SetEstimatorParam(Tweak):
    NAME = "set_estimator_param"
    DESCRIPTION = "Set a keyword of the named estimators wherever they are built (also inside a Pipeline)."

    def transform(self, module: cst.Module, context: CodemodContext) -> cst.Module:
        estimators = set(self.params["estimators"])
        param = self.params["param"]
        value = self.params["value"]
        value = tuple(value) if isinstance(value, list) else value
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
        self.olds = olds
        return new

    def describe(self) -> str:
        old = getattr(self, "olds", ["?"])[0]
        return f"{self.params['param']} {old} -> {self.params['value']!r}"
