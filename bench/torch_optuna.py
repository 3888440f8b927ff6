"""Optuna in one process over a PyTorch model written by hand: the contender of bench/bench_time_to_target.py
for bench/weak_models/torch_cnn_sgd.py. Run by the bench in mlops's PyTorch environment (torch imported once,
the data made once, neither counted); prints its result as one JSON line.

    python bench/torch_optuna.py --target 0.8 --max-trials 6 --max-minutes 10

The space is mlops's TPE's for that script (tweak/strategies.py): epochs 1..40 (log), the SGD rate
5e-4..5e-2 (log), hidden units, filters, an extra hidden layer; the same median pruner, the same early stop
as the harness (patience 3), and the search stops at the first epoch at or above the target."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import optuna
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

PATIENCE = 3


def data() -> tuple[DataLoader, torch.Tensor, torch.Tensor]:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target, test_size=0.25, random_state=0)
    loader = DataLoader(TensorDataset(torch.tensor(x_tr), torch.tensor(y_tr)), batch_size=128, shuffle=True)
    return loader, torch.tensor(x_te), torch.tensor(y_te)


def build(p: dict) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(1, p["filters"], 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    layers += [nn.Linear(p["filters"] * 9, p["units"]), nn.ReLU()]
    if p["extra_dense"]:
        layers += [nn.Linear(p["units"], p["units"]), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(p["units"], 10))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--max-trials", type=int, default=6)
    parser.add_argument("--max-minutes", type=float, default=10)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    loader, x_te, y_te = data()
    started = time.monotonic()
    deadline = started + args.max_minutes * 60
    out: dict = {"reached_s": None, "trials": None, "ran": 0, "best": None}

    def objective(trial: optuna.Trial) -> float:
        out["ran"] += 1
        p = {
            "epochs": trial.suggest_int("epochs", 1, 40, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 5e-4, 5e-2, log=True),
            "units": trial.suggest_categorical("units", [32, 64, 128, 256]),
            "filters": trial.suggest_categorical("filters", [8, 16, 32, 64]),
            "extra_dense": trial.suggest_int("extra_dense", 0, 1),
        }
        torch.manual_seed(trial.number)
        model = build(p)
        optimizer = torch.optim.SGD(model.parameters(), lr=p["learning_rate"])
        best, since = 0.0, 0
        for epoch in range(p["epochs"]):
            model.train()
            for xb, yb in loader:
                optimizer.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                acc = (model(x_te).argmax(1) == y_te).float().mean().item()
            best, since = (acc, 0) if acc > best else (best, since + 1)
            out["best"] = max(out["best"] or 0.0, acc)
            if acc >= args.target and out["reached_s"] is None:
                out["reached_s"], out["trials"] = time.monotonic() - started, out["ran"]
            if out["reached_s"] is not None or time.monotonic() > deadline or since >= PATIENCE:
                break
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return best

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2),
    )
    done = lambda study, trial: study.stop() if out["reached_s"] or time.monotonic() > deadline else None  # noqa: E731
    study.optimize(objective, n_trials=args.max_trials, callbacks=[done])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
