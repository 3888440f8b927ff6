"""PyTorch scripts pushed as they are, on both runtimes: each style's metric (its printed accuracy, a
torchmetrics metric, Lightning's Trainer.test), its epochs, and a training killed with kill -9 mid-epoch
that job 6 restarts and that resumes at its last finished epoch with the metric it has without the kill.

One repository holds the three scripts beside a requirements.txt that lists pandas but not the torch,
Lightning and torchmetrics they import, and the plain loop keeps an unrelated Keras 2 import: each still
runs in the PyTorch generation with what it imports."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlops import envs
from mlops.domain import TrialStatus
from mlops.ledger import Ledger
from mlops.model_store import read_card
from mlops.progress import Progress
from mlops_harness.protocol import EVENTS_FILE, EventKind, read_events
from monitor.supervisor import RestartPolicy, Supervisor
from tests.support.envs import machine_env
from tests.support.processes import run_cli
from tests.support.repos import make_repo
from tests.support.torch_scripts import DIGITS_28, LIGHTNING, PLAIN_CNN, TORCHMETRICS, script
from tests.support.trials import ledger_trial, trial_spec

pytestmark = pytest.mark.slow
RUNTIMES = ["local", pytest.param("docker", marks=pytest.mark.docker)]
EPOCHS = {"cnn.py": 4, "metrics.py": 3, "lit.py": 4}
SCRIPTS = {"cnn.py": PLAIN_CNN, "metrics.py": TORCHMETRICS, "lit.py": LIGHTNING}


@dataclasses.dataclass
class Trained:
    metric: float
    source: str
    epochs: list[dict[str, Any]]
    env: envs.Environment
    log: str
    run_id: str = ""
    card: dict[str, Any] | None = None  # the run's model card (runs/<run>/model/model.json)
    workspace: Path | None = None


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory):
    """``mlops run`` (trial 0 only, no early stop) of the repository on a runtime, once per runtime."""
    done: dict[str, dict[str, Trained]] = {}

    def run(runtime: str) -> dict[str, Trained]:
        if runtime not in done:
            done[runtime] = train(tmp_path_factory.mktemp(f"torch-{runtime}"), runtime)
        return done[runtime]

    return run


def train(root: Path, runtime: str) -> dict[str, Trained]:
    from jobs.pipeline import run_source
    from mlops.config import load_settings

    files = {name: script(text, EPOCHS[name]) for name, text in SCRIPTS.items()}
    repo = make_repo(root / "repo", {**files, "requirements.txt": "pandas\n"})
    flags = {"workspace": str(root / "ws"), "runtime": runtime, "max_trials": 1, "target": 0.99}
    settings = load_settings({**flags, "patience": 0, "stop_at_target": False}, env=machine_env())
    out = io.StringIO()
    run_source(settings, str(repo), None, new_run=True, progress=Progress(stream=out))
    ledger = Ledger(settings.ledger_path)
    trained = {}
    try:
        for run in ledger.runs():
            folder = run.dir / "trials" / "0"
            metrics = (
                json.loads((folder / "metrics.json").read_text())
                if (folder / "metrics.json").exists()
                else {}
            )
            env = envs.recorded(ledger, run.id)
            assert env is not None, out.getvalue()
            trained[run.script] = Trained(
                metrics.get("value", -1.0),
                metrics.get("source", ""),
                metrics.get("history", []),
                env,
                out.getvalue(),
                run.id,
                read_card(run),
                root / "ws",
            )
    finally:
        ledger.close()
    return trained


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_each_style_s_own_metric_with_its_epochs_in_the_pytorch_generation(pushed, runtime, request):
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    trained = pushed(runtime)
    assert sorted(trained) == sorted(SCRIPTS), next(iter(trained.values())).log if trained else "no run"
    for name, got in trained.items():
        assert got.env.generation is envs.Generation.PYTORCH, got.log
        assert got.metric > 0.5, f"{name}: {got.log}"
        assert [h["epoch"] for h in got.epochs] == list(range(1, EPOCHS[name] + 1)), got.epochs
    assert trained["cnn.py"].source.startswith("printed at cnn.py:")
    assert "Test Accuracy of the model" in trained["cnn.py"].source
    assert trained["metrics.py"].source.startswith("torchmetrics.functional.accuracy at metrics.py:")
    assert trained["lit.py"].source.startswith("Trainer.test at lit.py:") and trained[
        "lit.py"
    ].source.endswith("test_acc")
    assert all("val_accuracy" in h for h in trained["metrics.py"].epochs)
    installed = " ".join(trained["lit.py"].env.installed)
    assert "lightning==" in installed and "torchmetrics==" in installed  # imported, not in requirements.txt


def killed_mid_epoch(runtime: Any, ledger: Ledger, run: Any, spec: Any, epochs: int) -> list[int]:
    """Kill the training (kill -9) once it has saved a checkpoint at an epoch before its last; the epochs
    whose checkpoint it had when killed."""
    kills: list[int] = []

    def killer() -> None:
        events = spec.trial_dir / EVENTS_FILE
        while True:
            saved = [e.get("epoch") for e in read_events(events) if e.kind is EventKind.CHECKPOINT]
            if saved and 2 <= saved[-1] < epochs:
                break
            if ledger.trial(run.id, 0).status.is_finished():
                return
            time.sleep(0.05)
        handle = ledger.trial(run.id, 0).handle
        if "container" in handle:
            runtime.kill_container(handle)
        else:
            os.killpg(handle["pid"], signal.SIGKILL)
        kills.append(saved[-1])

    threading.Thread(target=killer, daemon=True).start()
    return kills


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", ["cnn.py", "lit.py"])
def test_a_training_killed_mid_epoch_resumes_at_its_checkpoint_with_the_metric_it_has_unkilled(
    pushed, runtime, name, tmp_path, request
):
    if runtime == "docker":
        request.getfixturevalue("docker_images")
        made = request.getfixturevalue("docker_runtime")(tmp_path / "ws")
    else:
        from mlops.runtime.local import LocalRuntime

        made = LocalRuntime(tmp_path / "ws")
    unkilled = pushed(runtime)[name]
    spec = trial_spec(tmp_path, name.removesuffix(".py"), script(SCRIPTS[name], EPOCHS[name]), timeout_s=1200)
    spec = dataclasses.replace(
        spec, python=unkilled.env.python, image=unkilled.env.image or spec.image, env={"MLOPS_SEED": "0"}
    )
    ledger, run, trial = ledger_trial(spec, runtime=runtime)
    kills = killed_mid_epoch(made, ledger, run, spec, EPOCHS[name])
    devnull = open(os.devnull, "w")  # noqa: SIM115
    finished = Supervisor(made, ledger, Progress(devnull), RestartPolicy(base_delay_s=0.1)).execute(
        run, trial, spec
    )
    log = (spec.trial_dir / "log.txt").read_text(errors="replace")
    assert len(kills) == 1 and finished.status is TrialStatus.SUCCEEDED and finished.restarts == 1, log[
        -3000:
    ]
    metrics = json.loads((spec.trial_dir / "metrics.json").read_text())
    assert metrics["resumed"] == [{"fit": 0, "epoch": kills[0]}]  # at its checkpoint, not from 0
    trained = [e.get("epoch") for e in read_events(spec.trial_dir / EVENTS_FILE) if e.kind is EventKind.EPOCH]
    assert trained == list(range(1, EPOCHS[name] + 1)), trained  # no finished epoch trained again
    assert metrics["value"] == pytest.approx(unkilled.metric, abs=0.02)


# The script's test split made again, and the returned model's accuracy on it: no line of the script.
EVALUATE = (
    DIGITS_28
    + """\
