"""Set the optimizer's learning rate, turning ``optimizer="adam"`` into an optimizer object when needed."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from mlops.classify import Framework
from tweak.codemods.base import Tweak, dotted, last_name, with_arg
from tweak.codemods.torch_learning_rate import set_rate as set_torch_rate

OPTIMIZERS = {
    "adam": "Adam",
    "sgd": "SGD",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "adamax": "Adamax",
    "nadam": "Nadam",
    "adamw": "AdamW",
}


def keras_prefix(module: cst.Module) -> str | None:
    """How this file names the keras package: ``keras``, ``tf.keras``, ... (None if it does not)."""
    prefix = None
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    name = dotted(alias.name)
                    bound = dotted(alias.asname.name) if alias.asname else name
                    if name == "keras":
                        return bound
                    if name == "tensorflow":
                        prefix = prefix or f"{bound}.keras"
            elif (
                isinstance(small, cst.ImportFrom)
                and small.module is not None
                and dotted(small.module) == "tensorflow"
                and not isinstance(small.names, cst.ImportStar)
            ):
                for alias in small.names:
                    if dotted(alias.name) == "keras":
                        return dotted(alias.asname.name) if alias.asname else "keras"
    return prefix


class _FindCompiles(cst.CSTVisitor):
    """The compile() calls, and the variables their optimizer is read from (``optimizer=opt``)."""

    def __init__(self) -> None:
        super().__init__()
        self.compiles: list[cst.Call] = []
        self.optimizer_vars: set[str] = set()

    def visit_Call(self, node: cst.Call) -> None:  # noqa: N802 (LibCST's name)
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "compile":
            self.compiles.append(node)
            for arg in node.args:
                if arg.keyword and arg.keyword.value == "optimizer" and isinstance(arg.value, cst.Name):
                    self.optimizer_vars.add(arg.value.value)


def float_literal(rate: float) -> cst.BaseExpression:
    """A rate written as a float (``1.0``, not ``1``): Keras 3 refuses an int learning rate."""
    text = f"{rate:.6g}"
    return cst.parse_expression(text if any(c in text for c in ".en") else f"{text}.0")


@dataclass(frozen=True)
class SetLearningRate(Tweak):
    NAME = "set_learning_rate"
    DESCRIPTION = "Set the learning rate of the optimizer given to compile() (a string becomes an object)."

    learning_rate: float

    def transform(self, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
        rate = float(self.learning_rate)
        known_prefix = keras_prefix(module)
        prefix = known_prefix or "keras"

        def import_keras() -> None:
            """Layers imported by name: import the keras package the same way they come."""
            if known_prefix is None:
                if "tensorflow.keras" in module.code:
                    AddImportsVisitor.add_needed_import(context, "tensorflow", "keras")
                else:
                    AddImportsVisitor.add_needed_import(context, "keras")

        found = _FindCompiles()
        module.visit(found)
        optimizer_vars = found.optimizer_vars
        if not found.compiles:
            raise self.not_applicable("no compile() call")
        done: list[str] = []

        def set_rate(call: cst.Call) -> cst.Call:
            keyword = (
                "lr" if any(a.keyword and a.keyword.value == "lr" for a in call.args) else "learning_rate"
            )
            done.append(last_name(call.func) or "optimizer")
            return with_arg(call, 0, (keyword,), float_literal(rate))

        class Set(cst.CSTTransformer):
            def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:  # noqa: N802
                names = {t.target.value for t in original.targets if isinstance(t.target, cst.Name)}
                if names & optimizer_vars and isinstance(updated.value, cst.Call):
                    return updated.with_changes(value=set_rate(updated.value))
                return updated

            def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:  # noqa: N802
                if not (original.keyword and original.keyword.value == "optimizer"):
                    return updated
                value = updated.value
                if isinstance(value, cst.Call):
                    return updated.with_changes(value=set_rate(value))
                if isinstance(value, cst.SimpleString):
                    name = OPTIMIZERS.get(str(value.evaluated_value).lower())
                    if name:
                        import_keras()
                        call = cst.parse_expression(f"{prefix}.optimizers.{name}()")
                        assert isinstance(call, cst.Call)
                        return updated.with_changes(value=set_rate(call))
                return updated

        new = module.visit(Set())
        if not done:
            raise self.not_applicable("the optimizer is neither a known name nor an optimizer object")
        return new, f"learning rate {self.learning_rate:g} ({done[0]})"

    REWRITES = {Framework.KERAS: transform, Framework.PYTORCH: set_torch_rate}
