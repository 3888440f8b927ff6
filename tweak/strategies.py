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

from collections.abc import Callable

from mlops.domain import StrategyName
from tweak.ladder import Ladder
from tweak.search_state import Past, Proposal, SearchState, Strategy, Tweaks
from tweak.tpe import TPE

__all__ = [
    "STRATEGIES",
    "TPE",
    "Ladder",
    "Past",
    "Proposal",
    "SearchState",
    "Strategy",
    "Tweaks",
    "make_strategy",
]


STRATEGIES: dict[StrategyName, Callable[[], Strategy]] = {
    StrategyName.LADDER: Ladder,
    StrategyName.TPE: TPE,
}


def make_strategy(name: StrategyName | str) -> Strategy:
    """The strategy of that name. Settings were validated when read, so an unknown name is a bug here."""
    return STRATEGIES[StrategyName(name)]()