import sys
model = torch.export.load(sys.argv[1]).module() if sys.argv[1].endswith(".pt2") else torch.jit.load(sys.argv[1])
with torch.no_grad():
    predicted = model(torch.tensor(X_test)).argmax(1).numpy()
print(float((predicted == y_test).mean()))
"""
)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_each_style_s_model_is_given_back_loads_without_the_script_and_reproduces_its_metric(
    pushed, runtime, request, tmp_path
):
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    for name, got in pushed(runtime).items():
        card, folder = got.card, got.workspace / "runs"
        assert card is not None and card["file"] in ("model.pt2", "model.ts"), f"{name}: {card}"
        model = next(p for p in folder.glob(f"*/model/{card['file']}") if p.parent.parent.name == got.run_id)
        assert card["framework"] == "pytorch" and card["input"]["shape"] == [None, 1, 28, 28], card
        assert card["state_dict"]["file"] == "model.pt" and (model.parent / "model.pt").is_file()
        check = card["check"]  # loaded and predicted in a fresh process of the run's own environment
        assert check["loaded"] and check["predicted"] and check["output_shape"] == [4, 10], check
        assert check["runtime"] == runtime
        if runtime == "local":  # the run's interpreter, in a folder without the script's source
            where = tmp_path / name
            where.mkdir()
            (where / "evaluate.py").write_text(EVALUATE)
            done = subprocess.run(
                [got.env.python, "evaluate.py", str(model)],
                cwd=where,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            assert float(done.stdout.split()[-1]) == pytest.approx(got.metric, abs=1e-4), name
        shown = run_cli("model", got.run_id, "--workspace", str(got.workspace), cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert (
            str(model) in shown.stdout
            and "state_dict:" in shown.stdout
            and "loads and predicts" in shown.stdout
        )
