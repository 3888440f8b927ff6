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
from pathlib import Path
from typing import Any

from mlops import trial_records
from mlops.hyperparams import Role, role_of
from mlops.trial_files import BadTrialFile
from mlops_harness.protocol import EventKind

__all__ = [
    "Prompt",
    "Role",
    "first_guess",
    "ladder_step",
    "prompts_of",
    "role_of",
    "shown",
    "space",
    "tunable",
]


@dataclass(frozen=True)
class Prompt:
    index: int  # the script's n-th input() call, from 0
    text: str
    answer: str
    role: Role | None  # None: not a hyperparameter, or not a number
    # A line of a file of values (mlops.yaml's tune_file:, as it names the file), not an input() prompt:
    # ``index`` is the line's, from 0, and ``text`` the name mlops.yaml gives it.
    file: str | None = None

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
        return f"input_{self.index}" if self.file is None else f"{self.file}:{self.index + 1}"

    def label(self) -> str:
        if self.file is not None:
            return f"{self.text} ({self.file} line {self.index + 1})"
        return self.text.strip().rstrip(":?").strip() or f"input {self.index + 1}"


def prompts_of(trial_dir: Path) -> list[Prompt]:
    """The prompts a trial's script asked, with the answers it got (from its input events)."""
    out: dict[int, Prompt] = {}
    try:
        events = trial_records.events(trial_dir)  # each input event checked: index, prompt, answer
    except BadTrialFile:  # that trial failed for it: nothing it asked is trusted
        return []
    for event in events:
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
    """The optuna distribution of a tunable prompt's answer (or line's value)."""
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
    if prompt.role is Role.DEPTH:
        return d.IntDistribution(1, max(16, int(value) * 2))
    if prompt.role is Role.ESTIMATORS:
        low = max(1, int(value))
        return d.IntDistribution(low, max(300, low * 10), log=True)
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
    if prompt.role is Role.DEPTH:
        return 8 if value < 8 / 1.5 else None
    if prompt.role is Role.ESTIMATORS:
        return 100 if value < 100 / 1.5 else None
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
    if prompt.role is Role.DEPTH and step >= 1:
        return int(value) * (2 if step < 3 else 4)
    if prompt.role is Role.ESTIMATORS and step >= 2:
        return int(value) * (10 if step < 4 else 30)
    return None


def shown(value: Any, prompt: Prompt) -> str:
    """An answer as the script reads it: an integer stays one."""
    if prompt.integral and isinstance(value, int | float) and float(value).is_integer():
        return str(int(value))
    return f"{value:.2g}" if isinstance(value, float) else str(value)


def changed(prompts: list[Prompt], values: dict[str, Any]) -> list[tuple[Prompt, str]]:
    """Each tunable prompt (or line of a tuned file) with a value in ``values`` (by its key) that differs
    from the one given, as the script reads it."""
    out = []
    for prompt in tunable(prompts):
        if prompt.key in values:
            answer = shown(values[prompt.key], prompt)
            if answer != prompt.answer.strip():
                out.append((prompt, answer))
    return out


def new_answers(prompts: list[Prompt], point: dict[str, Any]) -> dict[int, str]:
    """The new answers of the point's prompt coordinates (those that differ from the answers given)."""
    return {p.index: answer for p, answer in changed(prompts, point) if p.file is None}


def new_lines(prompts: list[Prompt], point: dict[str, Any]) -> dict[str, dict[int, str]]:
    """The new values of the point's tuned lines, per file."""
    out: dict[str, dict[int, str]] = {}
    for p, value in changed(prompts, point):
        if p.file is not None:
            out.setdefault(p.file, {})[p.index] = value
    return out
