"""The trial's metric: read from what people write (0.93, 93, "93%", [loss, acc]) or chosen from the hooks."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops_harness.protocol import (
    ENV_CLUSTER_METRIC,
    SOURCE_TRAIN_ACCURACY,
    WRITTEN_ACCURACY_KEYS,
    accuracy_key,
)
from mlops_harness.recorder import Recorder

NUMBER = re.compile(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?")
ACCURACY_FILES = ("accuracy.txt", "accuracy.json", "acc.txt", "result.txt", "score.txt")


def normalize_accuracy(raw: Any) -> float | None:
    """A fraction between 0 and 1 from what a script wrote, or None if it is not an accuracy."""
    if isinstance(raw, dict):
        for key in WRITTEN_ACCURACY_KEYS:
            if key in raw:
                return normalize_accuracy(raw[key])
        return None
    if isinstance(raw, list | tuple):
        return normalize_accuracy(raw[-1]) if raw else None
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None
        try:
            return normalize_accuracy(json.loads(text))
        except ValueError:
            pass
        numbers = NUMBER.findall(text)
        if not numbers:
            return None
        value = float(numbers[-1])
        if "%" in text:
            value /= 100.0
        return normalize_accuracy(value)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        try:
            raw = float(raw)  # numpy scalars
        except (TypeError, ValueError):
            return None
    value = float(raw)
    if math.isnan(value) or value < 0:
        return None
    if value > 1.0:
        if value <= 100.0:
            return value / 100.0
        return None
    return value


def read_accuracy_file(folder: Path, outside: Sequence[tuple[str, Path]] = ()) -> tuple[float, str] | None:
    """The accuracy a script wrote to a file of its own (``accuracy.txt`` and friends, in its folder; or a
    file it wrote to an absolute path, ``/newdir/o.txt``, when that file holds nothing but an accuracy), and
    the file's name."""
    candidates = [(folder / name, name) for name in ACCURACY_FILES]
    candidates += [(path, named) for named, path in reversed(outside)]
    for path, name in candidates:
        try:
            if not path.is_file() or path.stat().st_size > 10000:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if path.name not in ACCURACY_FILES and len(NUMBER.findall(text)) != 1:
            continue  # a file of any name counts only when it is one number ("0.93", "93%")
        value = normalize_accuracy(text)
        if value is not None:
            return value, name
    return None


Origin = tuple[str, int | None]  # ("observation", index), ("fit", number) or ("file", None)


def choose_metric(rec: Recorder) -> dict[str, Any] | None:
    """The metric of the trial, from what the script did (see :func:`choose_metric_and_origin`)."""
    chosen = choose_metric_and_origin(rec)
    return chosen[0] if chosen else None


def choose_metric_and_origin(rec: Recorder) -> tuple[dict[str, Any], Origin] | None:
    """The metric of the trial, and where it came from (so the model behind it can be saved). Pure but for
    reading the recorder.

    Order: an accuracy the user's code measured itself (Keras evaluate, accuracy_score, a classifier's
    score; the last one, which is the test one in scripts that score train then test), a clustering's
    silhouette, the last validation accuracy of fit, the last training accuracy of fit. A fit whose
    early stopping put back the weights of its best epoch is judged on that epoch, the model it ended with.
    """

    def observed(found: dict[str, Any]) -> tuple[dict[str, Any], Origin]:
        index = next(i for i, o in enumerate(rec.observations) if o is found)
        return {"metric": found["name"], "value": found["value"], "source": found["source"]}, (
            "observation",
            index,
        )

    measured = [o for o in rec.observations if o["name"] in ("accuracy", "r2")]
    if measured:
        return observed(measured[-1])
    if os.environ.get(ENV_CLUSTER_METRIC) == "ari":  # the run declared the adjusted Rand index
        aris = [o for o in rec.observations if o["name"] == "ari"]
        if aris:
            return observed(aris[-1])
    silhouettes = [o for o in rec.observations if o["name"] == "silhouette"]
    if silhouettes:
        return observed(silhouettes[-1])
    if rec.history:
        last_fit = max(h["fit"] for h in rec.history)
        rows = sorted((h for h in rec.history if h["fit"] == last_fit), key=lambda h: h["epoch"])
        restored = rec.models.restored.get(last_fit)
        row = next((h for h in rows if h["epoch"] == restored), rows[-1])
        for prefix, source in (("val_", "val_accuracy"), ("", SOURCE_TRAIN_ACCURACY)):
            key = accuracy_key(row, prefix)
            if key:
                chosen = {"metric": "accuracy", "value": row[key], "source": source}
                if restored is not None and row["epoch"] == restored:
                    chosen["epoch"] = restored
                return chosen, ("fit", last_fit)
    return None


# After the metrics a script measured with a library call and its accuracy file: what it printed (a test
# accuracy before another: the one of its last evaluation), Lightning's validation metrics, then its loss.
FALLBACKS = (
    ("printed_test_accuracy", "accuracy"),
    ("printed_accuracy", "accuracy"),
    ("val_accuracy", "accuracy"),
    ("printed_test_r2", "r2"),
    ("printed_r2", "r2"),
    ("loss", "loss"),
    ("printed_test_loss", "loss"),
    ("printed_loss", "loss"),
    ("val_loss", "loss"),
)


def choose_fallback(rec: Recorder) -> tuple[dict[str, Any], Origin] | None:
    """The metric of a script that measured none with a library call (see :data:`FALLBACKS`): the last
    observation of the first name found. A loss is lower-is-better, and said so."""
    for name, metric in FALLBACKS:
        found = [i for i, o in enumerate(rec.observations) if o["name"] == name]
        if found:
            seen = rec.observations[found[-1]]
            chosen = {"metric": metric, "value": seen["value"], "source": seen["source"]}
            if metric == "loss":
                chosen["lower_is_better"] = True
            return chosen, ("observation", found[-1])
    return None
