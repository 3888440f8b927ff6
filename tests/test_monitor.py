"""Job 6: the restart policy, and chaos: trainings killed mid-epoch come back from their checkpoint."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from mlops.domain import EndReason, TrialStatus
from mlops.progress import Progress
from mlops.runtime.base import Outcome
from mlops.runtime.local import LocalRuntime
from mlops.trial import LaunchResult
from mlops_harness.protocol import EventKind, FailureClass, decode_event, encode_event
from monitor.supervisor import Action, RestartPolicy, Supervisor, epoch_of
from tests.support.scripts import SLOW_KERAS
from tests.support.trials import ledger_trial, trial_spec


def result(reason: EndReason, failure: FailureClass | None, status=TrialStatus.FAILED) -> LaunchResult:
    return LaunchResult(status, Outcome(reason, 1 if reason is EndReason.EXITED else None), failure=failure)


def test_crashes_restart_with_growing_backoff_up_to_the_limit():
    policy = RestartPolicy(max_restarts=3, base_delay_s=0.5)
    killed = result(EndReason.SIGNAL, FailureClass.CRASH)
    decisions = [policy.decide(killed, n) for n in range(4)]
    assert [d.action for d in decisions] == [Action.RESTART] * 3 + [Action.GIVE_UP]
    assert [d.delay_s for d in decisions[:3]] == [0.5, 1.0, 2.0]
    assert policy.decide(result(EndReason.OOM, FailureClass.OOM), 0).action is Action.RESTART


def test_an_exception_of_the_script_is_not_trained_again_to_see_it_fail_the_same_way():
    policy = RestartPolicy()
    for failure in (FailureClass.CODE, FailureClass.ENVIRONMENT, FailureClass.DATA, FailureClass.INPUT):
        decision = policy.decide(result(EndReason.EXITED, failure), 0)
        assert (
            decision.action is Action.FINISH
            and f"a {failure.value} failure is not restarted" in decision.reason
        )
    assert policy.decide(result(EndReason.TIMEOUT, FailureClass.TIMEOUT), 0).action is Action.FINISH
    ok = result(EndReason.EXITED, None, status=TrialStatus.SUCCEEDED)
    assert policy.decide(ok, 2).action is Action.FINISH


def test_epoch_events_are_decoded():
    line = encode_event(EventKind.EPOCH, fit=0, epoch=3, epochs=10, logs={"accuracy": 0.91, "loss": 0.3})
    assert epoch_of(decode_event(line)) == (
        3,
        {"accuracy": 0.91, "loss": 0.3},
    )
    assert epoch_of(decode_event(encode_event(EventKind.RESUMED, fit=0, epoch=3))) is None
    assert decode_event("[mlops] epoch 3/10 accuracy=0.9100") is None
    assert decode_event(line[: len(line) // 2]) is None  # cut short by a kill


def chaos_trial(tmp_path: Path, epochs: int):
    spec = trial_spec(
        tmp_path, "slow", SLOW_KERAS.replace("EPOCHS", str(epochs)), timeout_s=300, memory_mb=None
    )
    ledger, run, trial = ledger_trial(spec)
    return ledger, run, trial, spec


MEASURES_THEN_WAITS = """
import time
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, y = load_iris(return_X_y=True)
print("score", LogisticRegression(max_iter=500).fit(X, y).score(X, y), flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_a_training_killed_after_it_measured_keeps_its_metric_when_its_restarts_are_given_up(tmp_path):
    spec = trial_spec(tmp_path, "measured", MEASURES_THEN_WAITS, timeout_s=300)
    ledger, run, trial = ledger_trial(spec)
    events = spec.trial_dir / "events.jsonl"

    def killer():
        while '"event": "measured"' not in (events.read_text() if events.exists() else ""):
            time.sleep(0.05)
        os.killpg(ledger.trial(run.id, 0).handle["pid"], signal.SIGKILL)  # from outside, as an OOM killer

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    supervisor = Supervisor(LocalRuntime(tmp_path / "ws"), ledger, Progress(), RestartPolicy(max_restarts=0))
    finished = supervisor.execute(run, trial, spec)
    thread.join(timeout=5)
    assert finished.status is TrialStatus.SUCCEEDED and finished.end_reason == "signal", finished
    assert finished.metric == pytest.approx(0.9733, abs=0.01)
    assert finished.metric_source == "score, before the signal" and "kept" in (finished.hint or "")


@pytest.mark.slow
def test_a_training_killed_mid_epoch_three_times_finishes_all_its_epochs(tmp_path):
    epochs, kills_at = 8, (2, 4, 6)
    ledger, run, trial, spec = chaos_trial(tmp_path, epochs)
    log = spec.trial_dir / "log.txt"
    kills: list[int] = []

    def killer():
        for after in kills_at:
            while True:  # wait until that epoch is done in the current launch, then kill mid-next-epoch
                text = log.read_text() if log.exists() else ""
                current = ledger.trial(run.id, 0)
                launch = text.split("[mlops] running slow.py")[-1]
                if f"[mlops] epoch {after + 1}/" in launch or f"[mlops] epoch {after}/" in launch:
                    break
                if current.status.is_finished():
                    return
                time.sleep(0.05)
            time.sleep(0.3)
            pid = ledger.trial(run.id, 0).handle["pid"]
            os.killpg(pid, signal.SIGKILL)
            kills.append(after)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    supervisor = Supervisor(
        LocalRuntime(tmp_path / "ws"), ledger, Progress(), RestartPolicy(max_restarts=5, base_delay_s=0.1)
    )
    finished = supervisor.execute(run, trial, spec)
    thread.join(timeout=5)
    assert kills == list(kills_at)
    assert finished.status is TrialStatus.SUCCEEDED and finished.restarts == 3
    metrics = json.loads((spec.trial_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in sorted(metrics["history"], key=lambda h: h["epoch"])] == list(
        range(1, epochs + 1)
    )
    trained = log.read_text().count("[mlops] epoch ")
    assert trained <= epochs + len(kills_at), f"more than one epoch lost per kill: {trained} epochs trained"
    restarted = [e for e in ledger.events(run.id) if e.kind == "trial-restarted"]
    assert len(restarted) == 3


@pytest.mark.slow
def test_short_epochs_are_checkpointed_no_closer_than_the_minimum_gap(tmp_path):
    """A checkpoint costs tens of milliseconds; epochs of a small model can be a few times that. The first
    epoch is always saved; after it, no two checkpoints are written less than 0.4 s apart."""
    from mlops_harness.protocol import EVENTS_FILE, read_events
    from tests.support.processes import run_harness

    done, out = run_harness(tmp_path, SLOW_KERAS.replace("EPOCHS", "12").replace("time.sleep(0.04)", "pass"))
    assert done.returncode == 0, done.stdout + done.stderr
    events = read_events(out / EVENTS_FILE)
    saved = [e for e in events if e.kind is EventKind.CHECKPOINT]
    epochs = [e for e in events if e.kind is EventKind.EPOCH]
    assert len(epochs) == 12 and saved and saved[0].get("epoch") == 1
    gaps = [b.at - a.at for a, b in zip(saved, saved[1:], strict=False)]
    assert all(gap >= 0.4 - 0.002 for gap in gaps), gaps  # event times are rounded to the millisecond


@pytest.mark.slow
def test_a_corrupt_checkpoint_falls_back_to_the_one_before_and_says_so(tmp_path):
    from tests.support.processes import run_harness

    script = SLOW_KERAS.replace("EPOCHS", "3")  # epochs over the checkpoints' minimum gap: one each
    first, out = run_harness(tmp_path, script)
    assert first.returncode == 0, first.stdout + first.stderr
    checkpoints = sorted((out / "checkpoints" / "fit-0").glob("ckpt-*"))
    assert [c.name for c in checkpoints] == [
        "ckpt-000002-000000",
        "ckpt-000003-000000",
    ]  # the two newest kept
    (checkpoints[-1] / "model.weights.h5").write_bytes(b"half-written")
    again, out = run_harness(tmp_path, script)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "checkpoint ckpt-000003-000000 cannot be read" in again.stdout
    assert "resumed fit 0 from its checkpoint at epoch 2" in again.stdout
    assert "[mlops] epoch 3/3" in again.stdout and "[mlops] epoch 1/3" not in again.stdout
