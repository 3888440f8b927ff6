"""Job 2's judgement: what a script trains (CNN, ANN, KMeans, other), with which framework and API
generation, and so which training image runs it. Decided from the syntax tree, never from the file name.

:mod:`mlops.classify_facts` gathers facts (imports resolved through aliases, the names used, with lines);
:func:`decide` is a pure function of those facts. The rest reads files (encodings, notebooks, bad input),
follows local imports, finds a repository's entry points and prints results.
"""

from __future__ import annotations

import ast
import enum
import functools
import io
import json
import os
import re
import sys
import tokenize
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import yaml

from mlops.classify_facts import Facts, Ref, gather, gather_tokens
from mlops.domain import Image, Kind
from mlops.errors import MlopsError, SourceError
from mlops.notebook import notebook_to_script


class Framework(enum.StrEnum):
    KERAS = "keras"
    TF_KERAS = "tf.keras"
    TENSORFLOW = "tensorflow"  # TensorFlow without Keras: tf.nn, tf.layers, tf.estimator
    SKLEARN = "sklearn"
    PYTORCH = "pytorch"
    NONE = "none"


class Api(enum.StrEnum):
    KERAS3 = "keras3"
    KERAS2 = "keras2"  # legacy Keras 2 / TensorFlow 1 code, run on TensorFlow 2.15
    NONE = "none"  # not Keras or TensorFlow


class Family(enum.StrEnum):
    """What sort of model, one step finer than :class:`~mlops.domain.Kind`."""

    CONVOLUTIONAL = "convolutional"
    DENSE = "dense"
    KMEANS = "kmeans"
    RECURRENT = "recurrent"
    TRANSFORMER = "transformer"
    LOGISTIC = "logistic"
    LINEAR = "linear"
    TREE = "tree"
    FOREST = "forest"
    BOOSTING = "boosting"
    ENSEMBLE = "ensemble"
    NEIGHBORS = "neighbors"
    SVM = "svm"
    NAIVE_BAYES = "naive_bayes"
    CLUSTERING = "clustering"
    MIXTURE = "mixture"
    DISCRIMINANT = "discriminant"
    GAUSSIAN_PROCESS = "gaussian_process"
    DECOMPOSITION = "decomposition"
    NONE = "none"  # trains nothing: an app, a code generator, a data script


KIND_OF_FAMILY: dict[Family, Kind] = {
    Family.CONVOLUTIONAL: Kind.CNN,
    Family.DENSE: Kind.ANN,
    Family.KMEANS: Kind.KMEANS,
}

# When a script holds several sorts of model, the first family in this order names it: a convolution
# anywhere makes a CNN, a recurrent layer with a Dense head is recurrent, a Dense stack is an ANN.
PRIORITY: tuple[Family, ...] = (
    Family.CONVOLUTIONAL,
    Family.RECURRENT,
    Family.TRANSFORMER,
    Family.DENSE,
    Family.KMEANS,
)
WEAK: frozenset[Family] = frozenset({Family.DECOMPOSITION})  # a family only when nothing else is there


# ---------------------------------------------------------------------------------------------- registries
def _words(text: str) -> list[str]:
    return text.split()


# Keras layer names (the last part of keras.layers.X / keras.layers.convolutional.X / tf.keras.layers.X).
KERAS_LAYERS: dict[str, Family] = {
    **dict.fromkeys(
        _words("""Conv1D Conv2D Conv3D Convolution1D Convolution2D Convolution3D SeparableConv1D SeparableConv2D
        SeparableConvolution1D SeparableConvolution2D DepthwiseConv1D DepthwiseConv2D Conv1DTranspose
        Conv2DTranspose Conv3DTranspose Convolution2DTranspose Convolution3DTranspose Deconvolution2D
        Deconvolution3D AtrousConvolution1D AtrousConvolution2D ConvLSTM1D ConvLSTM2D ConvLSTM3D"""),
        Family.CONVOLUTIONAL,
    ),
    **dict.fromkeys(
        _words("LSTM GRU SimpleRNN RNN CuDNNLSTM CuDNNGRU LSTMCell GRUCell SimpleRNNCell"), Family.RECURRENT
    ),
    **dict.fromkeys(_words("MultiHeadAttention GroupQueryAttention"), Family.TRANSFORMER),
    **dict.fromkeys(_words("Dense EinsumDense"), Family.DENSE),
}

