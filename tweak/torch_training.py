"""The training around a PyTorch model, as its source writes it: the epoch loop (or Lightning's
``max_epochs``), the optimizers and their learning rate, the DataLoaders and which of them trains, and
where each of those values is written (a constant, an argparse default, a parameter's default, a dict).

Read with LibCST over the same :class:`~tweak.torch_model.Source` as the models, so the codemods change
the very number found here and the facts report it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst

from tweak.torch_model import Source

# torch.optim's optimizers, with their default learning rate (torch 2.x).
DEFAULT_RATE: dict[str, float] = {
    "SGD": 1e-3,
    "Adam": 1e-3,
    "AdamW": 1e-3,
    "RMSprop": 1e-2,
    "Adagrad": 1e-2,
    "Adadelta": 1.0,
    "Adamax": 2e-3,
    "NAdam": 2e-3,
    "RAdam": 1e-3,
    "ASGD": 1e-2,
    "Rprop": 1e-2,
    "LBFGS": 1.0,
    "SparseAdam": 1e-3,
}
TRAINERS = ("pytorch_lightning.", "lightning.", "lightning.pytorch.")
EVAL_WORDS = re.compile(
    r"(^|[^a-z])(test|val|valid|validation|eval|dev)([^a-z]|$)|(test|val)_?(loader|set|ds|data)"
)
TRAIN_WORDS = re.compile(r"train")


@dataclass(frozen=True, eq=False)
class Written:
    """Where a value is written: the number (replace it to change the value), its value and its line."""

    node: cst.Integer | cst.Float
    value: float
    line: int


def number(node: cst.BaseExpression | None) -> float | None:
    if isinstance(node, cst.Integer | cst.Float) and not node.lpar:
        return float(node.evaluated_value)
    return None


class Values:
    """Where the script writes the values it reads, to follow ``lr=args.lr`` to ``default=1.0``."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.names: dict[str, list[cst.BaseExpression]] = {}
        self.selfs: dict[str, list[cst.BaseExpression]] = {}
        self.options: dict[str, list[cst.BaseExpression]] = {}
        self.params: dict[str, list[cst.BaseExpression]] = {}
        self.keys: dict[tuple[str, str], list[cst.BaseExpression]] = {}
        for node in src.assigns:
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    self._bind(target.target, node.value)
            elif node.value is not None:
                self._bind(node.target, node.value)
        for param in src.params:
            if param.default is not None:
                self.params.setdefault(param.name.value, []).append(param.default)
        for call in src.calls:
            self._option(call)
        called: dict[str, list[cst.Call]] = {}
        for call in src.calls:
            called.setdefault(_last(call), []).append(call)
        for func in src.functions:
            self._passed(func, called)

    def resolve(self, node: cst.BaseExpression, depth: int = 0) -> list[Written]:
        """The numbers ``node`` reads, where they are written; [] when not a number found in the code."""
        if depth > 4:
            return []
        value = number(node)
        if value is not None and isinstance(node, cst.Integer | cst.Float):
            return [Written(node, value, self.src.line(node))]
        sources: list[cst.BaseExpression] = []
        if isinstance(node, cst.Name):
            sources = self.names.get(node.value, []) + self.params.get(node.value, [])
        elif isinstance(node, cst.Attribute):
            sources = self._attribute(node)
        elif isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name):
            key = _key(node)
            sources = self.keys.get((node.value.value, key), []) if key else []
        return [w for s in sources for w in self.resolve(s, depth + 1)]

    def _attribute(self, node: cst.Attribute) -> list[cst.BaseExpression]:
        attr = node.attr.value
        if isinstance(node.value, cst.Name) and node.value.value == "self" and attr in self.selfs:
            return self.selfs[attr]
        if attr in self.options:
            return self.options[attr]
        return self.params.get(attr, []) + self.names.get(attr, [])

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if isinstance(target, cst.Name):
            self.names.setdefault(target.value, []).append(value)
            if isinstance(value, cst.Dict):
                for element in value.elements:
                    if isinstance(element, cst.DictElement) and isinstance(element.key, cst.SimpleString):
                        key = str(element.key.evaluated_value)
                        self.keys.setdefault((target.value, key), []).append(element.value)
        elif isinstance(target, cst.Attribute) and _is_self(target.value):
            self.selfs.setdefault(target.attr.value, []).append(value)

    def _passed(self, func: cst.FunctionDef, called: dict[str, list[cst.Call]]) -> None:
        """What the code's calls of a function it defines pass to its parameters (``train(model, epochs=5)``);
        an ``__init__``'s calls are its class's."""
        names = [p.name.value for p in func.params.params]
        offset = 1 if names[:1] in (["self"], ["cls"]) else 0
        name = func.name.value
        if name == "__init__":
            owner = self.src.parents.get(self.src.parents.get(func) or func)
            name = owner.name.value if isinstance(owner, cst.ClassDef) else name
        for call in called.get(name, []):
            positional = [a for a in call.args if a.keyword is None and not a.star]
            for index, arg in enumerate(positional):
                if index + offset < len(names):
                    self.params.setdefault(names[index + offset], []).append(arg.value)
            for arg in call.args:
                if arg.keyword is not None and arg.keyword.value in names:
                    self.params.setdefault(arg.keyword.value, []).append(arg.value)

    def _option(self, call: cst.Call) -> None:
        """argparse's ``add_argument("--lr", default=...)``."""
        if not (isinstance(call.func, cst.Attribute) and call.func.attr.value == "add_argument"):
            return
        default = next((a.value for a in call.args if a.keyword and a.keyword.value == "default"), None)
        dest = _dest(call)
        if default is not None and dest:
            self.options.setdefault(dest, []).append(default)


