"""The trained model a run gives back: ``runs/<run>/model/``, its card, and the space models take.

The harness saves the model behind each trial's metric into the trial's ``model/`` folder and says so in a
MODEL event (``mlops_harness.protocol``). When a run ends, the best trial's model is copied to the run's
``model/`` folder (a copy of its own, never a link to what the trial left: see :func:`publish`) with
``model.json``, its card: what it is, how well it did and where it came from, how to load it, the sha256
of the file, and whether it loaded in a fresh process of the environment it was trained in (the check is
injected: ``mlops.load_check`` on the run's runtime). Every step can be done again: a run whose
orchestrator died while publishing publishes again when it is resumed.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlops import trial_files
from mlops.domain import KeepModels, TrialStatus
from mlops.errors import LedgerError
from mlops.layout import RunLayout, TrialLayout, WorkspaceLayout
from mlops.ledger import Ledger, LedgerEventKind, RunRecord, TrialRecord
from mlops.ledger.events import ModelSaved
from mlops.model_card import build, checked
from mlops.trial_files import BadTrialFile, stat_regular
from mlops.trial_records import ModelFields, WeightsFields, last_model
from mlops_harness.protocol import (
    MODEL_CARD,
    STATE_DICT_FILE,
    file_sha256,
    read_json,
    to_json,
    write_atomic,
)

# (run, model folder) -> what the load check found; injected by the jobs layer with the run's runtime.
CheckModel = Callable[[RunRecord, Path], dict[str, Any]]


class CheckAhead(Protocol):
    """The load check's process started while a run trains, so that the check at its end is quick
    (``mlops.load_check.ModelCheck``): ``start`` as the run trains, ``end`` when it stops."""

    def start(self, run: RunRecord) -> None: ...

    def end(self, run: RunRecord) -> None: ...


@dataclass(frozen=True)
class ModelPolicy:
    """What happens to models and checkpoints as trials and runs finish (settings keep_models and
    keep_checkpoints), and the load check to run on the run's model (None: not checked)."""

    keep: KeepModels = KeepModels.BEST
    keep_checkpoints: bool = False
    check: CheckModel | None = None
    check_ahead: CheckAhead | None = None  # the check's process started while the run trains


def trial_model(trial_dir: Path) -> ModelFields | None:
    """What the harness said of a trial's model (its last MODEL event, checked), or None if it said
    nothing. BadTrialFile when the trial's events are not what the harness writes."""
    return last_model(trial_dir)


def after_trial(trial_dir: Path, trial: TrialRecord, policy: ModelPolicy) -> None:
    """A finished trial whose model is saved needs its checkpoints no more (unless they are kept)."""
    if policy.keep_checkpoints or trial.status is not TrialStatus.SUCCEEDED:
        return
    try:
        model = trial_model(trial_dir)
        kept = (
            model is not None and model.file is not None and stat_regular(trial_dir, model.file) is not None
        )
    except BadTrialFile:
        return
    if kept:
        shutil.rmtree(TrialLayout(trial_dir).checkpoints, ignore_errors=True)


def run_model_dir(run: RunRecord) -> Path:
    return RunLayout(run.dir).model


def read_card(run: RunRecord) -> dict[str, Any] | None:
    """The run's model card, its fields checked (see mlops.model_card); None when it has none."""
    card = read_json(RunLayout(run.dir).model_card)
    return checked(card) if card is not None else None


def model_file(run: RunRecord) -> Path | None:
    """The run's model file, if the run has one (a file of its own, never a link)."""
    card = read_card(run)
    if not card or not card.get("file"):
        return None
    path = run_model_dir(run) / str(card["file"])
    return path if _own_file(path) else None


def _own_file(path: Path) -> bool:
    """A regular file with no other name: what mlops published (an older mlops linked the trial's)."""
    try:
        found = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(found.st_mode) and found.st_nlink == 1