# PyTorch: the last part of torch.nn.X, torch.nn.modules.conv.X, torch.nn.functional.x.
TORCH_LAYERS: dict[str, Family] = {
    **dict.fromkeys(
        _words("""Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d ConvTranspose3d LazyConv1d LazyConv2d LazyConv3d
        LazyConvTranspose1d LazyConvTranspose2d LazyConvTranspose3d conv1d conv2d conv3d conv_transpose1d
        conv_transpose2d conv_transpose3d"""),
        Family.CONVOLUTIONAL,
    ),
    **dict.fromkeys(_words("LSTM GRU RNN LSTMCell GRUCell RNNCell"), Family.RECURRENT),
    **dict.fromkeys(
        _words("""Transformer TransformerEncoder TransformerDecoder TransformerEncoderLayer TransformerDecoderLayer
        MultiheadAttention"""),
        Family.TRANSFORMER,
    ),
    **dict.fromkeys(_words("Linear LazyLinear Bilinear"), Family.DENSE),
}

# torchvision.models.<name>: every one of these families is a convolutional network.
TORCHVISION_CONV_PREFIXES: tuple[str, ...] = tuple(
    _words("""alexnet vgg resnet resnext wide_resnet densenet mobilenet efficientnet squeezenet shufflenet googlenet
    inception mnasnet regnet convnext AlexNet VGG ResNet DenseNet MobileNet EfficientNet SqueezeNet GoogLeNet
    Inception3""")
)

# TensorFlow without Keras (tf.nn, tf.layers, tf.compat.v1.layers, tf.contrib.layers, tf.estimator).
TF_NAMES: dict[str, Family] = {
    **dict.fromkeys(
        _words("""conv1d conv2d conv3d conv2d_transpose conv3d_transpose separable_conv2d depthwise_conv2d atrous_conv2d
        convolution Conv1D Conv2D Conv3D"""),
        Family.CONVOLUTIONAL,
    ),
    **dict.fromkeys(_words("dense Dense fully_connected DNNClassifier DNNRegressor"), Family.DENSE),
    **dict.fromkeys(
        _words("dynamic_rnn static_rnn BasicLSTMCell LSTMCell GRUCell BasicRNNCell"), Family.RECURRENT
    ),
    **dict.fromkeys(_words("LinearClassifier LinearRegressor"), Family.LINEAR),
    **dict.fromkeys(_words("BoostedTreesClassifier BoostedTreesRegressor"), Family.BOOSTING),
}

# scikit-learn: a class of one of these submodules is an estimator of that family, unless named below.
SKLEARN_MODULES: dict[str, Family] = {
    "linear_model": Family.LINEAR,
    "tree": Family.TREE,
    "ensemble": Family.ENSEMBLE,
    "neighbors": Family.NEIGHBORS,
    "svm": Family.SVM,
    "naive_bayes": Family.NAIVE_BAYES,
    "cluster": Family.CLUSTERING,
    "mixture": Family.MIXTURE,
    "discriminant_analysis": Family.DISCRIMINANT,
    "gaussian_process": Family.GAUSSIAN_PROCESS,
    "kernel_ridge": Family.LINEAR,
    "isotonic": Family.LINEAR,
    "neural_network": Family.DENSE,
    "decomposition": Family.DECOMPOSITION,
    "manifold": Family.DECOMPOSITION,
}
SKLEARN_NAMES: dict[str, Family] = {
    "KMeans": Family.KMEANS,
    "MiniBatchKMeans": Family.KMEANS,
    "BisectingKMeans": Family.KMEANS,
    "LogisticRegression": Family.LOGISTIC,
    "LogisticRegressionCV": Family.LOGISTIC,
    "BernoulliRBM": Family.DECOMPOSITION,
    "NearestNeighbors": Family.NEIGHBORS,
    "KNeighborsTransformer": Family.DECOMPOSITION,
    "RandomForestClassifier": Family.FOREST,
    "RandomForestRegressor": Family.FOREST,
    "ExtraTreesClassifier": Family.FOREST,
    "ExtraTreesRegressor": Family.FOREST,
    "GradientBoostingClassifier": Family.BOOSTING,
    "GradientBoostingRegressor": Family.BOOSTING,
    "HistGradientBoostingClassifier": Family.BOOSTING,
    "HistGradientBoostingRegressor": Family.BOOSTING,
    "AdaBoostClassifier": Family.BOOSTING,
    "AdaBoostRegressor": Family.BOOSTING,
}

