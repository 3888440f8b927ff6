"""The ``ladder`` strategy: the hand-made pipelines' fixed order, each step added to the ones before."""

from __future__ import annotations

from mlops.classify.rules import Framework
from mlops.domain import Kind, StrategyName
from tweak import estimators
from tweak import prompts as prompts_mod
from tweak.codemods import AddConvBlock, AddDenseLayer, ScaleUnits, SetEpochs, SetEstimatorParam
from tweak.search_state import (
    MLP,
    Proposal,
    SearchState,
    Strategy,
    Tweaks,
    answers_of,
    facts_epochs,
    is_new,
    lines_of,
    propose_kmeans,
)
from tweak.seeds import ladder_from


class Ladder(Strategy):
    """The hand-made pipelines' fixed order, each step added to the ones before."""

    name = StrategyName.LADDER

    def steps(self, state: SearchState) -> Tweaks:
        epochs = facts_epochs(state.facts)
        if state.kind is Kind.CNN:
            return [
                AddConvBlock(filters=32),
                SetEpochs(epochs=max(epochs * 3, epochs + 2)),
                AddDenseLayer(units=64),
                ScaleUnits(factor=0.5),
                SetEpochs(epochs=max(epochs * 6, epochs + 4)),
            ]
        if state.kind is Kind.ANN and state.framework is not Framework.SKLEARN:
            return [
                AddDenseLayer(units=64),
                SetEpochs(epochs=max(epochs * 3, epochs + 2)),
                AddDenseLayer(units=64),
                ScaleUnits(factor=0.5),
                SetEpochs(epochs=max(epochs * 6, epochs + 4)),
            ]
        if state.kind is Kind.ANN:
            return [
                SetEstimatorParam(estimators=MLP, param="hidden_layer_sizes", value=(100, 100)),
                SetEstimatorParam(estimators=MLP, param="max_iter", value=1000),
            ]
        return estimators.steps(state.facts) if state.framework is Framework.SKLEARN else []

    def propose(self, state: SearchState) -> Proposal | None:
        """Step ``number``, or the next one whose changes no trial has made (answers can stay the same)."""
        if state.kind is Kind.KMEANS:
            return propose_kmeans(state)
        steps = self.steps(state)
        asked = prompts_mod.tunable(state.prompts)
        for step in range(ladder_from(state.number, state.earlier), max(len(steps), 4 if asked else 0) + 1):
            stepped = {p.key: value for p in asked if (value := prompts_mod.ladder_step(p, step)) is not None}
            chosen, answers, lines = steps[:step], answers_of(state, stepped), lines_of(state, stepped)
            if is_new(state, chosen, answers, lines):
                return Proposal(chosen, {"step": step, **stepped}, f"ladder step {step}", answers, lines)
        return None
