"""What a strategy sees and gives: the trials so far (``SearchState``, ``Past``), the next trial
(``Proposal``), the ``Strategy`` interface, and the facts of the source both strategies read from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops.classify.rules import Framework
from mlops.domain import Kind, StrategyName, TrialStatus
from tweak import evidence
from tweak import prompts as prompts_mod
from tweak.codemods import Tweak

Tweaks = list[Tweak]
MLP = ("MLPClassifier", "MLPRegressor")
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


def facts_epochs(facts: Any) -> int:
    value = getattr(facts, "epochs", None)
    return int(value) if isinstance(value, int | float) and value > 0 else 1


def hidden_units(facts: Any) -> list[int]:
    dense = [ly for ly in getattr(facts, "layers", []) if getattr(ly, "kind", "") == "dense"]
    return [int(ly.units) for ly in dense[:-1] if isinstance(getattr(ly, "units", None), int)]


def conv_filters(facts: Any) -> list[int]:
    return [
        int(ly.filters)
        for ly in getattr(facts, "layers", [])
        if getattr(ly, "kind", "") == "conv" and isinstance(getattr(ly, "filters", None), int)
    ]


def answers_of(state: SearchState, point: dict[str, Any]) -> dict[int, str]:
    return prompts_mod.new_answers(state.prompts, point)


def lines_of(state: SearchState, point: dict[str, Any]) -> dict[str, dict[int, str]]:
    return prompts_mod.new_lines(state.prompts, point)


def is_new(
    state: SearchState, tweaks: Tweaks, answers: dict[int, str], lines: dict[str, dict[int, str]]
) -> bool:
    """Whether these changes differ from every trial's so far (trial 0's are none; under way included)."""
    return bool(tweaks or answers or lines) and not any(
        p.tweaks == tweaks and answers_of(state, p.params) == answers and lines_of(state, p.params) == lines
        for p in state.past
    )


def unscaled(state: SearchState) -> float | None:
    """The divisor of inputs that trial 0 trained on unscaled (pixels in 0..255: 255), else None."""
    seen = state.inputs or {}
    low, high = seen.get("min"), seen.get("max")
    if state.kind not in (Kind.CNN, Kind.ANN) or state.framework is Framework.SKLEARN:
        return None
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return None
    return 255.0 if low >= 0 and UNSCALED_MAX < high <= 255 else None


def affordable_epochs(state: SearchState) -> int | None:
    """How many epochs of trial 0's speed fit in this trial's share of the time left, when both are known."""
    if not state.seconds_per_epoch or state.seconds_left is None:
        return None
    return max(1, int(state.seconds_left * TRIAL_SHARE_OF_BUDGET / state.seconds_per_epoch))


def trial0(state: SearchState) -> Past | None:
    return state.past[0] if state.past and state.past[0].number == 0 else None


def overfit_gap(state: SearchState) -> float | None:
    """Trial 0's training accuracy above its validation accuracy, when far enough to regularize."""
    first = trial0(state)
    gap = first.gap if first else None
    return gap if evidence.overfits(gap) and state.framework is not Framework.SKLEARN else None


def loss_rate(state: SearchState) -> tuple[float, str] | None:
    """The learning rate trial 0's stalled training loss calls for, and why (``evidence.loss_rate``)."""
    first = trial0(state)
    if first is None or state.kind not in (Kind.CNN, Kind.ANN) or state.framework is Framework.SKLEARN:
        return None
    return evidence.loss_rate(first.losses, state.facts, unscaled(state) is not None)


def author_rate(state: SearchState) -> tuple[float, str] | None:
    """The rate the script's author trained with, when it runs at a default that changed since."""
    first = trial0(state)
    if state.framework is Framework.SKLEARN or state.kind not in (Kind.CNN, Kind.ANN):
        return None
    return evidence.author_rate(first.losses if first is not None else [], state.facts)


def propose_kmeans(state: SearchState) -> Proposal | None:
    from tweak.kmeans import next_k  # kneed, only for a clustering

    found = next_k(state.facts, state.kmeans, [p.params for p in state.past])
    return Proposal([found[0]], {"n_clusters": found[1]}, found[2]) if found else None