# Keras 2 names that Keras 3 no longer has (relative to keras. / tensorflow.keras.), as prefixes.
KERAS2_NAMES: tuple[str, ...] = tuple(
    _words("""utils.np_utils utils.vis_utils utils.multi_gpu_model utils.generic_utils layers.convolutional
    layers.core layers.pooling layers.recurrent layers.normalization layers.merge layers.advanced_activations
    layers.embeddings layers.wrappers layers.noise layers.local layers.Merge layers.CuDNNLSTM layers.CuDNNGRU
    layers.Deconvolution2D layers.AtrousConvolution2D layers.LocallyConnected1D layers.LocallyConnected2D
    wrappers.scikit_learn engine legacy optimizers.legacy preprocessing.image.ImageDataGenerator
    preprocessing.text preprocessing.sequence.TimeseriesGenerator backend.tensorflow_backend
    backend.set_session backend.get_session backend.set_image_dim_ordering backend.image_dim_ordering
    optimizers.adam optimizers.sgd optimizers.rmsprop optimizers.adagrad optimizers.adadelta""")
)
# TensorFlow 1 names (relative to tensorflow.): they run only on the legacy image's compat layer.
TF1_NAMES: tuple[str, ...] = tuple(
    _words("""compat.v1 placeholder Session InteractiveSession contrib layers estimator global_variables_initializer
    train.AdamOptimizer train.GradientDescentOptimizer train.MomentumOptimizer train.RMSPropOptimizer
    get_variable variable_scope""")
)
KERAS2_METHODS = frozenset(_words("fit_generator evaluate_generator predict_generator predict_classes"))
# Keyword arguments of Keras 1/2 that Keras 3 rejects, on any Keras call (nb_* on any call at all).
KERAS2_KEYWORDS = frozenset(
    _words("""nb_epoch samples_per_epoch nb_val_samples nb_filter nb_row nb_col border_mode subsample W_regularizer
    b_regularizer dim_ordering output_dim init""")
)
TRAIN_METHODS = frozenset(
    _words("fit fit_generator fit_predict fit_transform train_on_batch partial_fit train minimize")
)

# Which framework an import of a package means when the script defines no model (an app, a data script).
IMPORT_FRAMEWORKS: dict[str, Framework] = {
    "torch": Framework.PYTORCH,
    "torchvision": Framework.PYTORCH,
    "tensorflow.keras": Framework.TF_KERAS,
    "keras": Framework.KERAS,
    "tensorflow": Framework.TENSORFLOW,
    "sklearn": Framework.SKLEARN,
}


# ------------------------------------------------------------------------------------------------- output
@dataclass(frozen=True)
class Reason:
    """One piece of evidence: the line it is on (0: the whole file) and what it says."""

    line: int
    text: str


@dataclass(frozen=True)
class Classification:
    path: str
    kind: Kind
    family: str
    framework: str
    api: str
    image: Image
    reasons: tuple[Reason, ...] = ()
    confidence: float = 0.0
    error: str | None = None
    error_line: int | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def to_json(self) -> dict:
        out: dict = {
            "path": self.path,
            "kind": str(self.kind),
            "family": self.family,
            "framework": self.framework,
            "api": self.api,
            "image": str(self.image),
            "reasons": [{"line": r.line, "text": r.text} for r in self.reasons],
            "confidence": round(self.confidence, 2),
        }
        if self.error is not None:
            out["error"] = self.error
            out["line"] = self.error_line
        return out


# ------------------------------------------------------------------------------------------------ the rule
@dataclass(frozen=True)
class Evidence:
    family: Family
    framework: Framework
    ref: Ref
    what: str


