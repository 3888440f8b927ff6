"""The tweaks: one LibCST codemod per file, in one explicit registry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tweak.codemods.add_conv_block import AddConvBlock
from tweak.codemods.add_dense_layer import AddDenseLayer
from tweak.codemods.add_dropout import AddDropout
from tweak.codemods.base import Tweak, TweakNotApplicable
from tweak.codemods.scale_layers import ScaleFilters, ScaleUnits
from tweak.codemods.set_estimator_param import SetEstimatorParam
from tweak.codemods.set_fit_argument import SetBatchSize, SetEpochs
from tweak.codemods.set_learning_rate import SetLearningRate

REGISTRY: dict[str, type[Tweak]] = {
    cls.NAME: cls
    for cls in (
        AddConvBlock,
        AddDenseLayer,
        AddDropout,
        ScaleUnits,
        ScaleFilters,
        SetEpochs,
        SetBatchSize,
        SetLearningRate,
        SetEstimatorParam,
    )
}

__all__ = ["REGISTRY", "Applied", "Tweak", "TweakNotApplicable", "apply_tweaks"]


@dataclass
class Applied:
    source: str
    applied: list[str] = field(default_factory=list)  # what was done, in words
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (tweak, why it did not apply)


def apply_tweaks(source: str, tweaks: Sequence[tuple[str, dict[str, Any]]]) -> Applied:
    """Apply tweaks in order to ``source``; one that does not fit is skipped with its reason."""
    result = Applied(source)
    for name, params in tweaks:
        try:
            cls = REGISTRY[name]
        except KeyError:
            raise TweakNotApplicable(name, f"unknown tweak (known: {', '.join(REGISTRY)})") from None
        tweak = cls(**params)
        try:
            result.source = tweak.apply(result.source)
        except TweakNotApplicable as e:
            result.skipped.append((name, e.reason))
            continue
        result.applied.append(tweak.describe())
    return result
