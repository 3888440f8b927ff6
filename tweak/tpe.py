"""The ``tpe`` strategy: a first, informed proposal, then Optuna's TPE sampler over the space of tweaks,
and Optuna's median pruner on the per-epoch metric."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlops.classify.rules import Framework
from mlops.domain import Kind, StrategyName, trial_seed
from tweak import estimators, evidence
from tweak import prompts as prompts_mod
from tweak.codemods import (
    AddDenseLayer,
    AddDropout,
    AddRescaling,
    ScaleFilters,
    ScaleUnits,
    SetEpochs,
    SetEstimatorParam,
    SetLearningRate,
)
from tweak.search_state import (
    MLP,
    Proposal,
    SearchState,
    Strategy,
    Tweaks,
    affordable_epochs,
    answers_of,
    author_rate,
    conv_filters,
    facts_epochs,
    hidden_units,
    is_new,
    lines_of,
    loss_rate,
    overfit_gap,
    propose_kmeans,
    unscaled,
)
from tweak.seeds import fits

if TYPE_CHECKING:
    import optuna

# The dropout rates TPE searches when trial 0 overfits, and the first guess's.
DROPOUTS = (0.0, 0.2, 0.3, 0.5)
FIRST_DROPOUT = 0.3
# How many times TPE is asked for a point whose trial differs from every trial so far.
ASKS = 20


class TPE(Strategy):
    """An informed first proposal, then Optuna's TPE over the tweak space; median pruning per epoch."""

    name = StrategyName.TPE

    def space(self, state: SearchState) -> dict[str, Any]:
        import optuna.distributions as d

        epochs = facts_epochs(state.facts)
        space: dict[str, Any] = {}
        if state.kind in (Kind.CNN, Kind.ANN) and state.framework is not Framework.SKLEARN:
            space["epochs"] = d.IntDistribution(max(1, epochs), max(40, epochs * 10), log=True)
            space["learning_rate"] = d.FloatDistribution(*evidence.rate_range(state.facts), log=True)
            if overfit_gap(state) is not None and hidden_units(state.facts):
                space["dropout"] = d.CategoricalDistribution(DROPOUTS)
            if hidden_units(state.facts):
                space["units"] = d.CategoricalDistribution([32, 64, 128, 256])
            space["extra_dense"] = d.IntDistribution(0, 1)
            if state.kind is Kind.CNN and conv_filters(state.facts):
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
        epochs = facts_epochs(state.facts)
        point: dict[str, Any] = {}
        space = self.space(state)
        if "epochs" in space:
            # Enough epochs for a small dataset, with the user's own optimizer and rate: a rate that suits
            # Adam starves SGD, so the rate is left to the search.
            cap = min(max(epochs, 20), space["epochs"].high)
            point.update(epochs=max(epochs, min(cap, affordable_epochs(state) or cap)), extra_dense=0)
            if str(getattr(state.facts, "optimizer", "")).lower() == "sgd":
                point["learning_rate"] = 0.05  # plain SGD at its default 0.01 barely moves in 20 epochs
        chosen = author_rate(state) or loss_rate(state)
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
            guess = prompts_mod.first_guess(prompt, min(20 * 1, affordable_epochs(state) or 20))
            if guess is not None:
                point[prompt.key] = guess
        if overfit_gap(state) is not None:
            # Trial 0 trained far better than it validated: regularize instead of adding capacity.
            point.pop("units", None)
            point.pop("filters", None)
            if "dropout" in space:
                point["dropout"] = FIRST_DROPOUT
        return point

    def reasons(self, state: SearchState, point: dict[str, Any]) -> list[str]:
        """The evidence of trial 0 behind the point's changes, in words."""
        out = []
        for chosen in (loss_rate(state), author_rate(state)):
            if chosen is not None and point.get("learning_rate") == chosen[0]:
                out.append(chosen[1])
        gap = overfit_gap(state)
        if gap is not None:
            what = "dropout" if point.get("dropout") else "no dropout this time"
            if state.number == 1:
                what = "dropout, not units" if point.get("dropout") else "no more units or filters"
            out.append(f"trial 0 trained {gap:.2f} above its validation accuracy: {what}")
        if unscaled(state) is not None and state.inputs is not None:
            out.append(
                f"trial 0 trained on inputs in {state.inputs['min']:g}..{state.inputs['max']:g}: "
                "a Rescaling layer in front"
            )
        return out

    def tweaks_for(self, state: SearchState, point: dict[str, Any]) -> Tweaks:
        tweaks: Tweaks = []
        divisor = unscaled(state)
        if divisor is not None:  # every trial: the evidence does not change with the other coordinates
            tweaks.append(AddRescaling(divisor=divisor))
        if "filters" in point:
            smallest = min(conv_filters(state.facts))
            if evidence.matters(point["filters"] / smallest):
                tweaks.append(ScaleFilters(factor=point["filters"] / smallest))
        if "units" in point:
            smallest = min(hidden_units(state.facts))
            if evidence.matters(point["units"] / smallest):
                tweaks.append(ScaleUnits(factor=point["units"] / smallest))
        if point.get("extra_dense"):
            tweaks.append(AddDenseLayer(units=point.get("units", 64)))
        if point.get("dropout"):
            tweaks.append(AddDropout(rate=float(point["dropout"])))
        # An epoch cap or a rate changed by a little changes nothing that matters (the fit stops early).
        if "epochs" in point and evidence.matters(int(point["epochs"]) / facts_epochs(state.facts)):
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
            return propose_kmeans(state)
        space = self.space(state)
        if not space:
            return None
        if state.number == 1:
            first = self._proposal(state, self.first(state), "an informed first guess")
            if is_new(state, first.tweaks, first.inputs, first.files):
                return first
            # The code as pushed already is what the first guess would make of it: TPE's search instead.
        study, space = self._study(state, trial_seed(state.seed, state.number))
        for _ in range(ASKS):
            # A point whose trial is one made already (its differences too small to change the code) is
            # asked again: it stays in the study as under way, so constant-liar TPE looks elsewhere.
            point = dict(study.ask(space).params)
            tweaks = self.tweaks_for(state, point)
            answers, lines = answers_of(state, point), lines_of(state, point)
            if is_new(state, tweaks, answers, lines):
                return self._proposal(state, point, "proposed by TPE from the trials so far")
        # A small, finite space TPE's asks kept missing: the first point of its grid no trial has made, so
        # the search ends when the space is used up, not when the sampler is unlucky.
        for point in grid(space):
            if is_new(state, self.tweaks_for(state, point), answers_of(state, point), lines_of(state, point)):
                return self._proposal(state, point, "the first point of the space no trial has tried")
        return None

    def _proposal(self, state: SearchState, point: dict[str, Any], note: str) -> Proposal:
        because = self.reasons(state, point)
        if because:
            note += " (" + "; ".join(because) + ")"
        return Proposal(
            self.tweaks_for(state, point), point, note, answers_of(state, point), lines_of(state, point)
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


def grid(space: dict[str, Any]) -> Iterator[dict[str, Any]]:
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
