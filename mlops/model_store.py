"""The trained model a run gives back: ``runs/<run>/model/``, its card, and the space models take.

The harness saves the model behind each trial's metric into the trial's ``model/`` folder and says so in a
MODEL event (``mlops_harness.protocol``). When a run ends, the best trial's model goes to the run's
``model/`` folder (a hard link when the file system allows, so no second copy is written) with
``model.json``, its card: what it is, how well it did and where it came from, how to load it, the sha256
of the file, and whether it loaded in a fresh process of the environment it was trained in (the check is
injected: ``mlops.load_check`` on the run's runtime). Every step can be done again: a run whose
orchestrator died while publishing publishes again when it is resumed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.domain import KeepModels, TrialStatus
from mlops.errors import LedgerError
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops_harness.protocol import (
    CHECKPOINT_DIR,
    EVENTS_FILE,
    MODEL_CARD,
    MODEL_DIR,
    ModelFormat,
    file_sha256,
    last_model,
    read_json,
    to_json,
    write_atomic,
)

CARD_SCHEMA = 1
# (run, model folder) -> what the load check found; injected by the jobs layer with the run's runtime.
CheckModel = Callable[[RunRecord, Path], dict[str, Any]]


@dataclass(frozen=True)
class ModelPolicy:
    """What happens to models and checkpoints as trials and runs finish (settings keep_models and
    keep_checkpoints), and the load check to run on the run's model (None: not checked)."""

    keep: KeepModels = KeepModels.BEST
    keep_checkpoints: bool = False
    check: CheckModel | None = None


def trial_model(trial_dir: Path) -> dict[str, Any] | None:
    """What the harness said of a trial's model (its last MODEL event), or None if it said nothing."""
    return last_model(trial_dir / EVENTS_FILE)


def after_trial(trial_dir: Path, trial: TrialRecord, policy: ModelPolicy) -> None:
    """A finished trial whose model is saved needs its checkpoints no more (unless they are kept)."""
    if policy.keep_checkpoints or trial.status is not TrialStatus.SUCCEEDED:
        return
    model = trial_model(trial_dir)
    if model and model.get("saved") and (trial_dir / str(model.get("file"))).is_file():
        shutil.rmtree(trial_dir / CHECKPOINT_DIR, ignore_errors=True)


def run_model_dir(run: RunRecord) -> Path:
    return run.dir / MODEL_DIR


def read_card(run: RunRecord) -> dict[str, Any] | None:
    return read_json(run_model_dir(run) / MODEL_CARD)


def model_file(run: RunRecord) -> Path | None:
    """The run's model file, if the run has one."""
    card = read_card(run)
    if not card or not card.get("file"):
        return None
    path = run_model_dir(run) / str(card["file"])
    return path if path.is_file() else None


def _link_or_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)  # the same bytes under a second name: nothing written twice
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _card(run: RunRecord, best: TrialRecord, saved: dict[str, Any] | None) -> dict[str, Any]:
    saved = saved or {}
    card: dict[str, Any] = {
        "schema": CARD_SCHEMA,
        "file": None,
        "format": saved.get("format"),
        "load": None,
        "framework": saved.get("framework") or run.framework,
        "class": saved.get("class"),
        "metric": {
            "name": best.metric_name or run.metric,
            "value": best.metric,
            "source": best.metric_source,
            "target": run.target,
            "reached": best.metric is not None and best.metric >= run.target,
        },
        "input": saved.get("input"),
        "versions": saved.get("versions") or {},
        "environment": {"runtime": run.runtime, "image": run.image if run.runtime == "docker" else None},
        "run": run.id,
        "source": run.source,
        "ref": run.ref,
        "commit": run.commit,
        "script": run.script,
        "trial": {"number": best.number, "changes": best.changes, "seed": best.seed},
        "size_bytes": saved.get("size_bytes"),
        "sha256": saved.get("sha256"),
        "reload_error": saved.get("reload_error"),  # the harness could not load it back right after saving
        "saved_at": round(time.time(), 3),
        "check": None,
    }
    return card


