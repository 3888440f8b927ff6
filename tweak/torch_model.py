"""A PyTorch model as its source writes it: its layers, and the order the data flows through them.

Found in the ways people write one: an ``nn.Module`` subclass whose ``__init__`` binds layers
(``self.conv1 = nn.Conv2d(1, 6, 5)``, ``self.features = nn.Sequential(...)``) and whose ``forward`` uses
them (``x = self.pool(F.relu(self.conv1(x)))``, ``torch.flatten(x, 1)``, ``x.view(-1, 16 * 4 * 4)``), and
``nn.Sequential(...)`` models anywhere. The flow is ``forward``'s calls in the order Python evaluates them
(a Sequential used there contributes its layers in order); what it cannot follow (``torch.cat``, a
ModuleList loop, a custom block) is an opaque step, and nothing is inferred across one.

Read with LibCST, so the codemods edit the very nodes found here (:attr:`Source.module` is the tree they
belong to); the facts and the shape check read the same analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

Arg = tuple[int, str]  # an argument's position and keyword


def _words(text: str) -> list[str]:
    return text.split()


@dataclass(frozen=True)
class Spec:
    """What a layer class's arguments mean: its input and output sizes, window, stride and padding."""

    kind: str  # conv, dense, norm, pool, global_pool, flatten, dropout, act
    ins: Arg | None = None  # the input size: in_channels, in_features, num_features
    outs: Arg | None = None  # the output size: out_channels, out_features
    lazy: str | None = None  # the sibling that infers its input size
    window: Arg | None = None
    stride: Arg | None = None
    padding: Arg | None = None
    transposed: bool = False


def _specs() -> dict[str, Spec]:
    specs: dict[str, Spec] = {}
    conv = {"window": (2, "kernel_size"), "stride": (3, "stride"), "padding": (4, "padding")}
    lazy_conv = {"window": (1, "kernel_size"), "stride": (2, "stride"), "padding": (3, "padding")}
    pool = {"window": (0, "kernel_size"), "stride": (1, "stride"), "padding": (2, "padding")}
    for d in "123":
        sizes = {"ins": (0, "in_channels"), "outs": (1, "out_channels")}
        specs[f"Conv{d}d"] = Spec("conv", lazy=f"LazyConv{d}d", **sizes, **conv)  # type: ignore[arg-type]
        specs[f"ConvTranspose{d}d"] = Spec(
            "conv",
            lazy=f"LazyConvTranspose{d}d",
            transposed=True,
            **sizes,
            **conv,
        )
        specs[f"LazyConv{d}d"] = Spec("conv", outs=(0, "out_channels"), **lazy_conv)  # type: ignore[arg-type]
        for norm in ("BatchNorm", "InstanceNorm"):
            specs[f"{norm}{d}d"] = Spec("norm", (0, "num_features"), (0, "num_features"), f"Lazy{norm}{d}d")
        for kind in ("Max", "Avg"):
            specs[f"{kind}Pool{d}d"] = Spec("pool", **pool)  # type: ignore[arg-type]
            specs[f"Adaptive{kind}Pool{d}d"] = Spec("global_pool", window=(0, "output_size"))
        specs[f"Dropout{d}d"] = Spec("dropout")
    specs["Linear"] = Spec("dense", (0, "in_features"), (1, "out_features"), "LazyLinear")
    specs["LazyLinear"] = Spec("dense", outs=(0, "out_features"))
    specs["GroupNorm"] = Spec("norm", (1, "num_channels"), (1, "num_channels"))
    specs["Flatten"] = Spec("flatten")
    specs["Dropout"] = specs["AlphaDropout"] = Spec("dropout")
    for act in _words("""ReLU ReLU6 LeakyReLU ELU GELU SELU SiLU Mish Sigmoid Tanh Softmax LogSoftmax Softplus
        Hardswish Hardtanh PReLU Identity"""):
        specs[act] = Spec("act")
    return specs


