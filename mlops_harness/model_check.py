"""``--check-model``: load a saved model in a fresh process and predict on a batch of its input's form.

Usage::

    python mlops_harness --check-model --model MODEL_DIR --out CHECK_DIR

MODEL_DIR holds the model file and its card (``model.json``: the file, its format and sha256, the input
recorded at ``fit``); CHECK_DIR gets ``check.json``: whether the file is the one the card names, whether
it loaded, whether it predicted, the shape of what it predicted, or the error. The exit code is 0 when it
loaded and predicted (or loaded and no input form is known to predict on), else MODEL_NOT_LOADED. It runs
where the trial ran (the same image or interpreter, the same sandbox), as loading a pickle runs code.

Started ahead (``--wait-for GO``, as a trial's harness is: see ``ahead.py``), it first imports the libraries
``CHECK_PRELOAD_ENV`` names (the framework's, never a module of the repository), then waits until the
runtime writes GO once the model and its card are in MODEL_DIR: the check is still a process that loaded
nothing of any model, minus the framework's import time.
Standard library only at import, like the rest of the harness; the framework is imported to load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from mlops_harness.model_saver import describe_error, versions
from mlops_harness.protocol import (
    CHECK_FILE,
    CHECK_PRELOAD_ENV,
    MODEL_CARD,
    ExitCode,
    ModelFormat,
    file_sha256,
    read_json,
    to_json,
    write_atomic,
)
from mlops_harness.recorder import say

BATCH_ROWS = 4
FREE_DIMENSION = 8  # the size given to a dimension the input left free (a sequence of any length)


TORCH_FORMATS = (ModelFormat.TORCH_EXPORT, ModelFormat.TORCHSCRIPT)


def load(path: Path, fmt: ModelFormat) -> Any:
    if fmt in TORCH_FORMATS:
        from mlops_harness import torch_model  # imports torch

        return torch_model.load(path, fmt)
    if fmt is ModelFormat.PICKLE:
        try:
            import joblib
        except ImportError:
            import pickle

            with path.open("rb") as fh:
                return pickle.load(fh)  # noqa: S301 (the sandbox of the training runs this)
        return joblib.load(path)
    import keras

    return keras.models.load_model(str(path))


def make_batch(spec: dict[str, Any], rows: int = BATCH_ROWS) -> Any:
    """Random data of the form ``spec`` describes (see protocol.MODEL_FIELDS), ``rows`` rows of it."""
    import numpy as np

    rng = np.random.default_rng(0)
    kind = spec.get("kind")
    if kind == "list":
        return [make_batch(item, rows) for item in spec["items"]]
    if kind == "dict":
        return {name: make_batch(item, rows) for name, item in spec["items"].items()}
    if kind == "frame":
        import pandas as pd

        examples = spec.get("examples") or {}
        data = {
            column: _column(rng, [rows], dtype, examples.get(column, ""))
            for column, dtype in zip(spec["columns"], spec["dtypes"], strict=True)
        }
        return pd.DataFrame(data)
    if kind == "array":
        shape = [rows] + [FREE_DIMENSION if d is None else int(d) for d in spec["shape"][1:]]
        return _column(rng, shape, str(spec["dtype"]), spec.get("example", ""))
    raise ValueError(f"unknown input kind {kind!r}")


def _column(rng: Any, shape: list[int], dtype: str, example: str) -> Any:
    import numpy as np

    if dtype.startswith(("float", "complex", "bfloat")):
        return rng.standard_normal(shape).astype("float32" if dtype == "bfloat16" else dtype)
    if dtype.startswith(("int", "uint")):
        return rng.integers(0, 2, size=shape).astype(dtype)  # 0 and 1: valid indices for an embedding
    if dtype.startswith("bool"):
        return np.zeros(shape, dtype=bool)
    return np.full(shape, example, dtype=object)  # text, categories: a value seen at fit


def _shape(output: Any) -> Any:
    if isinstance(output, list | tuple):
        return [_shape(o) for o in output]
    if isinstance(output, dict):
        return {str(k): _shape(v) for k, v in output.items()}
    shape = getattr(output, "shape", None)
    return list(shape) if shape is not None else None


def predict(model: Any, fmt: ModelFormat, batch: Any) -> Any:
    if fmt in TORCH_FORMATS:
        from mlops_harness import torch_model

        return torch_model.predict(model, batch)
    if fmt is ModelFormat.PICKLE:
        for name in ("predict", "transform"):
            if hasattr(model, name):
                return getattr(model, name)(batch)
        raise TypeError(f"a {type(model).__name__} has neither predict nor transform")
    return model.predict(batch, verbose=0)


def check(model_dir: Path) -> dict[str, Any]:
    """Load the model the card in ``model_dir`` names and predict on a batch; what happened."""
    card = read_json(model_dir / MODEL_CARD)
    if card is None or not card.get("file"):
        return {"loaded": False, "predicted": False, "error": f"no model card with a file in {model_dir}"}
    path = model_dir / str(card["file"])
    result: dict[str, Any] = {"loaded": False, "predicted": False, "file": path.name, "versions": versions()}
    if not path.is_file():
        return {**result, "error": f"{path.name} is missing"}
    if card.get("sha256") and file_sha256(path) != card["sha256"]:
        return {**result, "error": f"{path.name} is not the file the card names (its sha256 differs)"}
    started = time.time()
    try:
        fmt = ModelFormat(card["format"])
        model = load(path, fmt)
    except Exception as e:  # noqa: BLE001 (whatever stops it loading is the answer)
        return {**result, "error": describe_error(e)}
    result.update(loaded=True, load_s=round(time.time() - started, 3), **{"class": type(model).__name__})
    weights = _state_dict_error(model_dir, card)
    if weights:
        return {**result, "error": weights}
    spec = card.get("input")
    if not spec:
        return {
            **result,
            "predicted": None,
            "note": "no input form was recorded at fit: nothing to predict on",
        }
    try:
        output = predict(model, fmt, make_batch(spec))
    except Exception as e:  # noqa: BLE001
        return {
            **result,
            "error": f"it loaded, but predicting on a batch of its input failed: {describe_error(e)}",
        }
    result.update(predicted=True, batch_rows=BATCH_ROWS, output_shape=_shape(output))
    result["versions"] = versions()  # the framework is imported by now
    return result


def _state_dict_error(model_dir: Path, card: dict[str, Any]) -> str | None:
    """Why a PyTorch model's state_dict (``model.pt``, beside it) does not load as plain tensors; None when
    it does, or when the model has none."""
    weights = card.get("state_dict")
    if not isinstance(weights, dict) or not weights.get("file"):
        return None
    path = model_dir / str(weights["file"])
    if not path.is_file() or file_sha256(path) != weights.get("sha256"):
        return f"{path.name} is missing or is not the file the card names (its sha256 differs)"
    try:
        import torch

        torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        return f"{path.name} does not load as a state_dict: {describe_error(e)}"
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="harness --check-model", description="Load a saved model, predict.")
    parser.add_argument("--model", required=True, help="the folder with the model file and its card")
    parser.add_argument("--out", required=True, help="where check.json goes")
    parser.add_argument("--wait-for", help="started ahead: load the libraries, check once this file exists")
    parser.add_argument("--wait-s", type=float, default=3600.0, help="with --wait-for: give up after this")
    args = parser.parse_args(argv)
    if args.wait_for and not wait_ahead(Path(args.wait_for), args.wait_s):
        return ExitCode.OK  # never given: nothing was checked, the orchestrator knows
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = check(Path(args.model))
    write_atomic(out / CHECK_FILE, to_json(result))
    if result.get("error"):
        say(f"the model did not pass: {result['error']}")
        return ExitCode.MODEL_NOT_LOADED
    what = (
        f"predicted {result.get('output_shape')} from {BATCH_ROWS} rows" if result["predicted"] else "loaded"
    )
    say(f"model {result['file']} {what} (loaded in {result['load_s']:.1f} s)")
    return ExitCode.OK


def wait_ahead(go: Path, seconds: float) -> bool:
    """Import the libraries named in the environment, then wait for ``go``; False when it never came. A
    library that failed to load: the check, once given, runs in a fresh process (``ahead.start_afresh``)."""
    from mlops_harness import ahead

    names = [n for n in os.environ.get(CHECK_PRELOAD_ENV, "").split(",") if n]
    began = time.monotonic()
    loaded, failed = ahead.preload_modules(names)
    if loaded:
        say(f"started ahead: {', '.join(loaded)} loaded in {time.monotonic() - began:.1f} s")
    given = ahead.wait_for(go, seconds)
    if given and failed is not None:
        ahead.start_afresh(failed)
    return given


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
