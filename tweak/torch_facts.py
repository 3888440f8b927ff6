"""Facts about a PyTorch model's source, and the shape check made before a variant trains.

The facts (layers in the order data flows through them, their channels and units, epochs, learning rate,
batch size, the input shape when the code says it) have the field names of :mod:`tweak.facts`' records,
which builds its ``ModelFacts`` from them. The check follows each model's flow with the sizes the code
writes as numbers (or constants): a layer whose input size no longer matches what reaches it
(``nn.Linear(400, 120)`` after 32 channels of 4x4) is caught before training. Only definite mismatches
are reported: a size the code does not write, or a step the flow cannot follow, stops the check there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from tweak.torch_flow import read, view_size
from tweak.torch_model import Site, Source, Step
from tweak.torch_training import (
    DEFAULT_RATE,
    Values,
    epoch_loops,
    keyword,
    loaders,
    optimizers,
    rate_arg,
    trainers,
)

FACT_KINDS = ("conv", "pool", "global_pool", "dense", "flatten", "dropout")  # as tweak.facts names them
SHAPE_MAKERS = ("torch.randn", "torch.rand", "torch.zeros", "torch.ones", "torch.empty")


@dataclass(frozen=True)
class TorchLayer:
    """A layer, with the fields of ``tweak.facts.Layer``."""

    kind: str
    name: str
    line: int
    units: int | None = None
    filters: int | None = None
    kernel: tuple[int, ...] | None = None
    pool: tuple[int, ...] | None = None
    strides: tuple[int, ...] | None = None
    padding: str = ""


@dataclass(frozen=True)
class TorchFacts:
    layers: list[TorchLayer] = field(default_factory=list)
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None  # as written, else the optimizer's default
    input_shape: tuple[int, ...] | None = None  # (channels, height, width), when the code says it


def torch_facts(module: cst.Module) -> TorchFacts:
    src = read(module)
    values = Values(src)
    consts = Constants(values)
    layers: list[TorchLayer] = []
    for model in src.models:
        steps = (
            model.flow
            if model.flow is not None
            else [Step(s.spec.kind, s.call, s.line, s) for s in model.sites]
        )
        layers += [_layer(src, s, consts) for s in steps if s.kind in FACT_KINDS or s.kind == "view"]
    optimizer, rate = _rate(src, values)
    return TorchFacts(
        layers, _epochs(src, values), _batch(src, values), optimizer, rate, _input_shape(src, consts)
    )


def _layer(src: Source, step: Step, consts: Constants) -> TorchLayer:
    kind = "flatten" if step.kind == "view" else step.kind
    site = step.site
    if site is None:
        name = (src.names.full(step.node.func) or "").rsplit(".", 1)[-1] or "view"
        window = consts.integers(_arg(step.node, 1, "kernel_size")) if kind == "pool" else None
        return TorchLayer(kind, name, step.line, pool=window)
    spec, call = site.spec, site.call
    outs = consts.integer(_arg(call, *spec.outs)) if spec.outs else None
    window = consts.integers(_arg(call, *spec.window)) if spec.window else None
    strides = consts.integers(_arg(call, *spec.stride)) if spec.stride else None
    padding = _arg(call, *spec.padding) if spec.padding else None
    shown = cst.Module([]).code_for_node(padding).strip("\"'") if padding is not None else ""
    return TorchLayer(
        kind,
        site.name,
        site.line,
        units=outs if kind == "dense" else None,
        filters=outs if kind == "conv" else None,
        kernel=window if kind == "conv" else None,
        pool=window if kind == "pool" else None,
        strides=strides,
        padding=shown,
    )


def _arg(call: cst.Call, position: int, name: str) -> cst.BaseExpression | None:
    found = keyword(call, name, position)
    return found.value if found is not None else None


def _epochs(src: Source, values: Values) -> int | None:
    for loop in epoch_loops(src):
        written = values.resolve(loop.count)
        if written:
            return int(written[0].value) - loop.offset
    for trainer in trainers(src):
        arg = keyword(trainer, "max_epochs")
        written = values.resolve(arg.value) if arg is not None else []
        if written:
            return int(written[0].value)
    return None


def _batch(src: Source, values: Values) -> int | None:
    for loader in loaders(src, values):
        if not loader.training:
            continue
        expr = loader.batch.value if loader.batch is not None else loader.via
        if expr is None:
            return 1  # DataLoader's default
        written = values.resolve(expr)
        return int(written[0].value) if written else None
    return None


def _rate(src: Source, values: Values) -> tuple[str | None, float | None]:
    for call in optimizers(src):
        name = (src.names.full(call.func) or "").rsplit(".", 1)[-1]
        arg = rate_arg(call)
        if arg is None:
            return name, DEFAULT_RATE[name]
        written = values.resolve(arg.value)
        return name, written[0].value if written else None
    return None, None


def _input_shape(src: Source, consts: Constants) -> tuple[int, ...] | None:
    """(C, H, W) from ``x.view(-1, 1, 28, 28)``, ``x.reshape(...)`` or ``torch.randn(1, 1, 28, 28)``."""
    for call in src.calls:
        args = list(call.args)
        func = call.func
        method = isinstance(func, cst.Attribute) and func.attr.value in ("view", "reshape")
        if len(args) != 4 or not (method or src.names.full(func) in SHAPE_MAKERS):
            continue
        dims = [consts.integer(a.value) for a in args]
        if all(isinstance(d, int) and d > 0 for d in dims[1:]):
            return tuple(d for d in dims[1:] if d is not None)
    return None


class Constants:
    """Numbers the code writes, through its constants (``16 * 4 * 4``, ``HIDDEN`` when it is 128)."""

    def __init__(self, values: Values) -> None:
        self.values = values

    def integer(self, node: cst.BaseExpression | None) -> int | None:
        value = self._value(node, 0)
        return value if isinstance(value, int) else None

    def integers(self, node: cst.BaseExpression | None) -> tuple[int, ...] | None:
        if isinstance(node, cst.Tuple):
            items = [self.integer(e.value) for e in node.elements]
            return tuple(i for i in items if i is not None) if all(i is not None for i in items) else None
        single = self.integer(node)
        return (single, single) if single is not None else None

    def _value(self, node: cst.BaseExpression | None, depth: int) -> Any:
        if node is None or depth > 6:
            return None
        if isinstance(node, cst.Integer):
            return int(node.evaluated_value)
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
            inner = self._value(node.expression, depth + 1)
            return -inner if isinstance(inner, int) else None
        if isinstance(node, cst.Name):
            sources = self.values.names.get(node.value) or self.values.params.get(node.value, [])
            return self._value(sources[0], depth + 1) if len(sources) == 1 else None
        if isinstance(node, cst.BinaryOperation):
            left, right = self._value(node.left, depth + 1), self._value(node.right, depth + 1)
            if not isinstance(left, int) or not isinstance(right, int):
                return None
            return _operate(node.operator, left, right)
        return None


def _operate(operator: cst.BaseBinaryOp, left: int, right: int) -> int | None:
    if isinstance(operator, cst.Multiply):
        return left * right
    if isinstance(operator, cst.Add):
        return left + right
    if isinstance(operator, cst.Subtract):
        return left - right
    if isinstance(operator, cst.FloorDivide) and right:
        return left // right
    return None


# -- the shape check ------------------------------------------------------------------------------------


@dataclass
class _Flowing:
    """What is known of the data at one point of the flow."""

    channels: int | None = None  # before a flatten
    features: int | None = None  # after a flatten (or a Linear)
    spatial: list[int] | None = None
    flat: bool = False
    said: str = "the input"  # where the size came from, in words


def check_torch(module: cst.Module) -> str | None:
    """Why a PyTorch variant's layers no longer fit together, or None when nothing is known wrong."""
    src = read(module)
    consts = Constants(Values(src))
    shape = _input_shape(src, consts)
    for model in src.models:
        if model.flow is None:
            continue
        state = _start(model.flow, shape, consts)
        for step in model.flow:
            problem = _step(step, state, consts)
            if problem:
                return f"{model.name}: {problem}"
    return None