SPECS: dict[str, Spec] = _specs()
# torch.nn.functional.<name> and torch.<name> in forward, by what they do to the size of the data.
FUNCTIONAL: dict[str, str] = {
    **dict.fromkeys(
        _words("""relu relu6 leaky_relu elu gelu selu silu mish sigmoid tanh softmax log_softmax softplus
        hardswish"""),
        "act",
    ),
    **dict.fromkeys(_words("dropout dropout1d dropout2d dropout3d alpha_dropout"), "dropout"),
    **dict.fromkeys(_words("max_pool1d max_pool2d max_pool3d avg_pool1d avg_pool2d avg_pool3d"), "pool"),
    **dict.fromkeys(
        _words("adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool2d"),
        "global_pool",
    ),
    "flatten": "flatten",
}
TENSOR_METHODS: dict[str, str] = {
    **dict.fromkeys(_words("relu sigmoid tanh softmax log_softmax"), "act"),
    "flatten": "flatten",
    "view": "view",
    "reshape": "view",
}
# Calls in forward that do not change what flows (or only look at it).
IGNORED = frozenset(
    _words("""size dim float double half long int to cpu cuda contiguous detach unsqueeze squeeze type clone numel
    item print len isinstance range getattr hasattr super log log_dict no_grad""")
)


@dataclass(eq=False)
class Site:
    """One layer constructor call of a model, and where it is bound."""

    call: cst.Call
    name: str  # the class: Conv2d, Linear, ...
    spec: Spec
    line: int
    attr: str | None = None  # bound as self.<attr> in __init__
    stmt: cst.SimpleStatementLine | None = None  # the statement that binds it
    container: Container | None = None  # the nn.Sequential it is an element of
    index: int = 0  # its position in that Sequential


@dataclass(eq=False)
class Container:
    """An ``nn.Sequential(...)``: its elements in order (layers, nested Sequentials, or opaque calls)."""

    call: cst.Call
    line: int
    items: list[Site | Container | str] = field(default_factory=list)  # str: what an opaque element is
    keyed: bool = False  # nn.Sequential(OrderedDict([...])): elements are not insertable here


@dataclass(eq=False)
class Step:
    """One thing the data goes through: a layer, a functional call, a flatten, or something opaque."""

    kind: str  # a Spec kind, "view" (a flatten to N features), "reshape" (to more axes), or "opaque"
    node: cst.Call  # the layer's constructor call, or the call in forward
    line: int
    site: Site | None = None
    use: cst.Call | None = None  # the call in forward that applies the layer (self.fc1(x))
    what: str = ""  # an opaque step, in words


@dataclass(eq=False)
class Model:
    name: str
    line: int
    sites: list[Site]
    flow: list[Step] | None  # None: no forward to follow
    init: cst.FunctionDef | None = None
    forward: cst.FunctionDef | None = None
    attrs: set[str] = field(default_factory=set)  # names the class already binds or defines
    uses: set[str] = field(default_factory=set)  # the classes its __init__ builds (other models: blocks)
    cls: cst.ClassDef | None = None
    modules: set[str] = field(default_factory=set)  # the self.<attr> bound to layers and Sequentials

    def hidden_dense(self) -> list[int]:
        """Flow positions of the Linear layers before the last one."""
        dense = [i for i, s in enumerate(self.flow or []) if s.kind == "dense"]
        return dense[:-1]


