"""Facts about a model's source that strategies and checks need: its layers, epochs, estimators, shapes.

Read with the standard library's ``ast`` (facts only; the rewriting is LibCST's, in tweak/codemods). Layers
are known by name from :mod:`mlops.vocabulary`, the classifier's vocabulary too; their roles map to the
kinds of layer the codemods edit.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from mlops.classify import Framework
from mlops.vocabulary import KERAS_LAYERS, SKLEARN_TUNED, Role
from tweak.framework import code_of
from tweak.torch_facts import check_torch, torch_facts

# The tweaks' kinds of layer: which roles the codemods treat alike (tweak/codemods/base.py finds a model's
# layers by kind). A role left out is a layer the tweaks do not touch.
KIND_OF_ROLE: dict[Role, str] = {
    Role.CONVOLUTION: "conv",
    # Conv2DTranspose(filters, kernel_size): filters that scale_filters may scale, and a copy with "same"
    # padding (add_conv_block) keeps the size; but it grows its input, so check_variant stops there.
    Role.TRANSPOSED_CONVOLUTION: "conv",
    # ConvLSTM2D(filters, kernel_size) works over a time axis. Not a "conv": add_conv_block would copy it
    # before Flatten, where the time axis is usually gone (return_sequences=False) and the copy cannot
    # build. The tweaks leave it alone; check_variant stops there.
    Role.RECURRENT_CONVOLUTION: "recurrent_conv",
    # DepthwiseConv2D(kernel_size): no filters (the first argument is the kernel), so not a "conv" whose
    # first argument scale_filters would scale or add_conv_block would copy; it shrinks like a convolution.
    Role.DEPTHWISE_CONVOLUTION: "depthwise_conv",
    Role.POOLING: "pool",
    Role.GLOBAL_POOLING: "global_pool",
    Role.DENSE: "dense",
    Role.FLATTEN: "flatten",
    Role.DROPOUT: "dropout",
    Role.PREPROCESSING: "preprocess",  # Rescaling(1/255), Normalization(): the model scales its own input
}
LAYER_KINDS: dict[str, str] = {
    name: KIND_OF_ROLE[role] for name, role in KERAS_LAYERS.items() if role in KIND_OF_ROLE
}
# The roles whose output size check_variant computes from the window, the strides and the padding.
SIZED_ROLES = frozenset({Role.CONVOLUTION, Role.DEPTHWISE_CONVOLUTION, Role.POOLING})
WINDOWED = ("conv", "depthwise_conv", "recurrent_conv", "pool")  # the kinds with a kernel or pool window

# Keras optimizers' default learning rates that changed between generations: standalone Keras (up to 2.3)
# -> tf.keras 2.x and Keras 3 (Keras pull request 12841; TensorFlow 1.14's release notes). A script that
# relies on one of these defaults trains as its author never saw it: Adadelta at 0.001 barely learns.
CHANGED_DEFAULTS: dict[str, tuple[float, float]] = {
    "adadelta": (1.0, 0.001),
    "adagrad": (0.01, 0.001),
    "adamax": (0.002, 0.001),
    "nadam": (0.002, 0.001),
}
# Optimizer classes, by their name in lower case (what a string in compile() or a class name says).
OPTIMIZERS = frozenset(
    ["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "ftrl", "lion", "adafactor"]
)

SKLEARN_ESTIMATORS_WITH_PARAMS = {
    "n_clusters",
    "hidden_layer_sizes",
    "max_iter",
    "n_estimators",
    "C",
    "max_depth",
}


@dataclass(frozen=True)
class Layer:
    kind: str  # conv, depthwise_conv, recurrent_conv, pool, global_pool, dense, flatten, dropout, preprocess
    name: str  # the class as written: Conv2D, Convolution2D, Dense, ...
    line: int
    units: int | None = None  # Dense
    filters: int | None = None  # convolutions
    kernel: tuple[int, ...] | None = None
    pool: tuple[int, ...] | None = None
    strides: tuple[int, ...] | None = None
    padding: str = "valid"
    role: Role | None = None  # what the vocabulary says the layer does


@dataclass(frozen=True)
class Estimator:
    name: str
    line: int
    params: dict[str, Any] = field(default_factory=dict)
    computed: frozenset[str] = frozenset()  # keywords given by an expression (a variable, a prompt's answer)


@dataclass(frozen=True)
class ModelFacts:
    layers: list[Layer] = field(default_factory=list)
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    rate_written: bool = False  # the optimizer is given a rate (literal or not); else it runs at its default
    input_shape: tuple[int, ...] | None = None
    estimators: list[Estimator] = field(default_factory=list)
    parses: bool = True
    error: str | None = None


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _literal(node: ast.AST | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _ints(value: Any, dims: int = 2) -> tuple[int, ...] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * dims
    if isinstance(value, tuple | list) and all(isinstance(v, int) for v in value):
        return tuple(value)
    return None


def _kw(call: ast.Call, *names: str) -> ast.AST | None:
    for keyword in call.keywords:
        if keyword.arg in names:
            return keyword.value
    return None


def _arg(call: ast.Call, index: int, *names: str) -> ast.AST | None:
    found = _kw(call, *names)
    if found is not None:
        return found
    positional = [a for a in call.args if not isinstance(a, ast.Starred)]
    return positional[index] if len(positional) > index else None


def _dims(name: str) -> int:
    return 1 if "1D" in name else 3 if "3D" in name else 2


class _Gather(ast.NodeVisitor):
    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.assigns: dict[str, Any] = {}
        self.fit_epochs: Any = None
        self.fit_batch: Any = None
        self.optimizer: str | None = None
        self.learning_rate: float | None = None
        self.rate_written = False
        self.optimizers: dict[str, ast.Call] = {}  # names bound to an optimizer object: opt = Adadelta()
        self.input_shapes: list[tuple[int, ...]] = []
        self.estimators: list[Estimator] = []

    def visit_Assign(self, node: ast.Assign) -> None:  # noqa: N802
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.assigns[target.id] = _literal(node.value)
                called = _name(node.value.func) if isinstance(node.value, ast.Call) else None
                if isinstance(node.value, ast.Call) and str(called).lower() in OPTIMIZERS:
                    self.optimizers[target.id] = node.value
        self.generic_visit(node)

    def _value(self, node: ast.AST | None) -> Any:
        if isinstance(node, ast.Name):
            return self.assigns.get(node.id)
        return _literal(node)

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802
        name = _name(node.func)
        if name in LAYER_KINDS:
            self._layer(node, name)
        elif name in ("fit", "fit_generator"):
            epochs = _kw(node, "epochs", "nb_epoch")
            if epochs is not None:
                self.fit_epochs = self._value(epochs)
            batch = _kw(node, "batch_size")
            if batch is not None:
                self.fit_batch = self._value(batch)
        elif name == "compile":
            self._compile(_arg(node, 0, "optimizer"))
        elif name in ("Input", "InputLayer"):
            shape = _ints(self._value(_arg(node, 0, "shape", "input_shape")), 1)
            if shape:
                self.input_shapes.append(shape)
        elif name == "reshape":
            values = [self._value(a) for a in node.args]
            if len(values) == 1 and isinstance(values[0], tuple):
                values = list(values[0])
            if len(values) >= 3 and all(isinstance(v, int) for v in values):
                self.input_shapes.append(tuple(values[1:]))
        elif name and name[:1].isupper() and node.keywords and name not in LAYER_KINDS:
            params = {k.arg: _literal(k.value) for k in node.keywords if k.arg}
            if (
                any(p in SKLEARN_ESTIMATORS_WITH_PARAMS for p in params)
                or name.endswith(("KMeans", "Classifier", "Regressor", "Regression", "SVC"))
                or name in SKLEARN_TUNED
            ):
                computed = frozenset(k.arg for k in node.keywords if k.arg and not _is_literal(k.value))
                self.estimators.append(Estimator(name, node.lineno, params, computed))
        tuned = name in SKLEARN_TUNED or name == "LinearRegression"  # their knobs are tuned when unset
        if name and (name.endswith("KMeans") or name.startswith("MLP") or tuned) and not node.keywords:
            self.estimators.append(Estimator(name, node.lineno, {}))
        self.generic_visit(node)

    def _compile(self, opt: ast.AST | None) -> None:
        """The optimizer of ``compile(optimizer=...)``: a name (``"adadelta"``), an object (``Adadelta()``) or
        a variable bound to one (``opt = SGD(0.1)``), and its rate as written."""
        if isinstance(opt, ast.Name) and opt.id in self.optimizers:
            opt = self.optimizers[opt.id]
        if isinstance(opt, ast.Constant) and isinstance(opt.value, str):
            self.optimizer, self.learning_rate, self.rate_written = opt.value, None, False
        elif isinstance(opt, ast.Call):
            self.optimizer = _name(opt.func)
            given = _arg(opt, 0, "learning_rate", "lr")  # SGD(0.1), Adam(lr=...)
            lr = self._value(given)
            self.learning_rate = float(lr) if isinstance(lr, int | float) else None
            self.rate_written = given is not None

    def _layer(self, node: ast.Call, name: str) -> None:
        kind = LAYER_KINDS[name]
        dims = _dims(name)
        shape = _ints(self._value(_kw(node, "input_shape")), 1)
        if shape:
            self.input_shapes.append(shape)
        padding = self._value(_kw(node, "padding")) or ("valid" if kind in WINDOWED else "")
        units = filters = None
        kernel = pool = strides = None
        if kind == "dense":
            value = self._value(_arg(node, 0, "units", "output_dim"))
            units = value if isinstance(value, int) else None
        elif kind in ("conv", "recurrent_conv"):
            value = self._value(_arg(node, 0, "filters", "nb_filter"))
            filters = value if isinstance(value, int) else None
            kernel = _ints(self._value(_arg(node, 1, "kernel_size")), dims)
            if (
                kernel is None and name.startswith("Convolution") and len(node.args) >= 3
            ):  # Keras 1: (n, 3, 3)
                kernel = _ints(tuple(self._value(a) for a in node.args[1:3]), dims)
            strides = _ints(self._value(_kw(node, "strides", "subsample")), dims)
        elif kind == "depthwise_conv":
            kernel = _ints(self._value(_arg(node, 0, "kernel_size")), dims)
            strides = _ints(self._value(_arg(node, 1, "strides")), dims)
        elif kind == "pool":
            pool = _ints(self._value(_arg(node, 0, "pool_size")), dims) or (2,) * dims
            strides = _ints(self._value(_kw(node, "strides")), dims)
        role = KERAS_LAYERS[name]
        self.layers.append(
            Layer(kind, name, node.lineno, units, filters, kernel, pool, strides, str(padding), role=role)
        )


def model_facts(source: str, framework: Framework | str | None = None) -> ModelFacts:
    """The facts of ``source``, read as its framework's code (``framework``: as job 2 recorded it)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:
        return ModelFacts(parses=False, error=f"line {getattr(e, 'lineno', '?')}: {e}")
    if code_of(source, framework) is Framework.PYTORCH:
        return _pytorch_facts(source)
    gather = _Gather()
    gather.visit(tree)
    epochs = gather.fit_epochs if isinstance(gather.fit_epochs, int) else None
    batch = gather.fit_batch if isinstance(gather.fit_batch, int) else None
    return ModelFacts(
        layers=sorted(gather.layers, key=lambda layer: layer.line),
        epochs=epochs,
        batch_size=batch,
        optimizer=gather.optimizer,
        learning_rate=gather.learning_rate,
        rate_written=gather.rate_written,
        input_shape=gather.input_shapes[0] if gather.input_shapes else None,
        estimators=gather.estimators,
    )


