"""Job 2's judgement: what a script trains (CNN, ANN, KMeans, other), with which framework and API
generation, and so which training image runs it. Decided from the syntax tree, never from the file name.

:mod:`mlops.classify.facts` gathers the facts; everything here is a pure function of them: the evidence
each resolved name gives (through :mod:`mlops.vocabulary`), :func:`decide`, the legacy Keras 2 /
TensorFlow 1 detection, :func:`trains` and :func:`image_for`. Nothing here reads a file.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any

from mlops.classify.facts import Facts, Ref
from mlops.classify.fragments import guessed_refs
from mlops.classify.legacy_names import KERAS2_KEYWORDS, KERAS2_METHODS, KERAS2_NAMES, TF1_NAMES, words
from mlops.domain import Image, Kind
from mlops.vocabulary import (
    FAMILY_OF_ROLE,
    KERAS_LAYERS,
    SKLEARN_ESTIMATORS,
    SKLEARN_MODULES,
    SKLEARN_WRAPPERS,
    TF_ESTIMATORS,
    TF_LAYERS,
    TORCH_LAYERS,
    TORCHVISION_CONVNETS,
    Family,
    Role,
)


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


# ------------------------------------------------------------------------------------------------- tables
def _families(roles: dict[str, Role]) -> dict[str, Family]:
    """The layers of a vocabulary table that say what the model is, with the family they say."""
    return {name: FAMILY_OF_ROLE[role] for name, role in roles.items() if role in FAMILY_OF_ROLE}


KERAS_FAMILIES: dict[str, Family] = _families(KERAS_LAYERS)
TORCH_FAMILIES: dict[str, Family] = _families(TORCH_LAYERS)
TF_FAMILIES: dict[str, Family] = {**_families(TF_LAYERS), **TF_ESTIMATORS}


TRAIN_METHODS = frozenset(
    words("fit fit_generator fit_predict fit_transform train_on_batch partial_fit train minimize")
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

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
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
        if parts[0] == "layers" and last in KERAS_FAMILIES:
            return (KERAS_FAMILIES[last], fw, "a Keras layer")
        if parts[0] == "applications" and len(parts) > 1 and last[:1].isupper():
            return (Family.CONVOLUTIONAL, fw, "a pretrained convolutional network")
        return None
    if fw is Framework.TENSORFLOW:
        if (
            len(parts) > 1
            and parts[0] in ("nn", "layers", "compat", "contrib", "estimator")
            and last in TF_FAMILIES
        ):
            return (TF_FAMILIES[last], fw, "a TensorFlow layer or estimator")
        return None
    if fw is Framework.PYTORCH:
        if path.startswith("torch.nn.") and last in TORCH_FAMILIES:
            return (TORCH_FAMILIES[last], fw, "a PyTorch layer")
        if path.startswith("torchvision.models.") and last.startswith(TORCHVISION_CONVNETS):
            return (Family.CONVOLUTIONAL, fw, "a torchvision convolutional network")
        return None
    # scikit-learn: classes only (functions such as plot_tree say nothing about what is trained)
    if not last[:1].isupper():
        return None
    if last in SKLEARN_ESTIMATORS:
        return (SKLEARN_ESTIMATORS[last], fw, "a scikit-learn estimator")
    if parts[0] in SKLEARN_MODULES:
        family = SKLEARN_MODULES[parts[0]]
        if parts[0] == "ensemble" and last.startswith(SKLEARN_WRAPPERS):
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
    family, deciding, guess = _deciding(facts)
    reasons = _model_reasons(deciding, family)
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
    if guess:
        reasons.insert(0, Reason(0, guess))
    if facts.syntax_error is not None:
        reasons.append(Reason(facts.error_line or 0, "classified from the tokens: the file does not parse"))
    kind = KIND_OF_FAMILY.get(family, Kind.OTHER)
    confidence = _confidence(deciding, bool(training), framework, guess, facts.syntax_error is not None)
    return Classification(
        path=path,
        kind=kind,
        family=str(family),
        framework=str(framework),
        api=str(api),
        image=image_for(kind, framework, api),
        reasons=tuple(reasons),
        confidence=round(confidence, 2),
        error=facts.syntax_error,
        error_line=facts.error_line,
    )


def _deciding(facts: Facts) -> tuple[Family, list[Evidence], str]:
    """The family the names the script uses decide (by PRIORITY, else the first strong one), its evidence,
    and, when no name says anything and the script trains, the guess its names were read from."""
    found = [e for e in (evidence_of(r) for r in facts.refs) if e is not None]
    guess = ""
    if not found and trains(facts):
        guessed, guess = guessed_refs(facts)
        found = [e for e in (evidence_of(r) for r in guessed) if e is not None]
    by_family: dict[Family, list[Evidence]] = {}
    for e in found:
        by_family.setdefault(e.family, []).append(e)
    family = next((f for f in PRIORITY if f in by_family), None)
    if family is None:
        strong = [e for e in found if e.family not in WEAK]
        family = (strong or found)[0].family if found else Family.NONE
    return family, by_family.get(family, []), guess


def _model_reasons(deciding: list[Evidence], family: Family) -> list[Reason]:
    """The first three names that decided the family, with where each came from."""
    reasons: list[Reason] = []
    seen: set[str] = set()
    for e in deciding:
        if e.ref.name in seen or len(seen) == 3:
            continue
        seen.add(e.ref.name)
        where = {None: "", "guessed": ", guessed from the name"}.get(e.ref.origin, f", in {e.ref.origin}")
        reasons.append(Reason(e.ref.line, f"{e.ref.name}: {e.what} ({family}){where}"))
    return reasons


def _confidence(
    deciding: list[Evidence], training: bool, framework: Framework, guess: str, broken: bool
) -> float:
    if guess:
        confidence = 0.5
    elif deciding:
        confidence = (0.95 if training else 0.8) - (0.05 if any(e.ref.origin for e in deciding) else 0.0)
    else:
        confidence = 0.9 if framework is Framework.NONE else 0.7
    return confidence * 0.6 if broken else confidence


def _imported_framework(facts: Facts) -> Framework:
    modules = [i.module for i in facts.imports if i.level == 0]
    modules += [f"{i.module}.{n}" for i in facts.imports if i.level == 0 for n in i.names]
    for prefix, fw in IMPORT_FRAMEWORKS.items():
        if any(m == prefix or m.startswith(prefix + ".") for m in modules):
            return fw
    return Framework.NONE


__all__ = [
    "Api",
    "Classification",
    "Evidence",
    "Family",
    "Framework",
    "Reason",
    "decide",
    "evidence_of",
    "image_for",
    "trains",
]
