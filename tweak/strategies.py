"""Strategies propose the next trial; the loop runs it; the ledger records it.

A proposal is a list of tweaks applied to the source *as pushed* (not to the previous variant), so any
trial can be rebuilt from the ledger alone. Proposals depend only on the trials so far and the run's seed,
so the same run proposes the same trials after a restart.

- ``ladder``: the fixed order of the hand-made pipelines (more layers, more epochs, more hidden layers,
  fewer neurons), each step added to the ones before. Kept as the baseline.
- ``tpe`` (default): a first, informed proposal (enough capacity and epochs for the data), then Optuna's
  TPE sampler over the space of tweaks, learning from every trial's metric, and Optuna's median pruner on
  the per-epoch metric to stop a hopeless trial early. What trial 0 measured (tweak/evidence.py) chooses
  the changes: its stalled loss the rate, its overfitting dropout, its unscaled pixels a Rescaling layer;
  an optimizer left at a default that changed since standalone Keras (tweak/facts.py) gets its author's;
  a change too small to matter is not proposed, and a batch of parallel trials is asked of TPE at once
  (constant liar), so its trials differ.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.classify.rules import Framework
from mlops.domain import Kind, StrategyName, TrialStatus, trial_seed
from tweak import estimators, evidence
from tweak import prompts as prompts_mod
from tweak.codemods import (
    AddConvBlock,
    AddDenseLayer,
    AddDropout,
    AddRescaling,
    ScaleFilters,
    ScaleUnits,
    SetEpochs,
    SetEstimatorParam,
    SetLearningRate,
    Tweak,
)
from tweak.seeds import fits, ladder_from

if TYPE_CHECKING:
    import optuna

Tweaks = list[Tweak]
MLP = ("MLPClassifier", "MLPRegressor")
# The dropout rates TPE searches when trial 0 overfits, and the first guess's.
DROPOUTS = (0.0, 0.2, 0.3, 0.5)
FIRST_DROPOUT = 0.3
# How many times TPE is asked for a point whose trial differs from every trial so far.
ASKS = 20
# Inputs that reach past this (and not past 255) are taken for unscaled pixels: gradients that large
# stall a network that expects values near 0..1, and a Rescaling layer in front fixes it.
UNSCALED_MAX = 16.0
# The share of the time left in a run's budget that one trial may plan to use.
TRIAL_SHARE_OF_BUDGET = 0.5


@dataclass(frozen=True)
class Past:
    """A finished trial, as a strategy sees it."""

    number: int
    tweaks: Tweaks
    status: TrialStatus
    metric: float | None
    params: dict[str, Any] = field(default_factory=dict)  # the strategy's own coordinates of the trial
    curve: list[float] = field(default_factory=list)  # the per-epoch metric
    gap: float | None = None  # training accuracy minus validation accuracy at the last epoch
    losses: list[float] = field(default_factory=list)  # the per-epoch training loss (NaN where it was)
    origin: str | None = None  # the commit of the earlier run it comes from (warm start), None: this run's


@dataclass(frozen=True)
class SearchState:
    kind: Kind
    framework: Framework
    facts: Any  # tweak.facts.ModelFacts of the source as pushed
    target: float
    seed: int
    number: int  # the trial about to be proposed
    past: list[Past]
    kmeans: dict[str, Any] | None = None  # the harness's KMeans measurements of trial 0
    seconds_per_epoch: float | None = None  # measured on trial 0
    seconds_left: float | None = None  # in the run's wall-time budget, when it has one
    # The input() prompts of trial 0, and the lines of the files mlops.yaml's tune_file: names.
    prompts: list[prompts_mod.Prompt] = field(default_factory=list)
    inputs: dict[str, Any] | None = None  # what trial 0's last fit trained on: samples, dtype, min, max
    lower_is_better: bool = False  # the run's metric is a loss (tweak/direction.py): TPE minimizes it
    # An earlier commit's trials whose changes still apply to this source (warm start: tweak/warm.py).
    earlier: list[Past] = field(default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "framework", Framework(self.framework))  # its text ("sklearn") too


@dataclass(frozen=True)
class Proposal:
    tweaks: Tweaks
    params: dict[str, Any]
    note: str = ""
    inputs: dict[int, str] = field(default_factory=dict)  # new answers to the script's input() prompts
    files: dict[str, dict[int, str]] = field(default_factory=dict)  # new values of tuned files' lines


class Strategy:
    name: StrategyName

    def propose(self, state: SearchState) -> Proposal | None:
        """The next trial, or None when the strategy has nothing left to try."""
        raise NotImplementedError

    def should_prune(self, state: SearchState, curve: list[float]) -> bool:
        """Whether a running trial whose per-epoch metric so far is ``curve`` should stop now."""
        return False


# -- facts of the source, read defensively (a model the facts cannot read gets the generic tweaks) -----


def _epochs(facts: Any) -> int:
    value = getattr(facts, "epochs", None)
    return int(value) if isinstance(value, int | float) and value > 0 else 1


def _hidden_units(facts: Any) -> list[int]:
    dense = [ly for ly in getattr(facts, "layers", []) if getattr(ly, "kind", "") == "dense"]
    return [int(ly.units) for ly in dense[:-1] if isinstance(getattr(ly, "units", None), int)]


def _filters(facts: Any) -> list[int]:
    return [
        int(ly.filters)
        for ly in getattr(facts, "layers", [])
        if getattr(ly, "kind", "") == "conv" and isinstance(getattr(ly, "filters", None), int)
    ]


def _answers(state: SearchState, point: dict[str, Any]) -> dict[int, str]:
    return prompts_mod.new_answers(state.prompts, point)


def _lines(state: SearchState, point: dict[str, Any]) -> dict[str, dict[int, str]]:
    return prompts_mod.new_lines(state.prompts, point)


def _new(
    state: SearchState, tweaks: Tweaks, answers: dict[int, str], lines: dict[str, dict[int, str]]
) -> bool:
    """Whether these changes differ from every trial's so far (trial 0's are none; under way included)."""
    return bool(tweaks or answers or lines) and not any(
        p.tweaks == tweaks and _answers(state, p.params) == answers and _lines(state, p.params) == lines
        for p in state.past
    )


def _unscaled(state: SearchState) -> float | None:
    """The divisor of inputs that trial 0 trained on unscaled (pixels in 0..255: 255), else None."""
    seen = state.inputs or {}
    low, high = seen.get("min"), seen.get("max")
    if state.kind not in (Kind.CNN, Kind.ANN) or state.framework is Framework.SKLEARN:
        return None
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return None
    return 255.0 if low >= 0 and UNSCALED_MAX < high <= 255 else None


def _affordable_epochs(state: SearchState) -> int | None:
    """How many epochs of trial 0's speed fit in this trial's share of the time left, when both are known."""
    if not state.seconds_per_epoch or state.seconds_left is None:
        return None
    return max(1, int(state.seconds_left * TRIAL_SHARE_OF_BUDGET / state.seconds_per_epoch))


def _trial0(state: SearchState) -> Past | None:
    return state.past[0] if state.past and state.past[0].number == 0 else None


def _overfit_gap(state: SearchState) -> float | None:
    """Trial 0's training accuracy above its validation accuracy, when far enough to regularize."""
    first = _trial0(state)
    gap = first.gap if first else None
    return gap if evidence.overfits(gap) and state.framework is not Framework.SKLEARN else None