def _is_self(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == "self"


def _key(node: cst.Subscript) -> str | None:
    if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
        return None
    value = node.slice[0].slice.value
    return value.evaluated_value if isinstance(value, cst.SimpleString) else None  # type: ignore[return-value]


def _dest(call: cst.Call) -> str | None:
    """The attribute argparse stores an option in: ``--batch-size`` -> ``batch_size``."""
    for arg in call.args:
        if arg.keyword and arg.keyword.value == "dest" and isinstance(arg.value, cst.SimpleString):
            return str(arg.value.evaluated_value)
    flags = [
        str(a.value.evaluated_value)
        for a in call.args
        if not a.keyword and isinstance(a.value, cst.SimpleString)
    ]
    long = [f for f in flags if f.startswith("--")]
    chosen = long[0] if long else flags[0] if flags else None
    return chosen.lstrip("-").replace("-", "_") if chosen else None


# -- the epoch loop and Lightning's Trainer -------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EpochLoop:
    """``for epoch in range(...)``: ``count`` is the expression that says how many epochs, and the loop
    runs ``value(count) - offset`` epochs (``range(1, EPOCHS + 1)``: count EPOCHS, offset 0)."""

    range_call: cst.Call
    count: cst.BaseExpression
    offset: int
    line: int


def epoch_loops(src: Source) -> list[EpochLoop]:
    loops = []
    for loop in src.fors:
        call = _range_of(loop.iter)
        if call is None or not _is_epoch_loop(loop, call):
            continue
        shaped = _count(call)
        if shaped is not None:
            loops.append(EpochLoop(call, shaped[0], shaped[1], src.line(loop)))
    return loops


def _range_of(node: cst.BaseExpression) -> cst.Call | None:
    """``range(...)``, also inside ``tqdm(...)``/``enumerate(...)``; ``trange(...)`` is one too."""
    if not isinstance(node, cst.Call) or not isinstance(node.func, cst.Name | cst.Attribute):
        return None
    name = node.func.value if isinstance(node.func, cst.Name) else node.func.attr.value
    if name in ("range", "trange"):
        return node
    if name in ("tqdm", "enumerate") and node.args:
        return _range_of(node.args[0].value)
    return None


def _is_epoch_loop(loop: cst.For, call: cst.Call) -> bool:
    """``for epoch in ...``, ``for ep in ...``, or a loop over ``range(EPOCHS)``."""
    target = cst.Module([]).code_for_node(loop.target).lower()
    return "epoch" in target or target == "ep" or "epoch" in cst.Module([]).code_for_node(call).lower()


def _count(call: cst.Call) -> tuple[cst.BaseExpression, int] | None:
    args = [a.value for a in call.args if a.keyword is None]
    if not args or len(args) > 2:
        return None
    start = 0
    if len(args) == 2:
        first = number(args[0])
        if first is None:
            return None
        start = int(first)
    stop = args[-1]
    if (
        isinstance(stop, cst.BinaryOperation)
        and isinstance(stop.operator, cst.Add)
        and number(stop.right) is not None
    ):
        return stop.left, start - int(number(stop.right) or 0)
    return stop, start


def trainers(src: Source) -> list[cst.Call]:
    """Lightning's ``Trainer(...)`` calls."""
    return [
        c for c in src.calls if (src.names.full(c.func) or "").startswith(TRAINERS) and _last(c) == "Trainer"
    ]


def _last(call: cst.Call) -> str:
    func = call.func
    return (
        func.value
        if isinstance(func, cst.Name)
        else func.attr.value
        if isinstance(func, cst.Attribute)
        else ""
    )


def keyword(call: cst.Call, name: str, position: int | None = None) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    positional = [a for a in call.args if a.keyword is None and not a.star]
    return positional[position] if position is not None and len(positional) > position else None


# -- optimizers and loaders -----------------------------------------------------------------------------


def optimizers(src: Source) -> list[cst.Call]:
    """``torch.optim`` optimizers built in the code (``optim.SGD(model.parameters(), lr=0.01)``)."""
    out = []
    for call in src.calls:
        full = src.names.full(call.func) or ""
        if full.startswith("torch.optim.") and full.rsplit(".", 1)[-1] in DEFAULT_RATE:
            out.append(call)
    return out


def rate_arg(call: cst.Call) -> cst.Arg | None:
    return keyword(call, "lr", 1)


@dataclass(frozen=True, eq=False)
class Loader:
    call: cst.Call
    training: bool | None  # None: nothing says
    batch: cst.Arg | None  # batch_size=..., or positional
    via: cst.BaseExpression | None  # the value of "batch_size" in a **kwargs dict it takes


def loaders(src: Source, values: Values) -> list[Loader]:
    """The DataLoaders, each with whether it trains (its name, its dataset's, ``shuffle=True``)."""
    found = []
    for call in src.calls:
        if (src.names.full(call.func) or "").rsplit(".", 1)[-1] != "DataLoader":
            continue
        via = None
        for arg in call.args:
            if arg.star == "**" and isinstance(arg.value, cst.Name):
                via = next(iter(values.keys.get((arg.value.value, "batch_size"), [])), None)
        found.append(Loader(call, _trains(src, call), keyword(call, "batch_size", 1), via))
    unknown = [loader for loader in found if loader.training is None]
    if not any(loader.training for loader in found) and len(unknown) == 1:  # the one that does not evaluate
        found = [Loader(x.call, True, x.batch, x.via) if x is unknown[0] else x for x in found]
    return found


def _trains(src: Source, call: cst.Call) -> bool | None:
    words = []
    parent = src.parents.get(call)
    if isinstance(parent, cst.Assign):
        words.append(cst.Module([]).code_for_node(parent.targets[0].target))
    node: cst.CSTNode | None = call
    while node is not None and not isinstance(node, cst.FunctionDef):
        node = src.parents.get(node)
    if isinstance(node, cst.FunctionDef) and "dataloader" in node.name.value:
        words.append(node.name.value)
    dataset = keyword(call, "dataset", 0)
    if dataset is not None:
        words.append(cst.Module([]).code_for_node(dataset.value))
    for word in (w.lower() for w in words):
        if EVAL_WORDS.search(word):
            return False
        if TRAIN_WORDS.search(word):
            return True
    shuffle = keyword(call, "shuffle", 2)
    if shuffle is not None and isinstance(shuffle.value, cst.Name) and shuffle.value.value == "True":
        return True
    return None
