"""What ``fit`` and ``evaluate`` hand back to the script: what the script would have got without mlops.

- **Numbers as numpy scalars.** Keras 2 filled ``History.history`` and returned ``evaluate``'s values as numpy
  scalars; Keras 3 (and tf.keras 2.x) gives Python floats, on which Keras 2 code fails
  (``np.array2string(h.history['accuracy'][-1] * 100)``: ``'float' object has no attribute 'size'``). They
  are given as ``numpy.float64``, which is a Python float too: code written for either works.
- **The history of a fit that mlops stopped early, as long as the epochs asked for.** A script that reads
  ``h.history['accuracy'][7]`` after ``fit(epochs=8)``, or plots ``range(1, 9)`` against it, would fail on
  a shorter history. The missing epochs are filled with the values of the epoch whose weights the model
  kept (the best one when the early stop put its weights back; else the last one run): the values the
  model the script holds would give, as if it had stopped improving there. ``History.epoch`` is filled
  the same way; ``model.history`` is the same object. Said in the log, and in the ``stopped`` event.

Imported after Keras (by ``keras_hooks``), so numpy is there; it is imported where it is used all the same.
"""

from __future__ import annotations

from typing import Any


def as_numpy(value: Any) -> Any:
    """``value`` with every Python float in it (alone, in a list or tuple, or a dict's value) a numpy float64."""
    import numpy as np

    if type(value) is float:
        return np.float64(value)
    if isinstance(value, list):
        return [as_numpy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(as_numpy(v) for v in value)
    if isinstance(value, dict):
        return {k: as_numpy(v) for k, v in value.items()}
    return value


def numpy_history(history: Any) -> None:
    """Every Python float of ``history.history`` (a Keras ``History``) made a numpy float64, in place."""
    values = getattr(history, "history", None)
    if not isinstance(values, dict):
        return
    for key, column in values.items():
        if isinstance(column, list):
            values[key] = as_numpy(column)


def pad_history(history: Any, epochs: int, kept: int) -> int:
    """Fill ``history`` (a Keras ``History``) up to ``epochs`` epochs (counted from 0, as ``fit`` counts them)
    with the values of epoch ``kept`` (from 1); the number of epochs added (0 when it was complete)."""
    values = getattr(history, "history", None)
    ran = list(getattr(history, "epoch", None) or [])
    if not isinstance(values, dict) or not ran:
        return 0
    first = int(ran[0])  # a fit resumed from a checkpoint starts after 0
    missing = epochs - first - len(ran)
    if missing <= 0:
        return 0
    row = min(max(kept - 1 - first, 0), len(ran) - 1)
    for column in values.values():
        if isinstance(column, list) and len(column) == len(ran):
            column.extend([column[row]] * missing)
    history.epoch = ran + list(range(first + len(ran), epochs))
    return missing
