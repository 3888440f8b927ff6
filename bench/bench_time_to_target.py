"""Time to target: mlops (tpe, ladder) against KerasTuner (Hyperband, random search) and Optuna, side by side.

    python bench/bench_time_to_target.py [--quick] [--only NAME] [--max-trials 6] [--max-minutes 10]
                                         [--parallel N] [--target 0.8]

Models: the weak Keras models of bench/weak_models/ (and its PyTorch one, torch_cnn_sgd.py: mlops against
Optuna in one process over the same model written by hand, bench/torch_optuna.py; KerasTuner does not run
PyTorch) and the MNIST-shaped ones of bench/large_models/ (60,000
28x28 images made from scikit-learn's digits, raw 0..255 pixels, one epoch of SGD: about 0.1 as pushed).
mlops runs the script as pushed (`mlops run --runtime local`, each trial its own process); KerasTuner and
Optuna tune hypermodels written here by hand over the same space as mlops's TPE (epochs, learning rate,
units, an extra dense layer, filters; a Rescaling layer for 0..255 inputs), in this process, TensorFlow
imported once and the data loaded once (neither counted). They validate on the split the script measures
(its test set, or its validation split), with the same early stop as the harness (patience 3, best
weights), and stop the search at the first epoch at or above the target. Each contender stops at the
target, after --max-trials trials (Hyperband: its own schedule) or after --max-minutes. ``--parallel N``
adds a row for mlops tpe with ``--parallel N`` (N trials at once, the machine's cores split between them).

For each: the wall time until the target (mlops: from the command's start, and from the end of trial 0, the
code as pushed), the trials until the target (mlops counts trial 0), and the best metric; "-" when never
reached. For mlops also the median time from a trial's start to its first epoch (interpreter, TensorFlow,
harness, data and model set-up: the per-trial overhead).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ttt_keras
from ttt_keras import Result, run_kerastuner, run_optuna
from ttt_torch import run_optuna_torch

ROOT = Path(__file__).resolve().parent.parent
WEAK = ROOT / "bench" / "weak_models"
LARGE = ROOT / "bench" / "large_models"
TARGET = 0.80
PATIENCE = 3  # the harness's default (mlops/config.py)
QUICK_TRAIN = 10_000


@dataclass
class Spec:
    """A model as the benchmark knows it: its script, and what the hand-written hypermodel needs."""

    name: str
    folder: Path
    kind: str  # "cnn" or "dense"
    epochs: int  # as the script asks
    optimizer: str
    batch_size: int
    units: int | None  # the script's hidden units (None: no hidden Dense layer)
    filters: int | None
    load: Callable[[], tuple[Any, Any, Any]]  # (x, y, validation: a split fraction or (x_val, y_val))
    framework: str = "keras"  # "pytorch": its in-process contender is Optuna in bench/torch_optuna.py

    @property
    def script(self) -> Path:
        return self.folder / f"{self.name}.py"

    @property
    def unscaled(self) -> bool:  # inputs in 0..255, made by a module next to the script
        return self.folder == LARGE

    @property
    def extra(self) -> tuple[Path, ...]:
        return (LARGE / "mnist_like.py",) if self.unscaled else ()


def _digits_cnn():
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images[..., np.newaxis] / 16.0, digits.target, 0.25


def _digits_dense():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x / 16.0, y, test_size=0.25, random_state=1)
    return x_tr, y_tr, (x_te, y_te)


def _wine():
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_wine(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        StandardScaler().fit_transform(x), y, test_size=0.3, random_state=0
    )
    return x_tr, y_tr, (x_te, y_te)


def _mnist_like(flat: bool):
    def load():
        sys.path.insert(0, str(LARGE))
        from mnist_like import load_data

        (x_tr, y_tr), (x_te, y_te) = load_data()
        shape = (-1, 784) if flat else (-1, 28, 28, 1)
        return x_tr.reshape(shape), y_tr, (x_te.reshape(shape), y_te)

    return load


SPECS = [
    Spec("cnn_4_filters", WEAK, "cnn", 1, "sgd", 128, None, 4, _digits_cnn),
    Spec("dense_3_units", WEAK, "dense", 30, "adam", 32, 3, None, _digits_dense),
    Spec("functional_api", WEAK, "dense", 3, "sgd", 16, 2, None, _wine),
    Spec("dense_mnist", LARGE, "dense", 1, "sgd", 32, 64, None, _mnist_like(flat=True)),
    Spec("cnn_mnist", LARGE, "cnn", 1, "sgd", 128, 64, 30, _mnist_like(flat=False)),
    Spec("torch_cnn_sgd", WEAK, "cnn", 1, "sgd", 128, 16, 4, lambda: (None, None, None), "pytorch"),
]


# ---- mlops: the script as pushed, through the CLI ------------------------------------------------------


def _git_repo(folder: Path, spec: Spec, quick: bool) -> Path:
    folder.mkdir(parents=True)
    for path in (spec.script, *spec.extra):
        shutil.copy(path, folder / path.name)
    if spec.extra:  # the data maker is a module next to the script, not a training script
        env = f"\nenv:\n  MNIST_LIKE_TRAIN: '{QUICK_TRAIN}'\n" if quick else "\n"
        (folder / "mlops.yaml").write_text(f"entry_points: [{spec.script.name}]{env}")
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=bench", "-c", "user.email=b@example.com", "commit", "-q", "-m", spec.name],
    ):
        subprocess.run(["git", *args], cwd=folder, check=True)
    return folder


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def _fit_start(events: Path) -> float | None:
    """When the trial's first fit began (its `inputs` event), else its first epoch event."""
    for line in events.read_text().splitlines() if events.is_file() else []:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") in ("inputs", "epoch"):
            return float(event["at"])
    return None