def _pytorch_facts(source: str) -> ModelFacts:
    """A PyTorch source's facts (tweak/torch_facts.py) as the records the strategies read."""
    try:
        found = torch_facts(cst.parse_module(source))
    except cst.ParserSyntaxError as e:
        return ModelFacts(parses=False, error=f"line {e.raw_line}: {e.message}")
    return ModelFacts(
        layers=[Layer(**vars(layer)) for layer in found.layers],
        epochs=found.epochs,
        batch_size=found.batch_size,
        optimizer=found.optimizer,
        learning_rate=found.learning_rate,
        input_shape=found.input_shape,
    )


@dataclass(frozen=True)
class OldDefault:
    """An optimizer left at a default learning rate that changed since the script was written."""

    optimizer: str  # as written
    old: float  # standalone Keras's (up to 2.3)
    now: float  # tf.keras 2.x's and Keras 3's

    def describe(self) -> str:
        return (
            f"the script relies on {self.optimizer}'s default learning rate: {self.old:g} in standalone Keras "
            f"(up to 2.3), {self.now:g} in tf.keras and Keras 3"
        )


def old_default(facts: ModelFacts) -> OldDefault | None:
    """The changed default the script's optimizer runs at (``Adadelta()``, ``optimizer="adagrad"``), if any."""
    name = str(facts.optimizer or "")
    if name.lower() not in CHANGED_DEFAULTS or facts.rate_written:
        return None
    old, now = CHANGED_DEFAULTS[name.lower()]
    return OldDefault(name, old, now)


