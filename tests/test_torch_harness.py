"""The harness on PyTorch scripts as pushed, in the environment mlops builds for them (real torch training on
MNIST-shaped digits): the metric each style computes, where it came from, its epochs, an early stop, and a
training that never evaluates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlops_harness.protocol import EVENTS_FILE, EventKind, ExitCode, StopReason, read_events
from tests.support.processes import run_harness
from tests.support.torch_scripts import (
    LIGHTNING,
    NO_EVALUATION,
    PLAIN_CNN,
    TORCHMETRICS,
    script,
    torch_python,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> str:
    return torch_python(tmp_path_factory.mktemp("torch-env"))


def harness(tmp_path: Path, python: str, text: str, **env: str):
    done, out = run_harness(tmp_path, text, python=python, env=env, timeout=900)
    metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else {}
    return done, metrics, read_events(out / EVENTS_FILE), out


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_a_plain_loop_s_metric_is_the_accuracy_it_prints_and_each_epoch_is_an_event_and_a_checkpoint(
    tmp_path, python
):
    text = script(PLAIN_CNN, 3)
    done, metrics, events, out = harness(tmp_path, python, text)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    shown = float(re.search(r"on the 450 test images: ([\d.]+) %", done.stdout).group(1))
    assert metrics["metric"] == "accuracy" and metrics["value"] == pytest.approx(shown / 100)
    line = line_of(text, "Test Accuracy of the model")
    assert metrics["source"] == (
        f"printed at train.py:{line}: 'Test Accuracy of the model on the 450 test images: {shown:.2f} %'"
    )
    epochs = [e for e in events if e.kind is EventKind.EPOCH]
    assert [(e.get("epoch"), e.get("epochs")) for e in epochs] == [(1, 3), (2, 3), (3, 3)]
    assert (
        all(e.get("logs")["loss"] > 0 for e in epochs)
        and epochs[-1].get("logs")["loss"] < epochs[0].get("logs")["loss"]
    )
    saved = [e.get("epoch") for e in events if e.kind is EventKind.CHECKPOINT]
    assert saved and saved[-1] == 3  # the last epoch's state is always saved
    assert sorted(p.name for p in (out / "checkpoints" / "torch").iterdir())[-1] == "ckpt-000003.pt"
    # What the training DataLoader's TensorDataset holds: a tuner's evidence of unscaled inputs (here 0..1).
    assert metrics["inputs"] == [{"fit": 0, "samples": 1347, "dtype": "float32", "min": 0.0, "max": 1.0}]


def test_a_torchmetrics_test_accuracy_is_the_metric_not_the_training_one_and_validation_makes_the_curve(
    tmp_path, python
):
    text = script(TORCHMETRICS, 3)
    done, metrics, events, _ = harness(tmp_path, python, text)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = line_of(text, "test_accuracy = torchmetrics.functional.accuracy(")
    assert metrics["source"] == f"torchmetrics.functional.accuracy at train.py:{line}"
    val = [o for o in metrics["observations"] if o["name"] == "accuracy"][:-1]  # each epoch's, a Metric's
    evaluated = line_of(text, "return metric.compute()")
    assert [o["source"] for o in val] == [
        f"torchmetrics MulticlassAccuracy.compute() at train.py:{evaluated}"
    ] * 3
    assert any(o["name"] == "train_accuracy" for o in metrics["observations"])  # seen, never the metric
    shown = [float(v) for v in re.findall(r"val acc ([\d.]+)", done.stdout)]
    curve = [e.get("logs")["val_accuracy"] for e in events if e.kind is EventKind.EPOCH]
    assert curve == pytest.approx(shown, abs=5e-4) and len(curve) == 3


def test_lightning_s_test_metric_is_the_metric_and_its_epochs_carry_the_validation_accuracy(tmp_path, python):
    text = script(LIGHTNING, 3)
    done, metrics, events, out = harness(tmp_path, python, text)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert metrics["source"] == f"Trainer.test at train.py:{line_of(text, 'trainer.test(')}: test_acc"
    assert metrics["value"] > 0.5
    epochs = [e for e in events if e.kind is EventKind.EPOCH]
    assert [e.get("epoch") for e in epochs] == [1, 2, 3]
    assert all({"val_acc", "loss"} <= set(e.get("logs")) for e in epochs)
    assert (out / "checkpoints" / "lightning-0" / "epoch-000003.ckpt").is_file()
    assert metrics["inputs"] == [{"fit": 0, "samples": 1077, "dtype": "float32", "min": 0.0, "max": 1.0}]


def test_a_script_that_trains_and_never_evaluates_is_a_code_failure_naming_what_was_looked_for(
    tmp_path, python
):
    done, metrics, events, out = harness(tmp_path, python, NO_EVALUATION)
    assert done.returncode == ExitCode.NO_METRIC, done.stdout[-3000:] + done.stderr[-3000:]
    outcome = json.loads((out / "outcome.json").read_text())
    assert outcome["status"] == "no_metric"
    for looked_for in ("Trainer.test", "torchmetrics", "sklearn.metrics", "accuracy.txt", "printed"):
        assert looked_for in outcome["error"]
    assert [e.get("epoch") for e in events if e.kind is EventKind.EPOCH] == [1, 2]


def test_a_stop_at_the_target_ends_the_trial_with_that_epoch_s_own_validation_accuracy(tmp_path, python):
    done, metrics, events, _ = harness(tmp_path, python, script(TORCHMETRICS, 30), MLOPS_STOP_AT="0.6")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [stop] = [e for e in events if e.kind is EventKind.STOPPED]
    assert stop.get("why") == StopReason.TARGET and stop.get("value") >= 0.6 and stop.get("epoch") < 30
    assert metrics["value"] == stop.get("value") and "the training stopped there" in metrics["source"]
    assert "done" not in done.stdout.split()  # the script's code after its loop never ran, and never failed
    assert len([e for e in events if e.kind is EventKind.EPOCH]) == stop.get("epoch")


SMALL = """
import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset
X, y = load_digits(return_X_y=True)
data = DataLoader(TensorDataset(torch.tensor(X, dtype=torch.float32) / 16, torch.tensor(y)), batch_size=128)
model = MODEL
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
for epoch in range(3):
    for x, t in data:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), t).backward()
        optimizer.step()
print("accuracy", (model(torch.tensor(X, dtype=torch.float32) / 16).argmax(1) == torch.tensor(y)).float().mean().item())
"""


def test_a_checkpoint_that_does_not_fit_the_restarted_script_is_said_and_training_starts_over(
    tmp_path, python
):
    """A checkpoint is put back only into objects of the shapes it was taken from: here the script run again
    in the same trial folder has a model without a bias, so nothing is loaded and no epoch is skipped."""
    first, _, _, out = harness(tmp_path, python, SMALL.replace("MODEL", "nn.Linear(64, 10)"))
    assert first.returncode == 0 and (out / "checkpoints" / "torch" / "ckpt-000003.pt").is_file(), (
        first.stdout
    )
    done, metrics, events, _ = harness(
        tmp_path, python, SMALL.replace("MODEL", "nn.Linear(64, 10, bias=False)")
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    said = (
        "the checkpoint of epoch 3 cannot be put back when its epoch loop starts (Linear#0 of another shape)"
    )
    assert said in done.stdout
    assert metrics["resumed"] == [] and metrics["value"] > 0.5
    assert [e.get("epoch") for e in events if e.kind is EventKind.EPOCH][-3:] == [1, 2, 3]