def run_mlops(spec: Spec, strategy: str, args: argparse.Namespace, tmp: Path, parallel: int = 1) -> Result:
    label = f"{strategy}-p{parallel}"
    repo = _git_repo(tmp / f"{spec.name}-{label}", spec, args.quick)
    ws = tmp / f"ws-{spec.name}-{label}"
    started = time.time()
    done = _cli(
        *("run", str(repo), "--runtime", "local", "--strategy", strategy, "--target", str(TARGET)),
        *("--max-trials", str(args.max_trials), "--max-minutes", str(args.max_minutes)),
        *("--workspace", str(ws), "--parallel", str(parallel)),
        cwd=tmp,
    )
    wall = time.time() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{spec.name} ({strategy}) failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    run = json.loads(_cli("history", "--json", "--workspace", str(ws), cwd=tmp).stdout.splitlines()[0])
    with sqlite3.connect(f"file:{ws / 'ledger.db'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT number, metric, started_at, finished_at FROM trials WHERE run_id = ? ORDER BY number",
            (run["run"],),
        ).fetchall()
    result = Result(ran=len(rows), wall_s=wall)
    result.best = max((m for _, m, _, _ in rows if m is not None), default=None)
    end0 = rows[0][3] if rows else None
    reached = [(f, n) for n, m, _, f in rows if m is not None and m >= TARGET and f is not None]
    if reached:  # the first to finish past the target (with --parallel, not always the lowest number)
        finished, number = min(reached)
        result.reached_s, result.trials = finished - started, number + 1
        result.after0_s = finished - end0 if end0 is not None else None
    overheads = []
    for number, _, began, _ in rows:
        fit = _fit_start(Path(run["dir"]) / "trials" / str(number) / "events.jsonl")
        if fit is not None and began is not None:
            overheads.append(fit - began)
    result.overhead_s = statistics.median(overheads) if overheads else None
    return result


# ---- the table -------------------------------------------------------------------------------------------


def machine() -> str:
    def first(path: str, key: str) -> str:
        lines = [line for line in Path(path).read_text().splitlines() if line.startswith(key)]
        return lines[0].split(":", 1)[1].strip() if lines else "?"

    ram = first("/proc/meminfo", "MemTotal").split()[0]
    ram = f"{int(ram) / 2**20:.0f} GiB" if ram.isdigit() else "?"
    cpu = first("/proc/cpuinfo", "model name")
    return f"machine: {os.cpu_count()} CPUs, {cpu}, {ram} RAM, Python {sys.version.split()[0]}"


