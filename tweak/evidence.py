"""What trial 0's measurements point at, and the change each one calls for, with the evidence in words.

Trial 0 is the code as pushed; the harness recorded its per-epoch history (training loss and accuracy,
validation accuracy) and what its fit trained on. Three findings steer TPE's proposals:

- a training loss that does not fall: the learning rate. Only a loss that rises or becomes NaN lowers it (the
  steps are too large); one that stays flat, or at chance level, with a step below the optimizer's usual
  working rate raises it to that rate (Adadelta at tf.keras's and Keras 3's default of 0.001 barely moves:
  it works at 1.0, standalone Keras's default); flat at its usual rate, the rate is not what holds it back;
- a training accuracy far above the validation one: regularization (dropout), not more units or filters;
- inputs in 0..255 that the model never scales: a ``Rescaling`` layer (tweak/strategies.py ``_unscaled``).

A change smaller than ``SMALLEST_CHANGE`` (30 -> 32 filters, a rate 10% off, an epoch cap raised by a
little while early stopping ends the training anyway) is not worth a trial: ``matters`` says which are.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from mlops_harness.protocol import CURVE_KEYS
from tweak.facts import old_default

# A layer size, an epoch cap or a rate changed by less than this factor changes nothing that matters.
SMALLEST_CHANGE = 1.5
# Trial 0 trained this much better than it validated (accuracy): more capacity would only overfit more.
OVERFIT_GAP = 0.1
# The last epoch's training loss must be below this share of the first epoch's to count as falling.
FALLING = 0.9
# A training loss at this share of chance level (ln of the classes) or above has learned nothing yet.
AT_CHANCE = 0.9
# Keras's default rate of each optimizer today (tf.keras 2.x and Keras 3): 0.001 for all but SGD.
DEFAULT_RATE = {"sgd": 0.01}
USUAL_RATE = 1e-3
# The rate each optimizer usually works at, where it is not 0.001: what a loss that does not fall with a
# smaller step is given. Plain SGD at 0.01 barely moves a small network in a few epochs; Adadelta was made to
# need no rate (its paper has none; standalone Keras ran it at 1.0), Adagrad ran at 0.01 in standalone Keras.
WORKING_RATE = {"sgd": 0.05, "adadelta": 1.0, "adagrad": 0.01}
# The learning rates TPE searches, around the usual working rates; an optimizer whose working rate is
# outside them has a range of its own.
RATES = (5e-4, 5e-2)
RATE_RANGES = {"adadelta": (0.05, 2.0)}


def working_rate(name: str) -> float:
    """The rate the optimizer of that name (lower case) usually works at."""
    return WORKING_RATE.get(name, USUAL_RATE)


def rate_range(facts: Any) -> tuple[float, float]:
    """The learning rates searched for the script's optimizer."""
    return RATE_RANGES.get(str(getattr(facts, "optimizer", "") or "").lower(), RATES)


def matters(factor: float) -> bool:
    """True when scaling a quantity by ``factor`` is a change worth a trial (not 30 -> 32 filters)."""
    return factor >= SMALLEST_CHANGE or factor <= 1 / SMALLEST_CHANGE


class RateMove(enum.Enum):
    """How a stalled loss moves the learning rate."""

    TO_USUAL = "to_usual"  # to the optimizer's usual rate, far from which it was
    TENFOLD_DOWN = "tenfold_down"  # down tenfold, from a rate not far above the usual one


@dataclass(frozen=True)
class RateChange:
    rate: float
    rule: str  # the rule that chose it, in words
    move: RateMove


@dataclass(frozen=True)
class LossFinding:
    """A training loss that did not fall, why it is taken so, and which way the rate should go."""

    reason: str
    diverged: bool  # NaN or rising: the rate is too high; else flat: too low, or too high to learn at all