def _loss_rate(state: SearchState) -> tuple[float, str] | None:
    """The learning rate trial 0's stalled training loss calls for, and why (``evidence.loss_rate``)."""
    first = _trial0(state)
    if first is None or state.kind not in (Kind.CNN, Kind.ANN) or state.framework is Framework.SKLEARN:
        return None
    return evidence.loss_rate(first.losses, state.facts, _unscaled(state) is not None)


def _author_rate(state: SearchState) -> tuple[float, str] | None:
    """The rate the script's author trained with, when it runs at a default that changed since."""
    first = _trial0(state)
    if state.framework is Framework.SKLEARN or state.kind not in (Kind.CNN, Kind.ANN):
        return None
    return evidence.author_rate(first.losses if first is not None else [], state.facts)


def _propose_kmeans(state: SearchState) -> Proposal | None:
    from tweak.kmeans import next_k  # kneed, only for a clustering

    found = next_k(state.facts, state.kmeans, [p.params for p in state.past])
    return Proposal([found[0]], {"n_clusters": found[1]}, found[2]) if found else None


# -- ladder -----------------------------------------------------------------------------------------


class Ladder(Strategy):
    """The hand-made pipelines' fixed order, each step added to the ones before."""

    name = StrategyName.LADDER

    def steps(self, state: SearchState) -> Tweaks:
        epochs = _epochs(state.facts)
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
            return _propose_kmeans(state)
        steps = self.steps(state)
        asked = prompts_mod.tunable(state.prompts)
        for step in range(ladder_from(state.number, state.earlier), max(len(steps), 4 if asked else 0) + 1):
            stepped = {p.key: value for p in asked if (value := prompts_mod.ladder_step(p, step)) is not None}
            chosen, answers, lines = steps[:step], _answers(state, stepped), _lines(state, stepped)
            if _new(state, chosen, answers, lines):
                return Proposal(chosen, {"step": step, **stepped}, f"ladder step {step}", answers, lines)
        return None


