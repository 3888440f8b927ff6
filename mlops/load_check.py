"""Does the run's model load? The harness's ``--check-model``, launched through the run's own runtime.

Loading a pickle runs code, and a model only proves it loads where it will be used: so the check is a fresh
process of the environment the trial trained in (the local runtime's interpreter, or a container of the
same image), with the same sandbox and limits as a training, no network, and the model folder read-only.
What it found (``check.json``, see ``mlops_harness.model_check``) goes into the model's card.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.errors import TrialLaunchError
from mlops.layout import RunLayout
from mlops.ledger import RunRecord
from mlops.runtime.base import Limits, Runtime, TrialSpec
from mlops.trial import tail
from mlops.trial_files import BadTrialFile
from mlops.trial_records import check_result
from mlops_harness.protocol import CHECK_PRELOAD_ENV, LOG_FILE, MODEL_CARD

CHECK_TRIAL = -1  # the launch's number among the run's launches: not a trial
CHECK_TIMEOUT_S = 600.0
PRELOADS = {  # framework (mlops.classify) -> what loading its model imports
    "keras": ("keras",),
    "tf.keras": ("keras",),
    "tensorflow": ("keras",),
    "sklearn": ("numpy", "sklearn", "joblib"),
    "pytorch": ("torch",),
}


def check_model(
    runtime: Runtime[Any],
    run: RunRecord,
    model_dir: Path,
    limits: Limits,
    in_environment: Callable[[RunRecord, TrialSpec], TrialSpec] = lambda run, spec: spec,
) -> dict[str, Any]:
    """Load the model in ``model_dir`` (with its card) in a fresh process of the run's environment (the
    interpreter or image ``in_environment`` gives the launch) and predict on a batch of its recorded input;
    what happened (``loaded``, ``predicted``, ``error``...)."""
    return ModelCheck(runtime, limits, in_environment)(run, model_dir)


def preloaded(run: RunRecord) -> list[str]:
    """The libraries the check of ``run``'s model imports to load it, by the framework job 2 found: what
    its process started ahead imports while it waits (never a module of the repository)."""
    return list(PRELOADS.get(run.framework or "", ()))


class ModelCheck:
    """The load check of each run's model on ``runtime``. Where the runtime can (the local one, see
    ``LocalRuntime.prestart``), :meth:`start` launches the check's process while the run trains: it imports
    the framework and waits, and the check at the run's end gives it the model (the check then takes a
    fraction of a second instead of a framework's import). It is still a process that loaded no model, in
    the run's environment and sandbox; :meth:`end` ends one the run did not need."""

    def __init__(
        self,
        runtime: Runtime[Any],
        limits: Limits,
        in_environment: Callable[[RunRecord, TrialSpec], TrialSpec] = lambda run, spec: spec,
    ) -> None:
        self.runtime, self.limits, self.in_environment = runtime, limits, in_environment
        self._ahead: set[str] = set()  # the runs whose check was started ahead by this process

    def spec(self, run: RunRecord, model_dir: Path) -> TrialSpec:
        scratch = RunLayout(run.dir).check_scratch
        timeout = min(self.limits.timeout_s or CHECK_TIMEOUT_S, CHECK_TIMEOUT_S)
        limits = self.limits
        spec = TrialSpec(
            run_id=run.id,
            trial=CHECK_TRIAL,
            code_dir=model_dir,
            script="",
            source_file=scratch / MODEL_CARD,
            trial_dir=scratch,
            image=run.image or "",
            limits=Limits(timeout_s=timeout, memory_mb=limits.memory_mb, cpus=limits.cpus, pids=limits.pids),
            network=False,
            env={CHECK_PRELOAD_ENV: ",".join(preloaded(run))},
            check_model=True,
        )
        return self.in_environment(run, spec)

    def start(self, run: RunRecord) -> None:
        """Start the check of ``run``'s model ahead, if the runtime can: one per run (again when the one
        started ended by itself)."""
        if not self.runtime.capabilities.starts_ahead:
            return
        model_dir = RunLayout(run.dir).model
        if run.id not in self._ahead:  # what an earlier process's check left (its check.json) goes
            shutil.rmtree(RunLayout(run.dir).check_scratch, ignore_errors=True)
        model_dir.mkdir(parents=True, exist_ok=True)  # mounted: it must be there, the model comes later
        self.runtime.prestart(self.spec(run, model_dir))
        self._ahead.add(run.id)

    def end(self, run: RunRecord) -> None:
        """End the check started ahead for ``run`` if it was not given a model (the run stopped first)."""
        if run.id in self._ahead:
            self._ahead.discard(run.id)
            self.runtime.end_ahead(self.spec(run, RunLayout(run.dir).model))

    def __call__(self, run: RunRecord, model_dir: Path) -> dict[str, Any]:
        scratch = RunLayout(run.dir).check_scratch
        if run.id in self._ahead and model_dir == RunLayout(run.dir).model:
            self._ahead.discard(run.id)  # its process is given this check (a new one if it went away)
            scratch.mkdir(parents=True, exist_ok=True)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
        shutil.copy2(model_dir / MODEL_CARD, scratch / MODEL_CARD)  # what the check was asked about
        return _launch(self.runtime, run, self.spec(run, model_dir))


def _launch(runtime: Runtime[Any], run: RunRecord, spec: TrialSpec) -> dict[str, Any]:
    scratch = spec.trial_dir
    where = (
        {"runtime": runtime.name, "image": spec.image or run.image}
        if runtime.capabilities.images
        else {"runtime": runtime.name}
    )
    started = time.time()
    try:
        try:
            handle = runtime.run(spec)
            outcome = runtime.wait(handle)
            for _ in runtime.logs(handle, follow=False):  # a container's output goes to the log file
                pass
            runtime.remove(handle)
        except Exception as e:  # noqa: BLE001 (it could not start, the engine went away: the model stays, unchecked)
            why = e.reason if isinstance(e, TrialLaunchError) else f"{type(e).__name__}: {e}"
            return {"loaded": None, "predicted": None, "error": f"the check did not run: {why}", **where}
        result = _result(scratch, outcome.describe())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {**result, **where, "seconds": round(time.time() - started, 1), "at": round(time.time(), 3)}


def _result(scratch: Path, ended: str) -> dict[str, Any]:
    """What the check said (``check.json``, a record of the harness run on the model: checked like any
    trial's), or how it ended with its last line of output when it said nothing usable."""
    try:
        found = check_result(scratch)
    except BadTrialFile as e:
        return {"loaded": False, "predicted": False, "error": f"the check left {e}"}
    if found is not None:
        return found.as_json()
    last = tail(scratch, LOG_FILE, 5).strip().splitlines()
    said = f" (last output: {last[-1][:300]})" if last else ""
    return {"loaded": False, "predicted": False, "error": f"the check {ended}{said}"}