def _start(flow: list[Step], shape: tuple[int, ...] | None, consts: Constants) -> _Flowing:
    """The input's channels and size, when the code says its shape and the first convolution agrees."""
    first = next((s.site for s in flow if s.site is not None and s.kind in ("conv", "dense")), None)
    if shape is None or first is None or first.spec.kind != "conv" or first.spec.ins is None:
        return _Flowing()
    if consts.integer(_arg(first.call, *first.spec.ins)) != shape[0]:
        return _Flowing()
    return _Flowing(channels=shape[0], spatial=list(shape[1:]), said=f"the input {'x'.join(map(str, shape))}")


def _step(step: Step, state: _Flowing, consts: Constants) -> str | None:
    site = step.site
    if step.kind in ("opaque", "reshape"):  # nothing is known past a step the check cannot follow...
        state.channels = state.features = state.spatial = None
        state.flat = False
        dims = [consts.integer(a.value) for a in step.node.args] if step.kind == "reshape" else []
        if len(dims) >= 3 and all(isinstance(d, int) and d > 0 for d in dims[1:]):  # ...but a reshape's
            state.channels, state.spatial = dims[1], [d for d in dims[2:] if d is not None]
            state.said = f"the reshape at line {step.line}"
        return None
    if step.kind in ("flatten", "view"):
        return _flatten(step, state, consts)
    if step.kind in ("pool", "global_pool"):
        _pooled(step, state, consts)
        return None
    if site is None or step.kind not in ("conv", "dense", "norm"):
        return None
    size = consts.integer(_arg(site.call, *site.spec.ins)) if site.spec.ins else None
    have = state.features if state.flat else state.channels
    if step.kind == "dense" and not state.flat and state.channels is not None:
        have = None  # a Linear over the last axis of an image: not followed
    if size is not None and have is not None and size != have:
        what = "input features" if state.flat else "input channels"
        return f"nn.{site.name} at line {site.line} takes {size} {what} but gets {have} from {state.said}"
    if size is not None and have is None and state.flat and state.channels and size % state.channels:
        return (
            f"nn.{site.name} at line {site.line} takes {size} input features, not a multiple of the "
            f"{state.channels} channels that {state.said} gives before the flatten"
        )
    if step.kind != "norm":
        _made(site, state, consts)
    return None