def publish(ledger: Ledger, run: RunRecord, best: TrialRecord, policy: ModelPolicy) -> dict[str, Any]:
    """Put the best trial's model into ``runs/<run>/model/`` with its card, check that it loads, and let
    go of what the policy does not keep. Returns the card (written whatever happened: it says why)."""
    target = run_model_dir(run)
    target.mkdir(parents=True, exist_ok=True)
    best_dir = run.dir / "trials" / str(best.number)
    saved = trial_model(best_dir)
    card = _card(run, best, saved)
    if saved is None:
        card["error"] = (
            "the harness did not say what became of the model (its training was stopped before it saved "
            "one, or the trial is from before mlops saved models)"
        )
    elif not saved.get("saved"):
        card["error"] = f"the model was not saved: {saved.get('error')}"
    else:
        fmt = ModelFormat(str(saved["format"]))
        name = fmt.file_name
        src, dst = best_dir / str(saved["file"]), target / name
        if src.is_file():
            _link_or_copy(src, dst)
        if not dst.is_file():
            card["error"] = f"the model file {src} is gone"
        elif file_sha256(dst) != saved.get("sha256"):
            card["error"] = f"{name} is not the file the harness saved (its sha256 differs)"
        else:
            card.update(file=name, load=fmt.load_code(name))
    for stale in target.iterdir():  # an earlier run of this command published another format
        if stale.is_file() and stale.name not in (card["file"], MODEL_CARD):
            stale.unlink()
    write_atomic(target / MODEL_CARD, to_json(card))
    if card["file"] and policy.check is not None:
        card["check"] = policy.check(run, target)
        write_atomic(target / MODEL_CARD, to_json(card))
    _record(ledger, run, card)
    for trial in ledger.trials(run.id):
        folder = run.dir / "trials" / str(trial.number)
        after_trial(folder, trial, policy)
        if policy.keep is KeepModels.BEST:
            shutil.rmtree(folder / MODEL_DIR, ignore_errors=True)
    return card


def _record(ledger: Ledger, run: RunRecord, card: dict[str, Any]) -> None:
    trial = card["trial"]["number"]
    if not card["file"]:
        ledger.event(run.id, trial, "model-missing", str(card.get("error")))
        return
    check = card.get("check") or {}
    path = run_model_dir(run) / str(card["file"])
    if check.get("loaded"):
        said = "loads and predicts" if check.get("predicted") else "loads"
        ledger.event(
            run.id,
            trial,
            "model-saved",
            f"model of trial {trial}: {path} ({said})",
            {"sha256": card["sha256"]},
        )
    else:
        why = check.get("error") or "not checked"
        ledger.event(
            run.id, trial, "model-not-loaded", f"model of trial {trial}: {path} (did not load: {why})"
        )


def check_summary(card: dict[str, Any]) -> tuple[bool, str]:
    """Whether the model passed its load check, and that in words."""
    check = card.get("check")
    if check is None:
        return True, "not checked"
    if check.get("loaded") and check.get("predicted"):
        return True, "loads and predicts in a fresh process"
    if check.get("loaded") and check.get("predicted") is None:
        return True, "loads in a fresh process (no input recorded to predict on)"
    return False, f"did not pass its load check: {check.get('error')}"


def verdict(card: dict[str, Any] | None) -> str | None:
    """One sentence when the run's model is not usable as it is (not saved, did not load); else None."""
    if card is None:
        return None
    if not card.get("file"):
        return f"The best trial's model was not kept: {card.get('error')}"
    check = card.get("check") or {}
    if check.get("loaded") is False:
        return f"The model did not load in a fresh process: {check.get('error')}"
    if check.get("predicted") is False:
        return f"The model loaded but did not predict: {check.get('error')}"
    if check.get("error"):
        return f"The model could not be checked: {check.get('error')}"
    return None


def copy_out(ledger: Ledger, run_id: str, to: Path) -> list[Path]:
    """Copy a run's model file and its card into the folder ``to``; the paths written."""
    run = ledger.run(run_id)
    card = read_card(run)
    path = model_file(run)
    if card is None or path is None:
        why = (card or {}).get(
            "error"
        ) or "it has no model (no trial produced a metric, or it ran before mlops saved models)"
        raise LedgerError(f"run {run.id} has no model to copy: {why}")
    to.mkdir(parents=True, exist_ok=True)
    written = []
    for src in (path, run_model_dir(run) / MODEL_CARD):
        shutil.copy2(src, to / src.name)
        written.append(to / src.name)
    return written


def size_of(paths: Iterable[Path]) -> int:
    """Bytes used by files under ``paths`` (hard links counted once, symbolic links not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in paths:
        if not root.exists():
            continue
        for path in [root] if root.is_file() else root.rglob("*"):
            try:
                stat = path.lstat()
            except OSError:
                continue
            if path.is_symlink() or not path.is_file() or (stat.st_dev, stat.st_ino) in seen:
                continue
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_size
    return total


def workspace_space(workspace: Path) -> dict[str, int]:
    """What a workspace uses, in bytes: in total, and its models, checkpoints, checkouts and mirrors."""
    runs = [p for p in (workspace / "runs").glob("*") if p.is_dir()]
    return {
        "total": size_of([workspace]),
        "models": size_of(
            [r / MODEL_DIR for r in runs] + [t / MODEL_DIR for r in runs for t in (r / "trials").glob("*")]
        ),
        "checkpoints": size_of([t / CHECKPOINT_DIR for r in runs for t in (r / "trials").glob("*")]),
        "checkouts": size_of([workspace / "checkouts"]),
        "repos": size_of([workspace / "repos"]),
    }


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