def publish(ledger: Ledger, run: RunRecord, best: TrialRecord, policy: ModelPolicy) -> dict[str, Any]:
    """Put the best trial's model into ``runs/<run>/model/`` with its card, check that it loads, and let
    go of what the policy does not keep. Returns the card (written whatever happened: it says why).

    Only the file the MODEL event names inside the trial's ``model/`` folder is taken, copied (never
    linked) through the trial reader, and only when it is the size and sha256 the harness saved: a
    refusal says what the trial's folder holds, never anything of a path outside it."""
    layout = RunLayout(run.dir)
    target = layout.model
    target.mkdir(parents=True, exist_ok=True)
    best_dir = layout.trial(best.number).dir
    try:
        saved, problem = trial_model(best_dir), None
    except BadTrialFile as e:
        saved, problem = None, e
    card = build(run, best, saved)
    if problem is not None:
        card["error"] = f"the model is not taken: {problem}"
    elif saved is None:
        card["error"] = (
            "the harness did not say what became of the model (its training was stopped before it saved "
            "one, or the trial is from before mlops saved models)"
        )
    elif not saved.saved:
        card["error"] = f"the model was not saved: {saved.error}"
    else:
        _take(best_dir, saved, target, card)
    kept = (card["file"], MODEL_CARD, (card.get("state_dict") or {}).get("file"))
    for stale in target.iterdir():  # an earlier run of this command published another format
        if stale.name not in kept and (stale.is_symlink() or stale.is_file()):
            stale.unlink()
    write_atomic(layout.model_card, to_json(card))
    if card["file"] and policy.check is not None:
        card["check"] = policy.check(run, target)
        write_atomic(layout.model_card, to_json(card))
    _record(ledger, run, card)
    for trial in ledger.trials(run.id):
        folder = layout.trial(trial.number)
        after_trial(folder.dir, trial, policy)
        if policy.keep is KeepModels.BEST:
            shutil.rmtree(folder.model, ignore_errors=True)
    return card


def _take(trial_dir: Path, saved: ModelFields, target: Path, card: dict[str, Any]) -> None:
    """Copy the saved model (checked: its file is ``model/<name>``) into the run's model folder."""
    assert saved.format is not None and saved.file is not None
    assert saved.size_bytes is not None and saved.sha256 is not None
    name = saved.format.file_name
    dst = target / name
    try:
        copied = trial_files.copy_out(trial_dir, saved.file, dst, saved.size_bytes, saved.sha256)
    except BadTrialFile as e:
        card["error"] = f"the model is not taken: {e}"
        return
    if not copied and not (_own_file(dst) and file_sha256(dst) == saved.sha256):
        card["error"] = f"{saved.file} is no longer in the trial's folder, and was not published before"
        return
    card.update(file=name, load=saved.format.load_code(name))
    if saved.state_dict is not None:
        _take_weights(trial_dir, saved.state_dict, target, card)


def _take_weights(trial_dir: Path, weights: WeightsFields, target: Path, card: dict[str, Any]) -> None:
    """Copy a PyTorch model's state_dict beside it, checked as the model is."""
    dst = target / STATE_DICT_FILE
    try:
        copied = trial_files.copy_out(trial_dir, weights.file, dst, weights.size_bytes, weights.sha256)
    except BadTrialFile as e:
        card["error"] = f"the model's state_dict is not taken: {e}"
        return
    if not copied and not (_own_file(dst) and file_sha256(dst) == weights.sha256):
        card["error"] = f"{weights.file} is no longer in the trial's folder, and was not published before"
        return
    card["state_dict"] = {
        "file": STATE_DICT_FILE,
        "size_bytes": weights.size_bytes,
        "sha256": weights.sha256,
        "load": f"import torch; state = torch.load({STATE_DICT_FILE!r}, weights_only=True)",
    }


def _record(ledger: Ledger, run: RunRecord, card: dict[str, Any]) -> None:
    trial = card["trial"]["number"]
    if not card["file"]:
        ledger.event(run.id, trial, LedgerEventKind.MODEL_MISSING, str(card.get("error")))
        return
    check = card.get("check") or {}
    path = run_model_dir(run) / str(card["file"])
    if check.get("loaded"):
        said = "loads and predicts" if check.get("predicted") else "loads"
        ledger.event(
            run.id,
            trial,
            LedgerEventKind.MODEL_SAVED,
            f"model of trial {trial}: {path} ({said})",
            ModelSaved(str(card["sha256"])),
        )
    else:
        why = check.get("error") or "not checked"
        ledger.event(
            run.id,
            trial,
            LedgerEventKind.MODEL_NOT_LOADED,
            f"model of trial {trial}: {path} (did not load: {why})",
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
    weights = (card.get("state_dict") or {}).get("file")
    extra = [run_model_dir(run) / STATE_DICT_FILE] if weights == STATE_DICT_FILE else []
    for src in (path, *extra, RunLayout(run.dir).model_card):
        shutil.copyfile(src, to / src.name, follow_symlinks=False)
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
    layout = WorkspaceLayout(workspace)
    runs = [RunLayout(p) for p in layout.run_dirs()]
    trials = [TrialLayout(t) for t in layout.trial_entries()]
    return {
        "total": size_of([workspace]),
        "models": size_of([r.model for r in runs] + [t.model for t in trials]),
        "checkpoints": size_of([t.checkpoints for t in trials]),
        "checkouts": size_of([layout.checkouts]),
        "repos": size_of([layout.repos]),
    }


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