def check_variant(source: str, framework: Framework | str | None = None) -> str | None:
    """Why a variant cannot work, found before it wastes a training; None when nothing is wrong."""
    try:
        compile(source, "<variant>", "exec")
    except SyntaxError as e:
        return f"the variant does not parse (line {e.lineno}: {e.msg})"
    if code_of(source, framework) is Framework.PYTORCH:
        return check_torch(cst.parse_module(source))
    facts = model_facts(source, framework)
    shape = facts.input_shape
    windowed = [layer for layer in facts.layers if layer.kind in WINDOWED]
    if not shape or not windowed:
        return None
    dims = _dims(windowed[0].name)
    # The arithmetic assumes (size..., channels). Another axis (the time axis of a ConvLSTM2D or a
    # TimeDistributed model) would be read as a size: better no check than a wrong one.
    if len(shape) != dims + 1:
        return None
    size = list(shape[:dims])
    for layer in windowed:
        if layer.role not in SIZED_ROLES:
            return None  # grows its input or works over time: the sizes after it are not known here
        window = layer.pool if layer.kind == "pool" else layer.kernel
        if window is None or len(window) != dims:
            continue
        strides = layer.strides or (window if layer.kind == "pool" else (1,) * dims)
        new = []
        for n, w, s in zip(size, window, strides, strict=True):
            new.append(-(-n // s) if layer.padding == "same" else (n - w) // s + 1)
        if any(n <= 0 for n in new):
            shown = "x".join(str(n) for n in size)
            return (
                f"{layer.name} at line {layer.line} needs at least a {'x'.join(map(str, window))} input but gets "
                f"{shown} (input {'x'.join(map(str, shape))}): too many convolution or pooling layers"
            )
        size = new
    return None
