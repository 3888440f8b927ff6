"""Metrics in what a script prints: ``Accuracy: 97.8 %``, ``acc=0.978``, ``Test set: Average loss: 0.0330,
Accuracy: 9896/10000 (99%)``, ``Accuracy of the network on the 10000 test images: 97 %``, and a line that is only a percentage (``92.44%``).

A hand-written PyTorch evaluation computes ``correct / total`` and prints it; that printed line is the only
place the number exists. Each mention of a metric name (accuracy, loss, MSE, R²) takes the value that follows
it: a fraction ``N/M`` first (it is exact where a rounded percentage follows it), else a number with ``%``,
else the number after ``:``, ``=`` or ``is``, else the last number before the next mention. Each mention is
qualified ``test``, ``val`` or ``train`` by the word before its name, else by the first such word of the
line. Pure functions of the text, standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlops_harness.metrics import normalize_accuracy

QUALIFIERS = {
    "test": "test", "testing": "test", "eval": "val", "evaluation": "val", "val": "val", "valid": "val",
    "validation": "val", "dev": "val", "train": "train", "training": "train",
}  # fmt: skip
KINDS = {
    "acc": "accuracy", "accuracy": "accuracy", "loss": "loss", "mse": "loss", "rmse": "loss", "mae": "loss",
    "r2": "r2", "r²": "r2", "r^2": "r2",
}  # fmt: skip
NAME = re.compile(
    r"(?:(?P<qual>test(?:ing)?|eval(?:uation)?|val(?:id(?:ation)?)?|dev|train(?:ing)?)[\s_\-]*)?"
    r"(?<![a-z])(?P<name>accuracy|acc|loss|rmse|mse|mae|r2|r²|r\^2)(?![a-z])",
    re.IGNORECASE,
)
LINE_QUALIFIER = re.compile(
    r"(?<![a-z])(test(?:ing)?|eval(?:uation)?|val(?:id(?:ation)?)?|train(?:ing)?)(?![a-z])"
)
NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
FRACTION = re.compile(r"(?<![\d.])(\d+)\s*/\s*(\d+)(?![\d.])")
PERCENT = re.compile(rf"({NUMBER})\s*%")
AFTER_SIGN = re.compile(rf"(?:[:=]|\bis\b)\s*\(?\s*({NUMBER})")
ANY = re.compile(NUMBER)
MAX_LINE = 500  # longer prints (a tensor, a table) are not metric lines
# A line that is only a percentage (``print(f"{100 * correct / total:.2f}%")``): the script's accuracy.
ONLY_PERCENT = re.compile(rf"^\s*({NUMBER})\s*%\s*$")


@dataclass(frozen=True)
class Mention:
    kind: str  # accuracy, loss, r2
    qualifier: str  # test, val, train, or "" when the line does not say
    value: float  # an accuracy as a fraction (97.8 % -> 0.978); a loss as printed


def mentions(line: str) -> list[Mention]:
    """The metrics a printed line mentions, in order."""
    if len(line) > MAX_LINE:
        return []
    alone = ONLY_PERCENT.match(line)
    if alone:
        percent = float(alone.group(1))
        return [Mention("accuracy", "", percent / 100.0)] if 0.0 <= percent <= 100.0 else []
    lowered = line.lower()
    found = list(NAME.finditer(lowered))
    first = LINE_QUALIFIER.search(lowered)
    line_qual = QUALIFIERS.get(first.group(1), "") if first else ""
    out = []
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(lowered)
        value = _value(lowered[match.end() : end], KINDS[match.group("name")])
        if value is None:
            continue
        qual = QUALIFIERS.get(match.group("qual") or "", "") or _before(lowered[: match.start()]) or line_qual
        out.append(Mention(KINDS[match.group("name")], qual, value))
    return out


def _before(text: str) -> str:
    """The qualifier just before a name (``test set accuracy``: up to two words back)."""
    words = re.findall(r"[a-z]+", text)[-3:]
    for word in reversed(words):
        if word in QUALIFIERS:
            return QUALIFIERS[word]
    return ""


def _value(segment: str, kind: str) -> float | None:
    fraction = FRACTION.search(segment)
    if kind == "accuracy" and fraction and int(fraction.group(2)) > 0:
        return int(fraction.group(1)) / int(fraction.group(2))
    percent = PERCENT.search(segment)
    if kind == "accuracy" and percent:
        return normalize_accuracy(float(percent.group(1)) / 100.0)
    sign = AFTER_SIGN.match(segment.lstrip()) or AFTER_SIGN.search(segment)
    numbers = ANY.findall(segment)
    raw = sign.group(1) if sign else (numbers[-1] if numbers else None)
    if raw is None:
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    if kind == "accuracy":
        return normalize_accuracy(number)
    return number if number == number else None  # NaN is no value


RANK = {"test": 0, "val": 1, "": 1, "train": 2}


def chosen(found: list[Mention], kind: str) -> Mention | None:
    """The line's mention of ``kind`` to keep: test before val (or unqualified) before train."""
    of_kind = [m for m in found if m.kind == kind]
    return min(of_kind, key=lambda m: RANK.get(m.qualifier, 1), default=None)
