"""The model's load check started ahead (local runtime): its process imports the framework while the run
trains and is given the model when the run ends, so the command ends soon after its last trial; it is still
a process that loaded no model, and a run that stops first ends it."""

from __future__ import annotations

import io
import time
from pathlib import Path

import joblib
import numpy as np
import psutil
from sklearn.linear_model import LogisticRegression

from mlops.domain import RunStatus, TrialStatus
from mlops.layout import ORIGINAL, RunLayout
from mlops.ledger import Ledger, TrialEnd
from mlops.load_check import ModelCheck
from mlops.model_store import ModelPolicy, read_card
from mlops.runtime.base import Limits
from mlops.runtime.local import KEEPER, LocalRuntime
from tests.support.models_left import SKLEARN, trial_with_model
from tweak.loop import finish_run

SCRIPT = "import numpy as np\nfrom sklearn.linear_model import LogisticRegression\n"
PRELOADED = "started ahead: numpy, sklearn, joblib loaded"


def keepers_of(folder: Path) -> list[int]:
    """The keeper processes of launches in ``folder``."""
    inside = str(folder.resolve())
    return [
        proc.info["pid"]
        for proc in psutil.process_iter(["pid", "cmdline"])
        if str(KEEPER) in (proc.info.get("cmdline") or [])
        and any(arg == inside or arg.startswith(f"{inside}/") for arg in proc.info["cmdline"])
    ]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(predicate, seconds: float = 120.0) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


class Recording(LocalRuntime):
    """The local runtime, noting the process each launch is given to."""

    launched: list[int]

    def run(self, spec):  # type: ignore[no-untyped-def]
        handle = super().run(spec)
        self.__dict__.setdefault("launched", []).append(handle.pid)
        return handle


def model_bytes() -> bytes:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 64)), np.arange(40) % 2
    out = io.BytesIO()
    joblib.dump(LogisticRegression(max_iter=50).fit(X, y), out)
    return out.getvalue()


def new_run(tmp_path):
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    (tmp_path / "clf.py").write_text(SCRIPT)
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
        max_trials=1,
        settings={"seed": 0},
        runs_dir=tmp_path / "ws" / "runs",
    )
    (run.dir / ORIGINAL).write_text(SCRIPT)
    return ledger, run


def scratch_log(run):
    log = RunLayout(run.dir).check_scratch / "log.txt"
    return log.read_text() if log.exists() else ""


def test_the_check_started_ahead_is_given_the_model_when_the_run_ends(tmp_path):
    runtime = Recording(tmp_path / "ws")
    check = ModelCheck(runtime, Limits(timeout_s=120, memory_mb=2048))
    ledger, run = new_run(tmp_path)
    check.start(run)  # as the run's first trial starts, before any model exists
    wait_until(lambda: PRELOADED in scratch_log(run))
    [waiting] = keepers_of(RunLayout(run.dir).check_scratch)
    runtime.prestart(None)  # the run stops: trials started ahead end, its model's check waits on
    assert not gone(waiting)

    trial_with_model(RunLayout(run.dir).trial(0).dir, model_bytes())
    ledger.add_trial(run.id, 0, [], [], 0, TrialStatus.PENDING)
    ledger.finish_trial(run.id, 0, TrialEnd(TrialStatus.SUCCEEDED, metric_name="accuracy", metric=0.95))
    policy = ModelPolicy(check=check, check_ahead=check)
    run = finish_run(ledger, run, SCRIPT, RunStatus.REACHED, "target reached", policy)

    assert runtime.launched == [waiting]  # the process started ahead did the check, none other
    card = read_card(run)
    assert card["check"]["loaded"] is True and card["check"]["predicted"] is True, card["check"]
    assert card["check"]["output_shape"] == [4] and card["check"]["class"] == "LogisticRegression"
    assert gone(waiting) and not (RunLayout(run.dir).check_scratch).exists()
    check.end(run)  # nothing left to end
    assert not (RunLayout(run.dir).check_scratch).exists()


def test_a_run_that_stops_before_its_model_ends_the_check_started_ahead(tmp_path):
    runtime = LocalRuntime(tmp_path / "ws")
    check = ModelCheck(runtime, Limits(timeout_s=120, memory_mb=2048))
    _, run = new_run(tmp_path)
    check.start(run)
    [waiting] = keepers_of(RunLayout(run.dir).check_scratch)
    check.start(run)  # again, as each trial starts: the one waiting stays
    assert keepers_of(RunLayout(run.dir).check_scratch) == [waiting]
    check.end(run)
    assert gone(waiting) and not (RunLayout(run.dir).check_scratch).exists()
    assert not any((run.dir / "model").iterdir())  # the folder the model would have come to, empty


def test_a_check_not_started_ahead_still_runs_in_a_fresh_process(tmp_path):
    runtime = Recording(tmp_path / "ws")
    check = ModelCheck(runtime, Limits(timeout_s=120, memory_mb=2048))
    ledger, run = new_run(tmp_path)
    trial_with_model(RunLayout(run.dir).trial(0).dir, model_bytes())
    ledger.add_trial(run.id, 0, [], [], 0, TrialStatus.PENDING)
    ledger.finish_trial(run.id, 0, TrialEnd(TrialStatus.SUCCEEDED, metric_name="accuracy", metric=0.95))
    run = finish_run(ledger, run, SCRIPT, RunStatus.REACHED, "target reached", ModelPolicy(check=check))
    card = read_card(run)
    assert card["check"]["loaded"] is True and card["check"]["predicted"] is True, card["check"]
    assert len(runtime.launched) == 1 and not (RunLayout(run.dir).check_scratch).exists()
