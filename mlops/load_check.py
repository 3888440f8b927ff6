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
from mlops_harness.protocol import LOG_FILE, MODEL_CARD

CHECK_TRIAL = -1  # the launch's number among the run's launches: not a trial
CHECK_TIMEOUT_S = 600.0


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
    scratch = RunLayout(run.dir).check_scratch  # its log and check.json while it runs, then removed
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    shutil.copy2(model_dir / MODEL_CARD, scratch / MODEL_CARD)  # what the check was asked about
    timeout = min(limits.timeout_s or CHECK_TIMEOUT_S, CHECK_TIMEOUT_S)
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
        check_model=True,
    )
    spec = in_environment(run, spec)
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
