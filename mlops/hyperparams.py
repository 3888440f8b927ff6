"""The names of the hyperparameters a script takes from outside its code: the prompts of its ``input()``
calls ("number of epochs?"), and the lines of a file of values that mlops.yaml's ``tune_file:`` names
(``[max_depth, n_estimators]``). One vocabulary for both, so a prompt and a line that say the same thing are
tuned the same way."""

from __future__ import annotations

import re
from enum import StrEnum


class Role(StrEnum):
    EPOCHS = "epochs"
    LAYERS = "layers"
    UNITS = "units"
    FILTERS = "filters"
    LEARNING_RATE = "learning rate"
    BATCH_SIZE = "batch size"
    DEPTH = "depth"  # a tree's max_depth
    ESTIMATORS = "estimators"  # the trees of a forest, the rounds of boosting


# First match wins: "neurons in the hidden layer" is units, "how many hidden layers" is layers.
RULES: tuple[tuple[re.Pattern[str], Role], ...] = (
    (re.compile(r"learning.?rate|\blr\b", re.I), Role.LEARNING_RATE),
    (re.compile(r"batch", re.I), Role.BATCH_SIZE),
    (re.compile(r"epoch|iteration|max.?iter", re.I), Role.EPOCHS),
    (re.compile(r"neuron|\bunits?\b|nodes", re.I), Role.UNITS),
    (re.compile(r"filter|kernels", re.I), Role.FILTERS),
    (re.compile(r"layer", re.I), Role.LAYERS),
    (re.compile(r"hidden", re.I), Role.UNITS),
    (re.compile(r"depth", re.I), Role.DEPTH),
    (re.compile(r"estimators|trees|rounds", re.I), Role.ESTIMATORS),
)


def role_of(text: str) -> Role | None:
    """The hyperparameter that a prompt or a name says, or None."""
    return next((role for pattern, role in RULES if pattern.search(text)), None)