class Names:
    """What the names a module binds by import stand for (``nn`` -> ``torch.nn``)."""

    def __init__(self, imports: list[cst.Import | cst.ImportFrom]) -> None:
        self.bound: dict[str, str] = {}
        self.stars: list[str] = []
        for node in imports:
            if isinstance(node, cst.Import):
                self._import(node)
            else:
                self._import_from(node)

    def full(self, node: cst.BaseExpression) -> str | None:
        parts = _dotted(node)
        if parts is None:
            return None
        head, *rest = parts
        base = self.bound.get(head)
        if base is None:
            stars = [s for s in self.stars if s.startswith("torch")]
            return ".".join([stars[0], head, *rest]) if stars and not rest else None
        return ".".join([base, *rest])

    def alias(self, full: str) -> str | None:
        """The name this module binds to ``full`` (``torch.nn.functional`` -> ``F``), if any."""
        return next((name for name, what in self.bound.items() if what == full), None)

    def _import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = ".".join(_dotted(alias.name) or [])
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.bound[alias.asname.name.value] = full
            else:
                head = full.split(".")[0]
                self.bound[head] = head

    def _import_from(self, node: cst.ImportFrom) -> None:
        if node.module is None or node.relative:
            return
        base = ".".join(_dotted(node.module) or [])
        if isinstance(node.names, cst.ImportStar):
            self.stars.append(base)
            return
        for alias in node.names:
            name = ".".join(_dotted(alias.name) or [])
            bound = alias.asname.name if alias.asname is not None else None
            key = bound.value if isinstance(bound, cst.Name) else name
            self.bound[key] = f"{base}.{name}"


class _Index(cst.CSTVisitor):
    """One pass over the tree: each node's parent, and the nodes the readers look for."""

    def __init__(self) -> None:
        super().__init__()
        self.parents: dict[cst.CSTNode, cst.CSTNode] = {}
        self.stack: list[cst.CSTNode] = []
        self.found: dict[type, list[cst.CSTNode]] = {}

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.stack:
            self.parents[node] = self.stack[-1]
        self.stack.append(node)
        self.found.setdefault(type(node), []).append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.stack.pop()

    def of(self, *kinds: type) -> list[Any]:
        return [node for kind in kinds for node in self.found.get(kind, [])]


def _dotted(node: cst.BaseExpression) -> list[str] | None:
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, cst.Attribute):
        base = _dotted(node.value)
        return [*base, node.attr.value] if base else None
    return None


class Source:
    """A module's PyTorch models (:func:`tweak.torch_flow.read`) and its nodes, indexed in one pass.

    ``module`` is the tree the nodes belong to: edit that one (the one given, not a copy)."""

    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self.positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        index = _Index()
        module.visit(index)
        self.parents = index.parents
        self.calls: list[cst.Call] = index.of(cst.Call)
        self.classes: list[cst.ClassDef] = index.of(cst.ClassDef)
        self.fors: list[cst.For] = index.of(cst.For)
        self.assigns: list[cst.Assign | cst.AnnAssign] = index.of(cst.Assign, cst.AnnAssign)
        self.params: list[cst.Param] = index.of(cst.Param)
        self.functions: list[cst.FunctionDef] = index.of(cst.FunctionDef)
        self.names = Names(index.of(cst.Import, cst.ImportFrom))
        self.models: list[Model] = []  # filled by tweak.torch_flow.read

    def line(self, node: cst.CSTNode) -> int:
        return self.positions[node].start.line

    def layer(self, call: cst.Call) -> tuple[str, Spec] | None:
        """The layer class and its spec, for a call of a torch.nn layer."""
        full = self.names.full(call.func)
        if full is None or not full.startswith("torch.nn.") or full.startswith("torch.nn.functional."):
            return None
        name = full.rsplit(".", 1)[-1]
        return (name, SPECS[name]) if name in SPECS else None

    def is_torch(self, call: cst.Call, *names: str) -> bool:
        """Whether the call is of one of the torch names given (``torch.nn.Sequential``, ...)."""
        return self.names.full(call.func) in names

    def statement(self, node: cst.CSTNode) -> cst.SimpleStatementLine | None:
        """The simple statement line that holds ``node``."""
        current: cst.CSTNode | None = node
        while current is not None and not isinstance(current, cst.SimpleStatementLine):
            current = self.parents.get(current)
        return current

    def all_sites(self) -> list[Site]:
        return [site for model in self.models for site in model.sites]