def _made(site: Site, state: _Flowing, consts: Constants) -> None:
    out = consts.integer(_arg(site.call, *site.spec.outs)) if site.spec.outs else None
    state.said = f"nn.{site.name} at line {site.line}"
    if site.spec.kind == "dense":
        state.flat, state.features, state.channels, state.spatial = True, out, None, None
        return
    state.channels = out
    if state.spatial is not None:
        state.spatial = _sized(site, state.spatial, consts)


def _sized(site: Site, sizes: list[int], consts: Constants) -> list[int] | None:
    spec = site.spec
    kernel = consts.integers(_arg(site.call, *spec.window)) if spec.window else None
    stride = consts.integers(_arg(site.call, *spec.stride)) if spec.stride else None
    padding_node = _arg(site.call, *spec.padding) if spec.padding else None
    if isinstance(padding_node, cst.SimpleString):
        return sizes if padding_node.evaluated_value == "same" else None
    padding = consts.integers(padding_node) if padding_node is not None else (0, 0)
    if kernel is None or padding is None or len(kernel) != len(sizes):
        return None
    stride = stride or (1,) * len(sizes)
    if spec.transposed:
        return [(n - 1) * s - 2 * p + k for n, k, s, p in zip(sizes, kernel, stride, padding, strict=False)]
    return [(n + 2 * p - k) // s + 1 for n, k, s, p in zip(sizes, kernel, stride, padding, strict=False)]


def _pooled(step: Step, state: _Flowing, consts: Constants) -> None:
    if state.spatial is None:
        return
    if step.kind == "global_pool":
        node = _arg(step.site.call, 0, "output_size") if step.site else _arg(step.node, 1, "output_size")
        out = consts.integers(node)
        state.spatial = list(out) if out and len(out) == len(state.spatial) else None
        return
    call = step.site.call if step.site else step.node
    offset = 0 if step.site else 1
    kernel = consts.integers(_arg(call, offset, "kernel_size"))
    stride = consts.integers(_arg(call, offset + 1, "stride")) or kernel
    padding = consts.integers(_arg(call, offset + 2, "padding")) or (0, 0)
    if kernel is None or stride is None or len(kernel) != len(state.spatial):
        state.spatial = None
        return
    sizes = zip(state.spatial, kernel, stride, padding, strict=False)
    state.spatial = [(n + 2 * p - k) // s + 1 for n, k, s, p in sizes]


def _flatten(step: Step, state: _Flowing, consts: Constants) -> str | None:
    if not state.flat:
        if state.channels is not None and state.spatial is not None:
            state.features = state.channels * math.prod(state.spatial)
            shown = "x".join(map(str, state.spatial))
            state.said += f" ({state.channels} channels of {shown})"
        else:
            state.features = None
        state.flat = True
    if step.kind != "view":
        return None
    arg = view_size(step)
    size = consts.integer(arg.value) if arg is not None else None
    if size is not None and state.features is not None and size != state.features:
        return f"the view at line {step.line} makes {size} features but {state.said} gives {state.features}"
    if size is not None and state.features is None and state.channels and size % state.channels:
        return (
            f"the view at line {step.line} makes {size} features, not a multiple of {state.channels} channels"
        )
    if size is not None:
        state.features, state.said = size, f"the view at line {step.line}"
    return None