def _s(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1f}"


def _row(model: str, label: str, r: Result, ours: bool) -> tuple[str, ...]:
    best = f"{r.best:.3f}" if r.best is not None else "-"
    mine = [_s(v) if ours else "" for v in (r.after0_s, r.overhead_s, r.wall_s)]  # mlops's own columns
    return (model, label, _s(r.reached_s), mine[0], str(r.trials or "-"), str(r.ran), best, *mine[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"a weak and a large model ({QUICK_TRAIN} images)"
    )
    parser.add_argument("--only", help="one model's name (comma-separated for several)")
    parser.add_argument("--max-trials", type=int, default=6, help="trials per contender (default 6)")
    parser.add_argument("--max-minutes", type=float, default=10, help="per contender and model (default 10)")
    parser.add_argument("--contenders", default="tpe,ladder,hyperband,random,optuna")
    parser.add_argument("--parallel", type=int, default=1, help="also mlops tpe with --parallel N (N > 1)")
    parser.add_argument("--target", type=float, default=TARGET, help=f"to reach (default {TARGET})")
    args = parser.parse_args()
    globals()["TARGET"] = args.target  # read by every contender
    ttt_keras.TARGET = args.target
    specs = SPECS
    if args.quick:
        os.environ["MNIST_LIKE_TRAIN"] = str(QUICK_TRAIN)
        specs = [s for s in SPECS if s.name in ("dense_3_units", "dense_mnist")]
    if args.only:
        wanted = set(args.only.split(","))
        specs = [s for s in SPECS if s.name in wanted]
        if not specs:
            raise SystemExit(f"--only {args.only}: no such model; known: {', '.join(s.name for s in SPECS)}")
    contenders = args.contenders.split(",")
    if args.parallel > 1:
        contenders.insert(contenders.index("tpe") + 1 if "tpe" in contenders else 0, "tpe-parallel")
    print(machine(), flush=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    began = time.monotonic()
    import keras  # noqa: F401  (imported once for the in-process contenders, not counted in their times)

    print(f"TensorFlow/Keras import (in-process contenders, not counted): {time.monotonic() - began:.1f} s")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ttt-") as folder:
        tmp = Path(folder)
        for spec in specs:
            data = spec.load()
            for name in contenders:
                if spec.framework == "pytorch" and name in ("hyperband", "random"):
                    continue  # KerasTuner tunes Keras models only
                print(f"  {spec.name}: {name} ...", flush=True)
                if name in ("tpe", "ladder", "tpe-parallel"):
                    width = args.parallel if name == "tpe-parallel" else 1
                    got = run_mlops(spec, name.split("-")[0], args, tmp, parallel=width)
                elif spec.framework == "pytorch":
                    got = run_optuna_torch(args, TARGET, tmp)
                elif name in ("hyperband", "random"):
                    got = run_kerastuner(spec, data, name, args, tmp)
                else:
                    got = run_optuna(spec, data, args)
                rows.append((spec.name, name, got))
    header = ("model", "contender", "to target s", "after trial 0 s", "trials", "ran", "best")
    header += ("overhead s", "run s")
    names = {"tpe": "mlops tpe", "ladder": "mlops ladder", "random": "KT random", "optuna": "optuna"}
    names["tpe-parallel"] = f"mlops tpe --parallel {args.parallel}"
    ours = ("tpe", "ladder", "tpe-parallel")
    table = [header] + [_row(model, names.get(c, f"KT {c}"), r, c in ours) for model, c, r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"\ntarget {TARGET}; '-' = not reached within {args.max_trials} trials / {args.max_minutes:g} min")
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    print(
        "to target: wall time from the contender's start (mlops: the command, trial 0 included; KT and optuna:\n"
        "the search, TensorFlow and data loaded before). trials: until the target (mlops counts trial 0).\n"
        "overhead: median time from a trial's start to its first fit (interpreter, TensorFlow, harness, data).\n"
        "run: the mlops command from its start to its end (all its trials)."
    )
    print(f"(bench wall time {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
