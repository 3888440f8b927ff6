"""Hyperparameters a script asks for with ``input()`` ("number of epochs?", "how many convolution layers?").

The classic Jenkins setup answered such prompts from a file that its tuning job rewrote; here the answers
come from ``inputs:`` in the pushed mlops.yaml, and the harness records each prompt with its answer (an
``input`` event of trial 0). A numeric answer whose prompt names a hyperparameter is a tunable parameter:
the strategies vary it like any other, the leaderboard labels it by its prompt, and the best answers are
kept beside ``best.py``. This module only reads prompts and says what values to try; it decides nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from mlops_harness.protocol import EVENTS_FILE, EventKind, read_events


class Role(StrEnum):
    EPOCHS = "epochs"
    LAYERS = "layers"
    UNITS = "units"
    FILTERS = "filters"
    LEARNING_RATE = "learning rate"
    BATCH_SIZE = "batch size"


# First match wins: "neurons in the hidden layer" is units, "how many hidden layers" is layers.
RULES: tuple[tuple[re.Pattern[str], Role], ...] = (
    (re.compile(r"learning.?rate|\blr\b", re.I), Role.LEARNING_RATE),
    (re.compile(r"batch", re.I), Role.BATCH_SIZE),
    (re.compile(r"epoch|iteration|max.?iter", re.I), Role.EPOCHS),
    (re.compile(r"neuron|\bunits?\b|nodes", re.I), Role.UNITS),
    (re.compile(r"filter|kernels", re.I), Role.FILTERS),
    (re.compile(r"layer", re.I), Role.LAYERS),
    (re.compile(r"hidden", re.I), Role.UNITS),
)


@dataclass(frozen=True)
class Prompt:
    index: int  # the script's n-th input() call, from 0
    text: str
    answer: str
    role: Role | None  # None: not a hyperparameter, or not a number

    @property
    def number(self) -> float | None:
        try:
            return float(self.answer)
        except ValueError:
            return None

    @property
    def integral(self) -> bool:
        return re.fullmatch(r"[-+]?\d+", self.answer.strip()) is not None

    @property
    def key(self) -> str:
        """The strategy's coordinate of this prompt."""
        return f"input_{self.index}"

    def label(self) -> str:
        return self.text.strip().rstrip(":?").strip() or f"input {self.index + 1}"


def role_of(text: str) -> Role | None:
    return next((role for pattern, role in RULES if pattern.search(text)), None)


def prompts_of(trial_dir: Path) -> list[Prompt]:
    """The prompts a trial's script asked, with the answers it got (from its input events)."""
    out: dict[int, Prompt] = {}
    for event in read_events(trial_dir / EVENTS_FILE):
        if event.kind is not EventKind.INPUT or event.get("answer") is None:
            continue
        index, text, answer = (
            int(event.get("index")),
            str(event.get("prompt") or ""),
            str(event.get("answer")),
        )
        prompt = Prompt(index, text, answer, None)
        role = role_of(text) if prompt.number is not None else None
        out[index] = Prompt(index, text, answer, role)
    return [out[i] for i in sorted(out)]


def tunable(prompts: list[Prompt]) -> list[Prompt]:
    return [p for p in prompts if p.role is not None]


def space(prompt: Prompt) -> Any:
    """The optuna distribution of a tunable prompt's answer."""
    import optuna.distributions as d

    value = prompt.number or 1.0
    if prompt.role is Role.EPOCHS:
        low = max(1, int(value))
        return d.IntDistribution(low, max(40, low * 10), log=True)
    if prompt.role is Role.LAYERS:
        low = max(1, int(value))
        return d.IntDistribution(low, low + 3)
    if prompt.role is Role.UNITS:
        return d.CategoricalDistribution([32, 64, 128, 256])
    if prompt.role is Role.FILTERS:
        return d.CategoricalDistribution([8, 16, 32, 64])
    if prompt.role is Role.LEARNING_RATE:
        return d.FloatDistribution(5e-4, 5e-2, log=True)
    return d.CategoricalDistribution([16, 32, 64, 128])  # batch size


def first_guess(prompt: Prompt, epochs_cap: int) -> Any:
    """An informed first answer, or None to keep the one given."""
    value = prompt.number or 1.0
    if prompt.role is Role.EPOCHS:
        return max(int(value), epochs_cap)
    if prompt.role is Role.LAYERS:
        return int(value) + 1
    if prompt.role is Role.UNITS:
        return 128 if value < 128 / 1.5 else None
    if prompt.role is Role.FILTERS:
        return 32 if value < 32 / 1.5 else None
    return None  # the rate and the batch size are left to the search


def ladder_step(prompt: Prompt, step: int) -> Any:
    """The classic setup's order on answers: more layers, then more epochs, then more of both."""
    value = prompt.number or 1.0
    if prompt.role is Role.LAYERS and step >= 1:
        return int(value) + (1 if step < 3 else 2)
    if prompt.role is Role.EPOCHS and step >= 2:
        return int(value) * (3 if step < 4 else 6)
    if prompt.role in (Role.UNITS, Role.FILTERS) and step >= 3:
        return int(value) * 2
    return None


def shown(value: Any, prompt: Prompt) -> str:
    """An answer as the script reads it: an integer stays one."""
    if prompt.integral and isinstance(value, int | float) and float(value).is_integer():
        return str(int(value))
    return f"{value:.2g}" if isinstance(value, float) else str(value)