_FRAMEWORK_ROOTS = frozenset({"tensorflow", "tf_keras", "keras", "torch", "torchvision", "sklearn"})


@functools.lru_cache(maxsize=8192)  # pure, and scripts repeat the same few names many times
def _split(name: str) -> tuple[Framework, str] | None:
    """A full dotted name as (framework, path inside it): tensorflow.keras.layers.Dense ->
    (tf.keras, "layers.Dense"). None for names outside the frameworks we know."""
    if name.partition(".")[0] not in _FRAMEWORK_ROOTS:
        return None
    for prefix, fw in (
        ("tensorflow.keras.", Framework.TF_KERAS),
        ("tensorflow.python.keras.", Framework.TF_KERAS),
        ("tensorflow.compat.v1.keras.", Framework.TF_KERAS),
        ("tf_keras.", Framework.TF_KERAS),
        ("keras.src.", Framework.KERAS),
        ("keras.", Framework.KERAS),
        ("tensorflow.", Framework.TENSORFLOW),
        ("torch.", Framework.PYTORCH),
        ("torchvision.", Framework.PYTORCH),
        ("sklearn.", Framework.SKLEARN),
    ):
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            return fw, (name if fw is Framework.PYTORCH else rest)
    return None


def evidence_of(ref: Ref) -> Evidence | None:
    """What one resolved name says about the model, or None when it says nothing."""
    found = _name_evidence(ref.name)
    return None if found is None else Evidence(found[0], found[1], ref, found[2])


@functools.lru_cache(maxsize=8192)
def _name_evidence(name: str) -> tuple[Family, Framework, str] | None:
    split = _split(name)
    if split is None:
        return None
    fw, path = split
    parts = path.split(".")
    last = parts[-1]
    if fw in (Framework.KERAS, Framework.TF_KERAS):
        if parts[0] == "layers" and last in KERAS_LAYERS:
            return (KERAS_LAYERS[last], fw, "a Keras layer")
        if parts[0] == "applications" and len(parts) > 1 and last[:1].isupper():
            return (Family.CONVOLUTIONAL, fw, "a pretrained convolutional network")
        return None
    if fw is Framework.TENSORFLOW:
        if (
            len(parts) > 1
            and parts[0] in ("nn", "layers", "compat", "contrib", "estimator")
            and last in TF_NAMES
        ):
            return (TF_NAMES[last], fw, "a TensorFlow layer or estimator")
        return None
    if fw is Framework.PYTORCH:
        if path.startswith("torch.nn.") and last in TORCH_LAYERS:
            return (TORCH_LAYERS[last], fw, "a PyTorch layer")
        if path.startswith("torchvision.models.") and last.startswith(TORCHVISION_CONV_PREFIXES):
            return (Family.CONVOLUTIONAL, fw, "a torchvision convolutional network")
        return None
    # scikit-learn: classes only (functions such as plot_tree say nothing about what is trained)
    if not last[:1].isupper():
        return None
    if last in SKLEARN_NAMES:
        return (SKLEARN_NAMES[last], fw, "a scikit-learn estimator")
    if parts[0] in SKLEARN_MODULES:
        family = SKLEARN_MODULES[parts[0]]
        if parts[0] == "ensemble" and last.startswith(("Voting", "Stacking", "Bagging")):
            return None  # a wrapper: the estimators inside it decide
        return (family, fw, "a scikit-learn estimator")
    return None