def _last_fit(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not history:
        return []
    last_fit = max(h.get("fit", 0) for h in history)
    return sorted((h for h in history if h.get("fit", 0) == last_fit), key=lambda h: h["epoch"])


def curve_of(history: list[dict[str, Any]]) -> list[float]:
    """The per-epoch accuracy of the last fit in a harness history (validation if it has one)."""
    rows = _last_fit(history)
    for key in CURVE_KEYS:
        if rows and all(key in r for r in rows):
            return [float(r[key]) for r in rows if not math.isnan(float(r[key]))]
    return []


def generalization_gap(history: list[dict[str, Any]]) -> float | None:
    """Training accuracy minus validation accuracy at the last epoch of the last fit, when both exist."""
    rows = _last_fit(history)
    if not rows:
        return None
    last = rows[-1]
    train = next((last[k] for k in CURVE_KEYS if not k.startswith("val_") and k in last), None)
    valid = next((last[k] for k in CURVE_KEYS if k.startswith("val_") and k in last), None)
    if train is None or valid is None:
        return None
    return float(train) - float(valid)


def training_losses(history: list[dict[str, Any]]) -> list[float]:
    """The training loss at each epoch of the last fit, NaN where the row has none (the harness leaves a
    NaN out of the row, so a row with metrics but no loss is an epoch whose loss was NaN)."""
    return [float(r["loss"]) if "loss" in r else math.nan for r in _last_fit(history)]


def classes_of(facts: Any) -> int | None:
    """The classes of the output Dense layer (1 unit: a binary sigmoid, 2 classes), when written."""
    dense = [ly for ly in getattr(facts, "layers", []) if getattr(ly, "kind", "") == "dense"]
    units = getattr(dense[-1], "units", None) if dense else None
    if not isinstance(units, int) or units < 1:
        return None
    return max(2, units)


def stalled_loss(losses: list[float], classes: int | None) -> LossFinding | None:
    """Why trial 0's training loss shows that it did not learn, or None when it fell."""
    if not losses:
        return None
    bad = next((i for i, v in enumerate(losses, start=1) if not math.isfinite(v)), None)
    if bad is not None:
        return LossFinding(f"trial 0's training loss was NaN or infinite at epoch {bad}", diverged=True)
    first, last = losses[0], losses[-1]
    if len(losses) >= 2 and last > first * 1.05:
        return LossFinding(
            f"trial 0's training loss rose from {first:.3g} to {last:.3g} over {len(losses)} epochs", True
        )
    if len(losses) >= 2 and last > first * FALLING:
        return LossFinding(
            f"trial 0's training loss did not fall ({first:.3g} at epoch 1, {last:.3g} at epoch "
            f"{len(losses)})",
            diverged=False,
        )
    if classes and last >= AT_CHANCE * math.log(classes):
        return LossFinding(
            f"trial 0's training loss {last:.3g} after {len(losses)} epoch(s) is at chance level "
            f"(ln {classes} = {math.log(classes):.3g})",
            diverged=False,
        )
    return None


def current_rate(facts: Any) -> tuple[str, float]:
    """The optimizer as written (lower case; "" when not known) and its rate (as written, or its default)."""
    name = str(getattr(facts, "optimizer", "") or "").lower()
    rate = getattr(facts, "learning_rate", None)
    if isinstance(rate, int | float) and rate > 0:
        return name, float(rate)
    return name, DEFAULT_RATE.get(name, USUAL_RATE)


def rate_for(finding: LossFinding, facts: Any) -> RateChange | None:
    """The learning rate that trial 0's stalled loss calls for, and the rule that chose it, in words; None
    when the rate is not what holds it back (a flat loss at the optimizer's usual rate).

    Only a loss that rises or becomes NaN lowers the rate: to the usual one when it is far above it, else
    tenfold. A flat loss with a step far below the usual one raises it there."""
    name, rate = current_rate(facts)
    usual = working_rate(name)
    shown = f"{name or 'the optimizer'} at {rate:g}"
    if finding.diverged:
        if rate > usual and matters(rate / usual):
            return RateChange(
                usual, f"{shown} is far above its usual rate: down to {usual:g}", RateMove.TO_USUAL
            )
        return RateChange(rate / 10, f"{shown} diverges: down tenfold", RateMove.TENFOLD_DOWN)
    if rate < usual and matters(rate / usual):
        return RateChange(usual, f"{shown} is too slow: up to {usual:g}, its usual rate", RateMove.TO_USUAL)
    return None


def loss_rate(losses: list[float], facts: Any, unscaled: bool) -> tuple[float, str] | None:
    """The learning rate trial 0's training loss calls for (inside the searched range), and why, in words;
    None when it fell, or when the rate is not what holds it back.

    Unscaled inputs (``unscaled``) explain a stall at the usual rate better than the rate does: the
    Rescaling layer is the change then, and the rate is left alone unless it is far from its usual value."""
    finding = stalled_loss(losses, classes_of(facts))
    chosen = rate_for(finding, facts) if finding is not None else None
    if finding is None or chosen is None:
        return None
    rate, rule = chosen.rate, chosen.rule
    _, now = current_rate(facts)
    if unscaled and chosen.move is RateMove.TENFOLD_DOWN:
        return None
    low, high = rate_range(facts)
    bounded = min(max(rate, low), high)
    if not matters(bounded / now) or (bounded < now) != (rate < now):
        return None  # too small a change, or the searched range's bound is on the other side
    kept = f" ({bounded:g}, the searched range's bound)" if bounded != rate else ""
    return bounded, f"{finding.reason}; {rule}{kept}"


def author_rate(losses: list[float], facts: Any) -> tuple[float, str] | None:
    """The rate the script's author trained with, when its optimizer runs at a default that changed since
    (``Adadelta()``: 1.0 then, 0.001 now), and why; None when it does not, or trial 0's loss diverged."""
    old = old_default(facts)
    finding = stalled_loss(losses, None)
    if old is None or (finding is not None and finding.diverged):
        return None
    return old.old, f"{old.describe()}: its author's {old.old:g}"


def overfits(gap: float | None) -> bool:
    """Whether trial 0's training accuracy is far enough above its validation accuracy to regularize."""
    return gap is not None and gap > OVERFIT_GAP
