"""The tweaks: one LibCST codemod per file, in one explicit registry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops.classify import Framework
from tweak.codemods.add_conv_block import AddConvBlock
from tweak.codemods.add_dense_layer import AddDenseLayer
from tweak.codemods.add_dropout import AddDropout
from tweak.codemods.add_rescaling import AddRescaling
from tweak.codemods.base import Edit, Tweak, TweakNotApplicable
from tweak.codemods.regularize_linear import RegularizeLinear
from tweak.codemods.scale_layers import ScaleFilters, ScaleUnits
from tweak.codemods.set_batch_size import SetBatchSize
from tweak.codemods.set_estimator_param import SetEstimatorParam
from tweak.codemods.set_fit_argument import SetEpochs
from tweak.codemods.set_learning_rate import SetLearningRate
from tweak.framework import framework_of

REGISTRY: dict[str, type[Tweak]] = {
    cls.NAME: cls
    for cls in (
        AddConvBlock,
        AddDenseLayer,
        AddDropout,
        AddRescaling,
        ScaleUnits,
        ScaleFilters,
        SetEpochs,
        SetBatchSize,
        SetLearningRate,
        SetEstimatorParam,
        RegularizeLinear,
    )
}

__all__ = [
    "REGISTRY",
    "AddConvBlock",
    "AddDenseLayer",
    "AddDropout",
    "AddRescaling",
    "Applied",
    "Edit",
    "RegularizeLinear",
    "ScaleFilters",
    "ScaleUnits",
    "SetBatchSize",
    "SetEpochs",
    "SetEstimatorParam",
    "SetLearningRate",
    "Tweak",
    "TweakNotApplicable",
    "apply_tweaks",
    "tweak_from_json",
]


@dataclass
class Applied:
    source: str
    applied: list[str] = field(default_factory=list)  # what was done, in words
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (tweak, why it did not apply)


def apply_tweaks(source: str, tweaks: Sequence[Tweak], framework: Framework | str | None = None) -> Applied:
    """Apply tweaks in order to ``source``; one that does not fit is skipped with its reason.

    ``framework`` is the source's as job 2 recorded it (the run's); without it the classifier is asked,
    once, about the source as given (a variant keeps the framework of the source it was made from)."""
    result = Applied(source)
    known = framework_of(source, framework)
    for tweak in tweaks:
        try:
            done = tweak.edit(result.source, known)
        except TweakNotApplicable as e:
            result.skipped.append((tweak.NAME, e.reason))
            continue
        result.source = done.source
        result.applied.append(done.description)
    return result


def tweak_from_json(item: Sequence[Any]) -> Tweak:
    """A tweak as the ledger recorded it (``[name, {parameter: value}]``).

    An unknown name or parameter is a programming error (the ledger only ever holds what ``to_json``
    wrote), so it raises ValueError, never TweakNotApplicable.
    """
    name, params = item
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown tweak {name!r} (known: {', '.join(REGISTRY)})") from None
    try:
        return cls(**params)
    except TypeError as e:
        raise ValueError(f"tweak {name!r} cannot take {params!r}: {e}") from None