def _legacy_reasons(facts: Facts) -> list[Reason]:
    out: list[Reason] = []
    for ref in facts.refs:
        split = _split(ref.name)
        if split is None:
            continue
        fw, path = split
        if fw in (Framework.KERAS, Framework.TF_KERAS):
            if ref.name.startswith("tf_keras.") or _has_prefix(path, _KERAS2_SET):
                out.append(Reason(ref.line, f"{ref.name} is Keras 2 API (Keras 3 has no such name)"))
        elif fw is Framework.TENSORFLOW and _has_prefix(path, _TF1_SET):
            out.append(Reason(ref.line, f"{ref.name} is TensorFlow 1 API"))
    for imp in facts.imports:
        for prefix in ("keras.", "tensorflow.keras."):
            if imp.module.startswith(prefix) and _has_prefix(imp.module[len(prefix) :], _KERAS2_SET):
                out.append(Reason(imp.line, f"imports {imp.module}, a Keras 2 module"))
    for m in facts.methods:
        if m.name in KERAS2_METHODS:
            out.append(Reason(m.line, f"{m.name}() is Keras 2 API (removed in Keras 3)"))
    for kw in facts.keywords:
        split = _split(kw.func)
        keras_call = split is not None and split[0] in (Framework.KERAS, Framework.TF_KERAS)
        if kw.name in KERAS2_KEYWORDS and (keras_call or kw.name.startswith("nb_")):
            out.append(Reason(kw.line, f"{kw.name}= is a Keras 2 argument"))
        elif kw.name == "lr" and keras_call and split is not None and split[1].startswith("optimizers."):
            out.append(Reason(kw.line, "lr= on an optimizer is Keras 2 API (Keras 3: learning_rate=)"))
    return sorted(set(out), key=lambda r: (r.line, r.text))


_KERAS2_SET = frozenset(KERAS2_NAMES)
_TF1_SET = frozenset(TF1_NAMES)


@functools.lru_cache(maxsize=8192)
def _has_prefix(path: str, prefixes: frozenset[str]) -> bool:
    """True when ``path`` or one of its dotted prefixes is in ``prefixes``."""
    parts = path.split(".")
    return any(".".join(parts[:i]) in prefixes for i in range(1, len(parts) + 1))


def image_for(kind: Kind, framework: Framework | str, api: Api | str) -> Image:
    """The training image for a decided (kind, framework, api)."""
    framework = Framework(framework)
    if framework is Framework.PYTORCH:
        return Image.PYTORCH
    if framework in (Framework.KERAS, Framework.TF_KERAS, Framework.TENSORFLOW):
        return Image.KERAS2 if Api(api) is Api.KERAS2 else Image.KERAS3
    # scikit-learn, or nothing to train: the smallest image with numpy and pandas
    del kind
    return Image.SKLEARN


def trains(facts: Facts) -> list[Reason]:
    """Where the script trains something: fit-like calls, or a PyTorch loop (backward and step)."""
    out = [Reason(m.line, f".{m.name}() trains") for m in facts.methods if m.name in TRAIN_METHODS]
    names = {m.name for m in facts.methods}
    if "backward" in names and "step" in names:
        out += [Reason(m.line, "an optimizer step") for m in facts.methods if m.name == "step"]
    return sorted(out, key=lambda r: r.line)


def decide(facts: Facts, path: str = "<string>") -> Classification:
    """The classification the facts support, with the reasons for it. Pure: no file is read."""
    found = [e for e in (evidence_of(r) for r in facts.refs) if e is not None]
    by_family: dict[Family, list[Evidence]] = {}
    for e in found:
        by_family.setdefault(e.family, []).append(e)
    family = next((f for f in PRIORITY if f in by_family), None)
    if family is None:
        strong = [e for e in found if e.family not in WEAK]
        family = (strong or found)[0].family if found else Family.NONE
    kind = KIND_OF_FAMILY.get(family, Kind.OTHER)
    deciding = by_family.get(family, [])
    reasons: list[Reason] = []
    seen: set[str] = set()
    for e in deciding:
        if e.ref.name in seen or len(seen) == 3:
            continue
        seen.add(e.ref.name)
        where = f", in {e.ref.origin}" if e.ref.origin else ""
        reasons.append(Reason(e.ref.line, f"{e.ref.name}: {e.what} ({family}){where}"))
    if deciding:
        framework = deciding[0].framework
    else:
        framework = _imported_framework(facts)
        reasons.append(Reason(0, "no model is defined: nothing here trains"))
    api = Api.NONE
    if framework in (Framework.KERAS, Framework.TF_KERAS, Framework.TENSORFLOW):
        legacy = _legacy_reasons(facts)
        api = Api.KERAS2 if legacy else Api.KERAS3
        reasons += legacy[:3]
    training = trains(facts)
    if deciding and training:
        reasons.append(training[0])
    if deciding:
        confidence = 0.95 if training else 0.8
        if any(e.ref.origin for e in deciding):
            confidence -= 0.05
    else:
        confidence = 0.9 if framework is Framework.NONE else 0.7
    error = None
    if facts.syntax_error is not None:
        confidence *= 0.6
        error = facts.syntax_error
        reasons.append(Reason(facts.error_line or 0, "classified from the tokens: the file does not parse"))
    return Classification(
        path=path,
        kind=kind,
        family=str(family),
        framework=str(framework),
        api=str(api),
        image=image_for(kind, framework, api),
        reasons=tuple(reasons),
        confidence=round(confidence, 2),
        error=error,
        error_line=facts.error_line,
    )