# -- TPE ----------------------------------------------------------------------------------------------


class TPE(Strategy):
    """An informed first proposal, then Optuna's TPE over the tweak space; median pruning per epoch."""

    name = StrategyName.TPE

    def space(self, state: SearchState) -> dict[str, Any]:
        import optuna.distributions as d

        epochs = _epochs(state.facts)
        space: dict[str, Any] = {}
        if state.kind in (Kind.CNN, Kind.ANN) and state.framework is not Framework.SKLEARN:
            space["epochs"] = d.IntDistribution(max(1, epochs), max(40, epochs * 10), log=True)
            space["learning_rate"] = d.FloatDistribution(*evidence.rate_range(state.facts), log=True)
            if _overfit_gap(state) is not None and _hidden_units(state.facts):
                space["dropout"] = d.CategoricalDistribution(DROPOUTS)
            if _hidden_units(state.facts):
                space["units"] = d.CategoricalDistribution([32, 64, 128, 256])
            space["extra_dense"] = d.IntDistribution(0, 1)
            if state.kind is Kind.CNN and _filters(state.facts):
                space["filters"] = d.CategoricalDistribution([8, 16, 32, 64])
        elif state.kind is Kind.ANN:
            space["hidden"] = d.CategoricalDistribution(["64", "128", "128,64", "256,128"])
            space["max_iter"] = d.CategoricalDistribution([300, 1000])
        elif state.framework is Framework.SKLEARN:  # regressors and classifiers: regularization, depth, trees
            space.update(estimators.space(state.facts))
        # What the script asks with input() is tuned through its answers, not by rewriting the code.
        asked = {p.role for p in prompts_mod.tunable(state.prompts)}
        replaced = {
            prompts_mod.Role.EPOCHS: ("epochs", "max_iter"),
            prompts_mod.Role.UNITS: ("units", "hidden"),
            prompts_mod.Role.FILTERS: ("filters",),
            prompts_mod.Role.DEPTH: ("max_depth",),
            prompts_mod.Role.ESTIMATORS: ("n_estimators",),
        }
        for role, keys in replaced.items():
            if role in asked:
                for key in keys:
                    space.pop(key, None)
        for prompt in prompts_mod.tunable(state.prompts):
            space[prompt.key] = prompts_mod.space(prompt)
        return space

    def first(self, state: SearchState) -> dict[str, Any]:
        """Enough capacity and epochs for the small datasets these models are trained on."""
        epochs = _epochs(state.facts)
        point: dict[str, Any] = {}
        space = self.space(state)
        if "epochs" in space:
            # Enough epochs for a small dataset, with the user's own optimizer and rate: a rate that suits
            # Adam starves SGD, so the rate is left to the search.
            cap = min(max(epochs, 20), space["epochs"].high)
            point.update(epochs=max(epochs, min(cap, _affordable_epochs(state) or cap)), extra_dense=0)
            if str(getattr(state.facts, "optimizer", "")).lower() == "sgd":
                point["learning_rate"] = 0.05  # plain SGD at its default 0.01 barely moves in 20 epochs
        chosen = _author_rate(state) or _loss_rate(state)
        if chosen is not None and "learning_rate" in space:  # trial 0's loss, or its author's rate, chooses
            point["learning_rate"] = chosen[0]
        if "units" in space:
            point["units"] = 128
        if "filters" in space:
            point["filters"] = 32
        if "hidden" in space:
            point["hidden"] = "128"  # max_iter stays as written: more iterations only cost time
        point.update({k: v for k, v in estimators.first(state.facts).items() if k in space})
        for prompt in prompts_mod.tunable(state.prompts):
            guess = prompts_mod.first_guess(prompt, min(20 * 1, _affordable_epochs(state) or 20))
            if guess is not None:
                point[prompt.key] = guess
        if _overfit_gap(state) is not None:
            # Trial 0 trained far better than it validated: regularize instead of adding capacity.
            point.pop("units", None)
            point.pop("filters", None)
            if "dropout" in space:
                point["dropout"] = FIRST_DROPOUT
        return point

    def reasons(self, state: SearchState, point: dict[str, Any]) -> list[str]:
        """The evidence of trial 0 behind the point's changes, in words."""
        out = []
        for chosen in (_loss_rate(state), _author_rate(state)):
            if chosen is not None and point.get("learning_rate") == chosen[0]:
                out.append(chosen[1])
        gap = _overfit_gap(state)
        if gap is not None:
            what = "dropout" if point.get("dropout") else "no dropout this time"
            if state.number == 1:
                what = "dropout, not units" if point.get("dropout") else "no more units or filters"
            out.append(f"trial 0 trained {gap:.2f} above its validation accuracy: {what}")
        if _unscaled(state) is not None and state.inputs is not None:
            out.append(
                f"trial 0 trained on inputs in {state.inputs['min']:g}..{state.inputs['max']:g}: "
                "a Rescaling layer in front"
            )
        return out

    def tweaks_for(self, state: SearchState, point: dict[str, Any]) -> Tweaks:
        tweaks: Tweaks = []
        divisor = _unscaled(state)
        if divisor is not None:  # every trial: the evidence does not change with the other coordinates
            tweaks.append(AddRescaling(divisor=divisor))
        if "filters" in point:
            smallest = min(_filters(state.facts))
            if evidence.matters(point["filters"] / smallest):
                tweaks.append(ScaleFilters(factor=point["filters"] / smallest))
        if "units" in point:
            smallest = min(_hidden_units(state.facts))
            if evidence.matters(point["units"] / smallest):
                tweaks.append(ScaleUnits(factor=point["units"] / smallest))
        if point.get("extra_dense"):
            tweaks.append(AddDenseLayer(units=point.get("units", 64)))
        if point.get("dropout"):
            tweaks.append(AddDropout(rate=float(point["dropout"])))
        # An epoch cap or a rate changed by a little changes nothing that matters (the fit stops early).
        if "epochs" in point and evidence.matters(int(point["epochs"]) / _epochs(state.facts)):
            tweaks.append(SetEpochs(epochs=int(point["epochs"])))
        if "learning_rate" in point:
            rate = float(f"{point['learning_rate']:.2g}")
            if evidence.matters(rate / evidence.current_rate(state.facts)[1]):
                tweaks.append(SetLearningRate(learning_rate=rate))
        if "hidden" in point:
            sizes = tuple(int(v) for v in str(point["hidden"]).split(","))
            tweaks.append(SetEstimatorParam(estimators=MLP, param="hidden_layer_sizes", value=sizes))
        if "max_iter" in point:
            tweaks.append(SetEstimatorParam(estimators=MLP, param="max_iter", value=point["max_iter"]))
        if state.framework is Framework.SKLEARN and state.kind is Kind.OTHER:
            tweaks += estimators.tweaks_for(state.facts, point)
        return tweaks

    def _study(self, state: SearchState, seed: int) -> tuple[optuna.Study, dict[str, Any]]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space = self.space(state)
        study = optuna.create_study(
            direction="minimize" if state.lower_is_better else "maximize",
            # Trials under way (a parallel batch) count as "lies", so one batch's proposals differ.
            sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=3, constant_liar=True),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2),
        )
        for past in [*state.earlier, *state.past]:
            params = {k: v for k, v in past.params.items() if k in space and fits(space[k], v)}
            if past.number == 0 or not params:  # the first guess has no rate: fine
                continue
            if past.metric is None:
                if not past.status.is_finished():
                    state_running = optuna.trial.TrialState.RUNNING
                    distributions = {k: space[k] for k in params}
                    study.add_trial(
                        optuna.trial.create_trial(
                            params=params, distributions=distributions, state=state_running
                        )
                    )
                continue
            study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions={k: space[k] for k in params},
                    value=past.metric,
                    # The curve is an accuracy: not a step of a loss's study (a regression has none anyway).
                    intermediate_values={} if state.lower_is_better else dict(enumerate(past.curve, start=1)),
                )
            )
        return study, space

    def propose(self, state: SearchState) -> Proposal | None:
        if state.kind is Kind.KMEANS:
            return _propose_kmeans(state)
        space = self.space(state)
        if not space:
            return None
        if state.number == 1:
            first = self._proposal(state, self.first(state), "an informed first guess")
            if _new(state, first.tweaks, first.inputs, first.files):
                return first
            # The code as pushed already is what the first guess would make of it: TPE's search instead.
        study, space = self._study(state, trial_seed(state.seed, state.number))
        for _ in range(ASKS):
            # A point whose trial is one made already (its differences too small to change the code) is
            # asked again: it stays in the study as under way, so constant-liar TPE looks elsewhere.
            point = dict(study.ask(space).params)
            tweaks = self.tweaks_for(state, point)
            answers, lines = _answers(state, point), _lines(state, point)
            if _new(state, tweaks, answers, lines):
                return self._proposal(state, point, "proposed by TPE from the trials so far")
        # A small, finite space TPE's asks kept missing: the first point of its grid no trial has made, so
        # the search ends when the space is used up, not when the sampler is unlucky.
        for point in _grid(space):
            if _new(state, self.tweaks_for(state, point), _answers(state, point), _lines(state, point)):
                return self._proposal(state, point, "the first point of the space no trial has tried")
        return None

    def _proposal(self, state: SearchState, point: dict[str, Any], note: str) -> Proposal:
        because = self.reasons(state, point)
        if because:
            note += " (" + "; ".join(because) + ")"
        return Proposal(
            self.tweaks_for(state, point), point, note, _answers(state, point), _lines(state, point)
        )

    def should_prune(self, state: SearchState, curve: list[float]) -> bool:
        if not curve or state.lower_is_better or state.kind is Kind.KMEANS or not self.space(state):
            return False  # a loss run's curve is an accuracy, not its metric: nothing to prune on
        if curve[-1] >= state.target:
            return False
        study, space = self._study(state, state.seed)
        if len(study.trials) < 2:
            return False
        trial = study.ask(space)
        for step, value in enumerate(curve, start=1):
            trial.report(value, step)
        return trial.should_prune()


def _grid(space: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every point of a space of choices and integer ranges, in a fixed order; nothing for a continuous one."""
    import optuna.distributions as d

    axes: list[list[Any]] = []
    for dist in space.values():
        if isinstance(dist, d.CategoricalDistribution):
            axes.append(list(dist.choices))
        elif isinstance(dist, d.IntDistribution) and dist.high - dist.low < 1000:
            axes.append(list(range(dist.low, dist.high + 1, dist.step)))
        else:
            return
    for values in itertools.product(*axes):
        yield dict(zip(space, values, strict=True))


STRATEGIES: dict[StrategyName, Callable[[], Strategy]] = {
    StrategyName.LADDER: Ladder,
    StrategyName.TPE: TPE,
}


def make_strategy(name: StrategyName | str) -> Strategy:
    """The strategy of that name. Settings were validated when read, so an unknown name is a bug here."""
    return STRATEGIES[StrategyName(name)]()
