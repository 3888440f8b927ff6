"""Runs whose trials left a model as the harness leaves it (its bytes and its MODEL event), ended by the real
``finish_run``: for the model store's tests, and the reader's."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlops.domain import RunStatus, TrialStatus
from mlops.layout import ORIGINAL, SOURCE, RunLayout
from mlops.ledger import Ledger, TrialEnd
from mlops.model_store import ModelPolicy
from mlops_harness.protocol import EVENTS_FILE, EventKind, EventWriter
from tweak.loop import finish_run

SKLEARN = {"kind": "other", "family": "classic", "framework": "sklearn", "image": "mlops-sklearn"}


def trial_with_model(folder: Path, content: bytes | None, error: str = "") -> None:
    """A trial folder as the harness leaves it: its source, a checkpoint, and its model with its event."""
    (folder / "checkpoints" / "fit-0" / "ckpt-000001-000000").mkdir(parents=True)
    (folder / SOURCE).write_text("print('trained')\n")
    events = EventWriter(folder / EVENTS_FILE)
    if content is None:
        events.write(EventKind.MODEL, saved=False, error=error, **{"class": "Odd"})
    else:
        (folder / "model").mkdir()
        (folder / "model" / "model.pkl").write_bytes(content)
        events.write(
            EventKind.MODEL,
            saved=True,
            file="model/model.pkl",
            format="pickle",
            framework="sklearn",
            origin="score",
            input={"kind": "array", "shape": [None, 64], "dtype": "float64"},
            versions={"python": "3.11.7", "scikit-learn": "1.9.1"},
            size_bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            reload_error=None,
            **{"class": "LogisticRegression"},
        )
    events.close()


def finished_run(tmp_path: Path, models: list[bytes | None], policy: ModelPolicy | None = None):
    """A run whose trials scored 0.5, 0.6, ... (the last is the best), ended by ``finish_run``."""
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    run = ledger.create_run(
        name="clf",
        source="https://example.com/models.git",
        ref="main",
        commit="a" * 40,
        author="Ada",
        code_dir=tmp_path,
        script="clf.py",
        classification=SKLEARN,
        runtime="local",
        metric="accuracy",
        target=0.9,
        strategy="tpe",
        max_trials=len(models),
        settings={"seed": 0},
        runs_dir=tmp_path / "ws" / "runs",
    )
    (run.dir / ORIGINAL).write_text("print('trained')\n")
    for number, content in enumerate(models):
        trial_with_model(
            RunLayout(run.dir).trial(number).dir, content, error="PicklingError: cannot pickle 'generator'"
        )
        ledger.add_trial(run.id, number, [], [f"change {number}"], number, TrialStatus.PENDING)
        ledger.finish_trial(run.id, number, TrialEnd(TrialStatus.SUCCEEDED, metric_name="accuracy", metric=0.5 + number / 10, metric_source="score"))  # fmt: skip
    run = finish_run(ledger, run, "print('trained')\n", RunStatus.EXHAUSTED, "budget used", policy)
    return ledger, run