def _imported_framework(facts: Facts) -> Framework:
    modules = [i.module for i in facts.imports if i.level == 0]
    modules += [f"{i.module}.{n}" for i in facts.imports if i.level == 0 for n in i.names]
    for prefix, fw in IMPORT_FRAMEWORKS.items():
        if any(m == prefix or m.startswith(prefix + ".") for m in modules):
            return fw
    return Framework.NONE


# ------------------------------------------------------------------------------------------ reading files
# Past this a "script" is data (parsing 10 MB would take half a minute). A notebook's outputs (plots) make
# it big, so a notebook may be larger and its code cells alone count.
MAX_SOURCE_BYTES = 1024 * 1024
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


def decode(data: bytes) -> tuple[str, str | None]:
    """Bytes to text: BOM or PEP 263 coding cookie, else UTF-8, else latin-1 (which never fails).
    Returns the text and a note when a fallback was needed."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # a UTF-16 byte order mark (Windows editors)
        try:
            return data.decode("utf-16"), None
        except UnicodeDecodeError:
            return data.decode("latin-1"), "not valid UTF-16: read as latin-1"
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:  # an unknown codec named in the cookie
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return data.decode("latin-1"), f"not valid {encoding}: read as latin-1"
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, None


def _facts_of(text: str, where: str) -> Facts:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        tree = ast.parse(text, filename=where)
        return gather(tree)
    except SyntaxError as e:  # IndentationError and TabError too
        line = e.lineno
        got = (e.text or "").strip()
        message = f"line {line}: {e.msg}" + (f": {got[:60]}" if got else "")
        return gather_tokens(text, message, line)
    except (RecursionError, MemoryError, ValueError) as e:
        return gather_tokens(text, f"the syntax tree cannot be built ({type(e).__name__})", None)


def _failed(path: str, message: str, line: int | None = None) -> Classification:
    return Classification(
        path=path,
        kind=Kind.OTHER,
        family=str(Family.NONE),
        framework=str(Framework.NONE),
        api=str(Api.NONE),
        image=Image.SKLEARN,
        reasons=(),
        confidence=0.0,
        error=message,
        error_line=line,
    )


def source_text(data: bytes, path: str) -> tuple[str, str | None]:
    """The Python text of a file's bytes (a notebook's code cells joined) and a note when the encoding
    had to be guessed. Raises SourceError for a binary file, a broken notebook, too much code."""
    notebook = path.endswith(".ipynb")
    limit = MAX_NOTEBOOK_BYTES if notebook else MAX_SOURCE_BYTES
    if len(data) > limit:
        raise SourceError(_too_large(len(data), limit), path)
    nul = data.find(b"\x00")
    if nul >= 0 and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError("binary file, not source code (NUL byte)", path, data.count(b"\n", 0, nul) + 1)
    note = None
    if notebook:
        text = notebook_to_script(_notebook_or_raise(data.decode("utf-8", errors="replace"), path))
    else:
        text, note = decode(data)
    if len(text) > MAX_SOURCE_BYTES:
        raise SourceError(_too_large(len(text), MAX_SOURCE_BYTES), path)
    return text, note


def _too_large(size: int, limit: int) -> str:
    return f"too large for a training script: {size / 1e6:.1f} MB of code (the limit is {limit / 1e6:.1f} MB)"


def _notebook_or_raise(text: str, path: str) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise SourceError(f"not a notebook: invalid JSON ({e.msg})", path, e.lineno) from e
    return text


def classify_source(text: str, path: str = "<string>") -> Classification:
    """Classify Python source text (or a notebook's JSON when ``path`` ends in .ipynb). Never raises."""
    try:
        if path.endswith(".ipynb"):
            text = notebook_to_script(_notebook_or_raise(text, path))
        if len(text) > MAX_SOURCE_BYTES:
            raise SourceError(_too_large(len(text), MAX_SOURCE_BYTES), path)
        if not text.strip():
            return replace(decide(Facts(), path), reasons=(Reason(0, "the file is empty"),))
        return decide(_facts_of(text, path), path)
    except SourceError as e:
        return _failed(path, e.reason, e.line)


def classify_file(path: Path | str, root: Path | str | None = None) -> Classification:
    """Classify one file, following the local modules it imports (looked up next to the file, then in
    ``root``, the file's folder by default). Never raises for bad input: the result carries the error."""
    path = Path(path)
    shown = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        return _failed(shown, f"cannot read: {e.strerror or e}")
    try:
        text, note = source_text(data, shown)
    except SourceError as e:
        return _failed(shown, e.reason, e.line)
    if not text.strip():
        return replace(decide(Facts(), shown), reasons=(Reason(0, "the file is empty"),))
    facts = _facts_of(text, shown)
    base = Path(root) if root is not None else path.parent
    _follow(facts, path, base, seen={path.resolve()}, depth=0)
    result = decide(facts, shown)
    if note:
        result = replace(result, reasons=(*result.reasons, Reason(0, note)))
    return result


# ------------------------------------------------------------------------------------ local modules
MAX_FOLLOW_DEPTH = 3


def _local_module(module: str, level: int, importer: Path, root: Path) -> Path | None:
    if level:
        base = importer.parent
        for _ in range(level - 1):
            base = base.parent
        bases = [base]
    else:
        bases = [importer.parent, root]
    rel = Path(*module.split(".")) if module else Path()
    for b in bases:
        for candidate in (b / rel.with_suffix(".py") if module else None, b / rel / "__init__.py"):
            if candidate is not None and candidate.is_file():
                return candidate
    return None


def _follow(facts: Facts, importer: Path, root: Path, seen: set[Path], depth: int) -> None:
    """Merge into ``facts`` the model evidence of the local modules the file imports, each use marked with
    where it was found and attached to the importing line."""
    if depth >= MAX_FOLLOW_DEPTH:
        return
    for imp in list(facts.imports):
        targets = [imp.module] if imp.module else []
        if not imp.module or imp.level:  # `from . import net` names modules too
            targets += [f"{imp.module}.{n}" if imp.module else n for n in imp.names if n != "*"]
        for module in targets:
            found = _local_module(module, imp.level, importer, root)
            if found is None or found.resolve() in seen:
                continue
            seen.add(found.resolve())
            try:
                text, _ = source_text(found.read_bytes(), str(found))
            except (OSError, SourceError):
                continue
            sub = _facts_of(text, str(found))
            _follow(sub, found, root, seen, depth + 1)
            try:
                shown = found.relative_to(root)
            except ValueError:
                shown = Path(found.name)
            facts.followed.append(str(shown))
            for ref in sub.refs:
                if evidence_of(ref) is None:
                    continue
                origin = ref.origin or f"{shown.as_posix()}:{ref.line}"
                facts.refs.append(Ref(ref.name, imp.line, ref.called, origin))
            facts.methods += [m._replace(line=imp.line) for m in sub.methods if m.name in KERAS2_METHODS]


# ------------------------------------------------------------------------------------- entry points
CONFIG_FILE = "mlops.yaml"
SKIP_DIRS = frozenset(
    {"tests", "test", "venv", "env", "site-packages", "node_modules", "__pycache__", "build", "dist"}
)
SKIP_FILES = frozenset({"setup.py", "conftest.py", "noxfile.py", "manage.py"})


def candidate_files(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and d not in SKIP_DIRS and not (here / d / "pyvenv.cfg").exists()
        )
        for name in sorted(filenames):
            if not name.endswith((".py", ".ipynb")) or name.startswith("."):
                continue
            if name in SKIP_FILES or name.startswith("test_") or name.endswith("_test.py"):
                continue
            out.append(here / name)
    return out


def find_entry_points(root: Path | str) -> list[Path]:
    """The training scripts of a repository, relative to ``root`` and sorted: those ``mlops.yaml`` names
    under ``entry_points``, else every .py/.ipynb file that defines (or imports from a local module) a
    model and trains it. Raises MlopsError for a bad mlops.yaml."""
    root = Path(root)
    config = root / CONFIG_FILE
    if config.is_file():
        return _configured(config, root)
    found = []
    for path in candidate_files(root):
        try:
            text, _ = source_text(path.read_bytes(), str(path))
        except (OSError, SourceError):
            continue
        facts = _facts_of(text, str(path))
        if not trains(facts):
            continue
        _follow(facts, path, root, seen={path.resolve()}, depth=0)
        if any(evidence_of(r) is not None for r in facts.refs):
            found.append(path.relative_to(root))
    return sorted(found)


def _configured(config: Path, root: Path) -> list[Path]:
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SourceError(f"{CONFIG_FILE}{line}: not valid YAML") from e
    entries = data.get("entry_points") if isinstance(data, dict) else None
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not entries or not all(isinstance(e, str) for e in entries):
        raise SourceError(f"{CONFIG_FILE}: 'entry_points' must be a list of file paths")
    out = []
    for entry in entries:
        path = root / entry
        if not path.is_file():
            raise SourceError(f"{CONFIG_FILE}: entry point {entry!r} does not exist")
        out.append(Path(entry))
    return sorted(out)


# ------------------------------------------------------------------------------------------ the command
def _expand(paths: list[str]) -> list[Classification]:
    out: list[Classification] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            try:
                entries = find_entry_points(path)
            except MlopsError as e:
                out.append(_failed(p, str(e)))
                continue
            if not entries:
                out.append(_failed(p, "no training entry point found (add mlops.yaml with entry_points)"))
            out += [classify_file(path / e, root=path) for e in entries]
        elif path.exists():
            out.append(classify_file(path))
        else:
            out.append(_failed(p, "no such file or directory"))
    return out


def command(paths: list[str], as_json: bool, out: TextIO = sys.stdout) -> int:
    """``mlops classify [--json] PATH...``: classify files (directories expand to their entry points),
    print one JSON object per line or a table, and return 1 when any file failed, else 0."""
    results = _expand(paths)
    if as_json:
        for c in results:
            out.write(json.dumps(c.to_json()) + "\n")
    elif out.isatty():
        _rich_table(results, out)
    else:
        _plain_table(results, out)
    return 1 if any(c.failed for c in results) else 0


COLUMNS = ("PATH", "KIND", "FAMILY", "FRAMEWORK", "API", "IMAGE", "CONF", "WHY")


def _row(c: Classification) -> tuple[str, ...]:
    if c.error is not None:
        why = f"error: line {c.error_line}: {c.error}" if c.error_line else f"error: {c.error}"
        if c.error_line and c.error.startswith(f"line {c.error_line}:"):
            why = f"error: {c.error}"
    else:
        first = next((r for r in c.reasons if r.line), c.reasons[0] if c.reasons else None)
        why = f"line {first.line}: {first.text}" if first and first.line else (first.text if first else "")
    return (c.path, c.kind, c.family, c.framework, c.api, c.image, f"{c.confidence:.2f}", why)


def _plain_table(results: list[Classification], out: TextIO) -> None:
    rows = [COLUMNS, *(_row(c) for c in results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    for r in rows:
        cells = [r[i].ljust(widths[i]) for i in range(len(widths))]
        out.write("  ".join([*cells, r[-1]]).rstrip() + "\n")


def _rich_table(results: list[Classification], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for name in COLUMNS:  # the short columns stay whole; the path and the reason fold on a narrow terminal
        folds = name in ("PATH", "WHY")
        table.add_column(name, no_wrap=not folds, overflow="fold" if folds else "ellipsis")
    for c in results:
        table.add_row(*_row(c), style="red" if c.failed else None)
    Console(file=out).print(table)


__all__ = [
    "Api",
    "Classification",
    "Family",
    "Framework",
    "Reason",
    "classify_file",
    "classify_source",
    "command",
    "decide",
    "find_entry_points",
    "image_for",
]
